"""The hand-written SQLite schema versions 1-4 the store used before Alembic (SQLite only).

Kept so that a file older than version 4 can be brought to 4 before the Alembic baseline
adopts it (renames its tables to the prefixed names, drops `schema_migrations`, stamps it).
Never changed again: new schema changes are Alembic revisions under `versions/`.
"""

from __future__ import annotations

LEGACY_MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "sessions, messages, webhook outbox",
        [
            """
            CREATE TABLE sessions (
                session_id VARCHAR(64) NOT NULL PRIMARY KEY,
                workspace_id VARCHAR(64) NOT NULL,
                provider_mode VARCHAR(8) NOT NULL DEFAULT 'auto',
                status VARCHAR(16) NOT NULL DEFAULT 'stopped',
                desired_state VARCHAR(8) NOT NULL DEFAULT 'stopped',
                phone_number VARCHAR(32),
                webhook_url TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                last_error TEXT,
                qr TEXT,
                qr_expires_at DOUBLE PRECISION,
                meta_sealed TEXT,
                meta_phone_number_id VARCHAR(64)
            )
            """,
            "CREATE INDEX sessions_workspace ON sessions (workspace_id, status)",
            "CREATE INDEX sessions_meta_phone ON sessions (meta_phone_number_id)",
            """
            CREATE TABLE messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id VARCHAR(40) NOT NULL UNIQUE,
                session_id VARCHAR(64) NOT NULL,
                workspace_id VARCHAR(64) NOT NULL,
                direction VARCHAR(3) NOT NULL,
                chat_id VARCHAR(128) NOT NULL,
                type VARCHAR(16) NOT NULL,
                content TEXT NOT NULL,
                status VARCHAR(16) NOT NULL,
                priority VARCHAR(8) NOT NULL DEFAULT 'normal',
                provider VARCHAR(8),
                provider_message_id VARCHAR(190),
                idempotency_key VARCHAR(190),
                error TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX messages_idempotency ON messages (workspace_id, idempotency_key)",
            "CREATE INDEX messages_queue ON messages (session_id, status, priority, seq)",
            "CREATE INDEX messages_provider_id ON messages (provider_message_id)",
            """
            CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id VARCHAR(40) NOT NULL UNIQUE,
                event VARCHAR(40) NOT NULL,
                workspace_id VARCHAR(64) NOT NULL,
                session_id VARCHAR(64) NOT NULL,
                url TEXT,
                body TEXT NOT NULL,
                status VARCHAR(12) NOT NULL DEFAULT 'pending',
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                last_error TEXT,
                last_status_code INTEGER,
                created_at DOUBLE PRECISION NOT NULL,
                delivered_at DOUBLE PRECISION
            )
            """,
            "CREATE INDEX outbox_pending ON outbox (status, session_id, seq)",
        ],
    ),
    (
        2,
        "outbox retry window",
        [
            "ALTER TABLE outbox ADD COLUMN give_up_at DOUBLE PRECISION",
            "UPDATE outbox SET give_up_at = created_at + 86400",
        ],
    ),
    (
        3,
        "provider refs: the key acks and receipts name a message by",
        [
            "ALTER TABLE messages ADD COLUMN provider_ref VARCHAR(190)",
            # WhatsApp Web ids `<fromMe>_<chat>_<id>[_<participant>]`: the ref is `<id>`
            # (chats and participants hold no underscore); Cloud API wamids are their own ref.
            """
            UPDATE messages SET provider_ref = CASE
                WHEN provider = 'webjs' AND provider_message_id LIKE '%!_%!_%' ESCAPE '!' THEN
                    substr(
                        substr(provider_message_id, instr(provider_message_id, '_') + 1),
                        instr(substr(provider_message_id, instr(provider_message_id, '_') + 1), '_')
                            + 1
                    )
                ELSE provider_message_id
            END
            WHERE provider_message_id IS NOT NULL
            """,
            """
            UPDATE messages SET provider_ref = substr(provider_ref, 1, instr(provider_ref, '_') - 1)
            WHERE provider = 'webjs' AND instr(provider_ref, '_') > 0
            """,
            "CREATE INDEX messages_provider_ref ON messages (session_id, provider_ref)",
        ],
    ),
    (
        4,
        "signatures of state-changing requests seen inside the replay window",
        [
            """
            CREATE TABLE seen_signatures (
                signature VARCHAR(128) NOT NULL PRIMARY KEY,
                expires_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX seen_signatures_expiry ON seen_signatures (expires_at)",
        ],
    ),
]

# What versions 1-4 created, for the baseline that adopts such a file.
LEGACY_TABLES = ("sessions", "messages", "outbox", "seen_signatures")
LEGACY_INDEXES = (
    "sessions_workspace",
    "sessions_meta_phone",
    "messages_idempotency",
    "messages_queue",
    "messages_provider_id",
    "messages_provider_ref",
    "outbox_pending",
    "seen_signatures_expiry",
)
LEGACY_VERSION_TABLE = "schema_migrations"
LEGACY_HEAD = LEGACY_MIGRATIONS[-1][0]
