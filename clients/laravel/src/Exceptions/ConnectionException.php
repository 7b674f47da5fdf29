<?php

namespace WaSidecar\Laravel\Exceptions;

/**
 * The sidecar could not be reached, or did not answer in time: status() is 0. A write may
 * or may not have been applied, so resend messages with the same idempotency key.
 */
class ConnectionException extends SidecarException
{
}
