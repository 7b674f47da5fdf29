<?php

namespace WaSidecar\Laravel;

use Illuminate\Contracts\Cache\Repository as CacheRepository;
use Illuminate\Contracts\Container\Container;
use Illuminate\Http\Client\Factory as HttpFactory;
use Illuminate\Support\ServiceProvider;
use WaSidecar\Laravel\Http\Middleware\VerifySidecarWebhook;

/**
 * Wires the kit into Laravel: the `wa-sidecar` config, SidecarClient as a singleton over
 * the Http facade's factory, and the `wa-sidecar.webhook` middleware alias.
 */
class WaSidecarServiceProvider extends ServiceProvider
{
    public const MIDDLEWARE = 'wa-sidecar.webhook';

    private const CONFIG = __DIR__ . '/../config/wa-sidecar.php';

    public function register(): void
    {
        $this->mergeConfigFrom(self::CONFIG, 'wa-sidecar');

        $this->app->singleton(SidecarClient::class, static function (Container $app): SidecarClient {
            return SidecarClient::fromConfig($app->make(HttpFactory::class), self::config($app));
        });
        $this->app->alias(SidecarClient::class, 'wa-sidecar');

        $this->app->bind(VerifySidecarWebhook::class, static function (Container $app): VerifySidecarWebhook {
            $config = self::config($app);
            $store = $config['webhook_cache_store'] ?? null;
            $cache = $store ? $app->make('cache')->store($store) : $app->make(CacheRepository::class);

            return new VerifySidecarWebhook(
                $cache,
                (string) ($config['webhook_secret'] ?? ''),
                (int) ($config['signature_tolerance'] ?? 300),
                (int) ($config['webhook_dedupe_ttl'] ?? 86400),
            );
        });
    }

    public function boot(): void
    {
        $target = method_exists($this->app, 'configPath')
            ? $this->app->configPath('wa-sidecar.php')
            : config_path('wa-sidecar.php');
        $this->publishes([self::CONFIG => $target], 'wa-sidecar-config');

        if ($this->app->bound('router')) {
            $this->app->make('router')->aliasMiddleware(self::MIDDLEWARE, VerifySidecarWebhook::class);
        }
    }

    /** @return array<string, mixed> */
    private static function config(Container $app): array
    {
        return (array) $app->make('config')->get('wa-sidecar', []);
    }
}
