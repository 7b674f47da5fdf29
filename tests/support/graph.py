"""A local stand-in for graph.facebook.com's WhatsApp Cloud API, for tests only.

`GraphStandIn` answers the few Cloud API endpoints the sidecar uses (send a message, upload,
look up and download media) with the documented request validation, response and error
shapes, keeps what it received in memory, and can be told to fail in scripted ways.
`graph_standin()` serves one on 127.0.0.1. The module-level builders produce inbound webhook
payloads exactly as Meta POSTs them to an app, plus the `X-Hub-Signature-256` header for them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.server import serve_app

DEFAULT_VERSION = "v25.0"
# Any plausible WhatsApp Business Account id; Meta puts it in entry[].id of every webhook.
DEFAULT_WABA_ID = "102290129340398"

MESSAGE_TYPES = (
    "text", "image", "document", "audio", "video", "sticker", "location", "template"
)  # fmt: skip
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
TEXT_BODY_MAX = 4096
CAPTION_MAX = 1024

# Graph's own wording for the codes tests are most likely to script. Graph prefixes most
# messages with "(#code)"; 190 is the exception, it is phrased as a sentence.
ERROR_MESSAGES: dict[int, str] = {
    0: "(#0) AuthException",
    1: "(#1) An unknown error occurred",
    2: "(#2) Service temporarily unavailable",
    3: "(#3) Capability or permissions issue.",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    100: "(#100) Invalid parameter",
    190: "Invalid OAuth access token - Cannot parse access token",
    200: "(#200) Permissions error",
    368: "(#368) Temporarily blocked for policies violations",
    80007: "(#80007) Rate limit issues",
    130429: "(#130429) Rate limit hit",
    130472: "(#130472) User's number is part of an experiment",
    131000: "(#131000) Something went wrong",
    131005: "(#131005) Access denied",
    131008: "(#131008) Required parameter is missing",
    131009: "(#131009) Parameter value is not valid",
    131016: "(#131016) Service unavailable",
    131021: "(#131021) Recipient cannot be sender",
    131026: "(#131026) Message undeliverable",
    131030: "(#131030) Recipient phone number not in allowed list",
    131031: "(#131031) Business Account locked",
    131047: "(#131047) Re-engagement message",
    131048: "(#131048) Spam rate limit hit",
    131056: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    132000: "(#132000) Number of parameters does not match the expected number of params",
    132001: "(#132001) Template name does not exist in the translation",
    133010: "(#133010) Account not registered",
}


def error_message(code: int) -> str:
    """Graph's message text for `code` (a generic "(#code) ..." when the code is not listed)."""
    return ERROR_MESSAGES.get(code, f"(#{code}) Graph API error")


def fbtrace_id() -> str:
    """A random trace id shaped like Graph's (23 URL-safe characters)."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return "A" + "".join(secrets.choice(alphabet) for _ in range(22))


def graph_error(
    code: int,
    message: str | None = None,
    details: str | None = None,
    error_type: str = "OAuthException",
    error_subcode: int | None = None,
) -> dict[str, Any]:
    """The body of a Graph error response: `{"error": {message, type, code, error_data, ...}}`."""
    error: dict[str, Any] = {
        "message": message if message is not None else error_message(code),
        "type": error_type,
        "code": code,
        # Cloud API errors carry messaging_product next to details inside error_data.
        "error_data": {"messaging_product": "whatsapp", "details": details or ""},
    }
    if error_subcode is not None:
        error["error_subcode"] = error_subcode
    error["fbtrace_id"] = fbtrace_id()
    return {"error": error}


def new_wamid(wa_id: str = "") -> str:
    """A message id shaped like Meta's: "wamid." + base64 of a small binary envelope.

    Real wamids are base64 of a protobuf-like blob that embeds the recipient's number and a
    random hex id; mimicking that keeps length and alphabet realistic for code that stores them.
    """
    digits = (wa_id or "".join(secrets.choice(string.digits) for _ in range(12))).encode()
    random_hex = secrets.token_hex(9).upper().encode()
    blob = (
        b"\x1c\x18"
        + bytes([len(digits)])
        + digits
        + b"\x15\x02\x00\x11\x18\x12"
        + random_hex
        + b"\x00"
    )
    return "wamid." + base64.b64encode(blob).decode("ascii")


def new_media_id() -> str:
    """A numeric-string media id, 16 digits like Meta's."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


@dataclass
class StoredMedia:
    """One media object the stand-in holds (uploaded, or seeded for an inbound message)."""

    media_id: str
    data: bytes
    mime_type: str
    phone_number_id: str | None
    filename: str | None = None
    # Opaque per-object token in the download URL, as Meta's lookaside URLs carry a hash.
    download_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def sha256_hex(self) -> str:
        """Hex SHA-256 of the bytes, as GET /{media_id} reports it."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha256_b64(self) -> str:
        """Base64 SHA-256 of the bytes, as inbound webhooks report it."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode("ascii")


@dataclass
class ScriptedFailure:
    """A Graph error that POST /messages answers instead of doing its work."""

    code: int
    http_status: int = 400
    message: str | None = None
    details: str | None = None
    retry_after: int | None = None
    remaining: int = 1

    def response(self) -> JSONResponse:
        """The HTTP response for this failure (a fresh fbtrace_id each time)."""
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        body = graph_error(
            self.code, self.message, self.details or f"Scripted failure (code {self.code})"
        )
        return JSONResponse(body, status_code=self.http_status, headers=headers)


class ValidationError(Exception):
    """A request field Graph would refuse with code 100; `details` names the field."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


TO_PATTERN = re.compile(r"\+?[0-9]{7,15}")


def _require_str(value: Any, name: str, max_len: int | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"Param {name} is required and must be a non-empty string")
    if max_len is not None and len(value) > max_len:
        raise ValidationError(f"Param {name} must be at most {max_len} characters")
    return value


def _optional_str(obj: dict[str, Any], key: str, name: str, max_len: int | None = None) -> None:
    if key in obj:
        _require_str(obj[key], name, max_len)


def _require_object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"Param {name} is required and must be an object")
    return value


def _is_number(value: Any) -> TypeGuard[int | float]:
    # bool is an int subclass; Graph would not read true/false as a coordinate.
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_message(body: Any) -> str:
    """Check a /messages body the way Graph does; returns `to`, raises ValidationError."""
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        raise ValidationError("Param messaging_product must be 'whatsapp'")
    if "recipient_type" in body and body["recipient_type"] != "individual":
        raise ValidationError("Param recipient_type must be 'individual'")
    to = body.get("to")
    if not isinstance(to, str) or not TO_PATTERN.fullmatch(to):
        raise ValidationError("Param to must be a phone number of 7-15 digits")
    if "context" in body:
        context = _require_object(body["context"], "context")
        _require_str(context.get("message_id"), "context['message_id']")
    kind = body.get("type")
    if kind == "reaction":
        # A reaction names the message it is on; an empty emoji removes it.
        reaction = _require_object(body.get("reaction"), "reaction")
        _require_str(reaction.get("message_id"), "reaction['message_id']")
        if not isinstance(reaction.get("emoji"), str):
            raise ValidationError("Param reaction['emoji'] must be a string")
        return to
    if kind not in MESSAGE_TYPES:
        raise ValidationError(f"Param type must be one of {', '.join(MESSAGE_TYPES)}")
    payload = _require_object(body.get(kind), kind)
    if kind == "text":
        _require_str(payload.get("body"), "text['body']", TEXT_BODY_MAX)
        if "preview_url" in payload and not isinstance(payload["preview_url"], bool):
            raise ValidationError("Param text['preview_url'] must be a boolean")
    elif kind in MEDIA_TYPES:
        _validate_media(kind, payload)
    elif kind == "location":
        for axis, bound in (("latitude", 90), ("longitude", 180)):
            value = payload.get(axis)
            if not _is_number(value) or not -bound <= value <= bound:
                raise ValidationError(f"Param location['{axis}'] must be a number in range")
        _optional_str(payload, "name", "location['name']")
        _optional_str(payload, "address", "location['address']")
    else:  # template
        _require_str(payload.get("name"), "template['name']")
        language = _require_object(payload.get("language"), "template['language']")
        _require_str(language.get("code"), "template['language']['code']")
        if "components" in payload and not isinstance(payload["components"], list):
            raise ValidationError("Param template['components'] must be an array")
    return to


def _validate_media(kind: str, payload: dict[str, Any]) -> None:
    has_link, has_id = "link" in payload, "id" in payload
    if has_link == has_id:
        raise ValidationError(f"Param {kind} must have exactly one of {kind}['link'], {kind}['id']")
    if has_link:
        link = _require_str(payload["link"], f"{kind}['link']")
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError(f"Param {kind}['link'] must be an http or https URL")
    else:
        _require_str(payload["id"], f"{kind}['id']")
    if "caption" in payload:
        if kind in ("audio", "sticker"):
            raise ValidationError(f"Param {kind}['caption'] is not supported for {kind}")
        _require_str(payload["caption"], f"{kind}['caption']", CAPTION_MAX)
    if "filename" in payload:
        if kind != "document":
            raise ValidationError(f"Param {kind}['filename'] is only supported for document")
        _require_str(payload["filename"], "document['filename']")


def parse_multipart(
    body: bytes, content_type: str
) -> dict[str, tuple[bytes, str | None, str | None]]:
    """Parse a multipart/form-data body into name -> (bytes, filename, part content type).

    python-multipart (Starlette's form parser) is not installed, so this splits on the
    boundary itself; `email.message.Message` only parses the small header blocks.
    """
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValidationError("Request must be multipart/form-data with a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    # Prepending CRLF makes the first delimiter look like every other one.
    chunks = (b"\r\n" + body).split(delimiter)
    fields: dict[str, tuple[bytes, str | None, str | None]] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValidationError("Malformed multipart part")
        part = Message()
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        field_name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        if isinstance(field_name, str):
            fields[field_name] = (
                content,
                filename if isinstance(filename, str) else None,
                part.get("content-type"),
            )
    return fields


class GraphStandIn:
    """In-memory WhatsApp Cloud API: the app, what it was sent, and how it should misbehave.

    Safe to poke from the test thread while uvicorn serves it from another: every piece of
    shared state is changed under `lock`.
    """

    def __init__(self, version: str = DEFAULT_VERSION, waba_id: str = DEFAULT_WABA_ID) -> None:
        self.version = version
        self.waba_id = waba_id
        self.base = ""
        self.phone_numbers: dict[str, str] = {}
        self.sent: list[dict[str, Any]] = []
        # Every POST /messages attempt, failed ones included: {phone_number_id, body, status}.
        self.attempts: list[dict[str, Any]] = []
        self.calls = 0
        # Media ids whose bytes were fetched (a refused file never is).
        self.downloads: list[str] = []
        # Read receipts: {phone_number_id, message_id}.
        self.read_marks: list[dict[str, Any]] = []
        self.delay = 0.0
        self.media: dict[str, StoredMedia] = {}
        self.lock = threading.Lock()
        self._scripted: deque[ScriptedFailure] = deque()
        self._fail_always: ScriptedFailure | None = None

    # -- configuration -------------------------------------------------------------------

    def add_number(self, phone_number_id: str, token: str) -> None:
        """Accept `token` as the access token for `phone_number_id`."""
        with self.lock:
            self.phone_numbers[phone_number_id] = token

    def fail_next(
        self,
        code: int,
        http_status: int = 400,
        count: int = 1,
        message: str | None = None,
        details: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `count` POST /messages with Graph error `code` (queued in order)."""
        failure = ScriptedFailure(code, http_status, message, details, retry_after, count)
        with self.lock:
            self._scripted.append(failure)

    def fail_all(
        self,
        code: int,
        http_status: int = 400,
        message: str | None = None,
        details: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer every POST /messages with Graph error `code` until `heal()`."""
        with self.lock:
            self._fail_always = ScriptedFailure(code, http_status, message, details, retry_after)

    def heal(self) -> None:
        """Drop every scripted failure, queued or permanent."""
        with self.lock:
            self._scripted.clear()
            self._fail_always = None

    def add_media(
        self,
        data: bytes,
        mime_type: str,
        phone_number_id: str | None = None,
        filename: str | None = None,
    ) -> str:
        """Store bytes as a media object (as an inbound message's media is); returns its id."""
        stored = StoredMedia(new_media_id(), data, mime_type, phone_number_id, filename)
        with self.lock:
            self.media[stored.media_id] = stored
        return stored.media_id

    def inbound_image(
        self,
        phone_number_id: str,
        display_phone: str,
        from_wa_id: str,
        data: bytes,
        mime_type: str = "image/jpeg",
        caption: str | None = None,
        name: str = "Maria",
        wamid: str | None = None,
    ) -> dict[str, Any]:
        """An inbound image webhook whose media id the stand-in can serve for download."""
        media_id = self.add_media(data, mime_type, phone_number_id)
        return inbound_image(
            phone_number_id,
            display_phone,
            from_wa_id,
            media_id=media_id,
            mime_type=mime_type,
            sha256=self.media[media_id].sha256_b64,
            caption=caption,
            name=name,
            wamid=wamid,
            waba_id=self.waba_id,
        )

    # -- the app -------------------------------------------------------------------------

    def app(self) -> Starlette:
        """The Starlette app answering the Cloud API endpoints."""
        return Starlette(
            routes=[
                # Before the /{version}/{media_id} route, which would swallow it otherwise.
                Route("/media-download/{media_id}", self._download, methods=["GET"]),
                Route("/{version}/{phone_number_id}/messages", self._messages, methods=["POST"]),
                Route("/{version}/{phone_number_id}/media", self._upload, methods=["POST"]),
                Route("/{version}/{media_id}", self._media, methods=["GET", "DELETE"]),
            ]
        )

    def _valid_tokens(self) -> set[str]:
        with self.lock:
            return set(self.phone_numbers.values())

    @staticmethod
    def _bearer(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _auth_error(self, details: str) -> JSONResponse:
        return JSONResponse(graph_error(190, details=details), status_code=401)

    def _check_number(self, request: Request) -> JSONResponse | None:
        """401/190 unless the Bearer token is the one configured for the path's number."""
        token = self._bearer(request)
        if token is None:
            return self._auth_error("Missing access token")
        with self.lock:
            expected = self.phone_numbers.get(request.path_params["phone_number_id"])
        if expected is None:
            return self._auth_error("Unknown phone number id for this access token")
        if not hmac.compare_digest(token, expected):
            return self._auth_error("Invalid access token for this phone number")
        return None

    def _check_any_token(self, request: Request) -> JSONResponse | None:
        """401/190 unless the Bearer token belongs to some configured number."""
        token = self._bearer(request)
        if token is None:
            return self._auth_error("Missing access token")
        if token not in self._valid_tokens():
            return self._auth_error("Invalid access token")
        return None

    def _check_version(self, request: Request) -> JSONResponse | None:
        version = request.path_params["version"]
        if version == self.version:
            return None
        body = graph_error(
            100,
            message=f"Unsupported version: {version}",
            details=f"This stand-in serves Graph API {self.version} only",
        )
        return JSONResponse(body, status_code=400)

    def _next_failure(self) -> ScriptedFailure | None:
        with self.lock:
            if self._scripted:
                failure = self._scripted[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._scripted.popleft()
                return failure
            return self._fail_always

    async def _messages(self, request: Request) -> Response:
        phone_number_id: str = request.path_params["phone_number_id"]
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self.lock:
            self.calls += 1
            attempt: dict[str, Any] = {"phone_number_id": phone_number_id, "body": body}
            self.attempts.append(attempt)
        if self.delay:
            await asyncio.sleep(self.delay)
        response = self._answer_message(request, phone_number_id, body)
        with self.lock:
            attempt["status"] = response.status_code
        return response

    def _answer_message(self, request: Request, phone_number_id: str, body: Any) -> JSONResponse:
        if (bad := self._check_version(request)) is not None:
            return bad
        # Scripted failures come first: they stand for Graph being unwell, whatever was sent.
        if (failure := self._next_failure()) is not None:
            return failure.response()
        if (bad := self._check_number(request)) is not None:
            return bad
        if isinstance(body, dict) and "status" in body:
            return self._mark_read(phone_number_id, body)
        try:
            to = validate_message(body)
        except ValidationError as exc:
            return JSONResponse(graph_error(100, details=exc.details), status_code=400)
        wa_id = to.lstrip("+")
        wamid = new_wamid(wa_id)
        message: dict[str, Any] = {"id": wamid}
        if body["type"] == "template":
            message["message_status"] = "accepted"
        with self.lock:
            self.sent.append(
                {
                    "phone_number_id": phone_number_id,
                    "body": body,
                    "wamid": wamid,
                    "timestamp": time.time(),
                }
            )
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [message],
            }
        )

    def _mark_read(self, phone_number_id: str, body: dict[str, Any]) -> JSONResponse:
        """A read receipt: `{messaging_product, status: "read", message_id}`, answered with
        `{"success": true}` (the Cloud API's mark-as-read)."""
        if body.get("messaging_product") != "whatsapp":
            details = "Param messaging_product must be 'whatsapp'"
        elif body.get("status") != "read":
            details = "Param status must be 'read'"
        elif not isinstance(body.get("message_id"), str) or not body["message_id"]:
            details = "Param message_id must be a non-empty string"
        else:
            with self.lock:
                self.read_marks.append(
                    {"phone_number_id": phone_number_id, "message_id": body["message_id"]}
                )
            return JSONResponse({"success": True})
        return JSONResponse(graph_error(100, details=details), status_code=400)

    async def _upload(self, request: Request) -> Response:
        if (bad := self._check_version(request)) is not None:
            return bad
        if (bad := self._check_number(request)) is not None:
            return bad
        try:
            fields = parse_multipart(await request.body(), request.headers.get("content-type", ""))
            product = fields.get("messaging_product", (b"", None, None))[0].decode()
            if product != "whatsapp":
                raise ValidationError("Param messaging_product must be 'whatsapp'")
            if "file" not in fields:
                raise ValidationError("Param file is required")
            data, filename, part_type = fields["file"]
            mime = fields["type"][0].decode() if "type" in fields else part_type
            if not mime or "/" not in mime:
                raise ValidationError("Param type must be the file's MIME type")
        except ValidationError as exc:
            return JSONResponse(graph_error(100, details=exc.details), status_code=400)
        media_id = self.add_media(data, mime, request.path_params["phone_number_id"], filename)
        return JSONResponse({"id": media_id})

    def _unknown_object(self, object_id: str) -> JSONResponse:
        # Graph's answer for an id that does not exist (or is not visible to this token).
        body = graph_error(
            100,
            message=(
                f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation."
            ),
            details=f"Unknown media id {object_id}",
            error_type="GraphMethodException",
            error_subcode=33,
        )
        return JSONResponse(body, status_code=400)

    async def _media(self, request: Request) -> Response:
        if (bad := self._check_version(request)) is not None:
            return bad
        if (bad := self._check_any_token(request)) is not None:
            return bad
        media_id: str = request.path_params["media_id"]
        with self.lock:
            stored = self.media.get(media_id)
        owner = request.query_params.get("phone_number_id")
        if stored is None or (owner is not None and stored.phone_number_id not in (None, owner)):
            return self._unknown_object(media_id)
        if request.method == "DELETE":
            with self.lock:
                self.media.pop(media_id, None)
            return JSONResponse({"success": True})
        base = self.base or str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{base}/media-download/{media_id}?token={stored.download_token}",
                "mime_type": stored.mime_type,
                "sha256": stored.sha256_hex,
                "file_size": len(stored.data),
                "id": media_id,
            }
        )

    async def _download(self, request: Request) -> Response:
        # Meta's lookaside URLs also demand the Bearer token; a bare URL is not enough.
        if (bad := self._check_any_token(request)) is not None:
            return bad
        with self.lock:
            stored = self.media.get(request.path_params["media_id"])
        token = request.query_params.get("token", "")
        if stored is None or not hmac.compare_digest(token, stored.download_token):
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        with self.lock:
            self.downloads.append(stored.media_id)
        return Response(stored.data, media_type=stored.mime_type)


@contextmanager
def graph_standin(version: str = DEFAULT_VERSION) -> Iterator[GraphStandIn]:
    """Serve a fresh `GraphStandIn` on 127.0.0.1; yields it with `.base` set."""
    standin = GraphStandIn(version)
    with serve_app(standin.app()) as base:
        standin.base = base
        yield standin


# -- inbound webhooks, as Meta POSTs them to the app ---------------------------------------


def _envelope(
    phone_number_id: str, display_phone: str, value: dict[str, Any], waba_id: str
) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": display_phone,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def _inbound(
    phone_number_id: str,
    display_phone: str,
    from_wa_id: str,
    name: str,
    wamid: str | None,
    kind: str,
    payload: dict[str, Any],
    waba_id: str,
) -> dict[str, Any]:
    message = {
        "from": from_wa_id,
        "id": wamid or new_wamid(from_wa_id),
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: payload,
    }
    value = {"contacts": [{"profile": {"name": name}, "wa_id": from_wa_id}], "messages": [message]}
    return _envelope(phone_number_id, display_phone, value, waba_id)


def inbound_text(
    phone_number_id: str,
    display_phone: str,
    from_wa_id: str,
    text: str,
    name: str = "Maria",
    wamid: str | None = None,
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """The webhook payload Meta sends when `from_wa_id` writes `text` to the business number."""
    return _inbound(
        phone_number_id, display_phone, from_wa_id, name, wamid, "text", {"body": text}, waba_id
    )


def inbound_reaction(
    phone_number_id: str,
    display_phone: str,
    from_wa_id: str,
    message_id: str,
    emoji: str,
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """The webhook payload Meta sends when `from_wa_id` reacts to `message_id` (an empty
    emoji: the reaction was taken back)."""
    reaction = {"message_id": message_id, "emoji": emoji}
    return _inbound(
        phone_number_id, display_phone, from_wa_id, "Maria", None, "reaction", reaction, waba_id
    )


def inbound_image(
    phone_number_id: str,
    display_phone: str,
    from_wa_id: str,
    media_id: str,
    mime_type: str = "image/jpeg",
    sha256: str = "",
    caption: str | None = None,
    name: str = "Maria",
    wamid: str | None = None,
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """The webhook payload for an inbound image with an existing media id.

    Prefer `GraphStandIn.inbound_image`, which also stores the bytes so the id downloads.
    `sha256` is base64 of the digest, the encoding webhooks use.
    """
    image: dict[str, Any] = {}
    if caption is not None:
        image["caption"] = caption
    image.update({"mime_type": mime_type, "sha256": sha256, "id": media_id})
    return _inbound(
        phone_number_id, display_phone, from_wa_id, name, wamid, "image", image, waba_id
    )


def status_error(
    code: int = 131026,
    title: str = "Message undeliverable",
    details: str = "Message Undeliverable.",
) -> dict[str, Any]:
    """One entry of a failed status's `errors` array."""
    return {
        "code": code,
        "title": title,
        "message": title,  # Meta repeats the title here
        "error_data": {"details": details},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }


def status_update(
    phone_number_id: str,
    display_phone: str,
    wamid: str,
    status: str,
    recipient_id: str,
    errors: list[dict[str, Any]] | None = None,
    waba_id: str = DEFAULT_WABA_ID,
) -> dict[str, Any]:
    """The webhook payload for a status change of an outbound message (`value.statuses`).

    sent/delivered carry conversation and pricing, read carries neither, failed carries
    `errors` (a default 131026 entry when none is given), as Meta's notifications do.
    """
    if status not in ("sent", "delivered", "read", "failed"):
        raise ValueError(f"unknown status {status!r}")
    now = int(time.time())
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(now),
        "recipient_id": recipient_id,
    }
    if status in ("sent", "delivered"):
        conversation: dict[str, Any] = {
            "id": secrets.token_hex(16),
            "origin": {"type": "service"},
        }
        if status == "sent":  # only the first notification of a conversation has its expiry
            conversation["expiration_timestamp"] = str(now + 24 * 3600)
        entry["conversation"] = conversation
        entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if status == "failed" or errors is not None:
        entry["errors"] = errors if errors is not None else [status_error()]
    return _envelope(phone_number_id, display_phone, {"statuses": [entry]}, waba_id)


def sign(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` value Meta sends: HMAC-SHA256 of the raw body, hex."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
