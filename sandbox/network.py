"""The sandbox's "WhatsApp servers": devices, QR refs, pairing codes, LIDs, messages,
event logs.

Everything lives in memory on one `Network` instance owned by the app. Handlers call it
from the event loop only, so no locks are needed; publishing an event wakes the page's
Server-Sent Events stream through an `asyncio.Event`. A send the network does not answer
yet (device offline or stalled) is an `asyncio.Future` the page's request awaits. With a
state file, the links, LIDs and message records are also written to disk, so a restarted
sandbox still knows the pages that were linked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import logging
import secrets
import string
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import Conflict, Invalid, NotFound, SandboxError, Unauthorized
from sandbox.payloads import (
    base64_bytes,
    coordinate,
    media_kind,
    mimetype,
    optional_int,
    optional_str,
    required_str,
)
from sandbox.state import MAX_BYTES, VERSION, StateError, StateFile, encode
from sandbox.wids import (
    chat_id,
    is_device_id,
    message_id_part,
    new_device_id,
    new_lid,
    new_message_id,
    new_pairing_code,
    new_ref,
    new_token,
    normalize_pairing_code,
    normalize_phone,
)

logger = logging.getLogger("sandbox")

MESSAGE_TYPES = (
    "text", "image", "document", "audio", "ptt", "video", "sticker", "location", "poll_creation"
)  # fmt: skip
# WhatsApp's limit on a poll's options.
POLL_OPTIONS_MAX = 12
# `ptt` is a voice note: audio that wa-js's sendFileMessage sent with isPtt.
MEDIA_TYPES = ("image", "document", "audio", "ptt", "video", "sticker")
# Users one message may mention (wa-js's mentionedList).
MENTIONS_MAX = 256
# Events a device keeps for a page that is away; a page gone longer than this loses the oldest.
LOG_LIMIT = 10_000
PAIRING_CODE_TTL = 180.0
# A user's chat states as WhatsApp Web's PresenceStore reports them (chat.presence_change).
PRESENCE_STATES = ("available", "composing", "recording", "unavailable")
# What a page may tell the network about a chat (its /net/chat call).
CHAT_ACTIONS = ("read", "archive", "unarchive", "delete", "typing", "recording", "paused")
# A page that stops rotating (closed, crashed) leaves its last ref valid this much longer.
QR_GRACE = 2.0
# Receipts a recipient can raise: RECEIVED 2, READ 3, PLAYED 4, and SENT 1, which wa-js's
# receipt path drops (`if(e.ack<2...)return`). 0 and below never reach a wa-js event.
ACK_MIN, ACK_MAX = 1, 4
# wa-js's negative ACK values (MD_DOWNGRADE -7 .. FAILED -1) and SendMsgResult errors.
FAILED_ACK_MIN, FAILED_ACK_MAX = -7, -1
SEND_ERRORS = ("ERROR_NETWORK", "ERROR_EXPIRED", "ERROR_CANCELLED", "ERROR_UPLOAD", "ERROR_UNKNOWN")
# System message types (wa-js MSG_TYPE) and the subtype each one carries here. wa-js does
# not fix subtypes; these avoid the protocol subtypes it reacts to (revoke, message_edit).
# What the state file keeps of the message records (the newest), and how long a change may
# wait to be written, so a burst of messages is one write; links are written at once.
SENT_KEEP = 1_000
KNOWN_KEEP = 5_000
SAVE_DELAY = 0.2
SYSTEM_SUBTYPES = {
    "e2e_notification": "encrypt",
    "notification_template": "change_number",
    "gp2": "add",
    "call_log": "miss",
    "protocol": "ephemeral_setting",
}


@dataclass
class Event:
    """One entry of a device's event log, pushed to its page in `seq` order."""

    seq: int
    kind: str
    data: dict[str, Any]


@dataclass
class Media:
    """The bytes of a media message, for `downloadMedia`."""

    mimetype: str
    data: bytes
    filename: str | None = None


@dataclass
class SentMessage:
    """What a device sent, as `GET /control/sent` reports it."""

    id: str
    device_id: str
    phone: str
    to: str
    type: str
    timestamp: int
    # The phone behind `to` (null for groups and for a LID the network never gave out).
    to_phone: str | None = None
    # The sender as the key's participant: our LID for groups, as wa-js's generateMessageID.
    participant: str | None = None
    sender: str = ""
    quoted: str | None = None
    text: str | None = None
    caption: str | None = None
    filename: str | None = None
    mimetype: str | None = None
    size: int | None = None
    sha256: str | None = None
    lat: float | None = None
    lng: float | None = None
    name: str | None = None
    address: str | None = None
    # A poll: its question is `name`; its options by localId (their position).
    poll_options: list[str] | None = None
    selectable_count: int | None = None
    ack: int = 1
    result: str = "OK"
    # message actions: set by the device's editMessage / deleteMessage(revoke).
    edited: bool = False
    revoked: bool = False
    # The user ids of wa-js's mentionedList; a text's linkPreview option (wa-js: default true).
    mentioned: list[str] | None = None
    link_preview: bool | None = None
    # Sent by wa-js's forwardMessages (a copy of another message).
    forwarded: bool = False

    @property
    def message_id(self) -> str:
        """The serialized key, `true_<chat>_<ID>[_<participant>]`, as wa-js returns it."""
        return f"true_{self.to}_{self.id}" + (f"_{self.participant}" if self.participant else "")

    def to_json(self) -> dict[str, Any]:
        """The record for the control API."""
        return {
            "message_id": self.message_id,
            "id": self.id,
            "device_id": self.device_id,
            "from": self.phone,
            "to": self.to,
            "to_phone": self.to_phone,
            "type": self.type,
            "quoted": self.quoted,
            "text": self.text,
            "caption": self.caption,
            "filename": self.filename,
            "mimetype": self.mimetype,
            "size": self.size,
            "sha256": self.sha256,
            "lat": self.lat,
            "lng": self.lng,
            "name": self.name,
            "address": self.address,
            "timestamp": self.timestamp,
            "ack": self.ack,
            "result": self.result,
            "edited": self.edited,
            "revoked": self.revoked,
            "mentioned": self.mentioned or [],
            "link_preview": self.link_preview,
            "forwarded": self.forwarded,
        } | (
            {"poll_options": self.poll_options, "selectable_count": self.selectable_count}
            if self.type == "poll_creation"
            else {}
        )


@dataclass
class KnownMessage:
    """A message a device sent or received, for quotes, replies and media lookups."""

    key: str  # the serialized MsgKey, as the device's page knows it
    remote: str  # the chat
    sender: str  # who wrote it (our own wid for our messages)
    from_me: bool
    has_media: bool


@dataclass
class HeldSend:
    """A send the network has not answered yet; `future` settles when it does."""

    record: SentMessage
    media: Media | None
    wanted_id: bool
    future: asyncio.Future[SentMessage]


@dataclass
class Contact:
    """What the network says about a phone number: set through `/control/contacts`."""

    exists: bool = True
    picture: str | None = None
    about: str | None = None


@dataclass
class Group:
    """A group on the network: its subject, description, members and invite code."""

    gid: str
    subject: str
    owner: str  # the creator's phone
    created_at: int  # unix seconds
    description: str | None = None
    # phone -> "member", "admin" or "superadmin", in the order they joined.
    members: dict[str, str] = field(default_factory=dict)
    invite_code: str = ""


@dataclass
class Call:
    """A call offered to a phone: `ringing` until one of its devices rejects it."""

    id: str
    to: str
    peer: str
    video: bool
    group: bool
    offer_time: int
    state: str = "ringing"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "to": self.to,
            "peer": self.peer,
            "video": self.video,
            "group": self.group,
            "offer_time": self.offer_time,
            "state": self.state,
        }


@dataclass
class PairingCode:
    """A linking code a page asked for, waiting for the phone to confirm it."""

    code: str
    device_id: str
    phone: str
    expires_at: float


@dataclass
class Device:
    """One browser profile as the network sees it: a companion device, linked or not."""

    device_id: str
    created_at: float
    keys: dict[str, str] = field(default_factory=dict)
    phone: str | None = None
    token: str | None = None
    online: bool = True
    # Stalled: online as far as the page can tell, but sends get no answer.
    stalled: bool = False
    ref: str | None = None
    ref_issued_at: float = 0.0
    ref_active: bool = False
    pairing_code: str | None = None
    streams: int = 0
    # The phones whose presence this device subscribed to (its connection's subscriptions).
    presence_of: set[str] = field(default_factory=set)
    seq: int = 0
    log: list[Event] = field(default_factory=list)
    # Messages and acks wait here while the device is disconnected, as on the real network.
    held: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Sends waiting for the network to answer, oldest first.
    held_sends: list[HeldSend] = field(default_factory=list)
    signal: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def linked(self) -> bool:
        """Whether a phone has linked this device (it holds a token)."""
        return self.token is not None

    def publish(self, kind: str, data: dict[str, Any], *, hold_offline: bool = False) -> None:
        """Append an event for the page; messages and acks are held while offline."""
        if hold_offline and not self.online:
            self.held.append((kind, data))
            return
        self.seq += 1
        self.log.append(Event(self.seq, kind, data))
        if len(self.log) > 2 * LOG_LIMIT:
            del self.log[: len(self.log) - LOG_LIMIT]
        self.wake()

    def events_after(self, since: int) -> list[Event]:
        """Events with a seq above `since` (seqs in the log are contiguous)."""
        if not self.log:
            return []
        start = max(0, since - self.log[0].seq + 1)
        return self.log[start:]

    def wake(self) -> None:
        """Wake every stream waiting on this device."""
        self.signal.set()
        self.signal = asyncio.Event()

    def to_json(self, now: float, qr_valid_for: float, lid: str | None) -> dict[str, Any]:
        """The device as `GET /control/devices` lists it."""
        qr_valid = (
            self.ref is not None
            and self.ref_active
            and not self.linked
            and now <= self.ref_issued_at + qr_valid_for
        )
        return {
            "device_id": self.device_id,
            "phone": self.phone,
            "lid": lid,
            "linked": self.linked,
            "online": self.online,
            "stalled": self.stalled,
            "connected": self.streams > 0,
            "qr": self.ref if qr_valid else None,
            "pairing_code": self.pairing_code,
            "pending_events": len(self.held),
            "held_sends": len(self.held_sends),
            "created_at": int(self.created_at),
        }


class Network:
    """The in-memory network: who holds which QR ref, who is linked as which phone, which
    LID every phone has, and what every device sent and is owed."""

    def __init__(
        self,
        qr_interval: float = 20.0,
        qr_max_rotations: int = 5,
        main_ready_delay: float = 0.3,
        clock: Callable[[], float] = time.time,
        state: StateFile | None = None,
    ) -> None:
        self.qr_interval = qr_interval
        self.qr_max_rotations = qr_max_rotations
        self.main_ready_delay = main_ready_delay
        self._clock = clock
        self.devices: dict[str, Device] = {}
        self._refs: dict[str, str] = {}
        self._codes: dict[str, PairingCode] = {}
        self._sent: list[SentMessage] = []
        self._sent_index: dict[str, SentMessage] = {}
        self._media: dict[tuple[str, str], Media] = {}
        # (device id, bare message id) -> what that device sent or received.
        self._known: dict[tuple[str, str], KnownMessage] = {}
        self._lids: dict[str, str] = {}  # phone -> LID user part
        self._lid_phones: dict[str, str] = {}  # LID user part -> phone
        # phone -> what the network says about it (a linked phone exists without an entry).
        self._contacts: dict[str, Contact] = {}
        # account phone -> the ids it blocked, in the order it blocked them.
        self._blocked: dict[str, list[str]] = {}
        # gid -> group (kept in memory only: a sandbox restart forgets its groups).
        self._groups: dict[str, Group] = {}
        # account phone -> what it did in its chats (read receipts, archive, chat state).
        self._chat_log: dict[str, list[dict[str, Any]]] = {}
        # phone -> (ack, result) for its next sends, set by `fail_sends`.
        self._failures: dict[str, list[tuple[int, str]]] = {}
        # message actions: the reactions devices sent, oldest first (not kept across restarts).
        self._reactions: list[dict[str, Any]] = []
        # call id -> the call ringing (or ended) on the phone it was offered to.
        self._calls: dict[str, Call] = {}
        self.closed = False
        self._state = state
        self._dirty = False
        self._save_handle: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """End every event stream and every held send, so the HTTP server can stop, and
        write the state file a last time (event seqs move without a save of their own)."""
        first = not self.closed
        self.closed = True
        for device in self.devices.values():
            self._drop_held_sends(device, Conflict("closed", "the sandbox is shutting down"))
            device.wake()
        self._dirty = self._dirty or (first and self._state is not None)
        self.save()

    # -- the state file --------------------------------------------------------------

    def load_state(self) -> None:
        """Restore what the state file holds, then write it back at once: a file that
        cannot be written stops the start, not the first link. Raises `StateError`."""
        if self._state is None:
            return
        data = self._state.load()
        if data is not None:
            try:
                self._restore(data)
            except (KeyError, TypeError, ValueError, AttributeError, SandboxError) as exc:
                raise self._state.refuse(f"{type(exc).__name__}: {exc}") from None
        try:
            self._state.save(self._snapshot())
        except OSError as exc:
            path = self._state.path
            raise StateError(f"cannot write the state file {path}: {exc.strerror}") from None

    def save(self) -> None:
        """Write the state file now, if there is one and something changed."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._state is None or not self._dirty:
            return
        self._dirty = False
        try:
            self._state.save(self._snapshot())
        except OSError as exc:
            # The network keeps working; the next change tries again.
            self._dirty = True
            logger.error("cannot write the state file %s: %s", self._state.path, exc.strerror)

    def _changed(self, *, now: bool = False) -> None:
        """Something the state file keeps changed: write it at once or soon."""
        if self._state is None:
            return
        self._dirty = True
        if now:
            self.save()
        elif self._save_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.save()
                return
            self._save_handle = loop.call_later(SAVE_DELAY, self.save)

    def _snapshot(self) -> bytes:
        """The state file's bytes: linked devices, LIDs, the newest message records."""
        devices = [
            {
                "device_id": d.device_id,
                "created_at": d.created_at,
                "keys": d.keys,
                "phone": d.phone,
                "token": d.token,
                "seq": d.seq,
            }
            for d in self.devices.values()
            if d.linked
        ]
        newest = itertools.islice(reversed(self._known.items()), KNOWN_KEEP)
        known = [
            [dev, msg, k.key, k.remote, k.sender, k.from_me, k.has_media]
            for (dev, msg), k in newest
        ][::-1]
        sent = [dataclasses.asdict(m) for m in self._sent[-SENT_KEEP:]]
        data = {"version": VERSION, "devices": devices, "lids": self._lids, "known": known}
        while True:
            raw = encode({**data, "sent": sent})
            if len(raw) <= MAX_BYTES or not sent:
                return raw
            sent = sent[max(1, len(sent) // 2) :]

    def _restore(self, data: dict[str, Any]) -> None:
        """Take over a snapshot, checking every value (the file may have been edited)."""
        for item in data["devices"]:
            device_id, token = item["device_id"], item["token"]
            if not is_device_id(device_id) or not isinstance(token, str) or not token:
                raise ValueError(f"device {device_id!r}")
            device = Device(device_id=device_id, created_at=float(item["created_at"]))
            _remember_keys(device, item["keys"])
            device.phone = normalize_phone(item["phone"])
            device.token = token
            device.seq = _count(item["seq"])
            self.devices[device_id] = device
        for phone, lid in dict(data["lids"]).items():
            if normalize_phone(phone) != phone or not (isinstance(lid, str) and lid.isdigit()):
                raise ValueError(f"lid {lid!r} of {phone!r}")
            self._lids[phone] = lid
            self._lid_phones[lid] = phone
        for dev, msg, key, remote, sender, from_me, has_media in data["known"]:
            if not all(isinstance(v, str) for v in (dev, msg, key, remote, sender)):
                raise ValueError(f"known message {msg!r}")
            self._known[(dev, msg)] = KnownMessage(
                key, remote, sender, bool(from_me), bool(has_media)
            )
        for item in data["sent"]:
            record = SentMessage(**item)
            if not all(
                isinstance(v, str)
                for v in (record.id, record.device_id, record.phone, record.to, record.type)
            ):
                raise ValueError(f"sent message {record.id!r}")
            self._sent.append(record)
            self._sent_index[record.id] = record

    @property
    def page_config(self) -> dict[str, Any]:
        """Timings the page needs, handed over in the hello answer."""
        return {
            "qr_interval": self.qr_interval,
            "qr_max_rotations": self.qr_max_rotations,
            "main_ready_delay": self.main_ready_delay,
        }

    @property
    def _qr_valid_for(self) -> float:
        return self.qr_interval + QR_GRACE

    # -- LIDs ------------------------------------------------------------------------

    def lid_of(self, phone: str) -> str:
        """The phone's LID user part: random the first time it is asked for, then kept."""
        lid = self._lids.get(phone)
        if lid is None:
            lid = new_lid()
            while lid in self._lid_phones:
                lid = new_lid()
            self._lids[phone] = lid
            self._lid_phones[lid] = phone
            self._changed()
        return lid

    def lid_wid(self, phone: str) -> str:
        """`<lid>@lid` for a phone."""
        return f"{self.lid_of(phone)}@lid"

    def phone_behind(self, chat: str) -> str | None:
        """The phone of a user chat id, `None` for groups and LIDs the network never gave."""
        user, _, server = chat.partition("@")
        if server == "c.us":
            return user
        if server == "lid":
            return self._lid_phones.get(user)
        return None

    def _me(self, phone: str, chat: str) -> str:
        # Our own wid in a chat: the LID in groups and LID chats, as wa-js's prepareRawMessage.
        if chat.endswith("@g.us") or chat.endswith("@lid"):
            return self.lid_wid(phone)
        return f"{phone}@c.us"

    # -- the page's side -------------------------------------------------------------

    def hello(self, device_id: object, token: object, keys: object) -> dict[str, Any]:
        """A page (re)starts: register or find its device and say whether its identity holds."""
        device = self.devices.get(device_id) if isinstance(device_id, str) else None
        if device is None:
            # A page whose device we forgot (sandbox restarted) keeps its id; anything
            # malformed gets a fresh one.
            new_id = device_id if is_device_id(device_id) else new_device_id()
            assert isinstance(new_id, str)
            device = Device(device_id=new_id, created_at=self._clock())
            self.devices[new_id] = device
        _remember_keys(device, keys)
        device.ref_active = False
        if isinstance(token, str) and token:
            if device.token is not None and _same_secret(device.token, token):
                status = "authenticated"
            else:
                status = "logged_out"
                if device.linked:
                    self._unlink(device, notify=False)
        else:
            status = "unpaired"
            if device.linked:
                # The page lost its stored identity: the link is gone for good.
                self._unlink(device, notify=False)
        phone = device.phone if status == "authenticated" else None
        return {
            "status": status,
            "device_id": device.device_id,
            "phone": phone,
            "lid": self.lid_wid(phone) if phone else None,
            # WhatsApp syncs the account's blocklist to a device as it connects.
            "blocked": self.blocked_by(phone) if phone else [],
            "online": device.online,
            "event_seq": device.seq,
            "config": self.page_config,
        }

    def device(self, device_id: object) -> Device:
        """The device with this id."""
        device = self.devices.get(device_id) if isinstance(device_id, str) else None
        if device is None:
            raise NotFound("unknown_device", "no such device")
        return device

    def authenticate(self, device_id: object, token: object) -> Device:
        """The linked device presenting this token, or 401."""
        device = self.devices.get(device_id) if isinstance(device_id, str) else None
        if (
            device is None
            or device.token is None
            or not isinstance(token, str)
            or not _same_secret(device.token, token)
        ):
            raise Unauthorized("not_authenticated", "this device is not linked")
        return device

    def issue_ref(self, device_id: object, keys: object = None) -> dict[str, Any]:
        """A new QR ref for an unlinked device; the previous one stops working."""
        device = self.device(device_id)
        _remember_keys(device, keys)
        if device.linked:
            raise Conflict("already_linked", "this device is already linked")
        ref = new_ref()
        device.ref = ref
        device.ref_issued_at = self._clock()
        device.ref_active = True
        self._refs[ref] = device.device_id
        return {"ref": ref, "expires_at": device.ref_issued_at + self.qr_interval}

    def idle_ref(self, device_id: object) -> None:
        """The page stopped rotating: its last ref is no longer scannable."""
        self.device(device_id).ref_active = False

    def request_pairing_code(self, device_id: object, phone: object) -> str:
        """Register a linking code for the page; the phone confirms it later."""
        device = self.device(device_id)
        if device.linked:
            raise Conflict("already_linked", "this device is already linked")
        digits = normalize_phone(phone)
        if device.pairing_code is not None:
            self._codes.pop(device.pairing_code, None)
        code = new_pairing_code()
        while code in self._codes:
            code = new_pairing_code()
        self._codes[code] = PairingCode(
            code, device.device_id, digits, self._clock() + PAIRING_CODE_TTL
        )
        device.pairing_code = code
        # The page now shows the code instead of the QR.
        device.ref_active = False
        return code

    async def send(self, device_id: object, token: object, payload: dict[str, Any]) -> SentMessage:
        """Take a message from a linked device (idempotent on a caller's id).

        Checked at once; while the device is offline or stalled the answer waits, as a
        real socket would, until `reconnect`. Held sends are then taken in order.
        """
        device = self.authenticate(device_id, token)
        record, media, wanted_id = self._draft(device, payload)
        if device.online and not device.stalled and not device.held_sends:
            return self._accept(device, record, media, wanted_id)
        future: asyncio.Future[SentMessage] = asyncio.get_running_loop().create_future()
        device.held_sends.append(HeldSend(record, media, wanted_id, future))
        return await future

    def _draft(
        self, device: Device, payload: dict[str, Any]
    ) -> tuple[SentMessage, Media | None, bool]:
        """Check a send and build its record; nothing is recorded yet."""
        assert device.phone is not None
        to = chat_id(payload.get("to"))
        kind = payload.get("type")
        if kind not in MESSAGE_TYPES:
            raise Invalid(
                "validation_error", f"type must be one of {', '.join(MESSAGE_TYPES)}", field="type"
            )
        wanted = payload.get("message_id")
        msg_id = message_id_part(wanted) if wanted is not None else new_message_id()
        quoted = payload.get("quoted")
        if quoted is not None:
            quoted = message_id_part(quoted, "quoted")
            if (device.device_id, quoted) not in self._known:
                raise NotFound("unknown_message", "this device never sent or received quoted")
        record = SentMessage(
            id=msg_id,
            device_id=device.device_id,
            phone=device.phone,
            to=to,
            type=str(kind),
            timestamp=int(self._clock()),
            to_phone=self.phone_behind(to),
            participant=self.lid_wid(device.phone) if to.endswith("@g.us") else None,
            sender=self._me(device.phone, to),
            quoted=quoted,
        )
        media: Media | None = None
        record.mentioned = _mentioned(payload.get("mentioned"))
        record.forwarded = payload.get("forwarded") is True
        if kind == "text":
            record.text = required_str(payload, "text")
            record.link_preview = payload.get("link_preview") is not False
        elif kind == "poll_creation":
            record.name = required_str(payload, "poll_name")
            options = payload.get("poll_options")
            if (
                not isinstance(options, list)
                or not 1 < len(options) <= POLL_OPTIONS_MAX
                or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in options)
            ):
                raise Invalid(
                    "validation_error",
                    f"poll_options must be 2-{POLL_OPTIONS_MAX} {{name, localId}} objects",
                    field="poll_options",
                )
            record.poll_options = [str(o["name"]) for o in options]
            record.selectable_count = optional_int(
                payload, "selectable_count", 0, 0, len(record.poll_options)
            )
        elif kind == "location":
            record.lat = coordinate(payload, "lat", 90.0)
            record.lng = coordinate(payload, "lng", 180.0)
            record.name = optional_str(payload, "name", 1024)
            record.address = optional_str(payload, "address", 1024)
        else:
            data = base64_bytes(payload.get("data"))
            record.mimetype = mimetype(payload.get("mimetype"))
            record.caption = optional_str(payload, "caption")
            record.filename = optional_str(payload, "filename", 1024)
            record.size = len(data)
            record.sha256 = hashlib.sha256(data).hexdigest()
            media = Media(record.mimetype, data, record.filename)
        return record, media, wanted is not None

    def _accept(
        self, device: Device, record: SentMessage, media: Media | None, wanted_id: bool
    ) -> SentMessage:
        """Record a send (or find the one it repeats) and decide its outcome."""
        existing = self._sent_index.get(record.id)
        if existing is not None:
            if not wanted_id:
                while record.id in self._sent_index:
                    record.id = new_message_id()
            elif existing.device_id == device.device_id and existing.to == record.to:
                return existing
            else:
                raise Conflict("duplicate_message_id", "that message id is taken")
        failures = self._failures.get(record.phone)
        if failures:
            record.ack, record.result = failures.pop(0)
        record.timestamp = int(self._clock())
        self._sent.append(record)
        self._sent_index[record.id] = record
        self._known[(device.device_id, record.id)] = KnownMessage(
            record.message_id, record.to, record.sender, True, media is not None
        )
        if media is not None:
            self._media[(device.device_id, record.id)] = media
        self._changed()
        return record

    def _flush_sends(self, device: Device) -> None:
        """Answer the held sends of a device that is reachable again, oldest first."""
        held, device.held_sends = device.held_sends, []
        for send in held:
            if send.future.done():  # the request was cancelled
                continue
            try:
                send.future.set_result(
                    self._accept(device, send.record, send.media, send.wanted_id)
                )
            except SandboxError as exc:
                send.future.set_exception(exc)

    def _drop_held_sends(self, device: Device, error: SandboxError) -> None:
        held, device.held_sends = device.held_sends, []
        for send in held:
            if not send.future.done():
                send.future.set_exception(error)

    def lookup(self, device_id: object, token: object, key: object) -> KnownMessage:
        """A message this device sent or received, by its serialized key."""
        device = self.authenticate(device_id, token)
        found = self._known.get((device.device_id, message_id_part(key, "id")))
        if found is None or (isinstance(key, str) and "_" in key and found.key != key):
            raise NotFound("msg_not_found", "this device has no such message")
        return found

    def page_logout(self, device_id: object, token: object) -> int:
        """The page logs itself out; returns the event seq it should continue from."""
        device = self.authenticate(device_id, token)
        self._unlink(device, notify=False)
        return device.seq

    def media(self, device_id: object, token: object, message_id: object) -> Media:
        """The bytes of a media message this device sent or received."""
        device = self.authenticate(device_id, token)
        msg_id = message_id_part(message_id, "id")
        found = self._media.get((device.device_id, msg_id))
        if found is not None:
            return found
        known = self._known.get((device.device_id, msg_id))
        if known is not None and not known.has_media:
            raise Invalid("message_not_contains_media", "that message has no media")
        raise NotFound("msg_not_found", "this device has no such message")

    # -- contacts ------------------------------------------------------------------

    async def contact_info(self, device_id: object, token: object, wid: object) -> dict[str, Any]:
        """What a page's query about a user id learns: `{exists}`, and when it exists its
        `wid`, `lid`, `picture` and `about` (WhatsApp's usync, picture and status queries).
        A stalled device waits for its answer until `reconnect`."""
        device = self.authenticate(device_id, token)
        await self._unstalled(device)
        phone = self.phone_behind(_user_id(wid))
        contact = self._contact(phone) if phone is not None else None
        if phone is None or contact is None or not contact.exists:
            return {"exists": False}
        return {
            "exists": True,
            "wid": f"{phone}@c.us",
            "lid": self.lid_wid(phone),
            "picture": contact.picture,
            "about": contact.about,
        }

    async def set_blocked(
        self, device_id: object, token: object, wid: object, block: bool
    ) -> list[str]:
        """Block or unblock a user id for the device's account; its blocklist after. A
        stalled device waits for its answer until `reconnect`."""
        device = self.authenticate(device_id, token)
        await self._unstalled(device)
        assert device.phone is not None
        target = _user_id(wid)
        listed = self._blocked.setdefault(device.phone, [])
        if block and target not in listed:
            listed.append(target)
        elif not block and target in listed:
            listed.remove(target)
        return list(listed)

    def blocklist(self, device_id: object, token: object) -> list[str]:
        """The ids the device's account blocked."""
        device = self.authenticate(device_id, token)
        assert device.phone is not None
        return self.blocked_by(device.phone)

    def blocked_by(self, phone: str) -> list[str]:
        """The ids `phone` blocked, oldest first."""
        return list(self._blocked.get(phone, []))

    def set_contact(
        self, phone: str, exists: bool, picture: str | None, about: str | None
    ) -> Contact:
        """Say whether `phone` is on WhatsApp, and its picture and about text."""
        contact = Contact(exists=exists, picture=picture, about=about)
        self._contacts[phone] = contact
        return contact

    # -- chats -----------------------------------------------------------------------

    async def chat_action(
        self, device_id: object, token: object, chat: object, action: object, ids: object
    ) -> dict[str, Any]:
        """What a page did in a chat, as WhatsApp's servers hear it: read receipts for
        `ids`, archive or unarchive, delete, or its chat state (typing, recording, paused).
        A stalled device waits for its answer until `reconnect`."""
        device = self.authenticate(device_id, token)
        await self._unstalled(device)
        assert device.phone is not None
        if action not in CHAT_ACTIONS:
            raise Invalid("validation_error", "unknown chat action", field="action")
        entry: dict[str, Any] = {"chat": chat_id(chat, "chat"), "action": action}
        if action == "read":
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise Invalid("validation_error", "ids must be message ids", field="ids")
            entry["ids"] = [message_id_part(i, "ids") for i in ids]
        log = self._chat_log.setdefault(device.phone, [])
        log.append(entry)
        del log[:-LOG_LIMIT]
        return {"ok": True}

    async def subscribe_presence(self, device_id: object, token: object, wid: object) -> str:
        """The device follows the presence of a user id (a number or its LID) from now on,
        while it stays connected; the id, as given."""
        device = self.authenticate(device_id, token)
        await self._unstalled(device)
        user = chat_id(wid, "id")
        phone = self.phone_behind(user)
        if phone is None or user.endswith("@g.us"):
            raise Invalid("invalid_chat_id", "id must be a user id", field="id")
        device.presence_of.add(phone)
        return user

    def set_presence(self, phone: str, state: str) -> int:
        """`phone`'s presence changes: every device that follows it hears it, addressed as
        the number. How many devices heard it."""
        if state not in PRESENCE_STATES:
            raise Invalid(
                "validation_error",
                f"state must be one of {', '.join(PRESENCE_STATES)}",
                field="state",
            )
        heard = 0
        for device in self.devices.values():
            if device.linked and phone in device.presence_of:
                device.publish("presence", {"id": f"{phone}@c.us", "state": state})
                heard += 1
        return heard

    def chat_log(self, phone: str) -> list[dict[str, Any]]:
        """What `phone`'s devices did in chats, oldest first."""
        return list(self._chat_log.get(phone, []))

    async def _unstalled(self, device: Device) -> None:
        # A stalled device's queries get no answer, as its sends get none.
        while device.stalled and not self.closed:
            await device.signal.wait()

    def _contact(self, phone: str) -> Contact | None:
        # A number is on WhatsApp when a test said so, or when a device is linked as it.
        declared = self._contacts.get(phone)
        if declared is not None:
            return declared
        return Contact() if self._linked(phone) else None

    # -- groups ----------------------------------------------------------------------
    #
    # The page's WPP.group functions ask here (`/net/group`), and the control API plays
    # every other member. Participant changes reach the devices of every member before and
    # after as a `group` frame, which the page emits as wa-js's `group.participant_changed`
    # (subject and description changes have no wa-js event, so they publish nothing).

    async def group_op(
        self, device_id: object, token: object, op: object, args: dict[str, Any]
    ) -> Any:
        """Run a page's group operation for the device's account. A stalled device waits
        for its answer until `reconnect`."""
        device = self.authenticate(device_id, token)
        await self._unstalled(device)
        assert device.phone is not None
        me = device.phone
        if op == "list":
            return [self.group_json(g) for g in self._groups.values() if me in g.members]
        if op == "create":
            subject = _group_subject(args.get("subject"))
            phones = [self._participant(p) for p in _id_list(args.get("participants"))]
            # As wa-js: every number is looked up first, and one unknown refuses them all.
            for phone in phones:
                self._on_whatsapp(phone)
            group = self.create_group(me, subject, phones)
            return {"gid": group.gid, "participants": {f"{p}@c.us": 200 for p in phones}}
        if op == "join":
            return self.join_group(me, args.get("code"))
        group = self._member_group(me, args.get("id"))
        if op == "info":
            return self.group_json(group)
        if op in ("add", "remove", "promote", "demote"):
            phones = [self._participant(p) for p in _id_list(args.get("participants"))]
            return self.change_participants(group, me, op, phones)
        if op in ("subject", "description"):
            value = args.get("value")
            if op == "subject":
                group.subject = _group_subject(value)
            else:
                if not isinstance(value, str) or len(value) > 2048:
                    raise Invalid("validation_error", "description must be a string")
                group.description = value or None
            return True
        if op in ("invite_code", "revoke_invite_code"):
            return self.invite_code(group, me, revoke=op == "revoke_invite_code")
        if op == "leave":
            self._leave(group, me)
            return None
        raise Invalid("validation_error", "unknown group operation", field="op")

    def invite_code(self, group: Group, phone: str, *, revoke: bool = False) -> str:
        """The group's invite code as the admin `phone` reads it; a new one with `revoke`."""
        self._admin(group, phone)
        if revoke or not group.invite_code:
            # WhatsApp's codes are 22 letters and digits.
            group.invite_code = "".join(secrets.choice(INVITE_CHARS) for _ in range(22))
        return group.invite_code

    def group_json(self, group: Group) -> dict[str, Any]:
        """A group as WhatsApp describes it to a member (its metadata)."""
        return {
            "id": group.gid,
            "subject": group.subject,
            "description": group.description,
            "owner": f"{group.owner}@c.us",
            "creation": group.created_at,
            "participants": [
                {
                    "id": f"{phone}@c.us",
                    "isAdmin": role != "member",
                    "isSuperAdmin": role == "superadmin",
                }
                for phone, role in group.members.items()
            ],
        }

    def create_group(self, creator: str, subject: str, members: list[str]) -> Group:
        """A new group with `creator` as its super admin; nobody is told (a creation is
        not a participant action)."""
        gid = f"120363{secrets.randbelow(10**12):012d}@g.us"
        group = Group(gid=gid, subject=subject, owner=creator, created_at=int(time.time()))
        group.members[creator] = "superadmin"
        for phone in members:
            group.members.setdefault(phone, "member")
        self._groups[gid] = group
        return group

    def group(self, gid: object) -> Group:
        """A group by id; 404 when there is none."""
        found = self._groups.get(gid) if isinstance(gid, str) else None
        if found is None:
            raise NotFound("group_not_found", "no such group")
        return found

    def change_participants(
        self, group: Group, author: str, op: str, phones: list[str]
    ) -> dict[str, Any]:
        """`author` (an admin) adds, removes, promotes or demotes `phones`; every member,
        before and after, hears it."""
        self._admin(group, author)
        results: dict[str, Any] = {}
        for phone in phones:
            role = group.members.get(phone)
            if op == "add":
                if role is None:
                    self._on_whatsapp(phone)
                results[f"{phone}@c.us"] = 409 if role is not None else 200
            elif role is None:
                raise Invalid(
                    "group_participant_is_not_a_group_member", "a participant is not a member"
                )
            elif op == "promote" and role != "member":
                raise Invalid(
                    "group_participant_is_already_a_group_admin", "a participant is already admin"
                )
            elif op == "demote" and role == "member":
                raise Invalid(
                    "group_participant_is_already_not_a_group_admin",
                    "a participant is not an admin",
                )
        changed = [p for p in phones if op != "add" or results[f"{p}@c.us"] == 200]
        before = list(group.members)
        for phone in changed:
            if op == "add":
                group.members[phone] = "member"
            elif op == "remove":
                group.members.pop(phone, None)
            else:
                group.members[phone] = "admin" if op == "promote" else "member"
        if changed:
            self._announce(group, before, author, op, op, changed)
        return results

    def join_group(self, phone: str, code: object) -> dict[str, Any]:
        """`phone` joins through an invite code (or its https://chat.whatsapp.com/ link)."""
        if isinstance(code, str):
            code = code.rsplit("/", 1)[-1]
        group = next((g for g in self._groups.values() if code and g.invite_code == code), None)
        if group is None:
            raise NotFound("invalid_invite_code", "no group has that invite code")
        if phone not in group.members:
            before = list(group.members)
            group.members[phone] = "member"
            self._announce(group, before, phone, "join", "add", [phone])
        return {"id": group.gid, "pendingApproval": False}

    def leave_group(self, group: Group, phone: str) -> None:
        """`phone` leaves `group` (a control-side member leaving)."""
        self._leave(group, phone)

    def _leave(self, group: Group, phone: str) -> None:
        if phone not in group.members:
            raise Invalid("group_participant_is_not_a_group_member", "that account is not a member")
        before = list(group.members)
        del group.members[phone]
        self._announce(group, before, phone, "leave", "remove", [phone])

    def _announce(
        self, group: Group, before: list[str], author: str, action: str, op: str, phones: list[str]
    ) -> None:
        # As wa-js's group.participant_changed (its bundle says `leave`, its d.ts `leaver`).
        data = {
            "groupId": group.gid,
            "author": f"{author}@c.us",
            "action": action,
            "operation": op,
            "participants": [f"{p}@c.us" for p in phones],
        }
        for phone in dict.fromkeys([*before, *group.members]):
            for device in self._linked(phone):
                device.publish("group", data, hold_offline=True)

    def _member_group(self, phone: str, gid: object) -> Group:
        # wa-js's ensureGroup: a group this account has not joined is not in its ChatStore.
        found = self._groups.get(gid) if isinstance(gid, str) else None
        if found is None or phone not in found.members:
            raise NotFound("chat_not_found", "chat not found")
        return found

    @staticmethod
    def _admin(group: Group, phone: str) -> None:
        if group.members.get(phone) not in ("admin", "superadmin"):
            raise Conflict("group_you_are_not_admin", "you are not an admin of that group")

    def _on_whatsapp(self, phone: str) -> None:
        contact = self._contact(phone)
        if contact is None or not contact.exists:
            raise Invalid("participant_not_exists", "a participant is not on WhatsApp")

    def _participant(self, wid: object) -> str:
        phone = self.phone_behind(_user_id(wid))
        if phone is None:
            raise Invalid("participant_not_exists", "that participant is not on WhatsApp")
        return phone

    # -- calls -----------------------------------------------------------------------

    def offer_call(
        self, to: object, sender: object, *, video: bool, group: bool, lid: bool
    ) -> Call:
        """Someone calls the phone `to`: every device linked as it sees the call ring."""
        to_phone = normalize_phone(to, "to")
        from_phone = normalize_phone(sender, "from")
        targets = self._linked(to_phone)
        if not targets:
            raise NotFound("unknown_phone", "no device is linked as that phone")
        # WhatsApp call ids are 32 upper-case hex digits.
        call = Call(
            id=secrets.token_hex(16).upper(),
            to=to_phone,
            peer=self.lid_wid(from_phone) if lid else f"{from_phone}@c.us",
            video=video,
            group=group,
            offer_time=int(self._clock()),
        )
        self._calls[call.id] = call
        for device in targets:
            device.publish("call", call.to_json())
        return call

    async def reject_call(self, device_id: object, token: object, call_id: object) -> Call:
        """The device declines a call ringing on its phone (wa-js `call.reject`)."""
        device = self.authenticate(device_id, token)
        await self._unstalled(device)
        call = self._calls.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.to != device.phone:
            raise NotFound("call_not_found", "no such call for this account")
        if call.state != "ringing":
            raise Conflict("call_is_not_incoming_ring", "that call is not ringing")
        call.state = "rejected"
        return call

    def calls_of(self, phone: str) -> list[dict[str, Any]]:
        """The calls offered to `phone`, oldest first, with their state."""
        return [c.to_json() for c in self._calls.values() if c.to == phone]

    # -- polls -----------------------------------------------------------------------

    def vote(self, message_id: object, voter: object, options: object, *, lid: bool) -> None:
        """`voter` votes on a poll a device sent (no options: the vote is withdrawn); the
        device that sent it hears of it (wa-js `chat.poll_response`)."""
        record = self._sent_index.get(message_id_part(message_id))
        if record is None or record.type != "poll_creation" or record.poll_options is None:
            raise NotFound("unknown_message", "no device sent a poll with that id")
        voter_phone = normalize_phone(voter, "from")
        if (
            not isinstance(options, list)
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in options)
            or not all(0 <= o < len(record.poll_options) for o in options)
            or len(set(options)) != len(options)
        ):
            raise Invalid(
                "validation_error", "options must be distinct option indexes", field="options"
            )
        if record.selectable_count and len(options) > record.selectable_count:
            raise Invalid(
                "validation_error",
                f"this poll takes at most {record.selectable_count} options",
                field="options",
            )
        device = self.devices[record.device_id]
        if device.linked and device.phone == record.phone:
            device.publish(
                "poll_vote",
                {
                    "key": record.message_id,
                    "chat": record.to,
                    "voter": self.lid_wid(voter_phone) if lid else f"{voter_phone}@c.us",
                    "options": [
                        {"name": record.poll_options[o], "localId": o} for o in sorted(options)
                    ],
                    "t": int(self._clock() * 1000),
                },
                hold_offline=True,
            )

    # -- the phone's side (control API) ----------------------------------------------

    def scan(self, qr: object, phone: object) -> Device:
        """The phone scans a QR (the full code or the bare ref) and links that device."""
        if not isinstance(qr, str) or not qr.strip():
            raise Invalid("validation_error", "qr is required", field="qr")
        digits = normalize_phone(phone)
        ref = qr.strip().split(",", 1)[0]
        device_id = self._refs.get(ref)
        if device_id is None:
            raise NotFound("unknown_qr", "no device ever showed that QR")
        device = self.devices[device_id]
        if device.linked:
            raise Conflict("already_linked", "that device is already linked")
        if (
            device.ref != ref
            or not device.ref_active
            or self._clock() > device.ref_issued_at + self._qr_valid_for
        ):
            raise Conflict("qr_expired", "that QR is no longer shown")
        self._link(device, digits, via="qr")
        return device

    def confirm_pairing_code(self, code: object) -> Device:
        """The phone enters a linking code and links the device that asked for it."""
        normalized = self._find_code(code)
        pairing = self._codes.pop(normalized)
        device = self.devices[pairing.device_id]
        if device.linked:
            raise Conflict("already_linked", "that device is already linked")
        self._link(device, pairing.phone, via="pairing")
        return device

    def _find_code(self, code: object) -> str:
        normalized = normalize_pairing_code(code)
        pairing = self._codes.get(normalized)
        if pairing is None:
            raise NotFound("unknown_code", "no device asked for that code")
        if self._clock() > pairing.expires_at:
            del self._codes[normalized]
            raise Conflict("code_expired", "that code has expired")
        return normalized

    def inbound(
        self,
        to: object,
        sender: object,
        *,
        text: str | None,
        media: dict[str, Any] | None,
        location: dict[str, Any] | None,
        notify_name: str | None,
        group: str | None,
        ciphertext: bool = False,
        lid: bool = False,
        reply_to: str | None = None,
        from_me: bool = False,
        system: str | None = None,
        mentioned: object = None,
    ) -> dict[str, Any]:
        """Deliver a message to every device linked as `to`: from `sender`, or, with
        `from_me`, one the phone `to` itself sent to `sender` from the phone app."""
        to_phone = normalize_phone(to, "to")
        from_phone = normalize_phone(sender, "from")
        if group is not None and not group.endswith("@g.us"):
            raise Invalid("invalid_chat_id", "group must look like <id>@g.us", field="group")
        if group is not None:
            chat_id(group, "group")
        if media is not None and location is not None:
            raise Invalid("validation_error", "send media or location, not both", field="media")
        if system is not None:
            if system not in SYSTEM_SUBTYPES:
                raise Invalid(
                    "validation_error",
                    f"system must be one of {', '.join(SYSTEM_SUBTYPES)}",
                    field="system",
                )
            if text is not None or media is not None or location is not None:
                raise Invalid("validation_error", "a system message has no content")
            if from_me:
                raise Invalid("validation_error", "system messages come from the network")
        elif text is None and media is None and location is None:
            raise Invalid("validation_error", "one of text, media, location is required")
        msg_id = new_message_id()
        peer_pn = f"{from_phone}@c.us"
        # With `lid`, the other party is addressed by its LID, and so are we.
        peer = self.lid_wid(from_phone) if lid else peer_pn
        remote = group or peer
        me = self.lid_wid(to_phone) if lid or (from_me and group) else f"{to_phone}@c.us"
        if from_me:
            author = None
            writer = me
            serialized = f"true_{remote}_{msg_id}" + (f"_{me}" if group else "")
        else:
            author = peer if group else None
            writer = peer
            serialized = f"false_{remote}_{msg_id}" + (f"_{peer}" if group else "")
        data: dict[str, Any] = {
            "id": msg_id,
            "serialized": serialized,
            "from_me": from_me,
            "from": me if from_me else remote,
            "to": remote if from_me else me,
            "author": author,
            "t": int(self._clock()),
            "notify_name": notify_name if notify_name is not None else from_phone,
            "type": "chat",
            "body": text or "",
            "ciphertext": ciphertext,
            # LID -> phone pairs the page may cache, as WhatsApp sends them along.
            "lid_pn": [{"lid": peer, "pn": peer_pn}] if lid else [],
            # The users the message mentions (its mentionedJidList).
            "mentioned": _mentioned(mentioned) or [],
        }
        content: Media | None = None
        if system is not None:
            data.update(type=system, subtype=SYSTEM_SUBTYPES[system], body="")
        elif media is not None:
            raw = base64_bytes(media.get("data"), "media.data")
            mime = mimetype(media.get("mimetype"), "media.mimetype")
            kind = media.get("type")
            if kind is None:
                kind = media_kind(mime)
            elif kind not in MEDIA_TYPES:
                raise Invalid("validation_error", "media.type is not a media type", field="type")
            caption = optional_str(media, "caption")
            if caption is None:
                caption = text
            filename = optional_str(media, "filename", 1024)
            content = Media(mime, raw, filename)
            data.update(
                type=kind,
                body=caption or "",
                caption=caption,
                filename=filename,
                mimetype=mime,
                size=len(raw),
            )
        elif location is not None:
            data.update(
                type="location",
                body="",
                lat=coordinate(location, "lat", 90.0),
                lng=coordinate(location, "lng", 180.0),
                name=optional_str(location, "name", 1024),
                address=optional_str(location, "address", 1024),
            )
        # Checked last, so bad input is a 422 whether or not the phone is linked.
        targets = self._linked(to_phone)
        if not targets:
            raise NotFound("unknown_phone", "no device is linked as that phone")
        if reply_to is not None:
            data["quoted"] = self._quote(targets, message_id_part(reply_to, "reply_to"))
        queued = True
        for device in targets:
            if content is not None:
                self._media[(device.device_id, msg_id)] = content
            self._known[(device.device_id, msg_id)] = KnownMessage(
                serialized, remote, writer, from_me, content is not None
            )
            device.publish("message", data, hold_offline=True)
            if device.online and device.streams > 0:
                queued = False
        self._changed()
        return {"message_id": serialized, "id": msg_id, "queued": queued}

    def _quote(self, devices: list[Device], msg_id: str) -> dict[str, Any]:
        # The quoted message's context, as WhatsApp sends it with a reply.
        for device in devices:
            known = self._known.get((device.device_id, msg_id))
            if known is not None:
                return {
                    "id": msg_id,
                    "key": known.key,
                    "participant": known.sender,
                    "remote": known.remote,
                }
        raise NotFound("unknown_message", "no device of that phone sent or received reply_to")

    def ack(self, message_id: object, ack: object, *, lid: bool = False) -> SentMessage:
        """Raise a receipt on a sent message and tell the device that sent it."""
        msg_id = message_id_part(message_id)
        if isinstance(ack, bool) or not isinstance(ack, int):
            raise Invalid("validation_error", "ack must be an integer", field="ack")
        if ack < ACK_MIN:
            raise Invalid(
                "validation_error",
                "wa-js emits no chat.msg_ack_change for an ack of 0 or below;"
                " make a send fail with fail-sends instead",
                field="ack",
            )
        if ack > ACK_MAX:
            raise Invalid(
                "validation_error", f"ack must be an integer {ACK_MIN}..{ACK_MAX}", field="ack"
            )
        record = self._sent_index.get(msg_id)
        if record is None:
            raise NotFound("unknown_message", "no device sent that message")
        if record.ack < 0:
            raise Conflict("send_failed", "that message failed to send; no receipt follows")
        chat = record.to
        if lid:
            if record.to_phone is None and not record.to.endswith("@lid"):
                raise Invalid("validation_error", "lid receipts are for user chats", field="lid")
            if record.to_phone is not None:
                chat = self.lid_wid(record.to_phone)
        record.ack = ack
        self._changed()
        device = self.devices[record.device_id]
        if device.linked and device.phone == record.phone:
            device.publish(
                "ack",
                {"ack": ack, "ids": [msg_id], "chat": chat, "from": record.phone},
                hold_offline=True,
            )
        return record

    # -- message actions -------------------------------------------------------------

    def react(self, device_id: object, token: object, key: object, reaction: object) -> None:
        """A device reacts to a message it sent or received ('' takes its reaction back)."""
        if not isinstance(reaction, str) or len(reaction) > 32:
            raise Invalid("validation_error", "reaction must be a short string", field="reaction")
        found = self.lookup(device_id, token, key)
        device = self.devices[str(device_id)]
        self._reactions.append(
            {
                "device_id": device.device_id,
                "phone": device.phone,
                "message_id": found.key,
                "id": message_id_part(found.key, "id"),
                "reaction": reaction,
                "timestamp": int(self._clock()),
            }
        )

    def _own_sent(self, device_id: object, token: object, key: object) -> SentMessage:
        found = self.lookup(device_id, token, key)
        record = self._sent_index.get(message_id_part(found.key, "id"))
        if not found.from_me or record is None or record.device_id != str(device_id):
            raise Conflict("not_sent_by_device", "this device did not send that message")
        return record

    def edit(self, device_id: object, token: object, key: object, text: object) -> str:
        """A device edits a text it sent; returns the edit's own message id."""
        record = self._own_sent(device_id, token, key)
        if record.type != "text" or record.revoked:
            raise Conflict("not_editable", "only a text that is still there can be edited")
        record.text = required_str({"text": text}, "text")
        record.edited = True
        self._changed()
        return new_message_id()

    def revoke(self, device_id: object, token: object, key: object) -> None:
        """A device deletes a message it sent, for everyone."""
        record = self._own_sent(device_id, token, key)
        record.revoked = True
        self._changed()

    def other_party(
        self, kind: str, to: object, sender: object, message_id: object, text: object = None
    ) -> int:
        """`sender` edits (`kind` "edit", with `text`) or deletes for everyone ("revoke") a
        message it sent to the phone `to`; returns how many devices were told."""
        to_phone = normalize_phone(to, "to")
        from_phone = normalize_phone(sender, "from")
        if kind == "edit":
            text = required_str({"text": text}, "text")
        msg_id = message_id_part(message_id)
        told = 0
        for device in self._linked(to_phone):
            known = self._known.get((device.device_id, msg_id))
            if known is None or known.from_me:
                continue
            if not _same_user(known.sender, from_phone, self.lid_wid(from_phone)):
                continue  # only its sender edits or revokes a message
            data: dict[str, Any] = {"key": known.key, "from": known.sender}
            if kind == "edit":
                data |= {"text": text, "edit_id": new_message_id()}
            else:
                data |= {"revoke_id": new_message_id()}
            device.publish(kind, data, hold_offline=True)
            told += 1
        if not told:
            raise NotFound("unknown_message", "no device of that phone received it from `from`")
        return told

    def reactions(self, phone: str) -> list[dict[str, Any]]:
        """What the devices of `phone` reacted, oldest first."""
        return [r for r in self._reactions if r["phone"] == phone]

    def reaction_from(
        self, to: object, sender: object, message_id: object, reaction: object
    ) -> int:
        """`sender` reacts to a message the devices of `to` sent or received ('' removes
        it); returns how many devices knew the message."""
        to_phone = normalize_phone(to, "to")
        from_phone = normalize_phone(sender, "from")
        if not isinstance(reaction, str) or len(reaction) > 32:
            raise Invalid("validation_error", "reaction must be a short string", field="reaction")
        msg_id = message_id_part(message_id)
        told = 0
        for device in self._linked(to_phone):
            known = self._known.get((device.device_id, msg_id))
            if known is None:
                continue
            data = {
                "key": known.key,
                "remote": known.remote,
                "reaction_id": new_message_id(),
                "reaction": reaction,
                # In a LID chat the other party is its LID, as in its messages there.
                "sender": self.lid_wid(from_phone)
                if known.remote.endswith("@lid")
                else f"{from_phone}@c.us",
                # chat.new_reaction's timestamp is in milliseconds.
                "t": int(self._clock() * 1000),
            }
            device.publish("reaction", data, hold_offline=True)
            told += 1
        if not told:
            raise NotFound("unknown_message", "no device of that phone sent or received it")
        return told

    def disconnect(self, target: str) -> list[Device]:
        """Take devices offline: the page emits `conn.online` false; sends wait."""
        devices = self._targets(target)
        for device in devices:
            if device.online:
                device.online = False
                device.publish("disconnect", {})
        return devices

    def stall(self, target: str) -> list[Device]:
        """Stop answering the devices' sends, with nothing the page could notice."""
        devices = self._targets(target)
        for device in devices:
            device.stalled = True
        return devices

    def reconnect(self, target: str) -> list[Device]:
        """Bring devices back (or end a stall); held sends complete in order, then what was
        held for the devices follows."""
        devices = self._targets(target)
        for device in devices:
            if device.stalled:
                device.stalled = False
                device.wake()  # its queries waiting for an answer get one now
            offline = not device.online
            if offline:
                device.online = True
                device.publish("reconnect", {})
            self._flush_sends(device)
            if offline:
                held, device.held = device.held, []
                for kind, data in held:
                    device.publish(kind, data)
                device.publish("caught_up", {})
        return devices

    def fail_sends(self, target: str, count: int, ack: int, result: str) -> list[Device]:
        """Make the next `count` sends of the target's phone fail with (ack, result)."""
        if not FAILED_ACK_MIN <= ack <= FAILED_ACK_MAX:
            raise Invalid(
                "validation_error",
                f"ack must be one of wa-js's failed acks {FAILED_ACK_MIN}..{FAILED_ACK_MAX}",
                field="ack",
            )
        if result not in SEND_ERRORS:
            raise Invalid(
                "validation_error",
                f"result must be one of {', '.join(SEND_ERRORS)}",
                field="result",
            )
        devices = self._targets(target)
        for phone in {d.phone for d in devices if d.phone is not None}:
            self._failures.setdefault(phone, []).extend([(ack, result)] * count)
        return devices

    def unlink(self, target: str) -> list[Device]:
        """The phone removes the linked devices: each page logs out and shows a new QR."""
        devices = self._targets(target)
        for device in devices:
            self._unlink(device, notify=True)
        return devices

    def sent(self, phone: str | None = None, device_id: str | None = None) -> list[SentMessage]:
        """What a phone (any of its devices) or one device sent, oldest first."""
        return [
            m
            for m in self._sent
            if (phone is None or m.phone == phone)
            and (device_id is None or m.device_id == device_id)
        ]

    def list_devices(self) -> list[dict[str, Any]]:
        """Every device the network knows, for `GET /control/devices`."""
        now = self._clock()
        return [
            d.to_json(now, self._qr_valid_for, self.lid_wid(d.phone) if d.phone else None)
            for d in self.devices.values()
        ]

    def current_qr(self, device_id: object) -> dict[str, Any]:
        """The QR a device shows now, with the full code when the page shared its keys."""
        device = self.device(device_id)
        now = self._clock()
        valid = (
            device.ref is not None
            and device.ref_active
            and not device.linked
            and now <= device.ref_issued_at + self._qr_valid_for
        )
        if not valid or device.ref is None:
            raise NotFound("no_qr", "that device shows no QR now")
        keys = device.keys
        full = None
        if all(k in keys for k in ("staticKeyPair", "identityKeyPair", "secretKey")):
            full = ",".join(
                [device.ref, keys["staticKeyPair"], keys["identityKeyPair"], keys["secretKey"]]
            )
        return {
            "device_id": device.device_id,
            "ref": device.ref,
            "full_code": full,
            "expires_at": device.ref_issued_at + self.qr_interval,
        }

    # -- internals -------------------------------------------------------------------

    def _link(self, device: Device, phone: str, *, via: str) -> None:
        device.token = new_token()
        device.phone = phone
        device.online = True
        device.stalled = False
        device.ref_active = False
        if device.pairing_code is not None:
            self._codes.pop(device.pairing_code, None)
            device.pairing_code = None
        device.publish(
            "linked",
            {"token": device.token, "phone": phone, "lid": self.lid_wid(phone), "via": via},
        )
        self._changed(now=True)

    def _unlink(self, device: Device, *, notify: bool) -> None:
        device.token = None
        device.phone = None
        device.online = True
        device.stalled = False
        device.held.clear()
        self._drop_held_sends(device, Unauthorized("not_authenticated", "the device was unlinked"))
        # Nothing of the old session may reach the next one.
        device.log.clear()
        for key in [k for k in self._media if k[0] == device.device_id]:
            del self._media[key]
        for key in [k for k in self._known if k[0] == device.device_id]:
            del self._known[key]
        self._changed(now=True)
        if notify:
            device.publish("logout", {})

    def _linked(self, phone: str) -> list[Device]:
        return [d for d in self.devices.values() if d.linked and d.phone == phone]

    def _targets(self, target: str) -> list[Device]:
        if is_device_id(target):
            device = self.devices.get(target)
            if device is None or not device.linked:
                raise NotFound("unknown_device", "no such linked device")
            return [device]
        devices = self._linked(normalize_phone(target, "phone"))
        if not devices:
            raise NotFound("unknown_phone", "no device is linked as that phone")
        return devices


def _mentioned(value: object) -> list[str] | None:
    """A send's mentioned user ids (`<digits>@c.us` or `<digits>@lid`), or None."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MENTIONS_MAX
        or not all(
            isinstance(v, str) and v.split("@")[-1] in ("c.us", "lid") and v.split("@")[0].isdigit()
            for v in value
        )
    ):
        raise Invalid(
            "validation_error",
            f"mentioned must be at most {MENTIONS_MAX} user ids (<digits>@c.us or <digits>@lid)",
            field="mentioned",
        )
    return [str(v) for v in value]


def _same_user(wid: str, phone: str, lid: str) -> bool:
    return wid in (f"{phone}@c.us", lid)


def _user_id(value: object) -> str:
    """A user id a page asks about: `<digits>@c.us` or `<digits>@lid`."""
    if not isinstance(value, str) or not value.endswith(("@c.us", "@lid")):
        raise Invalid(
            "invalid_chat_id", "id must look like <digits>@c.us or <digits>@lid", field="id"
        )
    return chat_id(value, "id")


INVITE_CHARS = string.ascii_letters + string.digits


def _id_list(value: object) -> list[object]:
    if not isinstance(value, list) or not value or len(value) > 256:
        raise Invalid("validation_error", "participants must be a list of 1 to 256 ids")
    return value


def _group_subject(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise Invalid("validation_error", "subject must be 1 to 100 characters", field="subject")
    return value


def _same_secret(expected: str, given: str) -> bool:
    # compare_digest refuses non-ASCII str, and a token is whatever a client sends.
    return secrets.compare_digest(expected.encode(), given.encode())


def _remember_keys(device: Device, keys: object) -> None:
    # Only for `GET /control/qr`'s full code; the page stays the owner of its keys.
    if isinstance(keys, dict) and len(keys) <= 8 and all(isinstance(v, str) for v in keys.values()):
        device.keys = {str(k): v[:512] for k, v in keys.items()}


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def serialize_devices(devices: Iterable[Device]) -> list[str]:
    """Device ids, for control answers."""
    return [d.device_id for d in devices]
