"""Messaging: accept sends into a durable queue, run the senders, record inbound and acks.

Engines hand over neutral records (adapters.base): an InboundMessage, a StatusUpdate. Nothing
here knows a provider's payloads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

from adapters.base import (
    Edit,
    InboundMessage,
    MediaTooLarge,
    Reaction,
    Revoke,
    StatusUpdate,
    not_supported_by_provider,
)
from adapters.selector import ProviderSelector
from service.clock import iso
from service.errors import (
    ApiError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    SessionNotFound,
    ValidationFailed,
)
from service.links import SignedLinks
from service.messaging.media import MediaFetcher, guess_filename, write_media
from service.messaging.pacing import Pacer, PacingPolicy
from service.messaging.request import OutgoingMessage
from service.messaging.sender import Sender
from service.messaging.status import apply_status, change_status, rank, status_event
from service.models.events import MessageEdited, MessageReacted, MessageReceived, MessageRevoked
from service.models.responses import MediaReason, Message
from service.sessions.layout import session_dir
from service.store import MessageRecord, SessionRecord, StaleMessage, Store

log = logging.getLogger("service.messaging")

EARLY_ACK_TTL = 120.0
EARLY_ACKS_MAX = 10_000
# A message in these has not left: it can still be cancelled.
CANCELLABLE = ("queued", "scheduled")


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


class Messenger:
    """Owns the message queue of every session and the senders that drain it."""

    def __init__(
        self,
        store: Store,
        selector: ProviderSelector,
        sessions_root: Path,
        *,
        fetcher: MediaFetcher,
        links: SignedLinks,
        pacing: PacingPolicy,
        max_media_bytes: int,
        max_inbound_media_bytes: int = 64 * 1024 * 1024,
        observe_send: Callable[[str, float], None] | None = None,
        nudge: Callable[[str], None] | None = None,
        may_send: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        # In the api role senders run on the workers: a queued message nudges its session's
        # owner instead of waking a sender here.
        self.nudge = nudge
        self.may_send = may_send
        # Sessions being handed to another worker: nothing wakes a sender for them here.
        self._leaving: set[str] = set()
        self.selector = selector
        self.sessions_root = sessions_root
        self.fetcher = fetcher
        self.links = links
        self.pacing = pacing
        self.max_media_bytes = max_media_bytes
        self.max_inbound_media_bytes = max_inbound_media_bytes
        self.observe_send = observe_send
        self.senders: dict[str, Sender] = {}
        self._closing = False
        # Reports that came before their send's result was recorded: (session, ref) ->
        # (update, when).
        self._early: OrderedDict[tuple[str, str], tuple[StatusUpdate, float]] = OrderedDict()

    # lifecycle

    async def start(self) -> None:
        """Settle what a crash left in flight, then resume every queue."""
        if self.nudge is not None:
            return  # the workers settle each session as they take it
        interrupted = await self.store.interrupt_sending(status_event)
        if interrupted:
            log.warning(
                "%d messages were being sent when the service stopped; marked failed/interrupted",
                len(interrupted),
            )
        for session in await self.store.list_sessions():
            sid = session.session_id
            # A session with only scheduled messages needs its sender too: it sleeps to them.
            if any([await self.store.count_messages(sid, s) for s in ("queued", "scheduled")]):
                self.wake(sid)

    async def stop(self, timeout: float = 20.0) -> None:
        """Let each sender finish the message in flight (bounded), then stop them."""
        self._closing = True
        senders = list(self.senders.values())
        for sender in senders:
            sender.stop()
        tasks = [s.task for s in senders if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()

    async def take_over(self, session_id: str) -> None:
        """A worker took the session (its owner died, or it moved here): settle the sends
        the previous owner left in flight, then resume its queue."""
        self._leaving.discard(session_id)
        interrupted = await self.store.interrupt_sending(status_event, session_id)
        if interrupted:
            log.warning(
                "session %s: %d messages were being sent by its previous worker; marked "
                "failed/interrupted",
                session_id,
                len(interrupted),
            )
        self.wake(session_id)

    async def hand_over(self, session_id: str, timeout: float = 20.0) -> None:
        """The session leaves this worker: its sender finishes the message in flight, and
        none starts again here (a nudge or a status change may still come)."""
        self._leaving.add(session_id)
        sender = self.senders.pop(session_id, None)
        if sender is None or sender.task is None:
            return
        sender.stop()
        _, pending = await asyncio.wait([sender.task], timeout=timeout)
        for task in pending:
            task.cancel()

    def wake(self, session_id: str) -> None:
        if self.nudge is not None:
            self.nudge(session_id)
            return
        if self._closing or session_id in self._leaving:
            return
        sender = self.senders.get(session_id)
        if sender is None or sender.task is None or sender.task.done():
            sender = Sender(
                session_id,
                store=self.store,
                selector=self.selector,
                pacer=Pacer(self.pacing),
                session_dir=lambda: self._session_dir(session_id),
                on_settled=self._apply_early,
                observe=self.observe_send,
                may_send=self.may_send,
            )
            self.senders[session_id] = sender
            sender.start()
        sender.wake()

    def forget(self, session_id: str) -> None:
        """The session is being deleted: its sender ends after the message in flight."""
        self._leaving.discard(session_id)
        sender = self.senders.pop(session_id, None)
        if sender is not None:
            sender.stop()

    def on_session_status(self, session: SessionRecord) -> None:
        """Status listener: any change of a session's state may let its queue move (or
        move through another provider)."""
        self.wake(session.session_id)

    # sending

    async def accept(self, session_id: str, request: OutgoingMessage) -> tuple[MessageRecord, bool]:
        """Queue a message (202) or return the first record for a repeated idempotency key."""
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        if request.idempotency_key is not None:
            # A retry of a request whose answer was lost gets the first record, whatever the
            # session's state is now, and without fetching its media again.
            existing = await self.store.find_idempotent(
                session.workspace_id, request.idempotency_key
            )
            if existing is not None:
                return existing, False
        if request.type == "poll" and session.provider_mode == "meta":
            # The Cloud API has no polls (an auto session sends them through its page).
            raise not_supported_by_provider("meta", "polls")
        if request.mentions and session.provider_mode == "meta":
            # The Cloud API has no mentions.
            raise not_supported_by_provider("meta", "mentions")
        if request.type == "template" and (
            session.provider_mode == "webjs" or session.meta_sealed is None
        ):
            raise ValidationFailed(
                "type", "templates go through the Cloud API: give this session Meta credentials"
            )
        if not self.selector.reaches(session, request.to):
            raise ValidationFailed(
                "to",
                "the Cloud API (provider_mode meta) sends to phone numbers only, "
                "not to groups or linked ids (@lid)",
            )
        if request.reply_to and request.reply_to.startswith("msg_"):
            quoted = await self.store.get_message(request.reply_to)
            if quoted is None or quoted.session_id != session_id:
                raise ValidationFailed("reply_to", "names no message of this session")
        if not self.selector.can_accept(session):
            raise Conflict(
                f"session is {session.status}, not connected, and no other provider can "
                "deliver for it now",
                code="session_not_connected",
                details={"status": session.status},
            )
        message_id = new_message_id()
        content: dict[str, Any] = {"text": request.text}
        if request.reply_to:
            # Our `msg_...` id or a provider's; the sender resolves it when it sends.
            content["reply_to"] = request.reply_to
        if request.template is not None:
            content["template"] = request.template
        if request.poll is not None:
            content["poll"] = request.poll
        if request.mentions:
            content["mentions"] = list(request.mentions)
        if request.link_preview is not None:
            content["link_preview"] = request.link_preview
        if request.location is not None:
            loc = request.location
            content["location"] = {
                "latitude": loc.latitude,
                "longitude": loc.longitude,
                "name": loc.name,
            }
        written: Path | None = None
        if request.media is not None:
            content["media"], written = await self._store_media(session, message_id, request)
        record, created = await self.store.enqueue_message(
            MessageRecord(
                id=message_id,
                session_id=session_id,
                workspace_id=session.workspace_id,
                direction="out",
                chat_id=request.to,
                type=request.type,
                content=json.dumps(content, ensure_ascii=False),
                status="queued" if request.send_at is None else "scheduled",
                priority=request.priority,
                idempotency_key=request.idempotency_key,
                send_at=request.send_at,
            )
        )
        if not created and written is not None:
            written.unlink(missing_ok=True)
        if created:
            self.wake(session_id)
        return record, created

    async def _store_media(
        self, session: SessionRecord, message_id: str, request: OutgoingMessage
    ) -> tuple[dict[str, Any], Path]:
        media = request.media
        assert media is not None
        if media.url is not None:
            data, fetched_type = await self.fetcher.fetch(media.url)
            mimetype = media.mimetype or fetched_type
        else:
            assert media.data is not None
            data, mimetype = media.data, media.mimetype
        if len(data) > self.max_media_bytes:
            raise PayloadTooLarge(
                f"media is larger than {self.max_media_bytes} bytes",
                code="media_too_large",
                details={"field": "media", "limit": self.max_media_bytes},
            )
        if not mimetype:
            raise ValidationFailed("media.mimetype", "is required: the URL did not say")
        name = guess_filename(message_id, mimetype)
        directory = session_dir(self.sessions_root, session.workspace_id, session.session_id)
        path = await asyncio.to_thread(write_media, directory / "media" / "out", name, data)
        return {
            "mimetype": mimetype,
            "filename": media.filename,
            "size": len(data),
            "file": f"media/out/{name}",
            # The Cloud API can fetch the original link itself instead of an upload.
            "url": media.url,
        }, path

    async def get(self, session_id: str, message_id: str) -> MessageRecord:
        record = await self.store.get_message(message_id)
        if record is None or record.session_id != session_id:
            raise NotFound(
                f"no message {message_id!r} in session {session_id!r}",
                code="message_not_found",
                details={"message_id": message_id},
            )
        return record

    async def cancel(self, session_id: str, message_id: str) -> MessageRecord:
        """Take back a message not yet sent: it becomes `cancelled` (final, with its
        message_status_updated event) and its media file is deleted. A compare-and-set on
        its status, so of a cancel and the sender's claim exactly one wins; a message
        already `sending` or further is a Conflict."""
        record = await self.get(session_id, message_id)
        for _ in range(3):
            if record.direction != "out" or record.status not in CANCELLABLE:
                raise Conflict(
                    f"message {message_id!r} is {record.status}; only a message not yet sent "
                    "can be cancelled",
                    code="message_not_cancellable",
                    details={"message_id": message_id, "status": record.status},
                )
            try:
                record = await change_status(
                    self.store, record, {"status": "cancelled", "error": None}, guarded=True
                )
                break
            except StaleMessage as stale:
                # Moved since it was read (a provider retry put it back to queued, say):
                # judge it again as it is now.
                record = stale.current
        else:
            raise Conflict(
                f"message {message_id!r} kept changing; try again",
                code="message_not_cancellable",
                details={"message_id": message_id, "status": record.status},
            )
        media = self.media_info(record)
        directory = await self._session_dir(session_id) if media and media.get("file") else None
        if media and directory is not None:
            (directory / media["file"]).unlink(missing_ok=True)
        # As stored (its updated_at too).
        return await self.store.get_message(message_id) or record

    async def _session_dir(self, session_id: str) -> Path | None:
        session = await self.store.get_session(session_id)
        if session is None:
            return None
        return session_dir(self.sessions_root, session.workspace_id, session_id)

    # what the engines report

    async def on_inbound(self, session: SessionRecord, message: InboundMessage) -> None:
        """Store a message someone sent and write its message_received event.

        Providers deliver at least once; the first copy of a provider ref wins.
        """
        if await self.store.find_message(session.session_id, message.ref) is not None:
            return
        message_id = new_message_id()
        content: dict[str, Any] = {
            "text": message.text,
            "from": message.chat_id,
            "author": message.sender if message.sender != message.chat_id else None,
            "from_phone": message.sender_phone,
            "chat_phone": message.chat_phone,
            "notify_name": message.notify_name,
            "timestamp": message.timestamp,
        }
        if message.reply_to_ref:
            quoted = await self.store.find_message(session.session_id, message.reply_to_ref)
            # Name the answered message by our id when we know it, else by the provider's,
            # so either can be passed back as `reply_to`.
            content["reply_to"] = (
                quoted.id if quoted is not None else message.reply_to_provider_id
            ) or message.reply_to_ref
        if message.location is not None:
            content["location"] = message.location
        if message.mentions:
            content["mentions"] = list(message.mentions)
        if message.media is not None:
            content["media"] = await self._save_media(session, message_id, message)
        now = time.time()
        kept = message.media is not None and bool(content["media"].get("file"))
        record = MessageRecord(
            id=message_id,
            session_id=session.session_id,
            workspace_id=session.workspace_id,
            direction="in",
            chat_id=message.chat_id,
            type=message.kind,
            content=json.dumps(content, ensure_ascii=False),
            status="received",
            provider=message.provider,
            provider_message_id=message.provider_message_id,
            provider_ref=message.ref,
            created_at=now,
            updated_at=now,
            media_stored_at=now if kept else None,
        )
        event = MessageReceived(message=self.view(record)).new_event()
        await self.store.record_inbound(record, event)

    async def on_status(self, session: SessionRecord, update: StatusUpdate) -> None:
        """A provider's news about a message we sent (forward-only)."""
        message = await self.store.find_message(session.session_id, update.ref)
        if message is None:
            self._remember(session.session_id, update)
            return
        await apply_status(self.store, message, update.status, update.error, unsure=update.unsure)

    async def on_reaction(self, session: SessionRecord, reaction: Reaction) -> None:
        """Write a message_reaction event; reactions are not kept on the message record."""
        record = await self.store.find_message(session.session_id, reaction.ref)
        event = MessageReacted.model_validate(
            {
                "message_id": record.id if record is not None else None,
                "provider_message_id": reaction.provider_message_id,
                "from": reaction.sender,
                "emoji": reaction.emoji,
                "timestamp": reaction.timestamp,
            }
        ).new_event()
        await self.store.update_session(session.session_id, {}, [event])

    async def on_edited(self, session: SessionRecord, edit: Edit) -> None:
        """A message's text changed (ours too: WhatsApp Web reports our own edits alike):
        the stored record takes the new text, and a message_edited event is written."""
        record = await self.store.find_message(session.session_id, edit.ref)
        event = MessageEdited(
            message_id=record.id if record is not None else None,
            provider_message_id=edit.provider_message_id,
            text=edit.text,
        ).new_event()
        if record is None:
            await self.store.update_session(session.session_id, {}, [event])
            return
        content = json.loads(record.content)
        content |= {"text": edit.text, "edited_at": time.time()}
        await self.store.update_message(
            record.id, {"content": json.dumps(content, ensure_ascii=False)}, [event]
        )

    async def on_revoked(self, session: SessionRecord, revoke: Revoke) -> None:
        """A message was deleted for everyone: the stored record keeps its content and is
        marked `revoked_at`, and a message_revoked event is written."""
        record = await self.store.find_message(session.session_id, revoke.ref)
        event = MessageRevoked.model_validate(
            {
                "message_id": record.id if record is not None else None,
                "provider_message_id": revoke.provider_message_id,
                "from": revoke.sender,
            }
        ).new_event()
        if record is None:
            await self.store.update_session(session.session_id, {}, [event])
            return
        await self.mark_revoked(record, [event])

    async def mark_revoked(self, record: MessageRecord, events: list[Any] | None = None) -> None:
        """Note on the record that it was deleted for everyone (once)."""
        content = json.loads(record.content)
        if "revoked_at" not in content:
            content["revoked_at"] = time.time()
        await self.store.update_message(
            record.id, {"content": json.dumps(content, ensure_ascii=False)}, events
        )

    def _remember(self, session_id: str, update: StatusUpdate) -> None:
        """A fast report can beat the record of its own send: keep the most telling one
        for a while."""
        key = (session_id, update.ref)
        previous = self._early.pop(key, None)
        if previous is not None and rank(previous[0].status) >= rank(update.status):
            update = previous[0]
        self._early[key] = (update, time.monotonic())
        while len(self._early) > EARLY_ACKS_MAX or (
            self._early and next(iter(self._early.values()))[1] < time.monotonic() - EARLY_ACK_TTL
        ):
            self._early.popitem(last=False)

    async def _apply_early(self, message: MessageRecord) -> None:
        """Sender hook, once a send is recorded: apply a report that came before it."""
        if message.provider_ref is None:
            return
        early = self._early.pop((message.session_id, message.provider_ref), None)
        if early is not None:
            update = early[0]
            await apply_status(
                self.store, message, update.status, update.error, unsure=update.unsure
            )

    async def _save_media(
        self, session: SessionRecord, message_id: str, message: InboundMessage
    ) -> dict[str, Any]:
        """Download and keep an inbound file; when it is not kept the message says why in
        `reason` (see MEDIA_REASONS), and is recorded all the same."""
        assert message.media is not None
        limit = self.max_inbound_media_bytes
        declared = _whole(message.media.size)
        media: dict[str, Any] = {
            "mimetype": message.media.mimetype,
            "filename": message.media.filename,
            "size": declared,
            "file": None,
        }
        if message.load_media is None:
            return media | {"reason": "unavailable"}
        if declared is not None and declared > limit:
            # Known too large before a byte moves: the download is not even started.
            return media | {"reason": "too_large"}
        try:
            data = await message.load_media(limit)
        except MediaTooLarge as exc:
            return media | {"reason": "too_large", "size": exc.size or declared}
        except (ApiError, ValueError, OSError) as exc:
            log.warning("session %s: media download failed: %s", session.session_id, exc)
            return media | {"reason": "unavailable"}
        if len(data) > limit:  # an engine that could not stop at the cap
            return media | {"reason": "too_large", "size": len(data)}
        name = guess_filename(message_id, media["mimetype"])
        try:
            directory = session_dir(self.sessions_root, session.workspace_id, session.session_id)
            await asyncio.to_thread(write_media, directory / "media" / "in", name, data)
        except (OSError, ValueError) as exc:
            # The message itself is still recorded; only its file is missing.
            log.error("session %s: saving inbound media failed: %s", session.session_id, exc)
            return media | {"reason": "not_saved"}
        media |= {"file": f"media/in/{name}", "size": len(data)}
        return media

    # views

    @staticmethod
    def media_info(record: MessageRecord) -> dict[str, Any] | None:
        media: dict[str, Any] | None = json.loads(record.content).get("media")
        return media

    def view(self, record: MessageRecord) -> Message:
        """The public message record (API responses and webhook payloads).

        What a provider reported is stored as it came, so each field is taken only when it
        has the documented type: an odd value from outside becomes null, never a lost message.
        """
        content = json.loads(record.content)
        media = _mapping(content.get("media"))
        location = _mapping(content.get("location"))
        view: dict[str, Any] = {
            "id": record.id,
            "session_id": record.session_id,
            "workspace_id": record.workspace_id,
            "direction": record.direction,
            "chat_id": record.chat_id,
            "type": record.type,
            "text": _text(content.get("text")),
            "media": None,
            "location": None,
            "reply_to": _text(content.get("reply_to")),
            "priority": record.priority,
            "status": record.status,
            "provider": record.provider,
            "provider_message_id": record.provider_message_id,
            "idempotency_key": record.idempotency_key,
            "error": record.error,
            "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at),
        }
        if media is not None:
            view["media"] = {
                "mimetype": _text(media.get("mimetype")),
                "filename": _text(media.get("filename")),
                "size": _whole(media.get("size")),
                "url": self.links.url(record.id) if media.get("file") else None,
            }
            if record.direction == "in":
                view["media"] |= {
                    "stored": bool(media.get("file")),
                    "reason": None if media.get("file") else media_reason(media),
                }
        if location is not None:
            view["location"] = {
                "latitude": _number(location.get("latitude")),
                "longitude": _number(location.get("longitude")),
                "name": _text(location.get("name")),
            }
        if record.send_at is not None:
            view["send_at"] = iso(record.send_at)
        # Set only once it happened, so a record that never changed reads as before.
        for stamp in ("edited_at", "revoked_at"):
            if isinstance(content.get(stamp), int | float):
                view[stamp] = iso(content[stamp])
        poll = _mapping(content.get("poll"))
        if poll is not None:
            options = poll.get("options")
            view["poll"] = {
                "name": _text(poll.get("name")),
                "options": [o for o in options if isinstance(o, str)]
                if isinstance(options, list)
                else [],
                "selectable_count": _whole(poll.get("selectable_count")),
            }
        mentions = content.get("mentions")
        if isinstance(mentions, list) and mentions:
            view["mentions"] = [m for m in mentions if isinstance(m, str)]
        if record.direction == "out":
            view["to"] = record.chat_id
        else:
            view["from"] = _text(content.get("author") or content.get("from"))
            # The phone number behind the sender (and the chat), when the provider knows it:
            # `@lid` ids carry none.
            view["from_phone"] = _text(content.get("from_phone"))
            view["chat_phone"] = _text(content.get("chat_phone"))
            view["notify_name"] = _text(content.get("notify_name"))
            view["timestamp"] = _whole(content.get("timestamp"))
        return Message.model_validate(view)


MEDIA_REASONS: tuple[str, ...] = get_args(MediaReason)
# What records written before `reason` existed said instead.
_LEGACY_ERRORS = {"download failed": "unavailable", "could not be saved": "not_saved"}


def media_reason(media: dict[str, Any]) -> str:
    """Why a media file is not kept: its `reason`, or what an older record's `error` meant."""
    reason = media.get("reason")
    if reason in MEDIA_REASONS:
        return str(reason)
    return _LEGACY_ERRORS.get(str(media.get("error")), "unavailable")


def _mapping(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:  # an integer too large for a float
        return None
