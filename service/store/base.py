"""The Store interface and the records it keeps.

Portable on purpose: SQLite or MySQL/MariaDB (`service.store.sql.SqlStore`) behind the same
async methods.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

SessionStatus = Literal[
    "stopped",
    "initializing",
    "qr_required",
    "authenticating",
    "connected",
    "disconnected",
    "failed",
]
DesiredState = Literal["running", "stopped"]
ProviderMode = Literal["auto", "webjs", "meta"]
SESSION_STATUSES: tuple[str, ...] = get_args(SessionStatus)
DESIRED_STATES: tuple[str, ...] = get_args(DesiredState)
PROVIDER_MODES: tuple[str, ...] = get_args(ProviderMode)


@dataclass(frozen=True)
class SessionRecord:
    """One WhatsApp account as the store knows it."""

    session_id: str
    workspace_id: str
    provider_mode: str = "auto"
    status: str = "stopped"
    desired_state: str = "stopped"
    phone_number: str | None = None
    webhook_url: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_error: str | None = None
    qr: str | None = field(default=None, repr=False)
    qr_expires_at: float | None = None
    # AES-256-GCM sealed Meta credentials; never leaves the service.
    meta_sealed: str | None = field(default=None, repr=False)
    meta_phone_number_id: str | None = None
    # The caller's own JSON object, as JSON text; sent back in every webhook of the session.
    metadata: str | None = field(default=None, repr=False)
    # The events its webhook gets, as a JSON list of names; None sends every event.
    webhook_events: str | None = None
    # The browser's proxy as `scheme://host:port` (no credentials), and its username and
    # password sealed like the Meta credentials; applied when the browser starts.
    proxy_url: str | None = None
    proxy_sealed: str | None = field(default=None, repr=False)
    # What an incoming call gets, as JSON `{reject, message}`; None: calls only ring.
    call_policy: str | None = field(default=None, repr=False)

    def sends(self, event: str) -> bool:
        """Whether `event` goes to this session's webhook (its `webhook_events` lists it,
        or it has no list)."""
        return self.webhook_events is None or event in json.loads(self.webhook_events)

    def metadata_object(self) -> dict[str, Any] | None:
        """The session's metadata as the JSON object it was given, or None."""
        if self.metadata is None:
            return None
        value: dict[str, Any] = json.loads(self.metadata)
        return value


# Outbound messages move along these; an inbound one is `received` and stays so.
MessageStatus = Literal[
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "played",
    "failed",
    "received",
    # Waiting for its `send_at`; and taken back before it was sent (final).
    "scheduled",
    "cancelled",
]
MESSAGE_STATUSES: tuple[str, ...] = get_args(MessageStatus)
DeliveryStatus = Literal["pending", "delivered", "dead"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)
# Forward-only order of outbound statuses; acks never move a message back down it.
STATUS_RANK = {
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "played": 5,
}


@dataclass(frozen=True)
class MessageRecord:
    """One message, outbound (`out`) or inbound (`in`). `content` is a JSON object: text,
    caption, media (mimetype, filename, size, file), location, reply_to, sender details."""

    id: str
    session_id: str
    workspace_id: str
    direction: str
    chat_id: str
    type: str
    content: str
    status: str
    priority: str = "normal"
    provider: str | None = None
    provider_message_id: str | None = None
    idempotency_key: str | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    seq: int = 0
    # The key a provider's later reports name the message by (its engine decides: the bare
    # WhatsApp Web id, the Cloud API wamid).
    provider_ref: str | None = None
    # When an inbound message's media file was written; None when no file is kept (none
    # came, it was refused, or the retention cleanup deleted it).
    media_stored_at: float | None = None
    # When a `scheduled` message may be sent (Unix seconds); None sends it in queue order.
    send_at: float | None = None


class StaleStatus(Exception):
    """A compare-and-set on a session's status lost: someone moved it first."""

    def __init__(self, current: SessionRecord) -> None:
        super().__init__(current.status)
        self.current = current


class StaleMessage(Exception):
    """A compare-and-set on a message's status lost: someone moved it first."""

    def __init__(self, current: MessageRecord) -> None:
        super().__init__(current.status)
        self.current = current


@dataclass(frozen=True)
class NodeRecord:
    """One sidecar process of a cluster, as its last heartbeat left it. `address` is its
    internal RPC URL; `sessions` how many it runs now, of `capacity`; `host` the machine."""

    node_id: str
    role: str
    address: str | None = None
    capacity: int = 0
    sessions: int = 0
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    draining: bool = False
    # Its host's name (socket.gethostname(), what Chromium writes in a profile's lock).
    host: str | None = None


@dataclass(frozen=True)
class Lease:
    """The right of `node_id` to run a session until `expires_at`. `token` is the fencing
    token: it grows on every takeover and never goes back, so a write carrying an older one
    is refused (see `LeaseLost`)."""

    session_id: str
    node_id: str
    token: int
    expires_at: float


class LeaseLost(LookupError):
    """A write fenced by (node, token) was refused: the session's lease is no longer that
    node's with that token, or it has expired. Nothing was written.

    A LookupError: to a worker, a session whose lease moved on is as gone as a deleted one,
    and the code that stops quietly for a deleted session stops quietly for this too."""

    def __init__(self, session_id: str, token: int) -> None:
        super().__init__(f"lease of session {session_id!r} with token {token} is lost")
        self.session_id = session_id
        self.token = token


class ClaimLost(Exception):
    """A `finish_attempt` fenced by an owner was refused: the event is no longer claimed by
    that dispatcher (its claim expired and another took the line, or it was finished
    already). Nothing was written; whoever holds the line now delivers it."""

    def __init__(self, event_id: str, owner: str) -> None:
        super().__init__(f"claim of outbox event {event_id!r} by {owner!r} is lost")
        self.event_id = event_id
        self.owner = owner


@dataclass(frozen=True)
class OutboxEvent:
    """A webhook event, written before anyone else sees it."""

    id: str
    seq: int
    event: str
    workspace_id: str
    session_id: str
    body: str
    status: str
    attempts: int
    next_attempt_at: float
    created_at: float
    url: str | None = None
    last_error: str | None = None
    last_status_code: int | None = None
    delivered_at: float | None = None
    give_up_at: float | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event to append to the outbox in the same transaction as the change it reports."""

    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class AppendedEvent:
    """An event as committed, handed to listeners after the commit. `written` is False when
    the session's `webhook_events` leaves it out: no outbox row has `id` then, but metrics
    and broadcasts still hear of it (the filter is the webhook's only)."""

    id: str
    workspace_id: str
    session_id: str
    event: NewEvent
    written: bool = True


EventListener = Callable[[list[AppendedEvent]], None]
log = logging.getLogger("service.store")
# A webhook is retried for this long (from when it was written, or replayed) before it is dead.
RETRY_WINDOW = 24 * 3600.0
# The `last_error` of a pending event that waits for a webhook URL (neither SIDECAR_WEBHOOK_URL
# nor its session's webhook_url is set): it goes out once one is, or is dead after the window.
NO_WEBHOOK_URL = "no webhook URL configured"


@dataclass(frozen=True)
class DeadFilter:
    """Which dead events a bulk replay takes: every given field must match; `since` and
    `until` bound `created_at` (Unix seconds, `since <= created_at < until`)."""

    session_id: str | None = None
    workspace_id: str | None = None
    event: str | None = None
    since: float | None = None
    until: float | None = None


class Store(abc.ABC):
    """Persistent state of the sidecar. All methods are coroutines; writes are atomic."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def subscribe(self, listener: EventListener) -> None:
        """Call `listener(events)` after each commit that appended outbox events; an empty
        list means the pending line changed without new events (a replay)."""

    @abc.abstractmethod
    async def outbox_mark(self) -> int:
        """The highest outbox seq written so far, by any process sharing the store (0 when
        the outbox is empty). Cheap: one primary-key lookup."""

    @abc.abstractmethod
    def notify(self, appended: list[AppendedEvent]) -> None:
        """Call every listener with `appended` (a listener that raises is logged)."""

    async def watch(self, interval: float = 0.5) -> None:
        """Poll for outbox rows other processes appended; runs until cancelled (opt-in).

        Listeners hear of this process's own commits right after them; a commit made by
        another process sharing the database is noticed here, within `interval` seconds,
        as a move of `outbox_mark()`, and announced as an empty list ("the pending line
        changed"), so a dispatcher wakes and scans. Own commits move the mark as well,
        which costs a spurious wake-up at most once per interval. Not noticed: a replay
        done elsewhere, and a row whose seq was allocated before a row that committed
        first; a dispatcher's own idle poll covers both.
        """
        last: int | None = None
        while True:
            try:
                mark = await self.outbox_mark()
            except Exception as exc:  # the database may be restarting: keep watching
                log.warning("watching the outbox failed: %s", exc)
            else:
                if last is not None and mark != last:
                    self.notify([])
                last = mark
            await asyncio.sleep(interval)

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store answers a trivial query (readiness)."""

    @abc.abstractmethod
    async def first_sighting(self, signature: str, now: float, ttl: float) -> bool:
        """Record a request signature for `ttl` seconds; False when it was already recorded
        and has not expired (a replay). Shared by every process on this store."""

    # sessions
    @abc.abstractmethod
    async def create_session(self, record: SessionRecord) -> SessionRecord:
        """Insert; raises `Conflict` when the id exists."""

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    async def list_sessions(
        self,
        workspace_id: str | None = None,
        status: str | None = None,
        desired_state: str | None = None,
        meta_phone_number_id: str | None = None,
    ) -> list[SessionRecord]: ...

    @abc.abstractmethod
    async def count_sessions(self) -> int: ...

    @abc.abstractmethod
    async def update_session(
        self,
        session_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
        fence: tuple[str, int] | None = None,
    ) -> SessionRecord:
        """Apply `changes` and append `events` to the outbox in one transaction.

        With `expect_status` it is a compare-and-set: when the stored status differs, nothing
        is written and `StaleStatus` (carrying the current record) is raised. Raises
        `SessionNotFound` when the session is gone.

        With `fence=(node_id, token)` the write happens only while the session's lease is
        that node's, with that token, and unexpired (by the clock at the write), checked
        under the lease row's lock in the same transaction; otherwise nothing is written
        and `LeaseLost` is raised.
        """

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and its messages; outbox rows already written still deliver."""

    # messages
    @abc.abstractmethod
    async def enqueue_message(self, message: MessageRecord) -> tuple[MessageRecord, bool]:
        """Insert a queued message unless its idempotency key was used in the workspace.

        Returns (record, created): the existing record and False for a repeated key. The key
        check and the insert are one transaction.
        """

    @abc.abstractmethod
    async def get_message(self, message_id: str) -> MessageRecord | None: ...

    @abc.abstractmethod
    async def find_idempotent(self, workspace_id: str, key: str) -> MessageRecord | None:
        """The message a workspace already sent with this idempotency key."""

    @abc.abstractmethod
    async def next_queued(self, session_id: str, now: float | None = None) -> MessageRecord | None:
        """The next message to send: `normal` before `bulk`, oldest first, among the queued
        ones and the scheduled ones whose `send_at` has come by `now` (default: the clock)."""

    @abc.abstractmethod
    async def next_send_at(self, session_id: str) -> float | None:
        """The earliest `send_at` of the session's scheduled messages, or None."""

    @abc.abstractmethod
    async def update_message(
        self,
        message_id: str,
        changes: dict[str, Any],
        events: list[NewEvent] | None = None,
        *,
        expect_status: str | None = None,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord:
        """Apply `changes` and append `events` for the message's session, atomically.

        With `expect_status` it is a compare-and-set: when the stored status differs,
        nothing is written and `StaleMessage` (carrying the current record) is raised.
        With `fence=(node_id, token)` it is fenced by the message's session's lease, as in
        `update_session` (`LeaseLost`, nothing written).
        """

    @abc.abstractmethod
    async def find_message(
        self,
        session_id: str,
        provider_ref: str | None = None,
        *,
        provider_message_id: str | None = None,
    ) -> MessageRecord | None:
        """The session's message with this provider ref (or this provider message id)."""

    @abc.abstractmethod
    async def newest_inbound(
        self, session_id: str, chat_id: str, provider: str
    ) -> MessageRecord | None:
        """The newest message that reached the session in this chat through `provider`."""

    @abc.abstractmethod
    async def record_inbound(
        self,
        message: MessageRecord,
        event: NewEvent,
        *,
        fence: tuple[str, int] | None = None,
    ) -> MessageRecord | None:
        """Store an inbound message and its event; None when its provider ref is known.
        `fence` as in `update_session`."""

    @abc.abstractmethod
    async def interrupt_sending(
        self,
        event_for: Callable[[MessageRecord], NewEvent],
        session_id: str | None = None,
        *,
        fence: tuple[str, int] | None = None,
    ) -> list[MessageRecord]:
        """After a crash: every `sending` message (of `session_id` only, when given: a worker
        taking a session over) becomes `failed` with error `interrupted` (it may or may not
        have left), each with the event `event_for` builds for it. `fence` (with
        `session_id`) as in `update_session`."""

    @abc.abstractmethod
    async def count_messages(self, session_id: str, status: str) -> int: ...

    @abc.abstractmethod
    async def recent_messages(self, session_id: str, limit: int) -> list[MessageRecord]:
        """The session's last `limit` messages, in and out, newest first (the dashboard)."""

    @abc.abstractmethod
    async def stored_media_before(self, before: float, limit: int) -> list[MessageRecord]:
        """Up to `limit` messages whose media file was written before `before`
        (`media_stored_at`), oldest first: what the retention cleanup deletes."""

    @abc.abstractmethod
    async def forget_media(self, message_id: str, stored_at: float, content: str) -> bool:
        """Record that the message's media file is gone: `content` replaces its content and
        `media_stored_at` becomes None, only while `media_stored_at` is still `stored_at`
        (a compare-and-set, so a cleanup run twice writes once). Whether it wrote."""

    # outbox
    @abc.abstractmethod
    async def list_events(
        self, session_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[OutboxEvent]: ...

    @abc.abstractmethod
    async def due_events(self, now: float, busy: set[str], limit: int) -> list[OutboxEvent]:
        """The oldest pending event of each session not in `busy`, when it is due.

        A session whose oldest pending event waits for a retry delivers nothing newer.
        """

    @abc.abstractmethod
    async def get_event(self, event_id: str) -> OutboxEvent | None: ...

    @abc.abstractmethod
    async def next_pending(self, session_id: str) -> OutboxEvent | None:
        """The oldest pending event of one session (the head of its line)."""

    @abc.abstractmethod
    async def due_lines(self, now: float, limit: int, *, owner: str | None = None) -> list[str]:
        """Up to `limit` session ids whose head (oldest pending event) is due and whose line
        is free: unclaimed, its claim expired (`claimed_until <= now`), or (when `owner` is
        given) claimed by `owner` itself. Longest-waiting heads first."""

    @abc.abstractmethod
    async def claim_line(
        self, session_id: str, owner: str, now: float, ttl: float
    ) -> OutboxEvent | None:
        """Claim the session's line for `owner` until `now + ttl` and return its head, in one
        transaction; None when the line is empty, its head is not due, or another owner
        holds a live claim on it. `owner` may claim again what it holds (a renewal, or a
        restart that kept its owner id). While a claim lives, no other owner gets any event
        of that session, so each line is delivered by one dispatcher at a time, in order.
        Claims expire by time only: a dispatcher killed mid-delivery holds its line until
        `claimed_until`, then another takes it and delivers the head again (at least once,
        same id and bytes)."""

    @abc.abstractmethod
    async def finish_attempt(
        self,
        event_id: str,
        changes: dict[str, Any],
        *,
        owner: str | None = None,
        attempted: bool = True,
    ) -> None:
        """Record a delivery attempt: delivered, a scheduled retry, or dead. `attempted=False`
        records a decision that sent nothing because the event had no URL: `attempts` stays
        as it is, and `changes` apply only while the row still has no URL (a session's
        webhook_url set since the claim made it due, and that wins); the claim is released
        either way.

        With `owner`, the write happens only while the event is claimed by `owner` (even
        past `claimed_until`, as long as nobody took it over), and it releases the claim;
        otherwise nothing is written and `ClaimLost` is raised. Without, the row is updated
        by id alone and any claim is left as it is.
        """

    @abc.abstractmethod
    async def replay_event(self, event_id: str, now: float) -> OutboxEvent | None:
        """Put a dead event back in line for delivery (a fresh 24 h window)."""

    @abc.abstractmethod
    async def replay_dead(self, match: DeadFilter, now: float) -> int:
        """Put every dead event that `match` selects back in line (a fresh 24 h window each),
        in one statement; how many were replayed."""

    @abc.abstractmethod
    async def wake_waiting(self, now: float) -> int:
        """Make due now every pending event that waits for a webhook URL (no URL of its own,
        `last_error` NO_WEBHOOK_URL): a dispatcher that has a default URL calls this when it
        starts, so what waited goes out at once. How many there were."""

    @abc.abstractmethod
    async def outbox_stats(self) -> dict[str, Any]:
        """Pending count, the age of the oldest pending event, the dead count, and how many
        pending events have no URL of their own (`pending_without_url`: with no
        SIDECAR_WEBHOOK_URL, those wait for one)."""

    # cluster: nodes and leases
    @abc.abstractmethod
    async def heartbeat(self, node: NodeRecord, now: float) -> bool:
        """Insert or update the node's row, its `heartbeat_at` set to `now`. A `started_at`
        of 0 means `now` on the first heartbeat and leaves the stored one alone after.

        Returns whether the row is draining after the write: `node.draining`, or a drain
        requested (`request_drain`) of the same process, that is while the stored
        `started_at` is the node's (or the node's is 0). A row whose `started_at` differs
        belongs to an earlier process under the same node id, so its drain is cleared: a
        restarted process starts fresh (a rolling restart)."""

    @abc.abstractmethod
    async def request_drain(self, node_id: str) -> bool:
        """Mark the node's row draining, for the process that runs it to notice at its next
        heartbeat; False when there is no such row."""

    @abc.abstractmethod
    async def list_nodes(self) -> list[NodeRecord]:
        """Every node's row, live or not, by node id (the caller judges `heartbeat_at`)."""

    @abc.abstractmethod
    async def remove_node(self, node_id: str) -> bool:
        """Delete the node's row (its leases stay and expire); False when there was none."""

    @abc.abstractmethod
    async def acquire_lease(
        self, session_id: str, node_id: str, now: float, ttl: float
    ) -> Lease | None:
        """Take or renew the session's lease until `now + ttl`, in one transaction.

        A live lease of this node is renewed with the same token. A session with no lease
        row gets token 1; an expired or released one (`expires_at <= now`) is taken over,
        by any node including its last holder, with the token plus one. None when another
        node holds a live lease. Concurrent calls from any number of processes: one wins.
        """

    @abc.abstractmethod
    async def renew_leases(self, node_id: str, now: float, ttl: float) -> list[Lease]:
        """Extend every live lease (`expires_at > now`) of the node to `now + ttl`, in one
        statement; the renewed leases. An expired one is not renewed: it may have been
        taken, and taking it back is `acquire_lease`'s (with a new token)."""

    @abc.abstractmethod
    async def release_lease(self, session_id: str, node_id: str, token: int) -> bool:
        """Give the lease up (it expires now; the row and its token stay, so tokens only
        grow). False when the lease is not this node's with this token."""

    @abc.abstractmethod
    async def check_lease(self, session_id: str, node_id: str, token: int, now: float) -> bool:
        """True while the session's lease is this node's, with this token, and unexpired."""

    @abc.abstractmethod
    async def lease(self, session_id: str) -> Lease | None:
        """The session's lease row (maybe expired or released), or None: who runs it."""

    @abc.abstractmethod
    async def leases(self, node_id: str | None = None) -> list[Lease]:
        """Every lease row (of one node when given), expired and released ones included,
        by session id."""

    # dashboard: reads for the operator's pages and charts
    @abc.abstractmethod
    async def events_after(self, seq: int, limit: int) -> list[OutboxEvent]:
        """Up to `limit` outbox rows with a seq above `seq`, in seq order (the event
        monitor's cursor; one primary-key range read)."""

    @abc.abstractmethod
    async def find_events(
        self, status: str, match: DeadFilter, limit: int
    ) -> tuple[list[OutboxEvent], int]:
        """The first `limit` outbox rows in `status` that `match` selects, oldest first,
        and how many match in all (the rows a bulk replay of `match` would take, for
        `dead`)."""

    @abc.abstractmethod
    async def message_mark(self) -> int:
        """The highest message seq written so far (0 when there is none): its growth
        between two looks is how many messages were stored, in and out."""
