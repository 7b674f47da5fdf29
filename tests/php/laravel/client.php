<?php
// Runs SidecarClient calls, as a Laravel app resolves it, and prints what happened as JSON.
// Usage: php client.php '{"ops": [{"call": "getSession", "args": {"sessionId": "s1"}}, ...]}'
// Environment: SIDECAR_URL, SIDECAR_API_SECRET (read by the kit's config file).
// An op is a SidecarClient method with named args ({"datetime": "..."} for a
// DateTimeImmutable), or "alignSecond" (wait until just after a second starts, so the next
// writes share one X-Timestamp). Output: {bootstrap, results, wire}, wire being every
// response Laravel's HTTP client saw (its ResponseReceived event).
// Only SidecarException is caught: any other exception out of the kit fails the script.

declare(strict_types=1);

require __DIR__ . '/bootstrap.php';

use Illuminate\Http\Client\Events\ResponseReceived;
use WaSidecar\Laravel\Exceptions\ConflictException;
use WaSidecar\Laravel\Exceptions\SidecarException;
use WaSidecar\Laravel\Exceptions\TimeoutException;
use WaSidecar\Laravel\Exceptions\ValidationException;
use WaSidecar\Laravel\Facades\WaSidecar;
use WaSidecar\Laravel\SentMessage;
use WaSidecar\Laravel\SidecarClient;

$plan = json_decode($argv[1] ?? '{}', true, 512, JSON_THROW_ON_ERROR);
$app = wa_kit_app(sys_get_temp_dir());

$wire = [];
$app['events']->listen(ResponseReceived::class, static function (ResponseReceived $event) use (&$wire): void {
    $wire[] = [
        'method' => $event->request->method(),
        'url' => $event->request->url(),
        'timestamp' => $event->request->header('X-Timestamp')[0] ?? null,
        'status' => $event->response->status(),
        'code' => $event->response->json('error.code'),
    ];
});

$client = $app->make(SidecarClient::class);
$bootstrap = [
    'singleton' => $client === $app->make(SidecarClient::class) && $client === WaSidecar::getFacadeRoot(),
    'middleware' => $app['router']->getMiddleware()['wa-sidecar.webhook'] ?? null,
    'url' => $app['config']->get('wa-sidecar.url'),
    'tolerance' => $app['config']->get('wa-sidecar.signature_tolerance'),
];

function wa_kit_value(mixed $value): mixed
{
    if ($value instanceof SentMessage) {
        return ['id' => $value->id(), 'replayed' => $value->wasReplayed(), 'record' => $value->record];
    }
    if (is_string($value) && !mb_check_encoding($value, 'UTF-8')) {
        return ['bytes' => strlen($value), 'base64' => base64_encode($value)];
    }

    return $value;
}

// {"datetime": "..."} in JSON stands for a DateTimeImmutable argument.
function wa_kit_arg(mixed $arg): mixed
{
    if (is_array($arg) && array_keys($arg) === ['datetime']) {
        return new DateTimeImmutable($arg['datetime']);
    }

    return $arg;
}

$results = [];
foreach ($plan['ops'] ?? [] as $op) {
    $call = $op['call'];
    if ($call === 'alignSecond') {
        time_sleep_until(floor(microtime(true)) + 1.01);
        $results[] = ['call' => $call, 'ok' => true, 'value' => null];
        continue;
    }
    try {
        $value = $client->{$call}(...array_map(wa_kit_arg(...), $op['args'] ?? []));
        $results[] = ['call' => $call, 'ok' => true, 'value' => wa_kit_value($value)];
    } catch (SidecarException $e) {
        $results[] = ['call' => $call, 'ok' => false, 'error' => [
            'class' => (new ReflectionClass($e))->getShortName(),
            'code' => $e->errorCode(),
            'status' => $e->status(),
            'message' => $e->getMessage(),
            'details' => $e->details(),
            'field' => $e instanceof ValidationException ? $e->field() : null,
            'session_status' => $e instanceof ConflictException || $e instanceof TimeoutException ? $e->sessionStatus() : null,
        ]];
    }
}

echo json_encode(['bootstrap' => $bootstrap, 'results' => $results, 'wire' => $wire], JSON_THROW_ON_ERROR);
