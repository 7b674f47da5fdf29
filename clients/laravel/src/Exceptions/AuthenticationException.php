<?php

namespace WaSidecar\Laravel\Exceptions;

/** 401: invalid_signature, stale_timestamp or replayed_request (check the secret and the clocks). */
class AuthenticationException extends SidecarException
{
}
