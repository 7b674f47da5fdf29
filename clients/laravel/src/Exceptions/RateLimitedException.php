<?php

namespace WaSidecar\Laravel\Exceptions;

use Throwable;

/** 429: a limit was hit; retryAfter() is the Retry-After header in seconds, when sent. */
class RateLimitedException extends SidecarException
{
    protected ?int $retryAfter = null;

    /**
     * @param array<string, mixed> $details
     */
    public function __construct(
        string $message,
        string $errorCode = 'rate_limited',
        int $status = 429,
        array $details = [],
        ?Throwable $previous = null,
        ?int $retryAfter = null,
    ) {
        parent::__construct($message, $errorCode, $status, $details, $previous);
        $this->retryAfter = $retryAfter;
    }

    public function retryAfter(): ?int
    {
        return $this->retryAfter;
    }
}
