<?php

namespace WaSidecar\Laravel\Exceptions;

/** 503 at_capacity: the sidecar runs MAX_SESSIONS sessions already. */
class CapacityException extends SidecarException
{
}
