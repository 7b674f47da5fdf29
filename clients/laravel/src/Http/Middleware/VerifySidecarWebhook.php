<?php

namespace WaSidecar\Laravel\Http\Middleware;

use Closure;
use Illuminate\Contracts\Cache\Repository as Cache;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use RuntimeException;
use Symfony\Component\HttpFoundation\Response;
use Throwable;

/**
 * Lets through only webhooks the sidecar signed (docs/webhooks.md), each event once.
 *
 * - X-Timestamp within the tolerance, and X-HMAC-Signature ==
 *   hash_hmac('sha256', $timestamp.$rawBody, $secret), compared with hash_equals;
 * - the spatie-style Signature header (hash_hmac over the raw body), when present, must
 *   match too;
 * - the event id (the signed body's `id`, which X-Webhook-Id repeats) is remembered in the
 *   cache: a redelivery is answered 200 and not passed on. If the handler fails (an
 *   exception or a non-2xx answer), the id is forgotten so the sidecar's retry is handled.
 *
 * Anything unsigned, tampered or stale gets 401, which the sidecar does not retry.
 */
class VerifySidecarWebhook
{
    public const CACHE_PREFIX = 'wa-sidecar:webhook:';

    public function __construct(
        private Cache $cache,
        private string $secret,
        private int $tolerance = 300,
        private int $dedupeTtl = 86400,
    ) {
    }

    public function handle(Request $request, Closure $next): Response
    {
        if ($this->secret === '') {
            // A 5xx, not a 401: the sidecar keeps retrying, so no event is lost while the
            // secret is missing.
            throw new RuntimeException('wa-sidecar: SIDECAR_WEBHOOK_SECRET is not set');
        }
        $body = (string) $request->getContent();
        $timestamp = (string) $request->header('X-Timestamp', '');
        if (!ctype_digit($timestamp) || abs(time() - (int) $timestamp) > $this->tolerance) {
            return $this->reject('stale_timestamp', 'X-Timestamp is missing or outside the allowed window');
        }
        $expected = hash_hmac('sha256', $timestamp . $body, $this->secret);
        if (!hash_equals($expected, (string) $request->header('X-HMAC-Signature', ''))) {
            return $this->reject('invalid_signature', 'X-HMAC-Signature does not match');
        }
        $spatie = $request->header('Signature');
        if ($spatie !== null && !hash_equals(hash_hmac('sha256', $body, $this->secret), (string) $spatie)) {
            return $this->reject('invalid_signature', 'Signature does not match');
        }

        // Dedupe on the signed body's id: the header is not covered by the signature.
        $payload = json_decode($body, true);
        $id = is_array($payload) && is_string($payload['id'] ?? null) ? $payload['id'] : null;
        $headerId = $request->header('X-Webhook-Id');
        if ($id !== null && $headerId !== null && $headerId !== $id) {
            return $this->reject('invalid_signature', 'X-Webhook-Id does not match the signed body');
        }
        $id ??= is_string($headerId) && $headerId !== '' ? $headerId : null;
        if ($id === null) {
            return $next($request);
        }

        $key = self::CACHE_PREFIX . hash('sha256', $id);
        if (!$this->cache->add($key, time(), $this->dedupeTtl)) {
            return new JsonResponse(['ok' => true, 'duplicate' => true, 'id' => $id], 200);
        }
        try {
            $response = $next($request);
        } catch (Throwable $e) {
            $this->cache->forget($key);

            throw $e;
        }
        if (!$response instanceof Response || !$response->isSuccessful()) {
            $this->cache->forget($key);
        }

        return $response;
    }

    private function reject(string $code, string $message): JsonResponse
    {
        return new JsonResponse(['error' => ['code' => $code, 'message' => $message, 'details' => (object) []]], 401);
    }
}
