<?php
// A Laravel-style webhook endpoint under `php -S`: verifies what the sidecar signs exactly as
// the middleware of docs/webhooks.md does, and records each request as one JSON line.
// Environment: WEBHOOK_SECRET, RECEIVER_LOG (JSON lines), RECEIVER_STATUS_FILE (optional:
// the HTTP status to answer; default 200).

$secret = getenv('WEBHOOK_SECRET');
$body = file_get_contents('php://input');
$timestamp = $_SERVER['HTTP_X_TIMESTAMP'] ?? '';
$hmac = $_SERVER['HTTP_X_HMAC_SIGNATURE'] ?? '';
$spatie = $_SERVER['HTTP_SIGNATURE'] ?? '';

$fresh = ctype_digit($timestamp) && abs(time() - (int) $timestamp) <= 300;
$hmacOk = $fresh && hash_equals(hash_hmac('sha256', $timestamp . $body, $secret), $hmac);
$spatieOk = hash_equals(hash_hmac('sha256', $body, $secret), $spatie);

$payload = json_decode($body, true);
$record = [
    'webhook_id' => $_SERVER['HTTP_X_WEBHOOK_ID'] ?? null,
    'event_header' => $_SERVER['HTTP_X_WEBHOOK_EVENT'] ?? null,
    'user_agent' => $_SERVER['HTTP_USER_AGENT'] ?? null,
    'fresh' => $fresh,
    'hmac_ok' => $hmacOk,
    'signature_ok' => $spatieOk,
    'payload' => $payload,
];
file_put_contents(getenv('RECEIVER_LOG'), json_encode($record) . "\n", FILE_APPEND | LOCK_EX);

$statusFile = getenv('RECEIVER_STATUS_FILE');
$status = ($statusFile && is_file($statusFile)) ? (int) trim(file_get_contents($statusFile)) : 200;
if (!$hmacOk || !$spatieOk) {
    $status = 401;
}
http_response_code($status);
header('Content-Type: application/json');
echo json_encode(['ok' => $status < 300]);
