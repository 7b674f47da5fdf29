"""The sandbox's "WhatsApp servers": devices, QR refs, pairing codes, messages, event logs.

Everything lives in memory on one `Network` instance owned by the app. Handlers call it
from the event loop only, so no locks are needed; publishing an event wakes the page's
Server-Sent Events stream through an `asyncio.Event`.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import Conflict, Invalid, NotFound, Unauthorized
from sandbox.payloads import (
    base64_bytes,
    coordinate,
    media_kind,
    mimetype,
    optional_str,
    required_str,
)
from sandbox.wids import (
    chat_id,
    is_device_id,
    message_id_part,
    new_device_id,
    new_message_id,
    new_pairing_code,
    new_ref,
    new_token,
    normalize_pairing_code,
    normalize_phone,
)

MESSAGE_TYPES = ("text", "image", "document", "audio", "video", "location")
MEDIA_TYPES = ("image", "document", "audio", "video")
# Events a device keeps for a page that is away; a page gone longer than this loses the oldest.
LOG_LIMIT = 10_000
PAIRING_CODE_TTL = 180.0
# A page that stops rotating (closed, crashed) leaves its last ref valid this much longer.
QR_GRACE = 2.0
ACK_MIN, ACK_MAX = -1, 4


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
    ack: int = 1

    @property
    def message_id(self) -> str:
        """The serialized key, `true_<chat>_<ID>`, as wa-js returns it from a send."""
        return f"true_{self.to}_{self.id}"

    def to_json(self) -> dict[str, Any]:
        """The record for the control API."""
        return {
            "message_id": self.message_id,
            "id": self.id,
            "device_id": self.device_id,
            "from": self.phone,
            "to": self.to,
            "type": self.type,
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
    ref: str | None = None
    ref_issued_at: float = 0.0
    ref_active: bool = False
    pairing_code: str | None = None
    streams: int = 0
    seq: int = 0
    log: list[Event] = field(default_factory=list)
    # Messages and acks wait here while the device is disconnected, as on the real network.
    held: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
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

    def to_json(self, now: float, qr_valid_for: float) -> dict[str, Any]:
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
            "linked": self.linked,
            "online": self.online,
            "connected": self.streams > 0,
            "qr": self.ref if qr_valid else None,
            "pairing_code": self.pairing_code,
            "pending_events": len(self.held),
            "created_at": int(self.created_at),
        }


class Network:
    """The in-memory network: who holds which QR ref, who is linked as which phone, and
    what every device sent and is owed."""

    def __init__(
        self,
        qr_interval: float = 20.0,
        qr_max_rotations: int = 5,
        main_ready_delay: float = 0.3,
        clock: Callable[[], float] = time.time,
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
        self.closed = False

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """End every event stream, so the HTTP server can stop without waiting on them."""
        self.closed = True
        for device in self.devices.values():
            device.wake()

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
        return {
            "status": status,
            "device_id": device.device_id,
            "phone": device.phone if status == "authenticated" else None,
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

    def send(self, device_id: object, token: object, payload: dict[str, Any]) -> SentMessage:
        """Accept a message from a linked, online device (idempotent on a caller's id)."""
        device = self.authenticate(device_id, token)
        assert device.phone is not None
        if not device.online:
            raise Conflict("device_offline", "the device is disconnected")
        to = chat_id(payload.get("to"))
        kind = payload.get("type")
        if kind not in MESSAGE_TYPES:
            raise Invalid(
                "validation_error", f"type must be one of {', '.join(MESSAGE_TYPES)}", field="type"
            )
        wanted = payload.get("message_id")
        if wanted is not None:
            msg_id = message_id_part(wanted)
            existing = self._sent_index.get(msg_id)
            if existing is not None:
                if existing.device_id == device.device_id and existing.to == to:
                    return existing
                raise Conflict("duplicate_message_id", "that message id is taken")
        else:
            msg_id = new_message_id()
            while msg_id in self._sent_index:
                msg_id = new_message_id()
        record = SentMessage(
            id=msg_id,
            device_id=device.device_id,
            phone=device.phone,
            to=to,
            type=str(kind),
            timestamp=int(self._clock()),
        )
        if kind == "text":
            record.text = required_str(payload, "text")
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
            self._media[(device.device_id, msg_id)] = Media(record.mimetype, data, record.filename)
        self._sent.append(record)
        self._sent_index[msg_id] = record
        return record

    def page_logout(self, device_id: object, token: object) -> int:
        """The page logs itself out; returns the event seq it should continue from."""
        device = self.authenticate(device_id, token)
        self._unlink(device, notify=False)
        return device.seq

    def media(self, device_id: object, token: object, message_id: object) -> Media:
        """The bytes of a media message this device sent or received."""
        device = self.authenticate(device_id, token)
        found = self._media.get((device.device_id, message_id_part(message_id, "id")))
        if found is None:
            raise NotFound("msg_not_found", "no media for that message")
        return found

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
    ) -> dict[str, Any]:
        """Deliver a message from `sender` to every device linked as `to`."""
        to_phone = normalize_phone(to, "to")
        from_phone = normalize_phone(sender, "from")
        if group is not None and not group.endswith("@g.us"):
            raise Invalid("invalid_chat_id", "group must look like <id>@g.us", field="group")
        if group is not None:
            chat_id(group, "group")
        if media is not None and location is not None:
            raise Invalid("validation_error", "send media or location, not both", field="media")
        if text is None and media is None and location is None:
            raise Invalid("validation_error", "one of text, media, location is required")
        msg_id = new_message_id()
        sender_wid = f"{from_phone}@c.us"
        remote = group or sender_wid
        serialized = f"false_{remote}_{msg_id}" + (f"_{sender_wid}" if group else "")
        data: dict[str, Any] = {
            "id": msg_id,
            "serialized": serialized,
            "from": remote,
            "to": f"{to_phone}@c.us",
            "author": sender_wid if group else None,
            "t": int(self._clock()),
            "notify_name": notify_name if notify_name is not None else from_phone,
            "type": "chat",
            "body": text or "",
        }
        content: Media | None = None
        if media is not None:
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
                loc=optional_str(location, "name", 1024),
                address=optional_str(location, "address", 1024),
            )
        # Checked last, so bad input is a 422 whether or not the phone is linked.
        targets = self._linked(to_phone)
        if not targets:
            raise NotFound("unknown_phone", "no device is linked as that phone")
        queued = True
        for device in targets:
            if content is not None:
                self._media[(device.device_id, msg_id)] = content
            device.publish("message", data, hold_offline=True)
            if device.online and device.streams > 0:
                queued = False
        return {"message_id": serialized, "id": msg_id, "queued": queued}

    def ack(self, message_id: object, ack: object) -> SentMessage:
        """Raise an ack on a sent message and tell the device that sent it."""
        msg_id = message_id_part(message_id)
        if isinstance(ack, bool) or not isinstance(ack, int) or not ACK_MIN <= ack <= ACK_MAX:
            raise Invalid(
                "validation_error", f"ack must be an integer {ACK_MIN}..{ACK_MAX}", field="ack"
            )
        record = self._sent_index.get(msg_id)
        if record is None:
            raise NotFound("unknown_message", "no device sent that message")
        record.ack = ack
        device = self.devices[record.device_id]
        if device.linked and device.phone == record.phone:
            device.publish(
                "ack",
                {"ack": ack, "ids": [msg_id], "chat": record.to, "from": record.phone},
                hold_offline=True,
            )
        return record

    def disconnect(self, target: str) -> list[Device]:
        """Take devices offline: the page emits `conn.online` false and sends fail."""
        devices = self._targets(target)
        for device in devices:
            if device.online:
                device.online = False
                device.publish("disconnect", {})
        return devices

    def reconnect(self, target: str) -> list[Device]:
        """Bring devices back; what was held for them while offline follows."""
        devices = self._targets(target)
        for device in devices:
            if not device.online:
                device.online = True
                device.publish("reconnect", {})
                held, device.held = device.held, []
                for kind, data in held:
                    device.publish(kind, data)
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
        return [d.to_json(now, self._qr_valid_for) for d in self.devices.values()]

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
        device.ref_active = False
        if device.pairing_code is not None:
            self._codes.pop(device.pairing_code, None)
            device.pairing_code = None
        device.publish("linked", {"token": device.token, "phone": phone, "via": via})

    def _unlink(self, device: Device, *, notify: bool) -> None:
        device.token = None
        device.phone = None
        device.online = True
        device.held.clear()
        # Nothing of the old session may reach the next one.
        device.log.clear()
        for key in [k for k in self._media if k[0] == device.device_id]:
            del self._media[key]
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


def _same_secret(expected: str, given: str) -> bool:
    # compare_digest refuses non-ASCII str, and a token is whatever a client sends.
    return secrets.compare_digest(expected.encode(), given.encode())


def _remember_keys(device: Device, keys: object) -> None:
    # Only for `GET /control/qr`'s full code; the page stays the owner of its keys.
    if isinstance(keys, dict) and len(keys) <= 8 and all(isinstance(v, str) for v in keys.values()):
        device.keys = {str(k): v[:512] for k, v in keys.items()}


def serialize_devices(devices: Iterable[Device]) -> list[str]:
    """Device ids, for control answers."""
    return [d.device_id for d in devices]
