<?php

namespace WaSidecar\Laravel;

use ArrayAccess;
use JsonSerializable;
use LogicException;

/**
 * The message record the sidecar answered to a send (202), and whether it was an
 * idempotent replay: the same key was used before, so this is the first record and
 * nothing was sent again. Reads like the record: $sent['id'], $sent['status'].
 *
 * @implements ArrayAccess<string, mixed>
 */
final class SentMessage implements ArrayAccess, JsonSerializable
{
    /**
     * @param array<string, mixed> $record
     */
    public function __construct(
        public readonly array $record,
        public readonly bool $replayed = false,
    ) {
    }

    /** The sidecar's message id (use it with SidecarClient::getMessage). */
    public function id(): string
    {
        return (string) ($this->record['id'] ?? '');
    }

    /** scheduled, queued, sending, sent, delivered, read, played, failed or cancelled. */
    public function status(): string
    {
        return (string) ($this->record['status'] ?? '');
    }

    /** True when the Idempotency-Key had been used already: nothing new was sent. */
    public function wasReplayed(): bool
    {
        return $this->replayed;
    }

    public function offsetExists(mixed $offset): bool
    {
        return isset($this->record[$offset]);
    }

    public function offsetGet(mixed $offset): mixed
    {
        return $this->record[$offset] ?? null;
    }

    public function offsetSet(mixed $offset, mixed $value): void
    {
        throw new LogicException('a sent message record is read-only');
    }

    public function offsetUnset(mixed $offset): void
    {
        throw new LogicException('a sent message record is read-only');
    }

    /** @return array<string, mixed> */
    public function toArray(): array
    {
        return $this->record;
    }

    /** @return array<string, mixed> */
    public function jsonSerialize(): array
    {
        return $this->record;
    }
}
