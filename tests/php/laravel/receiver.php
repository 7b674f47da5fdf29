<?php
// A Laravel-routed webhook endpoint, for `php -S 127.0.0.1:PORT receiver.php`: the request
// built from PHP's globals, POST /webhooks/whatsapp behind the kit's `wa-sidecar.webhook`
// middleware, and a controller that switches on the event and appends each event it handled
// to $RECEIVER_DIR/handled.jsonl. Repeats are remembered in a file cache under $RECEIVER_DIR,
// so they are seen across requests (and across php -S workers).
// Environment: SIDECAR_WEBHOOK_SECRET (read by the kit's config file), RECEIVER_DIR.
// A test hook: an event whose data has "fail_once": true fails (500) the first time.

declare(strict_types=1);

require __DIR__ . '/bootstrap.php';

use Illuminate\Cache\FileStore;
use Illuminate\Cache\Repository as Cache;
use Illuminate\Filesystem\Filesystem;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Symfony\Component\HttpKernel\Exception\HttpExceptionInterface;
use WaSidecar\Laravel\Events;
use WaSidecar\Laravel\WebhookEvent;

$dir = (string) getenv('RECEIVER_DIR');
$app = wa_kit_app($dir);
$app->instance('cache.store', new Cache(new FileStore(new Filesystem(), $dir . '/cache')));

$app['router']->post('/webhooks/whatsapp', static function (Request $request) use ($dir) {
    $event = WebhookEvent::fromRequest($request);
    $handledAs = match ($event->event) {
        Events::SESSION_STATUS_CHANGED => 'status:' . $event->get('status'),
        Events::QR_CODE_GENERATED => 'qr',
        Events::PAIRING_CODE_GENERATED => 'pairing_code',
        Events::MESSAGE_RECEIVED => 'inbound:' . $event->get('message.text'),
        Events::MESSAGE_STATUS_UPDATED => 'ack:' . $event->get('status'),
        Events::PROVIDER_FAILOVER => 'failover',
        default => 'unknown',
    };
    $marker = $dir . '/failed-' . sha1($event->id);
    if ($event->get('fail_once') === true && !is_file($marker)) {
        touch($marker);

        return new JsonResponse(['ok' => false], 500);
    }
    $line = [
        'id' => $event->id,
        'event' => $event->event,
        'session_id' => $event->sessionId,
        'handled_as' => $handledAs,
        'metadata' => $event->metadata,
        'body' => $request->getContent(),
        'headers' => [
            'X-Timestamp' => $request->header('X-Timestamp'),
            'X-HMAC-Signature' => $request->header('X-HMAC-Signature'),
            'Signature' => $request->header('Signature'),
            'X-Webhook-Id' => $request->header('X-Webhook-Id'),
            'X-Webhook-Event' => $request->header('X-Webhook-Event'),
        ],
    ];
    file_put_contents($dir . '/handled.jsonl', json_encode($line) . "\n", FILE_APPEND | LOCK_EX);

    return new JsonResponse(['ok' => true, 'handled' => $event->id]);
})->middleware('wa-sidecar.webhook');

$request = Request::capture();
$app->instance('request', $request);
try {
    $response = $app['router']->dispatch($request);
} catch (HttpExceptionInterface $e) {
    $response = new JsonResponse(['error' => ['code' => 'not_found', 'message' => 'no such route']], $e->getStatusCode());
}
$response->send();
