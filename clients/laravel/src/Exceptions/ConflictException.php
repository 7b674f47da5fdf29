<?php

namespace WaSidecar\Laravel\Exceptions;

/** 409: session_exists, session_not_connected, no_qr, delivery_not_dead, ... */
class ConflictException extends SidecarException
{
    /** The session's status when the sidecar names it (session_not_connected, no_qr). */
    public function sessionStatus(): ?string
    {
        $status = $this->detail('status');

        return is_string($status) ? $status : null;
    }
}
