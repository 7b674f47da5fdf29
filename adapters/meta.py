"""The Meta WhatsApp Cloud API provider: `POST {graph}/{version}/{phone_number_id}/messages`.

Errors are classified by Graph error code (docs/api.md, Providers):
- transient or throughput (1, 2, 131000, 131016, 130429, HTTP 5xx, timeouts): retried here a
  few times, then reported TRANSIENT so the selector can fail over;
- provider down (190, 0, 10, 200-299, 368, 131031, 131048): PROVIDER_DOWN opens the circuit;
- recipient-level (131026, 131047, 131050, 131056): the message fails, no failover; 131056
  (pair rate limit) also backs off that recipient;
- request bugs (100, 131008, 131009, 132000-132016) and anything else: the message fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import httpx

from adapters.base import (
    Engine,
    ErrorKind,
    InboundMessage,
    InboundSink,
    MediaTooLarge,
    ProviderError,
    ProviderStatus,
    Reaction,
    SendResult,
    StatusUpdate,
    not_supported_by_provider,
)
from adapters.meta_inbound import MetaBatch, MetaMessage
from service.digits import ascii_int
from service.errors import Conflict
from service.sessions.layout import session_dir
from service.store import MessageRecord, SessionRecord

log = logging.getLogger("adapters.meta")

TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 130429})
DOWN_CODES = frozenset({190, 0, 10, 368, 131031, 131048, *range(200, 300)})
RECIPIENT_CODES = frozenset({131026, 131047, 131050, 131056})
REQUEST_CODES = frozenset({100, 131008, 131009, *range(132000, 132017)})
# 131056: too many messages from this number to that one; Meta asks to slow down for it.
PAIR_RATE_BACKOFF = 60.0


@dataclass(frozen=True)
class MetaConfig:
    """Meta Cloud API credentials of one session (sealed at rest)."""

    phone_number_id: str
    access_token: str
    app_secret: str | None = None
    verify_token: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class StatusSetter(Protocol):
    """Moves a session's status (service.sessions.state.StatusWriter)."""

    async def move(
        self, record: SessionRecord, status: str, *, reason: str | None = None
    ) -> SessionRecord: ...


def classify(code: int | None, http_status: int) -> ErrorKind:
    """The kind of a Graph error, by its code first and its HTTP status second."""
    if code in TRANSIENT_CODES:
        return ErrorKind.TRANSIENT
    if code in DOWN_CODES:
        return ErrorKind.PROVIDER_DOWN
    if code in RECIPIENT_CODES:
        return ErrorKind.RECIPIENT
    if code in REQUEST_CODES:
        return ErrorKind.REQUEST
    if http_status >= 500 or http_status == 429:
        return ErrorKind.TRANSIENT
    if http_status in (401, 403):
        return ErrorKind.PROVIDER_DOWN
    return ErrorKind.REQUEST


class MetaEngine(Engine):
    """Runs a session on the Cloud API with its own (sealed) credentials: no browser, no QR;
    the session is up whenever it is wanted."""

    name = "meta"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        graph_url: str,
        version: str,
        sessions_root: Path,
        credentials: Callable[[SessionRecord], MetaConfig | None],
        timeout: float = 15.0,
        attempts: int = 3,
        retry_base: float = 0.5,
        statuses: StatusSetter | None = None,
    ) -> None:
        self.client = client
        self.base = f"{graph_url.rstrip('/')}/{version}"
        self.sessions_root = sessions_root
        self.credentials = credentials
        self.timeout = timeout
        self.attempts = attempts
        self.retry_base = retry_base
        self.statuses = statuses
        self.sink: InboundSink | None = None

    async def start(self, session: SessionRecord) -> None:
        if self.statuses is None or session.status == "connected":
            return
        record = await self.statuses.move(session, "initializing", reason="cloud_api")
        await self.statuses.move(record, "connected", reason="cloud_api")

    async def stop(self, session: SessionRecord, *, handover: bool = False) -> None:
        if self.statuses is not None and not handover:
            await self.statuses.move(session, "stopped", reason="cloud_api")

    def reaches(self, chat_id: str) -> bool:
        # The Cloud API addresses people by phone number: no groups, and an `@lid` holds
        # none (its digits are not a phone number).
        return chat_id.endswith("@c.us")

    async def download_media(
        self, session: SessionRecord, provider_message_id: str, max_bytes: int | None = None
    ) -> bytes:
        config = self.credentials(session)
        if config is None:
            raise Conflict("the session has no Meta credentials", code="meta_not_configured")
        try:
            data, _ = await self.download(config, provider_message_id, max_bytes)
        except ProviderError as exc:
            raise Conflict(
                f"the Cloud API gave no media: {exc.describe()}", code="media_unavailable"
            ) from None
        return data

    async def receive(self, session: SessionRecord, batch: MetaBatch) -> None:
        """Hand what one webhook reported for this session to messaging."""
        if self.sink is None:
            return
        for message in batch.messages:
            if message.reacted_to is not None:
                # A reaction is news about another message, not a message of its own.
                await self.sink.on_reaction(session, self.reaction(message, message.reacted_to))
                continue
            await self.sink.on_inbound(session, self.inbound(session, message))
        for status in batch.statuses:
            await self.sink.on_status(
                session, StatusUpdate(self.name, status.wamid, status.status, status.error)
            )

    def reaction(self, message: MetaMessage, target: str) -> Reaction:
        """A Cloud API reaction (an empty or missing emoji: taken back)."""
        return Reaction(
            provider=self.name,
            ref=target,
            provider_message_id=target,
            sender=f"{message.sender}@c.us",
            emoji=message.text or None,
            timestamp=message.timestamp,
        )

    def inbound(self, session: SessionRecord, message: MetaMessage) -> InboundMessage:
        """A Cloud API message as an InboundMessage (wa_id is the sender's phone)."""
        chat_id = f"{message.sender}@c.us"
        media_id = message.media_id

        async def load(max_bytes: int) -> bytes:
            assert media_id is not None
            return await self.download_media(session, media_id, max_bytes)

        return InboundMessage(
            provider=self.name,
            provider_message_id=message.wamid,
            ref=message.wamid,
            chat_id=chat_id,
            kind=message.kind,
            text=message.text,
            sender=chat_id,
            sender_phone=message.sender,
            chat_phone=message.sender,
            notify_name=message.notify_name,
            timestamp=message.timestamp,
            reply_to_ref=message.reply_to,
            reply_to_provider_id=message.reply_to,
            location=message.location,
            media=message.media,
            load_media=load if media_id else None,
        )

    def status(self, session: SessionRecord) -> ProviderStatus:
        if session.meta_sealed is None:
            return ProviderStatus(False, "no Meta credentials configured")
        return ProviderStatus(True)

    async def send(self, session: SessionRecord, message: MessageRecord) -> SendResult:
        config = self.credentials(session)
        if config is None:
            raise ProviderError(ErrorKind.PROVIDER_DOWN, "no Meta credentials configured")
        payload = await self._payload(session, config, message)
        last: ProviderError | None = None
        for attempt in range(self.attempts):
            try:
                data = await self._request(
                    config, "POST", f"{config.phone_number_id}/messages", json=payload
                )
            except ProviderError as exc:
                if exc.kind is not ErrorKind.TRANSIENT:
                    raise
                last = exc
                delay = exc.retry_after or self.retry_base * 2**attempt
                log.info("Meta send transient error (%s); retry in %.1f s", exc.describe(), delay)
                await asyncio.sleep(min(delay, 10.0))
                continue
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
                if isinstance(wamid, str):
                    return SendResult(wamid, wamid)
            raise ProviderError(ErrorKind.UNKNOWN_DELIVERY, "Meta answered without a message id")
        assert last is not None
        raise last

    async def call(self, session: SessionRecord, op: str, args: dict[str, Any]) -> Any:
        """The Cloud API has two of the page operations: reactions (`messages.react` with
        the message's wamid, its chat and the emoji; an empty emoji removes ours) and read
        receipts (`chats.read` with `message_id`, the chat's newest inbound wamid: Meta marks
        it and every earlier message of the chat read)."""
        if op == "messages.react":
            payload: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": str(args["to"]).split("@", 1)[0],
                "type": "reaction",
                "reaction": {"message_id": args["id"], "emoji": args.get("reaction") or ""},
            }
            await self._operate(session, payload, "the Cloud API refused the reaction")
            return {"result": "OK"}
        if op == "chats.read":
            wamid = args.get("message_id")
            if wamid:
                payload = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
                await self._operate(session, payload, "the Cloud API refused the read receipt")
            # Nothing received in the chat: nothing to mark, and nothing left unread.
            return {"id": args["id"], "unread_count": 0}
        raise not_supported_by_provider(self.name, op)

    async def _operate(self, session: SessionRecord, payload: dict[str, Any], refusal: str) -> None:
        """POST one non-message request to the number's /messages edge."""
        config = self.credentials(session)
        if config is None:
            raise Conflict(
                "the session has no Meta credentials",
                code="session_not_connected",
                details={"status": session.status},
            )
        try:
            await self._request(config, "POST", f"{config.phone_number_id}/messages", json=payload)
        except ProviderError as exc:
            # Meta's refusal, with its code, as a page's refusal is reported.
            raise Conflict(
                refusal,
                code="provider_refused",
                details={"provider": self.name, "error": exc.describe(), "kind": exc.kind.value},
            ) from None

    async def _payload(
        self, session: SessionRecord, config: MetaConfig, message: MessageRecord
    ) -> dict[str, Any]:
        content = json.loads(message.content)
        to = message.chat_id.split("@", 1)[0]
        if message.chat_id.endswith("@g.us"):
            raise ProviderError(ErrorKind.RECIPIENT, "the Cloud API cannot send to WhatsApp groups")
        if not self.reaches(message.chat_id):
            raise ProviderError(
                ErrorKind.RECIPIENT, "the Cloud API needs a phone number, not a linked id (@lid)"
            )
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            # The Cloud API sends a voice note as audio (an OGG/Opus file plays as one).
            "type": "audio" if message.type == "voice" else message.type,
        }
        quoted = content.get("reply_to_provider_id")
        # Only a Cloud API message id can be quoted here (a web key means nothing to Meta).
        if (
            quoted
            and content.get("reply_to_provider") in (None, self.name)
            and quoted.startswith("wamid.")
        ):
            payload["context"] = {"message_id": quoted}
        if content.get("mentions"):
            # An auto session's text or caption that failed over: the Cloud API has no mentions.
            raise ProviderError(ErrorKind.REQUEST, "mentions are sent through WhatsApp Web only")
        if message.type == "text":
            payload["text"] = {
                "body": content["text"],
                "preview_url": content.get("link_preview") is True,
            }
        elif message.type == "location":
            loc = content["location"]
            payload["location"] = {
                k: v
                for k, v in (
                    ("latitude", loc["latitude"]),
                    ("longitude", loc["longitude"]),
                    ("name", loc.get("name")),
                )
                if v is not None
            }
        elif message.type == "template":
            payload["template"] = content["template"]
        elif message.type == "poll":
            # An auto session's poll that failed over: the Cloud API has no polls.
            raise ProviderError(ErrorKind.REQUEST, "polls are sent through WhatsApp Web only")
        else:
            kind = payload["type"]
            payload[kind] = await self._media(session, config, kind, content)
        return payload

    async def _media(
        self, session: SessionRecord, config: MetaConfig, kind: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        media = content["media"]
        if media.get("url"):
            item: dict[str, Any] = {"link": media["url"]}
        else:
            item = {"id": await self._upload(session, config, media)}
        if content.get("text") and kind != "audio":
            item["caption"] = content["text"]
        if kind == "document" and media.get("filename"):
            item["filename"] = media["filename"]
        return item

    async def _upload(
        self, session: SessionRecord, config: MetaConfig, media: dict[str, Any]
    ) -> str:
        """Upload an inline file to the Cloud API; its media id is what the message names."""
        directory = session_dir(self.sessions_root, session.workspace_id, session.session_id)
        try:
            data = await asyncio.to_thread((directory / media["file"]).read_bytes)
        except OSError as exc:
            raise ProviderError(ErrorKind.REQUEST, f"media unavailable: {exc}") from None
        files = {"file": (media.get("filename") or "file", data, media["mimetype"])}
        form = {"messaging_product": "whatsapp", "type": media["mimetype"]}
        result = await self._request(
            config, "POST", f"{config.phone_number_id}/media", data=form, files=files
        )
        media_id = result.get("id")
        if not isinstance(media_id, str):
            raise ProviderError(ErrorKind.TRANSIENT, "Meta answered the upload without an id")
        return media_id

    async def _request(
        self, config: MetaConfig, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {config.access_token}"}
        try:
            response = await self.client.request(
                method, f"{self.base}/{path}", headers=headers, timeout=self.timeout, **kwargs
            )
        except httpx.TimeoutException:
            raise ProviderError(ErrorKind.TRANSIENT, "the Cloud API timed out") from None
        except httpx.HTTPError as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT, f"the Cloud API is unreachable: {type(exc).__name__}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code < 300 and isinstance(data, dict):
            return data
        raise _graph_error(response, data)

    async def download(
        self, config: MetaConfig, media_id: str, max_bytes: int | None = None
    ) -> tuple[bytes, str | None]:
        """An inbound message's media: its URL from the Graph API, then the bytes.
        MediaTooLarge, before any byte is fetched, when Meta's `file_size` passes `max_bytes`."""
        info = await self._request(config, "GET", media_id)
        url = info.get("url")
        if not isinstance(url, str):
            raise ProviderError(ErrorKind.REQUEST, "Meta gave no URL for this media")
        declared = info.get("file_size")
        if max_bytes is not None and _whole(declared) and declared > max_bytes:
            raise MediaTooLarge(declared)
        chunks: list[bytes] = []
        try:
            async with self.client.stream(
                "GET",
                url,
                headers={"Authorization": f"Bearer {config.access_token}"},
                timeout=self.timeout,
            ) as response:
                if response.status_code != 200:
                    raise ProviderError(
                        ErrorKind.TRANSIENT, f"media download: HTTP {response.status_code}"
                    )
                size = 0
                # Read no further than the cap: a file Meta understated stops here.
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise MediaTooLarge()
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise ProviderError(ErrorKind.TRANSIENT, f"media download failed: {exc}") from None
        mime = info.get("mime_type")
        return b"".join(chunks), mime if isinstance(mime, str) else None


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _graph_error(response: httpx.Response, data: Any) -> ProviderError:
    error = data.get("error") if isinstance(data, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    details = error.get("error_data", {})
    detail = details.get("details") if isinstance(details, dict) else None
    message = str(detail or error.get("message") or f"HTTP {response.status_code}")[:500]
    kind = classify(code, response.status_code)
    retry_after = ascii_int(response.headers.get("retry-after", "").strip(), high=3600)
    return ProviderError(
        kind,
        message,
        code=code,
        retry_after=float(retry_after) if retry_after is not None else None,
        recipient_backoff=PAIR_RATE_BACKOFF if code == 131056 else None,
    )
