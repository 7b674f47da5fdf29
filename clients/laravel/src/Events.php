<?php

namespace WaSidecar\Laravel;

/**
 * Names the sidecar uses on the wire: webhook events (the `event` field and the
 * X-Webhook-Event header), broadcast events and their private channel.
 */
final class Events
{
    // Webhooks (docs/webhooks.md), with what `data` holds.

    /** {status, previous, reason?, phone_number?} */
    public const SESSION_STATUS_CHANGED = 'session_status_changed';

    /** {qr, expires_at, image_url} */
    public const QR_CODE_GENERATED = 'qr_code_generated';

    /** {code} */
    public const PAIRING_CODE_GENERATED = 'pairing_code_generated';

    /** {message}: the message record, direction "in" */
    public const MESSAGE_RECEIVED = 'message_received';

    /** {message_id, provider_message_id, status, provider, error?} */
    public const MESSAGE_STATUS_UPDATED = 'message_status_updated';

    /** {from, to, reason} */
    public const PROVIDER_FAILOVER = 'provider_failover';

    /** {group_id, action, operation, author, participants, includes_me}: wa-js's group.participant_changed */
    public const GROUP_PARTICIPANTS_CHANGED = 'group_participants_changed';

    /** {group_id, action (add|join), author}: this account was added to a group or joined one */
    public const GROUP_JOINED = 'group_joined';

    /** {group_id, subject?, description?}: this session changed them through the API */
    public const GROUP_UPDATED = 'group_updated';

    /** {chat_id, online, state, participants} */
    public const PRESENCE_UPDATED = 'presence_updated';
    /** {call_id, from, is_video, is_group, offered_at, rejected} */
    public const CALL_RECEIVED = 'call_received';

    /** {message_id, provider_message_id, chat_id, voter, selected: [{index, name}], voted_at} */
    public const POLL_VOTE = 'poll_vote';

    /** {message_id, provider_message_id, from, emoji, timestamp}: emoji null when removed */
    public const MESSAGE_REACTION = 'message_reaction';

    /** {message_id, provider_message_id, text} */
    public const MESSAGE_EDITED = 'message_edited';

    /** {message_id, provider_message_id, from} */
    public const MESSAGE_REVOKED = 'message_revoked';

    // Campaigns: each carries {campaign_id, name, total, counts: {pending, queued, sending,
    // sent, delivered, read, played, failed, cancelled}}, and:

    /** nothing more: its first send is about to go */
    public const CAMPAIGN_STARTED = 'campaign_started';

    /** nothing more: at most every SIDECAR_CAMPAIGN_PROGRESS_S seconds while it runs */
    public const CAMPAIGN_PROGRESS = 'campaign_progress';

    /** {reason}: requested, failure_rate: ..., or account_blocked: ... */
    public const CAMPAIGN_PAUSED = 'campaign_paused';

    /** {status: completed|cancelled} */
    public const CAMPAIGN_COMPLETED = 'campaign_completed';

    public const WEBHOOKS = [
        self::SESSION_STATUS_CHANGED,
        self::QR_CODE_GENERATED,
        self::PAIRING_CODE_GENERATED,
        self::MESSAGE_RECEIVED,
        self::MESSAGE_STATUS_UPDATED,
        self::PROVIDER_FAILOVER,
        self::GROUP_PARTICIPANTS_CHANGED,
        self::GROUP_JOINED,
        self::GROUP_UPDATED,
        self::PRESENCE_UPDATED,
        self::MESSAGE_REACTION,
        self::MESSAGE_EDITED,
        self::MESSAGE_REVOKED,
        self::CALL_RECEIVED,
        self::POLL_VOTE,
        self::CAMPAIGN_STARTED,
        self::CAMPAIGN_PROGRESS,
        self::CAMPAIGN_PAUSED,
        self::CAMPAIGN_COMPLETED,
    ];

    // Broadcasts (docs/webhooks.md) on Reverb or Pusher. Echo listens with a leading dot,
    // `.listen('.qr-code-generated', ...)`, because the names carry no PHP namespace.

    /** {session_id, qr, expires_at, image_url} */
    public const BROADCAST_QR_CODE_GENERATED = 'qr-code-generated';

    /** {session_id, status} */
    public const BROADCAST_SESSION_STATUS_CHANGED = 'session-status-changed';

    /** The channel pattern to authorise in routes/channels.php. */
    public const CHANNEL_PATTERN = 'workspace.{id}';

    /** The name Echo subscribes to: Echo.private('workspace.acme'). */
    public static function channel(string $workspaceId): string
    {
        return 'workspace.' . $workspaceId;
    }

    /** The name on the wire, as the sidecar publishes: private-workspace.acme. */
    public static function privateChannel(string $workspaceId): string
    {
        return 'private-' . self::channel($workspaceId);
    }
}
