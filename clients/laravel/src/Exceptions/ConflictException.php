<?php

namespace WaSidecar\Laravel\Exceptions;

/** 409: the request conflicts with the current state (docs/api.md lists every code). */
class ConflictException extends SidecarException
{
    /**
     * The session's status when the sidecar names it (session_not_connected, no_qr,
     * qr_not_ready, session_not_ready). For delivery_not_dead, detail('status') is the
     * delivery's status instead.
     */
    public function sessionStatus(): ?string
    {
        $status = $this->detail('status');

        return is_string($status) ? $status : null;
    }
}
