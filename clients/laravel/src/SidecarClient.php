<?php

namespace WaSidecar\Laravel;

use GuzzleHttp\Exception\TransferException;
use Illuminate\Http\Client\ConnectionException as HttpConnectionException;
use Illuminate\Http\Client\Factory as HttpFactory;
use Illuminate\Http\Client\Response;
use InvalidArgumentException;
use WaSidecar\Laravel\Exceptions\AuthenticationException;
use WaSidecar\Laravel\Exceptions\CapacityException;
use WaSidecar\Laravel\Exceptions\ConflictException;
use WaSidecar\Laravel\Exceptions\ConnectionException;
use WaSidecar\Laravel\Exceptions\NotFoundException;
use WaSidecar\Laravel\Exceptions\PayloadTooLargeException;
use WaSidecar\Laravel\Exceptions\SidecarException;
use WaSidecar\Laravel\Exceptions\TimeoutException;
use WaSidecar\Laravel\Exceptions\UnavailableException;
use WaSidecar\Laravel\Exceptions\ValidationException;

/**
 * The sidecar's REST API over Laravel's HTTP client (the factory behind the Http facade),
 * every request signed as docs/api.md says.
 *
 * The body is encoded once and those exact bytes are both signed and sent; the query
 * string is built here too, so the signed path is the path on the wire. Errors become
 * typed exceptions (all of them SidecarException). Arrays in, decoded JSON out.
 */
class SidecarClient
{
    private const WRITES = ['POST', 'PUT', 'PATCH', 'DELETE'];

    /** How often the waits poll, in seconds. */
    private const POLL_INTERVAL = 0.5;

    private string $baseUrl;

    private RequestSigner $signer;

    public function __construct(
        private HttpFactory $http,
        string $baseUrl,
        string $apiSecret,
        private float $timeout = 30.0,
        private float $connectTimeout = 5.0,
    ) {
        $baseUrl = rtrim($baseUrl, '/');
        if (!preg_match('{^https?://[^/?#]+(/[^?#]*)?$}', $baseUrl)) {
            throw new InvalidArgumentException("wa-sidecar: SIDECAR_URL must be http(s)://host[:port], not {$baseUrl}");
        }
        $this->baseUrl = $baseUrl;
        $this->signer = new RequestSigner($apiSecret);
    }

    /**
     * @param array<string, mixed> $config the `wa-sidecar` config array
     */
    public static function fromConfig(HttpFactory $http, array $config): self
    {
        return new self(
            $http,
            (string) ($config['url'] ?? 'http://127.0.0.1:3000'),
            (string) ($config['api_secret'] ?? ''),
            (float) ($config['timeout'] ?? 30),
            (float) ($config['connect_timeout'] ?? 5),
        );
    }

    // Sessions

    /**
     * Create a session (201). $options: provider_mode, start, webhook_url, meta, metadata
     * (your own array, sent back in every webhook of the session; at most 4 KiB as JSON),
     * webhook_events (the event names its webhook gets; all when left out).
     *
     * @param array<string, mixed> $options
     * @return array<string, mixed> the session record
     */
    public function createSession(string $workspaceId, ?string $sessionId = null, array $options = []): array
    {
        $payload = ['workspace_id' => $workspaceId];
        if ($sessionId !== null) {
            $payload['session_id'] = $sessionId;
        }

        return $this->json('POST', '/api/sessions', payload: $payload + $options);
    }

    /**
     * @return list<array<string, mixed>> session records
     */
    public function listSessions(?string $workspaceId = null, ?string $status = null): array
    {
        $query = ['workspace_id' => $workspaceId, 'status' => $status];

        return $this->json('GET', '/api/sessions', $query)['data'] ?? [];
    }

    /** @return array<string, mixed> */
    public function getSession(string $sessionId): array
    {
        return $this->json('GET', $this->sessionPath($sessionId));
    }

    /**
     * Change provider_mode, webhook_url, meta, metadata or webhook_events. metadata is
     * replaced whole (null clears it); webhook_events null sends every event again.
     *
     * @param array<string, mixed> $changes
     * @return array<string, mixed>
     */
    public function updateSession(string $sessionId, array $changes): array
    {
        return $this->json('PATCH', $this->sessionPath($sessionId), payload: $changes);
    }

    /**
     * Unlink the device from the phone (a running, logged-in session), stop the session
     * and remove its rows and its profile directory (204). $keepDevice leaves the device
     * linked, for a session whose profile moves elsewhere.
     */
    public function deleteSession(string $sessionId, bool $keepDevice = false): void
    {
        // The API takes exactly `true` or `false` (http_build_query would send a bool as 1).
        $query = ['keep_device' => $keepDevice ? 'true' : null];
        $this->request('DELETE', $this->sessionPath($sessionId), $query);
    }

    /** @return array<string, mixed> */
    public function startSession(string $sessionId): array
    {
        return $this->json('POST', $this->sessionPath($sessionId, '/start'));
    }

    /** Stop the browser; the login is kept. @return array<string, mixed> */
    public function stopSession(string $sessionId): array
    {
        return $this->json('POST', $this->sessionPath($sessionId, '/stop'));
    }

    /** @return array<string, mixed> */
    public function restartSession(string $sessionId): array
    {
        return $this->json('POST', $this->sessionPath($sessionId, '/restart'));
    }

    /** Unlink the device from WhatsApp and wipe the profile. @return array<string, mixed> */
    public function logoutSession(string $sessionId): array
    {
        return $this->json('POST', $this->sessionPath($sessionId, '/logout'));
    }

    /**
     * Poll the session until its status is $status (or one of them), for up to
     * $timeoutSeconds.
     *
     * @param string|list<string> $status
     * @return array<string, mixed> the session record, in that status
     * @throws TimeoutException when it is not there in time (sessionStatus(): where it is)
     */
    public function waitForStatus(string $sessionId, string|array $status, int $timeoutSeconds = 60): array
    {
        $wanted = (array) $status;
        if ($wanted === []) {
            throw new InvalidArgumentException('wa-sidecar: waitForStatus needs at least one status');
        }
        $deadline = microtime(true) + $timeoutSeconds;
        while (true) {
            $session = $this->getSession($sessionId);
            if (in_array($session['status'] ?? null, $wanted, true)) {
                return $session;
            }
            $this->pauseUntil($deadline, $sessionId, $session, implode(' or ', $wanted));
        }
    }

    /**
     * Wait for a QR to scan: the session's current one as soon as it has one (a new session
     * shows its first after a few seconds, or up to a minute on a cold start).
     *
     * @return array{qr: string, expires_at: string, image_url: string}
     * @throws ConflictException no_qr when the session gets where no QR comes: connected,
     *         failed, or stopped with nothing asking it to run (sessionStatus() says which)
     * @throws TimeoutException when none came within $timeoutSeconds
     */
    public function waitForQr(string $sessionId, int $timeoutSeconds = 60): array
    {
        $deadline = microtime(true) + $timeoutSeconds;
        while (true) {
            $session = $this->getSession($sessionId);
            $status = $session['status'] ?? null;
            $stopped = $status === 'stopped' && ($session['desired_state'] ?? null) === 'stopped';
            if ($status === 'qr_required' || $status === 'connected' || $status === 'failed' || $stopped) {
                try {
                    // The sidecar's own answer: the QR, or its 409 no_qr naming the status.
                    return $this->qr($sessionId);
                } catch (ConflictException $e) {
                    // Scanned between the two calls (no_qr), or between two QRs while the
                    // sidecar refreshes an idle one (qr_not_ready): look again.
                    $again = in_array($e->errorCode(), ['no_qr', 'qr_not_ready'], true);
                    if ($status !== 'qr_required' || !$again) {
                        throw $e;
                    }
                }
            }
            $this->pauseUntil($deadline, $sessionId, $session, 'a QR');
        }
    }

    // Linking a phone

    /**
     * The current QR: {qr, expires_at, image_url}. 409 no_qr unless the session is qr_required.
     *
     * @return array{qr: string, expires_at: ?string, image_url: string}
     */
    public function qr(string $sessionId): array
    {
        return $this->json('GET', $this->sessionPath($sessionId, '/qr'));
    }

    /** The current QR as PNG bytes. */
    public function qrPng(string $sessionId): string
    {
        return $this->request('GET', $this->sessionPath($sessionId, '/qr'), accept: 'image/png')->body();
    }

    /** A code to type on the phone instead of scanning (the session must be qr_required). */
    public function pairingCode(string $sessionId, string $phone): string
    {
        $answer = $this->json('POST', $this->sessionPath($sessionId, '/pairing-code'), payload: ['phone' => $phone]);

        return (string) ($answer['code'] ?? '');
    }

    // Messages

    /**
     * Queue a message (202). $message: to, type, text, media, location, reply_to, priority.
     * With an idempotency key, a repeat returns the first record and sends nothing
     * (SentMessage::$replayed is then true): pass a key you can derive again, e.g.
     * "order-77-shipped", so a retry after a timeout cannot send twice.
     *
     * @param array<string, mixed> $message
     */
    public function sendMessage(string $sessionId, array $message, ?string $idempotencyKey = null): SentMessage
    {
        $headers = $idempotencyKey === null ? [] : ['Idempotency-Key' => $idempotencyKey];
        $response = $this->request('POST', $this->sessionPath($sessionId, '/messages'), payload: $message, headers: $headers);
        $record = $response->json();

        return new SentMessage(
            is_array($record) ? $record : [],
            strtolower((string) $response->header('Idempotent-Replayed')) === 'true',
        );
    }

    public function sendText(string $sessionId, string $to, string $text, ?string $idempotencyKey = null): SentMessage
    {
        return $this->sendMessage($sessionId, ['to' => $to, 'type' => 'text', 'text' => $text], $idempotencyKey);
    }

    /**
     * Send a poll (WhatsApp Web only): a question and 2-12 distinct options;
     * $selectableCount 1 for a single choice, 0 or null for any number. Votes arrive as
     * Events::POLL_VOTE webhooks.
     *
     * @param list<string> $options
     */
    public function sendPoll(
        string $sessionId,
        string $to,
        string $name,
        array $options,
        ?int $selectableCount = null,
        ?string $idempotencyKey = null,
    ): SentMessage {
        $poll = ['name' => $name, 'options' => array_values($options)];
        if ($selectableCount !== null) {
            $poll['selectable_count'] = $selectableCount;
        }

        return $this->sendMessage($sessionId, ['to' => $to, 'type' => 'poll', 'poll' => $poll], $idempotencyKey);
    }

    /** One message and its status. @return array<string, mixed> */
    public function getMessage(string $sessionId, string $messageId): array
    {
        return $this->json('GET', $this->sessionPath($sessionId, '/messages/' . rawurlencode($messageId)));
    }

    // Message actions on a message the session sent or received, named by its id (the
    // session's WhatsApp Web page acts; a meta session: 409 not_supported_by_provider).

    /**
     * React to a message (a new reaction replaces the session's earlier one).
     *
     * @return array{message_id: string, provider_message_id: string, emoji: ?string}
     */
    public function react(string $sessionId, string $messageId, string $emoji): array
    {
        return $this->json('POST', $this->messagePath($sessionId, $messageId, '/reaction'), payload: ['emoji' => $emoji]);
    }

    /**
     * Remove the session's reaction from a message.
     *
     * @return array{message_id: string, provider_message_id: string, emoji: null}
     */
    public function removeReaction(string $sessionId, string $messageId): array
    {
        return $this->json('DELETE', $this->messagePath($sessionId, $messageId, '/reaction'));
    }

    /** Edit a text the session sent; the updated message record. @return array<string, mixed> */
    public function editMessage(string $sessionId, string $messageId, string $text): array
    {
        return $this->json('POST', $this->messagePath($sessionId, $messageId, '/edit'), payload: ['text' => $text]);
    }

    /** Delete a message the session sent, for everyone; the updated record. @return array<string, mixed> */
    public function revokeMessage(string $sessionId, string $messageId): array
    {
        return $this->json('POST', $this->messagePath($sessionId, $messageId, '/revoke'));
    }

    /**
     * Forward a message the session sent or received to another chat (WhatsApp Web only).
     *
     * @return array{message_id: string, provider_message_id: string, to: string, forwarded: bool}
     */
    public function forwardMessage(string $sessionId, string $messageId, string $to): array
    {
        return $this->json('POST', $this->messagePath($sessionId, $messageId, '/forward'), payload: ['to' => $to]);
    }

    // Contacts (the session's WhatsApp Web page answers; a meta session: 409
    // not_supported_by_provider). A contact is a phone number, <digits>@c.us or <digits>@lid.

    /**
     * Which of up to 50 numbers are on WhatsApp, in the order given:
     * [{phone, exists, wid?, lid?}, ...] (wid and lid only for numbers that exist).
     *
     * @param list<string> $phones
     * @return list<array{phone: string, exists: bool, wid?: string, lid?: string}>
     */
    public function checkContacts(string $sessionId, array $phones): array
    {
        $answer = $this->json('POST', $this->sessionPath($sessionId, '/contacts/check'), payload: ['phones' => array_values($phones)]);

        return $answer['data'] ?? [];
    }

    /** The contact's profile picture URL (short-lived), or null when there is none to see. */
    public function contactPicture(string $sessionId, string $contact): ?string
    {
        return $this->json('GET', $this->contactPath($sessionId, $contact, '/picture'))['url'] ?? null;
    }

    /** The contact's about text, or null when none is visible. */
    public function contactAbout(string $sessionId, string $contact): ?string
    {
        return $this->json('GET', $this->contactPath($sessionId, $contact, '/about'))['about'] ?? null;
    }

    /** Block the contact; true when it is blocked now. */
    public function blockContact(string $sessionId, string $contact): bool
    {
        return (bool) ($this->json('POST', $this->contactPath($sessionId, $contact, '/block'))['blocked'] ?? false);
    }

    /** Unblock the contact; false when it is no longer blocked. */
    public function unblockContact(string $sessionId, string $contact): bool
    {
        return (bool) ($this->json('DELETE', $this->contactPath($sessionId, $contact, '/block'))['blocked'] ?? true);
    }

    /**
     * The phone number and the linked id of a contact: {contact_id, phone, lid}, each null
     * when WhatsApp has not told this account (a LID's number is known only once it did).
     *
     * @return array{contact_id: string, phone: ?string, lid: ?string}
     */
    public function contactIds(string $sessionId, string $contact): array
    {
        return $this->json('GET', $this->contactPath($sessionId, $contact, '/ids'));
    }

    // Groups (the session's WhatsApp Web page answers; a meta session: 409
    // not_supported_by_provider). A group id is <id>@g.us; a participant is a phone number,
    // <digits>@c.us or <digits>@lid. WhatsApp's refusals (not an admin, not a member, an
    // unknown invite code) are ConflictException page_refused with details.wa_code.

    /**
     * The groups this account is in: [{id, subject, description, owner, created_at}, ...].
     *
     * @return list<array<string, mixed>>
     */
    public function groups(string $sessionId): array
    {
        return $this->json('GET', $this->sessionPath($sessionId, '/groups'))['data'] ?? [];
    }

    /**
     * Create a group with this account as its super admin: {id, participants: [{id, code}]}.
     *
     * @param list<string> $participants
     * @return array<string, mixed>
     */
    public function createGroup(string $sessionId, string $subject, array $participants): array
    {
        $payload = ['subject' => $subject, 'participants' => array_values($participants)];

        return $this->json('POST', $this->sessionPath($sessionId, '/groups'), payload: $payload);
    }

    /** The group and its members: {id, subject, description, owner, created_at, participants}. @return array<string, mixed> */
    public function group(string $sessionId, string $groupId): array
    {
        return $this->json('GET', $this->groupPath($sessionId, $groupId));
    }

    /** The group's members: [{id, is_admin, is_super_admin}, ...]. @return list<array<string, mixed>> */
    public function groupParticipants(string $sessionId, string $groupId): array
    {
        return $this->json('GET', $this->groupPath($sessionId, $groupId, '/participants'))['data'] ?? [];
    }

    /**
     * Add members (admins only): WhatsApp's answer per member, [{id, code}, ...] (200 added,
     * 403 not allowed, 409 already a member, 421 waiting for approval).
     *
     * @param list<string> $participants
     * @return list<array{id: string, code: ?int}>
     */
    public function addGroupParticipants(string $sessionId, string $groupId, array $participants): array
    {
        $payload = ['participants' => array_values($participants)];

        return $this->json('POST', $this->groupPath($sessionId, $groupId, '/participants'), payload: $payload)['participants'] ?? [];
    }

    /** Remove members (admins only). @param list<string> $participants @return array<string, mixed> */
    public function removeGroupParticipants(string $sessionId, string $groupId, array $participants): array
    {
        return $this->groupMembers($sessionId, $groupId, 'remove', $participants);
    }

    /** Make members admins (admins only). @param list<string> $participants @return array<string, mixed> */
    public function promoteGroupParticipants(string $sessionId, string $groupId, array $participants): array
    {
        return $this->groupMembers($sessionId, $groupId, 'promote', $participants);
    }

    /** Make admins plain members (admins only). @param list<string> $participants @return array<string, mixed> */
    public function demoteGroupParticipants(string $sessionId, string $groupId, array $participants): array
    {
        return $this->groupMembers($sessionId, $groupId, 'demote', $participants);
    }

    /** Change the group's subject (1-100 characters). @return array{group_id: string, subject: string} */
    public function setGroupSubject(string $sessionId, string $groupId, string $subject): array
    {
        return $this->json('PUT', $this->groupPath($sessionId, $groupId, '/subject'), payload: ['subject' => $subject]);
    }

    /** Change the group's description ('' clears it). @return array{group_id: string, description: ?string} */
    public function setGroupDescription(string $sessionId, string $groupId, string $description): array
    {
        return $this->json('PUT', $this->groupPath($sessionId, $groupId, '/description'), payload: ['description' => $description]);
    }

    /** The group's invite code (admins only). @return array{group_id: string, code: string, url: string} */
    public function groupInviteCode(string $sessionId, string $groupId): array
    {
        return $this->json('GET', $this->groupPath($sessionId, $groupId, '/invite'));
    }

    /** Revoke the invite code (admins only); the answer holds the new one. @return array{group_id: string, code: string, url: string} */
    public function revokeGroupInviteCode(string $sessionId, string $groupId): array
    {
        return $this->json('DELETE', $this->groupPath($sessionId, $groupId, '/invite'));
    }

    /** Join by invite code or https://chat.whatsapp.com/ link. @return array{group_id: string, pending_approval: bool} */
    public function joinGroup(string $sessionId, string $code): array
    {
        return $this->json('POST', $this->sessionPath($sessionId, '/groups/join'), payload: ['code' => $code]);
    }

    /** Leave the group; true once left. */
    public function leaveGroup(string $sessionId, string $groupId): bool
    {
        return (bool) ($this->json('POST', $this->groupPath($sessionId, $groupId, '/leave'))['left'] ?? false);
    }

    // Chats (the session's WhatsApp Web page answers; a meta session: 409
    // not_supported_by_provider). A chat is <digits>@c.us, <id>@g.us or <digits>@lid.

    /**
     * One page of chats, newest first: [{id, name, is_group, unread_count, archived,
     * timestamp}, ...]. Pass the last chat's id as $after for the next page.
     *
     * @return list<array<string, mixed>>
     */
    public function chats(string $sessionId, ?int $limit = null, ?string $after = null, ?string $before = null): array
    {
        $query = ['limit' => $limit, 'after' => $after, 'before' => $before];

        return $this->json('GET', $this->sessionPath($sessionId, '/chats'), query: array_filter($query, fn ($v) => $v !== null))['data'] ?? [];
    }

    /**
     * One page of a chat's messages, oldest first (the newest by default). Pass the first
     * message's id as $before for older ones.
     *
     * @return list<array<string, mixed>>
     */
    public function chatMessages(string $sessionId, string $chat, ?int $limit = null, ?string $before = null, ?string $after = null): array
    {
        $query = ['limit' => $limit, 'before' => $before, 'after' => $after];

        return $this->json('GET', $this->chatPath($sessionId, $chat, '/messages'), query: array_filter($query, fn ($v) => $v !== null))['data'] ?? [];
    }

    /** Mark the chat read (sends read receipts); how many messages were unread. */
    public function markChatRead(string $sessionId, string $chat): ?int
    {
        return $this->json('POST', $this->chatPath($sessionId, $chat, '/read'))['unread_count'] ?? null;
    }

    /** Archive the chat; true when it is archived now. */
    public function archiveChat(string $sessionId, string $chat): bool
    {
        return (bool) ($this->json('POST', $this->chatPath($sessionId, $chat, '/archive'))['archived'] ?? false);
    }

    /** Unarchive the chat; false when it is no longer archived. */
    public function unarchiveChat(string $sessionId, string $chat): bool
    {
        return (bool) ($this->json('DELETE', $this->chatPath($sessionId, $chat, '/archive'))['archived'] ?? true);
    }

    /** Delete the chat and its messages from the account's devices. */
    public function deleteChat(string $sessionId, string $chat): bool
    {
        return (bool) ($this->json('DELETE', $this->chatPath($sessionId, $chat))['deleted'] ?? false);
    }

    /** Show typing, recording or paused in the chat; $durationMs pauses it by itself. */
    public function setChatPresence(string $sessionId, string $chat, string $state, ?int $durationMs = null): void
    {
        $payload = ['state' => $state] + ($durationMs === null ? [] : ['duration_ms' => $durationMs]);
        $this->json('POST', $this->chatPath($sessionId, $chat, '/presence'), payload: $payload);
    }

    /** Follow a contact's presence: presence_updated webhooks from now on. */
    public function subscribePresence(string $sessionId, string $contact): bool
    {
        return (bool) ($this->json('POST', $this->chatPath($sessionId, $contact, '/presence/subscribe'))['subscribed'] ?? false);
    }

    // Calls (WhatsApp Web sessions; a meta session answers 409 not_supported_by_provider)

    /**
     * Reject a call while it rings; $callId is the call_id of its Events::CALL_RECEIVED
     * webhook. A call that no longer rings is a ConflictException (page_refused,
     * details.wa_code call_is_not_incoming_ring or call_not_found). To reject every call,
     * set the session's call_policy with updateSession: ['call_policy' => ['reject' => true,
     * 'message' => '...']].
     */
    public function rejectCall(string $sessionId, string $callId): bool
    {
        $path = $this->sessionPath($sessionId, '/calls/' . rawurlencode($callId) . '/reject');

        return (bool) ($this->json('POST', $path)['rejected'] ?? false);
    }

    // Webhook deliveries

    /**
     * Webhook deliveries, oldest first; $status is pending, delivered or dead.
     *
     * @return list<array<string, mixed>>
     */
    public function deliveries(?string $status = null, ?string $sessionId = null, ?int $limit = null): array
    {
        $query = ['status' => $status, 'session_id' => $sessionId, 'limit' => $limit];

        return $this->json('GET', '/api/webhooks/deliveries', $query)['data'] ?? [];
    }

    /** Deliver a dead event again (202); anything but dead is 409 delivery_not_dead. */
    public function retryDelivery(string $deliveryId): array
    {
        return $this->json('POST', '/api/webhooks/deliveries/' . rawurlencode($deliveryId) . '/retry');
    }

    // The operator dashboard

    /**
     * A one-time sign-in link to the sidecar's dashboard (/dashboard), for an admin page to
     * redirect its operator to: ['url' => ..., 'expires_at' => ISO 8601]. $label names who
     * signs in (shown and logged); $sessionId lands on that session's page; $ttlSeconds
     * shortens the link's life (at most SIDECAR_DASHBOARD_LINK_TTL). A sidecar without
     * SIDECAR_DASHBOARD_SECRET answers 409 dashboard_disabled (a ConflictException).
     *
     * @return array{url: string, expires_at: string}
     */
    public function dashboardLink(?string $label = null, ?string $sessionId = null, ?int $ttlSeconds = null): array
    {
        $body = array_filter(
            ['label' => $label, 'session_id' => $sessionId, 'ttl' => $ttlSeconds],
            static fn ($value) => $value !== null,
        );

        // No options: no body (an empty PHP array would encode as a JSON list).
        return $this->json('POST', '/api/dashboard/links', [], $body ?: null);
    }

    // The wire

    /**
     * One signed request; any non-2xx answer is thrown as a SidecarException.
     *
     * @param array<string, scalar|null> $query null values are left out
     * @param array<string, mixed>|null $payload encoded once with json_encode; null: no body
     * @param array<string, string> $headers
     */
    public function request(
        string $method,
        string $path,
        array $query = [],
        ?array $payload = null,
        array $headers = [],
        string $accept = 'application/json',
    ): Response {
        $method = strtoupper($method);
        $query = array_filter($query, static fn ($value) => $value !== null);
        $target = $path . ($query ? '?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986) : '');
        $body = $payload === null ? '' : json_encode($payload, JSON_THROW_ON_ERROR);
        $headers = ['Accept' => $accept] + $headers;

        [$response, $timestamp] = $this->attempt($method, $target, $body, $headers);
        if (in_array($method, self::WRITES, true) && $this->errorCodeOf($response) === 'replayed_request') {
            // Two byte-identical writes in one second carry the same signature, and the second
            // looks like a replay. Sign again in the next second and try once more.
            $this->sleepPast($timestamp);
            [$response] = $this->attempt($method, $target, $body, $headers);
        }
        if (!$response->successful()) {
            throw $this->exceptionFor($response);
        }

        return $response;
    }

    /**
     * @param array<string, scalar|null> $query
     * @param array<string, mixed>|null $payload
     * @return array<string, mixed>
     */
    private function json(string $method, string $path, array $query = [], ?array $payload = null): array
    {
        $decoded = $this->request($method, $path, $query, $payload)->json();

        return is_array($decoded) ? $decoded : [];
    }

    /**
     * @param array<string, string> $headers
     * @return array{0: Response, 1: int}
     */
    private function attempt(string $method, string $target, string $body, array $headers): array
    {
        $timestamp = time();
        $pending = $this->http
            ->withHeaders($headers + $this->signer->headers($timestamp, $method, $target, $body))
            ->withOptions(['timeout' => $this->timeout, 'connect_timeout' => $this->connectTimeout]);
        $options = [];
        if ($body !== '') {
            // withBody: these bytes go out untouched (no re-encoding), as they were signed.
            $pending = $pending->withBody($body, 'application/json');
            $options['body'] = $body;
        }
        try {
            return [$pending->send($method, $this->baseUrl . $target, $options), $timestamp];
        } catch (HttpConnectionException|TransferException $e) {
            throw new ConnectionException(
                "wa-sidecar: no answer from {$this->baseUrl}: " . $e->getMessage(),
                'connection_failed',
                0,
                [],
                $e,
            );
        }
    }

    /**
     * Sleep one poll interval (never past $deadline), or throw TimeoutException once it has
     * passed.
     *
     * @param array<string, mixed> $session the record last seen
     */
    private function pauseUntil(float $deadline, string $sessionId, array $session, string $what): void
    {
        $left = $deadline - microtime(true);
        $status = is_string($session['status'] ?? null) ? $session['status'] : null;
        if ($left <= 0) {
            throw new TimeoutException(
                "wa-sidecar: session {$sessionId} is still {$status}; waited for {$what} in vain",
                'wait_timeout',
                0,
                ['session_id' => $sessionId, 'status' => $status, 'waited_for' => $what],
            );
        }
        usleep((int) (min($left, self::POLL_INTERVAL) * 1_000_000));
    }

    private function sleepPast(int $timestamp): void
    {
        while (($wait = $timestamp + 1 - microtime(true)) > 0) {
            usleep((int) ceil($wait * 1_000_000) + 1_000);
        }
    }

    private function errorCodeOf(Response $response): ?string
    {
        if ($response->status() !== 401) {
            return null;
        }
        $code = $response->json('error.code');

        return is_string($code) ? $code : null;
    }

    private function exceptionFor(Response $response): SidecarException
    {
        $status = $response->status();
        $decoded = json_decode($response->body(), true);
        $error = is_array($decoded) && is_array($decoded['error'] ?? null) ? $decoded['error'] : [];
        $code = is_string($error['code'] ?? null) ? $error['code'] : 'http_' . $status;
        $message = is_string($error['message'] ?? null) ? $error['message'] : "HTTP {$status} from the sidecar";
        $details = is_array($error['details'] ?? null) ? $error['details'] : [];

        $class = match (true) {
            $status === 401 => AuthenticationException::class,
            $status === 404 => NotFoundException::class,
            $status === 409 => ConflictException::class,
            $status === 413 => PayloadTooLargeException::class,
            $status === 422 => ValidationException::class,
            $status === 503 && $code === 'at_capacity' => CapacityException::class,
            in_array($code, ['session_unassigned', 'worker_unavailable', 'worker_error', 'page_timeout'], true) => UnavailableException::class,
            default => SidecarException::class,
        };

        return new $class($message, $code, $status, $details);
    }

    private function chatPath(string $sessionId, string $chat, string $suffix = ''): string
    {
        return $this->sessionPath($sessionId, '/chats/' . rawurlencode($chat) . $suffix);
    }

    private function contactPath(string $sessionId, string $contact, string $suffix): string
    {
        return $this->sessionPath($sessionId, '/contacts/' . rawurlencode($contact) . $suffix);
    }

    /** @param list<string> $participants @return array<string, mixed> */
    private function groupMembers(string $sessionId, string $groupId, string $action, array $participants): array
    {
        $payload = ['participants' => array_values($participants)];

        return $this->json('POST', $this->groupPath($sessionId, $groupId, '/participants/' . $action), payload: $payload);
    }

    private function groupPath(string $sessionId, string $groupId, string $suffix = ''): string
    {
        return $this->sessionPath($sessionId, '/groups/' . rawurlencode($groupId) . $suffix);
    }

    private function messagePath(string $sessionId, string $messageId, string $suffix): string
    {
        return $this->sessionPath($sessionId, '/messages/' . rawurlencode($messageId) . $suffix);
    }

    private function sessionPath(string $sessionId, string $suffix = ''): string
    {
        return '/api/sessions/' . rawurlencode($sessionId) . $suffix;
    }
}
