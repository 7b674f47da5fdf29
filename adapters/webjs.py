"""The WhatsApp Web engine: a session's Chromium page, driven through wa-js (the page bridge).

Everything WhatsApp Web says arrives here as page-bridge events and leaves as neutral records:
this module alone knows wa-js's message fields, its ACK values and its error codes.

Health comes from the connection state wa-js reports (stream mode, online), checked before a
message is handed to the page. Once handed, a message belongs to WhatsApp Web: a send made
while WhatsApp is offline stays pending inside wa-js (no timeout) and may still go out on
reconnect, so it is never failed over; it stays `sending` until wa-js settles it, and
becomes `failed` ("interrupted") only if its page goes away first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from adapters.base import (
    PAGE_OPS,
    PAGE_TIMEOUT,
    Edit,
    Engine,
    ErrorKind,
    InboundMedia,
    InboundMessage,
    InboundSink,
    MediaTooLarge,
    ProviderError,
    ProviderStatus,
    QrCode,
    Reaction,
    Revoke,
    SendResult,
    StatusUpdate,
)
from service.browser import BridgeError, BridgeTimeout, PageBridge
from service.browser.bridge import BridgeEvent
from service.errors import Conflict, PageTimeout, ValidationFailed
from service.sessions.layout import session_dir
from service.store import MessageRecord, SessionRecord

log = logging.getLogger("adapters.webjs")

# wa-js's ACK enum (dist/whatsapp/enums/ACK.d.ts). 0 is CLOCK (not sent yet); every
# negative value is a failure that wa-js never announces as an event, only in the send's
# own result; 5 (PEER) is not a receipt.
ACK_NAMES = {
    -7: "MD_DOWNGRADE",
    -6: "INACTIVE",
    -5: "CONTENT_UNUPLOADABLE",
    -4: "CONTENT_TOO_BIG",
    -3: "CONTENT_GONE",
    -2: "EXPIRED",
    -1: "FAILED",
    0: "CLOCK",
    1: "SENT",
    2: "RECEIVED",
    3: "READ",
    4: "PLAYED",
    5: "PEER",
}
ACK_STATUS = {1: "sent", 2: "delivered", 3: "read", 4: "played"}

# WPPError codes of the pinned bundle that mean "this recipient cannot get it"; any other
# code means the request itself was refused. wa-js has no code for "not connected": health
# is read from the connection state before sending, not from errors.
RECIPIENT_CODES = frozenset({"invalid_wid", "chat_not_found", "not_a_lid_chat"})
REQUEST_CODES = frozenset(
    {
        "msg_not_found",
        "invalid_quoted_msg",
        "quoted_msg_can_not_reply",
        "file_too_large",
        "can_not_send_message_to_this_groupType",
        "type_not_valid_for_newsletter",
        "message_key_is_not_from_me",
        "message_key_remote_id_is_not_same_of_chat",
        "mentioned_list_is_not_array",
        "mentioned_is_not_user",
        "invalid_data_url",
    }
)
CLASSIFIED_CODES = RECIPIENT_CODES | REQUEST_CODES

# WhatsApp message types that are something a person sent; the rest of MSG_TYPE (e2e and
# group notifications, call logs, protocol messages such as revokes, ciphertext) are not
# messages for Laravel.
USER_TYPES = {
    "chat": "text",
    "image": "image",
    "video": "video",
    "ptv": "video",
    "audio": "audio",
    "ptt": "audio",
    "document": "document",
    "sticker": "sticker",
    "location": "location",
    "vcard": "vcard",
    "multi_vcard": "vcard",
    "poll_creation": "poll",
    "list": "list",
    "list_response": "list_response",
    "buttons_response": "buttons_response",
    "template_button_reply": "buttons_response",
    "interactive": "interactive",
    "product": "product",
    "order": "order",
    "event_creation": "event",
}
MEDIA_TYPES = {"image", "video", "ptv", "audio", "ptt", "document", "sticker"}
# How long a send may wait in the page before the sender moves on and wa-js settles it later.
HANDOFF_TIMEOUT = 20.0


class PageRuntime(Protocol):
    """What this engine needs from the browser runtime (service.sessions.runtime)."""

    async def reconcile(self, session_id: str) -> None: ...

    async def detach(self, session_id: str) -> None: ...

    async def restart(self, session_id: str) -> None: ...

    async def logout(self, session_id: str) -> None: ...

    async def current_qr(self, session_id: str) -> SessionRecord: ...

    async def pairing_code(self, session_id: str, phone: str) -> str: ...

    def usable(self, session_id: str) -> bool: ...

    def bridge(self, session_id: str) -> PageBridge | None: ...


class WebJsEngine(Engine):
    """A session's page is its sending channel; its events become neutral records."""

    name = "webjs"

    def __init__(
        self,
        runtime: PageRuntime,
        sessions_root: Path,
        *,
        link_previews: bool = False,
        handoff: float = HANDOFF_TIMEOUT,
        page_timeout: float = PAGE_TIMEOUT,
    ) -> None:
        self.runtime = runtime
        self.sessions_root = sessions_root
        self.link_previews = link_previews
        self.handoff = handoff
        self.page_timeout = page_timeout
        self.sink: InboundSink | None = None
        # Refs of sends wa-js still holds, per session: settled by send_result or acks.
        self._pending: defaultdict[str, set[str]] = defaultdict(set)

    # lifecycle

    async def start(self, session: SessionRecord) -> None:
        await self.runtime.reconcile(session.session_id)

    async def stop(self, session: SessionRecord, *, handover: bool = False) -> None:
        if handover:
            await self.runtime.detach(session.session_id)
        else:
            await self.runtime.reconcile(session.session_id)

    async def restart(self, session: SessionRecord) -> None:
        await self.runtime.restart(session.session_id)

    async def qr(self, session: SessionRecord) -> QrCode:
        record = await self.runtime.current_qr(session.session_id)
        assert record.qr is not None
        return QrCode(record.qr, record.qr_expires_at)

    async def pairing_code(self, session: SessionRecord, phone: str) -> str:
        return await self.runtime.pairing_code(session.session_id, phone)

    async def logout(self, session: SessionRecord) -> None:
        await self.runtime.logout(session.session_id)

    async def download_media(
        self, session: SessionRecord, provider_message_id: str, max_bytes: int | None = None
    ) -> bytes:
        bridge = self.runtime.bridge(session.session_id)
        if bridge is None:
            raise Conflict("the session's browser is not running", code="session_not_connected")
        try:
            result = await bridge.download_media(provider_message_id, max_bytes)
            size = result.get("tooLarge")
            if isinstance(size, int):
                raise MediaTooLarge(size)
            data = base64.b64decode(str(result.get("data")), validate=True)
        except (BridgeError, ValueError) as exc:
            raise Conflict(f"WhatsApp Web gave no media: {exc}", code="media_unavailable") from None
        if max_bytes is not None and len(data) > max_bytes:
            raise MediaTooLarge(len(data))
        return data

    async def call(self, session: SessionRecord, op: str, args: dict[str, Any]) -> Any:
        if op not in PAGE_OPS:
            raise ValidationFailed("op", "is not a page operation")
        bridge = self.runtime.bridge(session.session_id)
        if bridge is None or not self.runtime.usable(session.session_id):
            raise Conflict(
                "the session is not connected to WhatsApp Web",
                code="session_not_connected",
                details={"status": session.status},
            )
        try:
            answer = await bridge.op(op, args, timeout=self.page_timeout)
        except BridgeTimeout:
            raise PageTimeout(
                f"WhatsApp Web did not answer {op} within {self.page_timeout:.0f} s"
            ) from None
        except BridgeError as exc:
            # The page went away under the call (closing, reloading): not connected now.
            log.info("session %s: %s interrupted: %s", session.session_id, op, exc)
            raise Conflict(
                "the session's page went away during the call",
                code="session_not_connected",
                details={"status": session.status},
            ) from None
        if not answer.get("ok"):
            code = answer.get("code")
            # wa-js's messages name the ids they were given: only its code is passed on.
            details = {"wa_code": code} if isinstance(code, str) and _is_wa_code(code) else {}
            raise Conflict(f"WhatsApp Web refused {op}", code="page_refused", details=details)
        return answer.get("value")

    async def quiesce(self, session_id: str, timeout: float) -> bool:
        """Wait (bounded) until wa-js settled every send the session's page holds, so a
        browser closed on purpose (the session moves to another worker) fails none of them;
        False when some are still pending at the deadline."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._pending.get(session_id):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # sending

    def status(self, session: SessionRecord) -> ProviderStatus:
        if session.status != "connected":
            return ProviderStatus(False, f"web session is {session.status}")
        if self.runtime.bridge(session.session_id) is None:
            return ProviderStatus(False, "web session has no browser")
        if not self.runtime.usable(session.session_id):
            return ProviderStatus(False, "WhatsApp Web is not connected")
        return ProviderStatus(True)

    async def send(self, session: SessionRecord, message: MessageRecord) -> SendResult:
        bridge = self.runtime.bridge(session.session_id)
        if bridge is None or not self.runtime.usable(session.session_id):
            # Nothing was handed over: another provider may take it.
            raise ProviderError(ErrorKind.PROVIDER_DOWN, "WhatsApp Web is not connected")
        try:
            method, args = await self._call(session, message)
            answer = await bridge.send(method, *args, handoff=self.handoff)
        except BridgeError as exc:
            # The page went away or stopped answering mid-call: it may have sent it.
            log.warning("session %s: send interrupted: %s", session.session_id, exc)
            raise ProviderError(ErrorKind.UNKNOWN_DELIVERY, "interrupted") from None
        except (OSError, ValueError) as exc:
            raise ProviderError(ErrorKind.REQUEST, f"media unavailable: {exc}") from None
        if not answer.get("ok"):
            raise send_error(answer)
        provider_id, ref = answer.get("id"), answer.get("ref")
        if not isinstance(provider_id, str) or not isinstance(ref, str):
            raise ProviderError(ErrorKind.UNKNOWN_DELIVERY, "the page returned no message id")
        if answer.get("pending"):
            self._pending[session.session_id].add(ref)
            return SendResult(provider_id, ref, pending=True)
        failure = result_failure(answer)
        if failure is not None:
            raise failure
        return SendResult(provider_id, ref)

    async def _call(self, session: SessionRecord, message: MessageRecord) -> tuple[str, list[Any]]:
        content = json.loads(message.content)
        options: dict[str, Any] = {}
        quoted = content.get("reply_to_provider_id")
        if quoted and content.get("reply_to_provider") in (None, self.name) and _is_key(quoted):
            options["quotedMsg"] = quoted
        if content.get("mentions"):
            # wa-js checks each is a user id (mentioned_is_not_user) and sets
            # mentionedJidList; the text's or caption's @<digits> is where WhatsApp shows them.
            options["mentionedList"] = content["mentions"]
        if message.type == "text":
            # Link previews are fetched through third-party servers unless the operator
            # names their own (WA_LINK_PREVIEW_SERVERS).
            options["linkPreview"] = self.link_previews and content.get("link_preview") is not False
            return "sendText", [message.chat_id, content["text"], options]
        if message.type == "location":
            loc = content["location"]
            options |= {"lat": loc["latitude"], "lng": loc["longitude"]}
            if loc.get("name"):
                options["name"] = loc["name"]
            return "sendLocation", [message.chat_id, options]
        if message.type == "template":
            raise ProviderError(ErrorKind.REQUEST, "templates are sent through the Cloud API only")
        if message.type == "poll":
            poll = content["poll"]
            options["selectableCount"] = poll["selectable_count"]
            return "sendPoll", [message.chat_id, poll["name"], poll["options"], options]
        media = content["media"]
        directory = session_dir(self.sessions_root, session.workspace_id, session.session_id)
        data = await asyncio.to_thread((directory / media["file"]).read_bytes)
        data_url = f"data:{media['mimetype']};base64,{base64.b64encode(data).decode()}"
        # A voice note is wa-js's audio sent with isPtt (WhatsApp's type `ptt`).
        kind = "audio" if message.type == "voice" else message.type
        options |= {"type": kind, "mimetype": media["mimetype"]}
        if message.type == "voice":
            options["isPtt"] = True
        if media.get("filename"):
            options["filename"] = media["filename"]
        if content.get("text"):
            options["caption"] = content["text"]
        return "sendFile", [message.chat_id, data_url, options]

    # what the page reports

    async def on_bridge_event(self, session: SessionRecord, event: BridgeEvent) -> None:
        """Worker hook: `message`, `ack` and `send_result` events of a session's page."""
        if self.sink is None:
            return
        payload = event.payload or {}
        if event.type == "message":
            message = self.inbound(session, payload)
            if message is not None:
                await self.sink.on_inbound(session, message)
        elif event.type == "ack":
            status = ACK_STATUS.get(payload.get("ack"))  # type: ignore[arg-type]
            for ref in payload.get("refs") or []:
                if isinstance(ref, str) and status is not None:
                    self._pending[session.session_id].discard(ref)
                    await self.sink.on_status(session, StatusUpdate(self.name, ref, status))
        elif event.type == "send_result":
            ref = payload.get("ref")
            if not isinstance(ref, str):
                return
            self._pending[session.session_id].discard(ref)
            if not payload.get("ok"):
                error = send_error(payload)
                update = StatusUpdate(self.name, ref, "failed", error.describe())
            elif (failure := result_failure(payload)) is not None:
                update = StatusUpdate(self.name, ref, "failed", failure.describe())
            else:
                update = StatusUpdate(self.name, ref, ACK_STATUS.get(payload.get("ack"), "sent"))  # type: ignore[arg-type]
            await self.sink.on_status(session, update)
        elif event.type == "reaction":
            reaction = self.reaction(payload)
            if reaction is not None:
                await self.sink.on_reaction(session, reaction)
        elif event.type == "edited":
            edit = self.edit(payload)
            if edit is not None:
                await self.sink.on_edited(session, edit)
        elif event.type == "revoked":
            revoke = self.revoke(payload)
            if revoke is not None:
                await self.sink.on_revoked(session, revoke)

    def edit(self, payload: dict[str, Any]) -> Edit | None:
        """A `chat.msg_edited` as an Edit; None without the message's key."""
        msg_id, ref, text = payload.get("msg_id"), payload.get("ref"), payload.get("text")
        if not isinstance(msg_id, str) or not isinstance(ref, str):
            return None
        return Edit(self.name, ref, msg_id, text if isinstance(text, str) else None)

    def revoke(self, payload: dict[str, Any]) -> Revoke | None:
        """A `chat.msg_revoke` as a Revoke; None without the revoked message's key."""
        msg_id, ref, sender = payload.get("msg_id"), payload.get("ref"), payload.get("from")
        if not isinstance(msg_id, str) or not isinstance(ref, str):
            return None
        return Revoke(self.name, ref, msg_id, sender if isinstance(sender, str) else None)

    def reaction(self, payload: dict[str, Any]) -> Reaction | None:
        """A `chat.new_reaction` as a Reaction; None without the reacted message's key."""
        msg_id, ref = payload.get("msg_id"), payload.get("ref")
        if not isinstance(msg_id, str) or not isinstance(ref, str):
            return None
        emoji, sender, stamp = (
            payload.get("reaction"),
            payload.get("sender"),
            payload.get("timestamp"),
        )
        return Reaction(
            provider=self.name,
            ref=ref,
            provider_message_id=msg_id,
            sender=sender if isinstance(sender, str) else None,
            # wa-js says '' for a reaction taken back.
            emoji=emoji if isinstance(emoji, str) and emoji else None,
            # chat.new_reaction's timestamp is in milliseconds; events speak seconds.
            timestamp=int(stamp) // 1000 if isinstance(stamp, int | float) and stamp > 0 else None,
        )

    async def on_page_closed(self, session: SessionRecord) -> None:
        """Sends wa-js still held die with the page: nobody can tell whether they went out."""
        pending = self._pending.pop(session.session_id, set())
        if self.sink is None:
            return
        for ref in pending:
            await self.sink.on_status(
                session, StatusUpdate(self.name, ref, "failed", "interrupted", unsure=True)
            )

    def inbound(self, session: SessionRecord, payload: dict[str, Any]) -> InboundMessage | None:
        """A `chat.new_message` as an InboundMessage; None for our own and system messages."""
        provider_id, ref = payload.get("id"), payload.get("ref")
        if payload.get("from_me") or not isinstance(provider_id, str) or not isinstance(ref, str):
            return None  # sent by this page or from the phone
        raw_type = str(payload.get("type") or "")
        kind = USER_TYPES.get(raw_type)
        if kind is None:
            log.debug("session %s: skipping a %s message", session.session_id, raw_type)
            return None
        chat_id = str(payload.get("from") or "")
        author = payload.get("author")
        location = None
        if raw_type == "location":
            location = {
                "latitude": payload.get("latitude"),
                "longitude": payload.get("longitude"),
                "name": payload.get("location_name"),
            }
        media = None
        if raw_type in MEDIA_TYPES:
            media = InboundMedia(
                mimetype=str(payload.get("mimetype") or "application/octet-stream"),
                filename=payload.get("filename"),
                size=payload.get("size"),
            )

        async def load(max_bytes: int) -> bytes:
            return await self.download_media(session, provider_id, max_bytes)

        return InboundMessage(
            provider=self.name,
            provider_message_id=provider_id,
            ref=ref,
            chat_id=chat_id,
            kind=kind,
            text=payload.get("body") if raw_type == "chat" else payload.get("caption"),
            sender=author or chat_id,
            sender_phone=_phone(author, payload.get("author_phone"))
            if author
            else _phone(chat_id, payload.get("from_phone")),
            chat_phone=_phone(chat_id, payload.get("from_phone")),
            notify_name=payload.get("notify_name"),
            timestamp=payload.get("timestamp"),
            reply_to_ref=payload.get("quoted_ref"),
            reply_to_provider_id=payload.get("quoted_id"),
            location=location,
            media=media,
            mentions=tuple(m for m in payload.get("mentioned") or () if isinstance(m, str)),
            load_media=load if media is not None else None,
        )


def _is_wa_code(code: str) -> bool:
    """Whether a page error code looks like one of wa-js's (snake_case, short)."""
    return len(code) <= 64 and code.replace("_", "").isalpha() and code.islower()


def _is_key(provider_id: str) -> bool:
    """Whether an id is a WhatsApp Web message key (`<true|false>_<chat>_<id>...`)."""
    return provider_id.startswith(("true_", "false_"))


def _phone(wid: object, resolved: object) -> str | None:
    """The phone number of a chat id: its digits for @c.us, what wa-js resolved for @lid."""
    if isinstance(wid, str) and wid.endswith("@c.us"):
        return wid.split("@", 1)[0]
    return resolved if isinstance(resolved, str) and resolved.isdigit() else None


def send_error(answer: dict[str, Any]) -> ProviderError:
    """A send the page refused. Not handed to wa-js: a plain error may go elsewhere; once
    handed, nothing is sent again."""
    code = answer.get("code") if isinstance(answer.get("code"), str) else None
    text = str(answer.get("message") or "WhatsApp Web refused the message")[:500]
    if code in RECIPIENT_CODES:
        return ProviderError(ErrorKind.RECIPIENT, text, code=code)
    if code is not None or answer.get("handed"):
        return ProviderError(ErrorKind.REQUEST, text, code=code)
    return ProviderError(ErrorKind.TRANSIENT, text)


def result_failure(answer: dict[str, Any]) -> ProviderError | None:
    """A send wa-js finished but WhatsApp did not accept: a negative ack or a send result
    other than OK (wa-js reports these only here, never as an ack event)."""
    ack = answer.get("ack")
    result = answer.get("result")
    if isinstance(ack, int) and ack < 0:
        return ProviderError(
            ErrorKind.REQUEST,
            f"WhatsApp did not accept the message ({result or 'no result'})",
            code=ACK_NAMES.get(ack, str(ack)),
        )
    if isinstance(result, str) and result != "OK":
        return ProviderError(ErrorKind.REQUEST, "WhatsApp did not accept the message", code=result)
    return None
