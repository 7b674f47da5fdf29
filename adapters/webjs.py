"""The WhatsApp Web provider: sends through the session's Chromium page (the page bridge)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from adapters.base import ErrorKind, Provider, ProviderError, ProviderStatus, SendResult
from service.browser import BridgeError, PageBridge
from service.messaging.media import StoredMedia
from service.sessions.layout import session_dir
from service.sessions.runtime import SessionRuntime
from service.store import MessageRecord, SessionRecord

# WPPError codes (the page's) that say the web session cannot send now, whoever the
# recipient: a reason to use another provider.
DOWN_CODES = frozenset({"device_offline", "not_authenticated", "not_ready", "disconnected"})
RECIPIENT_CODES = frozenset({"invalid_chat_id", "chat_not_found", "not_on_whatsapp"})


class WebJsProvider(Provider):
    """Wraps the session runtime: a session's page is its sending channel."""

    name = "webjs"

    def __init__(self, runtime: SessionRuntime, sessions_root: Path) -> None:
        self.runtime = runtime
        self.sessions_root = sessions_root

    def status(self, session: SessionRecord) -> ProviderStatus:
        if session.status != "connected":
            return ProviderStatus(False, f"web session is {session.status}")
        if self.runtime.bridge(session.session_id) is None:
            return ProviderStatus(False, "web session has no browser")
        return ProviderStatus(True)

    async def send(self, session: SessionRecord, message: MessageRecord) -> SendResult:
        bridge = self.runtime.bridge(session.session_id)
        if bridge is None:
            raise ProviderError(ErrorKind.PROVIDER_DOWN, "web session has no browser")
        try:
            result = await self._transmit(bridge, session, message)
        except BridgeError as exc:
            if exc.ambiguous or bridge.browser.closed.is_set():
                # A timeout, or a page that went away mid-call, may still have sent it.
                raise ProviderError(ErrorKind.UNKNOWN_DELIVERY, "interrupted") from None
            raise _classify(exc) from None
        except (OSError, ValueError) as exc:
            raise ProviderError(ErrorKind.REQUEST, f"media unavailable: {exc}") from None
        provider_id = result.get("id")
        if not isinstance(provider_id, str):
            raise ProviderError(ErrorKind.UNKNOWN_DELIVERY, "the page returned no message id")
        return SendResult(provider_id)

    async def _transmit(
        self, bridge: PageBridge, session: SessionRecord, message: MessageRecord
    ) -> dict[str, Any]:
        content = json.loads(message.content)
        options: dict[str, Any] = {"createChat": True}
        if content.get("reply_to"):
            options["quotedMsg"] = content["reply_to"]
        if message.type == "text":
            return await bridge.send_text(message.chat_id, content["text"], options)
        if message.type == "location":
            loc = content["location"]
            options |= {"lat": loc["latitude"], "lng": loc["longitude"]}
            if loc.get("name"):
                options["name"] = loc["name"]
            return await bridge.send_location(message.chat_id, options)
        if message.type == "template":
            raise ProviderError(ErrorKind.REQUEST, "templates are sent through the Cloud API only")
        media = content["media"]
        directory = session_dir(self.sessions_root, session.workspace_id, session.session_id)
        stored = StoredMedia(
            path=directory / media["file"],
            mimetype=media["mimetype"],
            filename=media.get("filename"),
            size=media["size"],
        )
        data_url = await asyncio.to_thread(stored.data_url)
        options |= {"type": message.type, "mimetype": stored.mimetype}
        if stored.filename:
            options["filename"] = stored.filename
        if content.get("text"):
            options["caption"] = content["text"]
        return await bridge.send_file(message.chat_id, data_url, options)


def _classify(exc: BridgeError) -> ProviderError:
    # The code travels separately (describe() puts it first); drop the page's "[code] ".
    text = re.sub(r"^\[[a-z0-9_]+\]\s*", "", str(exc))[:500]
    if exc.code in DOWN_CODES:
        return ProviderError(ErrorKind.PROVIDER_DOWN, text, code=exc.code)
    if exc.code in RECIPIENT_CODES:
        return ProviderError(ErrorKind.RECIPIENT, text, code=exc.code)
    return ProviderError(ErrorKind.REQUEST, text, code=exc.code)
