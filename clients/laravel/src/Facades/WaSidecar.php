<?php

namespace WaSidecar\Laravel\Facades;

use Illuminate\Support\Facades\Facade;
use WaSidecar\Laravel\SidecarClient;

/**
 * WaSidecar::sendText('sales-1', '+5511999990001', 'hi', 'order-77-shipped'), and every
 * other SidecarClient method.
 *
 * @see \WaSidecar\Laravel\SidecarClient
 */
class WaSidecar extends Facade
{
    protected static function getFacadeAccessor(): string
    {
        return SidecarClient::class;
    }
}
