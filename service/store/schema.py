"""The store's tables as SQLAlchemy Core metadata, built for a table-name prefix.

One definition serves SQLite and MySQL/MariaDB. The columns of sessions, messages, outbox
and seen_signatures match the hand-written schema the store had before Alembic (its version
4): the same VARCHAR lengths, unique keys and indexes. `nodes` and `leases` (cluster mode's
coordination) came with revision 0002, the outbox's `claimed_by` and `claimed_until` (which
dispatcher delivers a session's line) with 0003, `nodes.host` with 0004, the sessions'
`metadata` and `webhook_events` with 0005, the messages' `media_stored_at` (when an inbound
media file was written, for the retention cleanup) with 0006, the messages' `send_at` (when a
scheduled message may go) with 0009, `campaigns` and `campaign_recipients` (bulk sends fed
into the message queue) with 0010.

MySQL specifics: InnoDB, utf8mb4, and a binary collation. A case-insensitive collation
(utf8mb4_unicode_ci) would make the unique keys merge idempotency keys or session ids that
differ only in case or accents, which SQLite keeps apart; the binary one compares the way
SQLite does. `NOPAD_COLLATIONS` are preferred where the server has one, so trailing spaces
count too. Keys stay well under InnoDB's 3072-byte limit: the widest, (workspace_id 64,
idempotency_key 190) in utf8mb4, is 1016 bytes, and no single column passes 767.

Index names carry the prefix as well: SQLite's index names are per database, so two prefixes
in one file would otherwise collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

from service.errors import ConfigError

DEFAULT_PREFIX = "wa_"
# Binary collations that count trailing spaces (MariaDB 10.2+, MySQL 8.0.17+), best first;
# utf8mb4_bin (binary, but PAD SPACE) when the server has neither.
NOPAD_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")
FALLBACK_COLLATION = "utf8mb4_bin"
TABLE_NAMES = (
    "sessions",
    "messages",
    "outbox",
    "seen_signatures",
    "nodes",
    "leases",
    "campaigns",
    "campaign_recipients",
)
_PREFIX = re.compile(r"[A-Za-z0-9_]{0,32}")

# Bodies may pass 64 KiB (TEXT's limit on MySQL): MEDIUMTEXT there, TEXT elsewhere.
_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
# seq: BIGINT AUTO_INCREMENT on MySQL; on SQLite it must be INTEGER to be the rowid.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


def check_prefix(prefix: str) -> str:
    """The prefix itself, or ConfigError: it goes into SQL as part of identifiers."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"SIDECAR_DB_PREFIX {prefix!r}: use up to 32 of A-Z, a-z, 0-9 and _ (default wa_)"
        )
    return prefix


@dataclass(frozen=True)
class Tables:
    """The store's tables for one prefix."""

    prefix: str
    metadata: MetaData
    sessions: Table
    messages: Table
    outbox: Table
    seen_signatures: Table
    nodes: Table
    leases: Table
    campaigns: Table
    campaign_recipients: Table

    def by_name(self, name: str) -> Table:
        """A table by its unprefixed name (`sessions`, `messages`, ...)."""
        if name not in TABLE_NAMES:
            raise KeyError(name)
        table: Table = getattr(self, name)
        return table

    @property
    def version_table(self) -> str:
        return f"{self.prefix}alembic_version"


def table_options(collation: str = FALLBACK_COLLATION) -> dict[str, Any]:
    return {
        "mysql_engine": "InnoDB",
        "mysql_charset": "utf8mb4",
        "mysql_collate": collation,
    }


def tables(prefix: str = DEFAULT_PREFIX, *, collation: str = FALLBACK_COLLATION) -> Tables:
    """Fresh metadata for `prefix` (cheap; build it once per store, never per statement)."""
    p = check_prefix(prefix)
    md = MetaData()
    options = table_options(collation)
    sessions = Table(
        f"{p}sessions",
        md,
        Column("session_id", String(64), primary_key=True, autoincrement=False),
        Column("workspace_id", String(64), nullable=False),
        Column("provider_mode", String(8), nullable=False, server_default="auto"),
        Column("status", String(16), nullable=False, server_default="stopped"),
        Column("desired_state", String(8), nullable=False, server_default="stopped"),
        Column("phone_number", String(32)),
        Column("webhook_url", Text),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        Column("last_error", Text),
        Column("qr", Text),
        Column("qr_expires_at", Double),
        Column("meta_sealed", Text),
        Column("meta_phone_number_id", String(64)),
        # The caller's own JSON object and event filter, as JSON text (revision 0005).
        Column("metadata", Text),
        Column("webhook_events", Text),
        # The browser's proxy, and its sealed credentials (revision 0007).
        Column("proxy_url", Text),
        Column("proxy_sealed", Text),
        # What an incoming call gets (revision 0008).
        Column("call_policy", Text),
        Index(f"{p}sessions_workspace", "workspace_id", "status"),
        Index(f"{p}sessions_meta_phone", "meta_phone_number_id"),
        **options,
    )
    messages = Table(
        f"{p}messages",
        md,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True),
        Column("session_id", String(64), nullable=False),
        Column("workspace_id", String(64), nullable=False),
        Column("direction", String(3), nullable=False),
        Column("chat_id", String(128), nullable=False),
        Column("type", String(16), nullable=False),
        Column("content", _LONG_TEXT, nullable=False),
        Column("status", String(16), nullable=False),
        Column("priority", String(8), nullable=False, server_default="normal"),
        Column("provider", String(8)),
        Column("provider_message_id", String(190)),
        Column("idempotency_key", String(190)),
        Column("error", Text),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        Column("provider_ref", String(190)),
        # When the inbound media file was written; NULL once gone (revision 0006).
        Column("media_stored_at", Double),
        # When a scheduled message may go (revision 0009).
        Column("send_at", Double),
        Index(f"{p}messages_idempotency", "workspace_id", "idempotency_key", unique=True),
        Index(f"{p}messages_queue", "session_id", "status", "priority", "seq"),
        Index(f"{p}messages_provider_id", "provider_message_id"),
        Index(f"{p}messages_provider_ref", "session_id", "provider_ref"),
        Index(f"{p}messages_media_stored", "media_stored_at"),
        Index(f"{p}messages_scheduled", "session_id", "status", "send_at"),
        sqlite_autoincrement=True,
        **options,
    )
    outbox = Table(
        f"{p}outbox",
        md,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True),
        Column("event", String(40), nullable=False),
        Column("workspace_id", String(64), nullable=False),
        Column("session_id", String(64), nullable=False),
        Column("url", Text),
        Column("body", _LONG_TEXT, nullable=False),
        Column("status", String(12), nullable=False, server_default="pending"),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", Double, nullable=False),
        Column("last_error", Text),
        Column("last_status_code", Integer),
        Column("created_at", Double, nullable=False),
        Column("delivered_at", Double),
        Column("give_up_at", Double),
        # Who delivers the session's line now, and until when (revision 0003).
        Column("claimed_by", String(64)),
        Column("claimed_until", Double),
        Index(f"{p}outbox_pending", "status", "session_id", "seq"),
        sqlite_autoincrement=True,
        **options,
    )
    seen_signatures = Table(
        f"{p}seen_signatures",
        md,
        Column("signature", String(128), primary_key=True, autoincrement=False),
        Column("expires_at", Double, nullable=False),
        Index(f"{p}seen_signatures_expiry", "expires_at"),
        **options,
    )
    # Cluster mode: the nodes that share the store, and who runs each session.
    nodes = Table(
        f"{p}nodes",
        md,
        Column("node_id", String(64), primary_key=True, autoincrement=False),
        Column("role", String(16), nullable=False),
        Column("address", String(255)),
        Column("capacity", Integer, nullable=False),
        Column("sessions", Integer, nullable=False, server_default="0"),
        Column("started_at", Double, nullable=False),
        Column("heartbeat_at", Double, nullable=False),
        Column("draining", Integer, nullable=False, server_default="0"),
        # The host's name as Chromium writes it in a profile's lock (revision 0004).
        Column("host", String(255)),
        **options,
    )
    leases = Table(
        f"{p}leases",
        md,
        Column("session_id", String(64), primary_key=True, autoincrement=False),
        Column("node_id", String(64), nullable=False),
        Column("token", BigInteger, nullable=False),
        Column("acquired_at", Double, nullable=False),
        Column("expires_at", Double, nullable=False),
        Index(f"{p}leases_node", "node_id"),
        Index(f"{p}leases_expiry", "expires_at"),
        **options,
    )
    campaigns, campaign_recipients = campaign_tables(p, md, options)
    return Tables(
        p,
        md,
        sessions,
        messages,
        outbox,
        seen_signatures,
        nodes,
        leases,
        campaigns,
        campaign_recipients,
    )


def campaign_tables(p: str, md: MetaData, options: dict[str, Any]) -> tuple[Table, Table]:
    """Campaigns (revision 0010): one row per campaign, one per recipient. A recipient is
    `pending` until its message is written to the queue (`enqueued`, with `message_id`, in
    the same transaction), or `cancelled`; after that its message's status is its own."""
    campaigns = Table(
        f"{p}campaigns",
        md,
        Column("id", String(40), primary_key=True, autoincrement=False),
        Column("session_id", String(64), nullable=False),
        Column("workspace_id", String(64), nullable=False),
        Column("name", String(190), nullable=False),
        Column("status", String(12), nullable=False),
        # The message with its {{variables}}, and the pacing, window and stop rule, as JSON.
        Column("message", _LONG_TEXT, nullable=False),
        Column("options", Text, nullable=False),
        Column("start_at", Double),
        Column("reason", Text),
        Column("total", Integer, nullable=False),
        # Recipients written to the queue so far, and the last one's message (in flight
        # until its send settles: a campaign has one message in the queue at a time).
        Column("enqueued", Integer, nullable=False, server_default="0"),
        Column("last_message_id", String(40)),
        # Sends settled so far and how many failed: what the stop rule reads.
        Column("settled", Integer, nullable=False, server_default="0"),
        Column("failed", Integer, nullable=False, server_default="0"),
        # `settled` and `failed` when it last resumed: its stop rule counts from there.
        Column("base_settled", Integer, nullable=False, server_default="0"),
        Column("base_failed", Integer, nullable=False, server_default="0"),
        Column("next_send_at", Double),
        Column("progress_at", Double),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        Column("started_at", Double),
        Column("finished_at", Double),
        Index(f"{p}campaigns_session", "session_id", "status"),
        Index(f"{p}campaigns_status", "status"),
        **options,
    )
    recipients = Table(
        f"{p}campaign_recipients",
        md,
        Column("seq", _SEQ, primary_key=True, autoincrement=True),
        Column("campaign_id", String(40), nullable=False),
        Column("chat_id", String(128), nullable=False),
        # JSON of up to 20 values of 1,024 characters: more than MySQL's TEXT takes.
        Column("variables", _LONG_TEXT),
        Column("key", String(190)),
        Column("status", String(12), nullable=False),
        Column("message_id", String(40)),
        Index(f"{p}campaign_recipients_order", "campaign_id", "status", "seq"),
        Index(f"{p}campaign_recipients_all", "campaign_id", "seq"),
        sqlite_autoincrement=True,
        **options,
    )
    return campaigns, recipients
