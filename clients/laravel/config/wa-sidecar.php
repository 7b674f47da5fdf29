<?php

// Settings of the wa-sidecar kit. Publish with:
//   php artisan vendor:publish --tag=wa-sidecar-config

return [
    // Where the sidecar listens (SIDECAR_HOST:SIDECAR_PORT on its side).
    'url' => env('SIDECAR_URL', 'http://127.0.0.1:3000'),

    // The sidecar's SIDECAR_API_SECRET: signs every request this app sends. If the sidecar
    // holds several (rotation), put the one to sign with here; a comma list signs with the first.
    'api_secret' => env('SIDECAR_API_SECRET'),

    // The sidecar's SIDECAR_WEBHOOK_SECRET: verifies every webhook it sends here.
    'webhook_secret' => env('SIDECAR_WEBHOOK_SECRET'),

    // Seconds to wait for one API answer, and for the connection itself.
    'timeout' => (float) env('SIDECAR_TIMEOUT', 30),
    'connect_timeout' => (float) env('SIDECAR_CONNECT_TIMEOUT', 5),

    // Allowed clock skew of a webhook's X-Timestamp, in seconds (the sidecar's
    // SIDECAR_SIGNATURE_TOLERANCE applies the same window to API requests).
    'signature_tolerance' => (int) env('SIDECAR_SIGNATURE_TOLERANCE', 300),

    // How long a handled webhook id is remembered, so a redelivery is handled once.
    // The sidecar retries an event for up to 24 h, so keep at least a day.
    'webhook_dedupe_ttl' => (int) env('SIDECAR_WEBHOOK_DEDUPE_TTL', 86400),

    // The cache store that remembers webhook ids (null: the default store). Use a store
    // shared by every web server: redis, memcached or database, not "array".
    'webhook_cache_store' => env('SIDECAR_WEBHOOK_CACHE_STORE'),
];
