<?php

namespace WaSidecar\Laravel\Exceptions;

use RuntimeException;
use Throwable;

/**
 * An error answered by the sidecar: `{"error": {"code", "message", "details"}}` plus the
 * HTTP status. getCode() is the HTTP status (0 when nothing was answered); errorCode() is
 * the sidecar's snake_case code, e.g. "session_not_found".
 */
class SidecarException extends RuntimeException
{
    /** @var array<string, mixed> */
    protected array $details;

    /**
     * @param array<string, mixed> $details
     */
    public function __construct(
        string $message,
        protected string $errorCode = 'sidecar_error',
        int $status = 0,
        array $details = [],
        ?Throwable $previous = null,
    ) {
        parent::__construct($message, $status, $previous);
        $this->details = $details;
    }

    /** The sidecar's snake_case error code, e.g. "validation_failed". */
    public function errorCode(): string
    {
        return $this->errorCode;
    }

    /** The HTTP status of the answer; 0 when there was none (a network error). */
    public function status(): int
    {
        return $this->getCode();
    }

    /** @return array<string, mixed> */
    public function details(): array
    {
        return $this->details;
    }

    public function detail(string $key, mixed $default = null): mixed
    {
        return $this->details[$key] ?? $default;
    }
}
