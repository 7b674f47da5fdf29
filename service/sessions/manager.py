"""The session manager: what the API asks of sessions, persisted in the store.

It records what the operator wants (desired_state) and asks the session's engine (the
browser for web sessions, the Cloud API for `meta` ones), when there are engines, to make the
observed status follow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from adapters.base import Engine, QrCode
from adapters.meta import MetaConfig
from service.errors import AtCapacity, SessionNotFound, ValidationFailed, require_browsers
from service.netguard import webhook_url_problem
from service.secretbox import SecretBox
from service.sessions.calls import CallPolicy
from service.sessions.layout import ensure_session_dir, profile_dir, remove_tree, session_dir
from service.sessions.proxy import ProxyConfig, proxy_columns
from service.store import SessionRecord, Store

log = logging.getLogger("service.sessions")


class Engines(Protocol):
    """Which engine runs a session (adapters.selector.ProviderSelector)."""

    def engine(self, session: SessionRecord) -> Engine: ...


class Runtime(Protocol):
    """What the manager needs from the browser runtime: keep a session's profile free."""

    async def remove(self, session_id: str, *, unlink: bool) -> None:
        """Stop the session for good, and keep it from starting, before the purge;
        `unlink` logs a running, logged-in page out first (the phone forgets the device)."""

    def release(self, session_id: str) -> None:
        """The purge is over: the id may be used again."""


class Forgetful(Protocol):
    """Something that keeps per-session state to drop when a session is deleted."""

    def forget(self, session_id: str) -> None: ...


_UNSET: Any = object()


class SessionManager:
    """Creates, changes and removes sessions; enforces MAX_SESSIONS on running ones."""

    def __init__(
        self,
        store: Store,
        sessions_root: Path,
        *,
        max_sessions: int,
        secretbox: SecretBox | None,
        runtime: Runtime | None = None,
        engines: Engines | None = None,
        forgetful: tuple[Forgetful, ...] = (),
    ) -> None:
        self.store = store
        self.sessions_root = sessions_root
        self.max_sessions = max_sessions
        self.secretbox = secretbox
        self.runtime = runtime
        self.engines = engines
        self.forgetful = forgetful
        # Capacity check and write happen under one lock so two creates cannot both pass.
        self._capacity = asyncio.Lock()

    async def get(self, session_id: str) -> SessionRecord:
        record = await self.store.get_session(session_id)
        if record is None:
            raise SessionNotFound(session_id)
        return record

    async def list(
        self, workspace_id: str | None = None, status: str | None = None
    ) -> list[SessionRecord]:
        return await self.store.list_sessions(workspace_id=workspace_id, status=status)

    async def create(
        self,
        workspace_id: str,
        session_id: str | None,
        provider_mode: str,
        start: bool,
        webhook_url: str | None,
        meta: MetaConfig | None,
        metadata: dict[str, Any] | None = None,
        webhook_events: Sequence[str] | None = None,
        proxy: ProxyConfig | None = None,
        call_policy: CallPolicy | None = None,
    ) -> SessionRecord:
        session_id = session_id or "ses_" + secrets.token_hex(8)
        if provider_mode == "meta" and meta is None:
            raise ValidationFailed("meta", "is required when provider_mode is meta")
        _check_webhook_url(webhook_url)
        proxied = proxy_columns(proxy, session_id, self.secretbox)
        async with self._capacity:
            if start:
                await self._ensure_capacity()
            record = SessionRecord(
                session_id=session_id,
                workspace_id=workspace_id,
                provider_mode=provider_mode,
                desired_state="running" if start else "stopped",
                webhook_url=webhook_url or None,
                meta_sealed=self._seal(meta, session_id),
                meta_phone_number_id=meta.phone_number_id if meta else None,
                metadata=_json_or_none(metadata),
                webhook_events=_json_or_none(webhook_events),
                **proxied,
                call_policy=call_policy.column() if call_policy else None,
            )
            record = await self.store.create_session(record)
        ensure_session_dir(self.sessions_root, workspace_id, session_id)
        if start:
            await self._reconcile(session_id)
        return await self.get(session_id)

    async def update(
        self,
        session_id: str,
        *,
        provider_mode: str | None = None,
        webhook_url: str | None = _UNSET,
        meta: MetaConfig | None = _UNSET,
        metadata: dict[str, Any] | None = _UNSET,
        webhook_events: Sequence[str] | None = _UNSET,
        proxy: ProxyConfig | None = _UNSET,
        call_policy: CallPolicy | None = _UNSET,
    ) -> SessionRecord:
        """Change what is given; `metadata` and `webhook_events` are replaced whole (None
        clears the metadata, and sends every event again). A new `proxy` (None: none) is
        what the browser uses from its next start or restart."""
        record = await self.get(session_id)
        changes: dict[str, Any] = {}
        if provider_mode is not None:
            changes["provider_mode"] = provider_mode
        if webhook_url is not _UNSET:
            _check_webhook_url(webhook_url)
            changes["webhook_url"] = webhook_url or None
        if meta is not _UNSET:
            changes["meta_sealed"] = self._seal(meta, session_id)
            changes["meta_phone_number_id"] = meta.phone_number_id if meta else None
        if metadata is not _UNSET:
            changes["metadata"] = _json_or_none(metadata)
        if webhook_events is not _UNSET:
            changes["webhook_events"] = _json_or_none(webhook_events)
        if proxy is not _UNSET:
            changes.update(proxy_columns(proxy, session_id, self.secretbox))
        if call_policy is not _UNSET:
            # Read by the session's worker at each call: no restart needed.
            changes["call_policy"] = call_policy.column() if call_policy else None
        mode = changes.get("provider_mode", record.provider_mode)
        has_meta = changes.get("meta_sealed", record.meta_sealed) is not None
        if mode == "meta" and not has_meta:
            raise ValidationFailed("meta", "is required when provider_mode is meta")
        if not changes:
            return record
        updated = await self.store.update_session(session_id, changes)
        if updated.provider_mode != record.provider_mode and self.engines is not None:
            before, after = self.engines.engine(record), self.engines.engine(updated)
            if before is not after:
                # A browser may be needed now, or no longer: the new engine takes over.
                await before.stop(updated, handover=True)
                await self._reconcile(session_id)
        return await self.get(session_id)

    async def start(self, session_id: str) -> SessionRecord:
        async with self._capacity:
            record = await self.get(session_id)
            if record.desired_state != "running":
                await self._ensure_capacity()
                await self.store.update_session(session_id, {"desired_state": "running"})
        await self._reconcile(session_id)
        return await self.get(session_id)

    async def stop(self, session_id: str) -> SessionRecord:
        await self.get(session_id)
        await self.store.update_session(session_id, {"desired_state": "stopped"})
        await self._reconcile(session_id)
        return await self.get(session_id)

    async def restart(self, session_id: str) -> SessionRecord:
        record = await self.get(session_id)
        if record.desired_state != "running":
            return await self.start(session_id)
        if self.engines is not None:
            await self.engines.engine(record).restart(record)
        return await self.get(session_id)

    async def logout(self, session_id: str) -> SessionRecord:
        record = await self.get(session_id)
        if self.engines is not None:
            await self.engines.engine(record).logout(record)
        else:
            remove_tree(profile_dir(self.sessions_root, record.workspace_id, session_id))
            await self.store.update_session(session_id, {"phone_number": None})
        return await self.get(session_id)

    async def delete(self, session_id: str, *, keep_device: bool = False) -> None:
        """Remove the session: its device is unlinked from the phone first unless
        `keep_device` (a session moved elsewhere with its profile), then its browser,
        rows and directory go. Only a running page can unlink; a failed unlink is logged
        and the delete goes on."""
        record = await self.get(session_id)
        try:
            if self.runtime is not None:
                await self.runtime.remove(session_id, unlink=not keep_device)
            for holder in self.forgetful:
                holder.forget(session_id)
            await self.store.delete_session(session_id)
            remove_tree(session_dir(self.sessions_root, record.workspace_id, session_id))
        finally:
            if self.runtime is not None:
                self.runtime.release(session_id)

    def meta_config(self, record: SessionRecord) -> MetaConfig | None:
        """The session's Meta credentials, opened; None when it has none."""
        if record.meta_sealed is None or self.secretbox is None:
            return None
        try:
            return MetaConfig(**self.secretbox.open(record.meta_sealed, record.session_id))
        except (ValueError, TypeError):
            # A changed SIDECAR_ENCRYPTION_KEY: the credentials must be given again.
            log.error("session %s: Meta credentials do not open with this key", record.session_id)
            return None

    async def _ensure_capacity(self) -> None:
        running = await self.store.list_sessions(desired_state="running")
        if len(running) >= self.max_sessions:
            raise AtCapacity(
                f"this instance runs at most {self.max_sessions} sessions (MAX_SESSIONS)",
                details={"max_sessions": self.max_sessions},
            )

    async def restore(self) -> None:
        """At boot: every session goes where its desired_state says."""
        for record in await self.store.list_sessions():
            await self._reconcile(record.session_id)

    async def qr(self, session_id: str) -> QrCode:
        record = await self.get(session_id)
        return await self._engine(record).qr(record)

    async def pairing_code(self, session_id: str, phone: str) -> str:
        record = await self.get(session_id)
        return await self._engine(record).pairing_code(record, phone)

    async def call(self, session_id: str, op: str, args: dict[str, Any]) -> Any:
        """A page operation (contacts, ...) on the session's engine; see Engine.call."""
        record = await self.get(session_id)
        return await self._engine(record).call(record, op, args)

    def _engine(self, record: SessionRecord) -> Engine:
        return require_browsers(self.engines).engine(record)

    async def apply(self, session_id: str) -> None:
        """Make the session's engine follow its desired_state now (a cluster worker that
        took the session, or was asked to)."""
        await self._reconcile(session_id)

    async def _reconcile(self, session_id: str) -> None:
        if self.engines is None:
            return
        record = await self.get(session_id)
        engine = self.engines.engine(record)
        if record.desired_state == "running":
            await engine.start(record)
        else:
            await engine.stop(record)

    def _seal(self, meta: MetaConfig | None, session_id: str) -> str | None:
        if meta is None:
            return None
        if self.secretbox is None:
            raise ValidationFailed(
                "meta",
                "cannot be stored: SIDECAR_ENCRYPTION_KEY is not set on the sidecar, and "
                "Meta credentials are only kept encrypted",
            )
        return self.secretbox.seal(meta.as_dict(), session_id)


def _json_or_none(value: dict[str, Any] | Sequence[str] | None) -> str | None:
    """How the store keeps metadata and webhook_events: compact JSON text."""
    if value is None:
        return None
    if not isinstance(value, dict):
        value = list(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _check_webhook_url(url: str | None) -> None:
    """Webhooks may go to private hosts, never to link-local or cloud metadata addresses;
    credentials in the URL are kept (deliveries authenticate with them), never shown."""
    if url and (problem := webhook_url_problem(url)):
        raise ValidationFailed("webhook_url", problem)
