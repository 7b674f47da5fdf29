<?php

namespace WaSidecar\Laravel\Exceptions;

/**
 * waitForStatus() or waitForQr() gave up: the session did not get there in time. No HTTP
 * status (status() is 0); errorCode() is "wait_timeout", sessionStatus() the status it was
 * last seen in.
 */
class TimeoutException extends SidecarException
{
    /** The session's status when the wait gave up. */
    public function sessionStatus(): ?string
    {
        $status = $this->detail('status');

        return is_string($status) ? $status : null;
    }
}
