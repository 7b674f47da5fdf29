<?php

namespace WaSidecar\Laravel;

use InvalidArgumentException;
use Symfony\Component\HttpFoundation\Request;

/**
 * One webhook body: {id, event, timestamp, workspace_id, session_id, metadata, data}. Build
 * it in the controller behind the `wa-sidecar.webhook` middleware, then switch on ->event.
 * ->metadata is the session's own metadata when the event was written (null without).
 */
final class WebhookEvent
{
    /**
     * @param array<string, mixed> $data
     * @param array<string, mixed>|null $metadata
     */
    public function __construct(
        public readonly string $id,
        public readonly string $event,
        public readonly int $timestamp,
        public readonly ?string $workspaceId,
        public readonly ?string $sessionId,
        public readonly array $data,
        public readonly ?array $metadata = null,
    ) {
    }

    public static function fromRequest(Request $request): self
    {
        $payload = json_decode((string) $request->getContent(), true);
        if (!is_array($payload)) {
            throw new InvalidArgumentException('wa-sidecar: the webhook body is not a JSON object');
        }

        return self::fromArray($payload);
    }

    /**
     * @param array<string, mixed> $payload
     */
    public static function fromArray(array $payload): self
    {
        if (!is_string($payload['id'] ?? null) || !is_string($payload['event'] ?? null)) {
            throw new InvalidArgumentException('wa-sidecar: a webhook body needs a string id and event');
        }

        return new self(
            $payload['id'],
            $payload['event'],
            (int) ($payload['timestamp'] ?? 0),
            isset($payload['workspace_id']) ? (string) $payload['workspace_id'] : null,
            isset($payload['session_id']) ? (string) $payload['session_id'] : null,
            is_array($payload['data'] ?? null) ? $payload['data'] : [],
            is_array($payload['metadata'] ?? null) ? $payload['metadata'] : null,
        );
    }

    public function is(string $event): bool
    {
        return $this->event === $event;
    }

    /** A value of `data`, with dots for nesting: $event->get('message.from'). */
    public function get(string $key, mixed $default = null): mixed
    {
        $value = $this->data;
        foreach (explode('.', $key) as $segment) {
            if (!is_array($value) || !array_key_exists($segment, $value)) {
                return $default;
            }
            $value = $value[$segment];
        }

        return $value;
    }
}
