<?php

namespace WaSidecar\Laravel;

/**
 * Signs API requests as the sidecar verifies them (docs/api.md, Signing): lowercase hex
 * HMAC-SHA256 over "{timestamp}\n{METHOD}\n{path?query}\n{raw body}".
 */
final class RequestSigner
{
    private string $secret;

    public function __construct(string $secret)
    {
        // The sidecar accepts a comma list (rotation); a copy of it here signs with the first.
        $this->secret = trim(explode(',', $secret)[0]);
        if ($this->secret === '') {
            throw new \InvalidArgumentException(
                'wa-sidecar: the API secret is empty; set SIDECAR_API_SECRET to the sidecar\'s value'
            );
        }
    }

    /** The X-HMAC-Signature of one request; $path includes "?query" exactly as sent. */
    public function signature(string $timestamp, string $method, string $path, string $body): string
    {
        $message = $timestamp . "\n" . strtoupper($method) . "\n" . $path . "\n" . $body;

        return hash_hmac('sha256', $message, $this->secret);
    }

    /**
     * The two headers of one request, signed at $timestamp (Unix seconds).
     *
     * @return array{X-Timestamp: string, X-HMAC-Signature: string}
     */
    public function headers(int $timestamp, string $method, string $path, string $body): array
    {
        $ts = (string) $timestamp;

        return [
            'X-Timestamp' => $ts,
            'X-HMAC-Signature' => $this->signature($ts, $method, $path, $body),
        ];
    }
}
