"""The control API: the phone and the other party, driven by tests and demos (docs/sandbox.md).

JSON in, JSON out, no auth: it is meant for loopback only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.errors import Invalid
from sandbox.network import Network, serialize_devices
from sandbox.payloads import (
    optional_bool,
    optional_dict,
    optional_int,
    optional_str,
    read_json,
    required,
    required_str,
)
from sandbox.wids import normalize_phone


class ControlApi:
    """Scan a QR, confirm a pairing code, deliver inbound messages, raise acks, cut, stall
    or unlink devices, make sends fail, tell LIDs, say who is on WhatsApp, list blocklists
    and what a device sent, and play the other members of groups."""

    def __init__(self, network: Network) -> None:
        self.network = network

    def routes(self) -> list[BaseRoute]:
        """The control routes, all under /control."""
        return [
            Route("/control/scan", self.scan, methods=["POST"]),
            Route("/control/pairing", self.pairing, methods=["POST"]),
            Route("/control/inbound", self.inbound, methods=["POST"]),
            Route("/control/ack", self.ack, methods=["POST"]),
            Route("/control/devices", self.devices, methods=["GET"]),
            Route("/control/devices/{target}/disconnect", self.disconnect, methods=["POST"]),
            Route("/control/devices/{target}/reconnect", self.reconnect, methods=["POST"]),
            Route("/control/devices/{target}/logout", self.logout, methods=["POST"]),
            Route("/control/devices/{target}/stall", self.stall, methods=["POST"]),
            Route("/control/devices/{target}/fail-sends", self.fail_sends, methods=["POST"]),
            Route("/control/lid", self.lid, methods=["GET"]),
            Route("/control/contacts", self.contact, methods=["POST"]),
            Route("/control/blocklist", self.blocklist, methods=["GET"]),
            Route("/control/groups", self.create_group, methods=["POST"]),
            Route("/control/groups/join", self.join_group, methods=["POST"]),
            Route("/control/groups/{gid}", self.group, methods=["GET"]),
            Route("/control/groups/{gid}/participants", self.participants, methods=["POST"]),
            Route("/control/groups/{gid}/subject", self.subject, methods=["POST"]),
            Route("/control/groups/{gid}/leave", self.leave_group, methods=["POST"]),
            Route("/control/groups/{gid}/invite", self.invite, methods=["POST"]),
            Route("/control/sent", self.sent, methods=["GET"]),
            Route("/control/qr", self.qr, methods=["GET"]),
            Route("/control/chats", self.chats, methods=["GET"]),
            Route("/control/presence", self.presence, methods=["POST"]),
            Route("/control/reaction", self.reaction, methods=["POST"]),
            Route("/control/reactions", self.reactions, methods=["GET"]),
            Route("/control/edit", self.edit, methods=["POST"]),
            Route("/control/revoke", self.revoke, methods=["POST"]),
            Route("/control/calls", self.offer_call, methods=["POST"]),
            Route("/control/calls", self.calls, methods=["GET"]),
            Route("/control/vote", self.vote, methods=["POST"]),
        ]

    async def scan(self, request: Request) -> Response:
        """`{qr, phone}`: link the device showing that QR (full code or bare ref)."""
        body = await read_json(request)
        device = self.network.scan(required(body, "qr"), required(body, "phone"))
        return JSONResponse({"ok": True, "phone": device.phone, "device_id": device.device_id})

    async def pairing(self, request: Request) -> Response:
        """`{code}`: link the device that asked for this code, as the phone it named."""
        body = await read_json(request)
        device = self.network.confirm_pairing_code(required(body, "code"))
        return JSONResponse({"ok": True, "phone": device.phone, "device_id": device.device_id})

    async def inbound(self, request: Request) -> Response:
        """`{to, from, text?, media?: {mimetype, data, filename?, caption?, type?},
        location?: {lat, lng, name?, address?}, notify_name?, group?, ciphertext?, lid?,
        reply_to?, from_me?, system?, mentioned?: [user ids]}` -> `{message_id, id, queued}`."""
        body = await read_json(request)
        answer = self.network.inbound(
            required(body, "to"),
            required(body, "from"),
            text=optional_str(body, "text"),
            media=optional_dict(body, "media"),
            location=optional_dict(body, "location"),
            notify_name=optional_str(body, "notify_name", 256),
            group=optional_str(body, "group", 128),
            ciphertext=optional_bool(body, "ciphertext"),
            lid=optional_bool(body, "lid"),
            reply_to=optional_str(body, "reply_to", 256),
            from_me=optional_bool(body, "from_me"),
            system=optional_str(body, "system", 64),
            mentioned=body.get("mentioned"),
        )
        return JSONResponse(answer)

    async def ack(self, request: Request) -> Response:
        """`{message_id, ack, lid?}`: the recipient's phone raised a receipt on a sent
        message; with `lid` it comes from the recipient's LID, as WhatsApp now sends them."""
        body = await read_json(request)
        record = self.network.ack(
            required(body, "message_id"), required(body, "ack"), lid=optional_bool(body, "lid")
        )
        return JSONResponse({"ok": True, "message_id": record.message_id, "ack": record.ack})

    async def devices(self, request: Request) -> Response:
        """Every device the sandbox knows."""
        return JSONResponse({"devices": self.network.list_devices()})

    async def disconnect(self, request: Request) -> Response:
        """Take the devices of a phone (or one device id) offline."""
        devices = self.network.disconnect(request.path_params["target"])
        return JSONResponse({"ok": True, "devices": serialize_devices(devices)})

    async def reconnect(self, request: Request) -> Response:
        """Bring them back online."""
        devices = self.network.reconnect(request.path_params["target"])
        return JSONResponse({"ok": True, "devices": serialize_devices(devices)})

    async def logout(self, request: Request) -> Response:
        """Unlink them, as "Log out" in the phone's Linked devices screen does."""
        devices = self.network.unlink(request.path_params["target"])
        return JSONResponse({"ok": True, "devices": serialize_devices(devices)})

    async def stall(self, request: Request) -> Response:
        """Stop answering their sends while they stay online; `/reconnect` ends it."""
        devices = self.network.stall(request.path_params["target"])
        return JSONResponse({"ok": True, "devices": serialize_devices(devices)})

    async def fail_sends(self, request: Request) -> Response:
        """`{count?: 1, ack?: -1, result?: 'ERROR_UNKNOWN'}`: the phone's next sends fail."""
        body = await read_json(request, empty_ok=True)
        count = optional_int(body, "count", 1, 1, 10_000)
        ack = optional_int(body, "ack", -1, -1_000, 1_000)
        result = optional_str(body, "result", 64) or "ERROR_UNKNOWN"
        devices = self.network.fail_sends(request.path_params["target"], count, ack, result)
        return JSONResponse({"ok": True, "devices": serialize_devices(devices), "count": count})

    async def lid(self, request: Request) -> Response:
        """`?phone=` -> `{phone, lid: '<digits>@lid'}`, the phone's stable LID."""
        phone = normalize_phone(request.query_params.get("phone"))
        return JSONResponse({"phone": phone, "lid": self.network.lid_wid(phone)})

    async def contact(self, request: Request) -> Response:
        """`{phone, exists?: true, picture?: url, about?}`: what WhatsApp says about that
        number from now on (a linked phone exists without being named here)."""
        body = await read_json(request)
        phone = normalize_phone(required(body, "phone"))
        exists = body.get("exists", True)
        if not isinstance(exists, bool):
            raise Invalid("validation_error", "exists must be true or false", field="exists")
        picture = optional_str(body, "picture", 2048)
        about = optional_str(body, "about", 1024)
        self.network.set_contact(phone, exists, picture, about)
        return JSONResponse({"phone": phone, "exists": exists, "picture": picture, "about": about})

    async def blocklist(self, request: Request) -> Response:
        """`?phone=` -> `{phone, blocked: [ids]}`: whom that account blocked, oldest first."""
        phone = normalize_phone(request.query_params.get("phone"))
        return JSONResponse({"phone": phone, "blocked": self.network.blocked_by(phone)})

    # -- groups: the other members ------------------------------------------------------

    async def create_group(self, request: Request) -> Response:
        """`{creator, subject, participants?: [phones], description?}` -> the group: made by
        a phone that is not a linked session (nobody hears of a creation)."""
        body = await read_json(request)
        creator = normalize_phone(required(body, "creator"), "creator")
        subject = required_str(body, "subject", 100)
        phones = [normalize_phone(p, "participants") for p in _phones(body, required=False)]
        group = self.network.create_group(creator, subject, phones)
        group.description = optional_str(body, "description", 2048)
        return JSONResponse(self.network.group_json(group))

    async def group(self, request: Request) -> Response:
        """The group as its members see it (404 `group_not_found`)."""
        return JSONResponse(self.network.group_json(self.network.group(request.path_params["gid"])))

    async def participants(self, request: Request) -> Response:
        """`{by, action: add|remove|promote|demote, participants: [phones]}`: an admin
        changes members; every member's devices hear `group.participant_changed`."""
        group = self.network.group(request.path_params["gid"])
        body = await read_json(request)
        by = normalize_phone(required(body, "by"), "by")
        action = required(body, "action")
        if action not in ("add", "remove", "promote", "demote"):
            raise Invalid(
                "validation_error", "action must be add, remove, promote or demote", field="action"
            )
        phones = [normalize_phone(p, "participants") for p in _phones(body, required=True)]
        return JSONResponse(
            {"results": self.network.change_participants(group, by, action, phones)}
        )

    async def subject(self, request: Request) -> Response:
        """`{by, subject?, description?}`: a member changes the group's subject or
        description. wa-js has no event for either, so no page hears of it."""
        group = self.network.group(request.path_params["gid"])
        body = await read_json(request)
        by = normalize_phone(required(body, "by"), "by")
        if by not in group.members:
            raise Invalid("group_participant_is_not_a_group_member", "by is not a member")
        subject = optional_str(body, "subject", 100)
        if subject is not None:
            group.subject = required_str(body, "subject", 100)
        if "description" in body:
            group.description = optional_str(body, "description", 2048) or None
        return JSONResponse(self.network.group_json(group))

    async def join_group(self, request: Request) -> Response:
        """`{phone, code}`: a phone joins through an invite code (`action: join`)."""
        body = await read_json(request)
        phone = normalize_phone(required(body, "phone"))
        return JSONResponse(self.network.join_group(phone, required_str(body, "code", 200)))

    async def leave_group(self, request: Request) -> Response:
        """`{phone}`: a member leaves (`action: leave`)."""
        group = self.network.group(request.path_params["gid"])
        body = await read_json(request)
        self.network.leave_group(group, normalize_phone(required(body, "phone")))
        return JSONResponse(self.network.group_json(group))

    async def invite(self, request: Request) -> Response:
        """`{by}` -> `{code}`: the group's invite code as an admin reads it."""
        group = self.network.group(request.path_params["gid"])
        body = await read_json(request)
        by = normalize_phone(required(body, "by"), "by")
        return JSONResponse({"code": self.network.invite_code(group, by)})

    async def sent(self, request: Request) -> Response:
        """`?phone=` or `?device=` -> `{messages: [...]}`, oldest first."""
        phone = request.query_params.get("phone")
        device = request.query_params.get("device")
        if not phone and not device:
            raise Invalid("validation_error", "phone or device is required", field="phone")
        records = self.network.sent(
            phone=normalize_phone(phone) if phone else None, device_id=device or None
        )
        return JSONResponse({"messages": [r.to_json() for r in records]})

    async def qr(self, request: Request) -> Response:
        """`?device=` -> the QR that device shows now."""
        return JSONResponse(self.network.current_qr(request.query_params.get("device")))

    async def chats(self, request: Request) -> Response:
        """`?phone=` -> `{phone, actions: [{chat, action, ids?}]}`: what that account did in
        its chats (read receipts sent, archive, unarchive, delete, typing, recording,
        paused), oldest first."""
        phone = normalize_phone(request.query_params.get("phone"))
        return JSONResponse({"phone": phone, "actions": self.network.chat_log(phone)})

    async def presence(self, request: Request) -> Response:
        """`{phone, state}`: that user is `available`, `composing`, `recording` or
        `unavailable` now; the devices that subscribed to its presence hear it."""
        body = await read_json(request)
        phone = normalize_phone(required(body, "phone"))
        state = optional_str(body, "state", 32)
        heard = self.network.set_presence(phone, state or "")
        return JSONResponse({"phone": phone, "state": state, "devices": heard})

    async def reaction(self, request: Request) -> Response:
        """`{to, from, message_id, reaction}`: `from` reacts to a message the phone `to`
        sent or received; `reaction: ""` takes it back."""
        body = await read_json(request)
        devices = self.network.reaction_from(
            required(body, "to"),
            required(body, "from"),
            required(body, "message_id"),
            body.get("reaction"),
        )
        return JSONResponse({"ok": True, "devices": devices})

    async def reactions(self, request: Request) -> Response:
        """`?phone=` -> `{reactions: [...]}`: what that phone's devices reacted, oldest first."""
        phone = normalize_phone(request.query_params.get("phone"))
        return JSONResponse({"phone": phone, "reactions": self.network.reactions(phone)})

    async def edit(self, request: Request) -> Response:
        """`{to, from, message_id, text}`: `from` edits a message it sent to the phone `to`."""
        body = await read_json(request)
        devices = self.network.other_party(
            "edit",
            required(body, "to"),
            required(body, "from"),
            required(body, "message_id"),
            required(body, "text"),
        )
        return JSONResponse({"ok": True, "devices": devices})

    async def revoke(self, request: Request) -> Response:
        """`{to, from, message_id}`: `from` deletes for everyone a message it sent to `to`."""
        body = await read_json(request)
        devices = self.network.other_party(
            "revoke", required(body, "to"), required(body, "from"), required(body, "message_id")
        )
        return JSONResponse({"ok": True, "devices": devices})

    async def offer_call(self, request: Request) -> Response:
        """`{to, from, video?, group?, lid?}` -> the call, ringing on every device linked as
        `to` (wa-js `call.incoming_call`); with `lid` the caller is named by its LID."""
        body = await read_json(request)
        call = self.network.offer_call(
            required(body, "to"),
            required(body, "from"),
            video=optional_bool(body, "video"),
            group=optional_bool(body, "group"),
            lid=optional_bool(body, "lid"),
        )
        return JSONResponse(call.to_json())

    async def calls(self, request: Request) -> Response:
        """`?phone=` -> `{phone, calls: [{id, peer, state, ...}]}`, oldest first."""
        phone = normalize_phone(request.query_params.get("phone"))
        return JSONResponse({"phone": phone, "calls": self.network.calls_of(phone)})

    async def vote(self, request: Request) -> Response:
        """`{message_id, from, options: [index, ...], lid?}`: `from` votes on a poll a device
        sent (`options` empty: the vote is withdrawn); the sender's device hears of it."""
        body = await read_json(request)
        options = body.get("options")
        self.network.vote(
            required(body, "message_id"),
            required(body, "from"),
            options,
            lid=optional_bool(body, "lid"),
        )
        return JSONResponse({"ok": True})


def _phones(body: dict[str, Any], *, required: bool) -> list[object]:
    value = body.get("participants")
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value or len(value) > 256:
        message = "participants must be a list of 1 to 256 phones"
        raise Invalid("validation_error", message, field="participants")
    return value
