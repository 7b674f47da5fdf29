<?php

namespace WaSidecar\Laravel\Exceptions;

/**
 * Cluster mode: the session's worker could not serve the call just now. 503
 * `session_unassigned` (no worker holds the session: it is being placed or moved) or
 * `worker_unavailable` (its worker did not answer), and 502 `worker_error` (its worker
 * answered an error of its own; the sidecar's log says why). Retry after a few seconds.
 */
class UnavailableException extends SidecarException
{
}
