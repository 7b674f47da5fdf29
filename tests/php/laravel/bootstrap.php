<?php
// Just enough Laravel to run the kit as an application would: Debian's php-laravel-framework
// (Illuminate 8.x) and Guzzle through their own autoloaders, the kit through a PSR-4
// autoloader of its own, and a Foundation Application with the kit's service provider.

declare(strict_types=1);

use Illuminate\Config\Repository as Config;
use Illuminate\Foundation\Application;
use Illuminate\Support\Facades\Facade;
use WaSidecar\Laravel\WaSidecarServiceProvider;

const WA_KIT_ROOT = __DIR__ . '/../../../clients/laravel';

// Illuminate 8 on PHP 8.2 raises deprecations of its own: not ours to fix. Anything raised
// from the kit's files, deprecations included, is an error.
error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED);
$kitSource = realpath(WA_KIT_ROOT);
set_error_handler(static function (int $severity, string $message, string $file, int $line) use ($kitSource): bool {
    if (str_starts_with((string) realpath($file), $kitSource . DIRECTORY_SEPARATOR)) {
        throw new ErrorException($message, 0, $severity, $file, $line);
    }

    return (error_reporting() & $severity) === 0;
});

require_once 'Illuminate/autoload.php';
// Illuminate's autoloader "suggests" Guzzle under a path Debian does not use.
require_once 'GuzzleHttp/autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'WaSidecar\\Laravel\\';
    if (!str_starts_with($class, $prefix)) {
        return;
    }
    $file = WA_KIT_ROOT . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

/**
 * A booted application with the kit registered as package discovery would: the config comes
 * from the kit's config file, which reads SIDECAR_* from the environment.
 */
function wa_kit_app(string $basePath): Application
{
    $app = new Application($basePath);
    $app->instance('config', new Config(['app' => ['name' => 'kit-test', 'env' => 'testing']]));
    Facade::clearResolvedInstances();
    Facade::setFacadeApplication($app);
    $app->register(WaSidecarServiceProvider::class);
    $app->boot();

    return $app;
}
