<?php
// The Laravel side of docs/api.md (Signing) in plain PHP: sign "{ts}\n{METHOD}\n{path}\n{raw body}"
// with hash_hmac and create a session on a live sidecar.
// Usage: php create_session.php BASE_URL SECRET WORKSPACE_ID SESSION_ID

[$script, $base, $secret, $workspace, $session] = $argv;

// json_encode escapes "/" and non-ASCII: the sidecar must verify these exact bytes.
$body = json_encode([
    'workspace_id' => $workspace,
    'session_id' => $session,
    'start' => false,
    'webhook_url' => 'https://crm.example.test/webhooks/whatsapp?tenant=café',
]);
$path = '/api/sessions';
$timestamp = (string) time();
$signature = hash_hmac('sha256', $timestamp . "\n" . 'POST' . "\n" . $path . "\n" . $body, $secret);

$context = stream_context_create(['http' => [
    'method' => 'POST',
    'header' => implode("\r\n", [
        'Content-Type: application/json',
        'Accept: application/json',
        'X-Timestamp: ' . $timestamp,
        'X-HMAC-Signature: ' . $signature,
    ]),
    'content' => $body,
    'ignore_errors' => true,
    'timeout' => 20,
]]);
$response = file_get_contents($base . $path, false, $context);
preg_match('{HTTP/\S+ (\d{3})}', $http_response_header[0], $match);
echo json_encode(['status' => (int) $match[1], 'body' => json_decode($response, true), 'sent' => $body]);
