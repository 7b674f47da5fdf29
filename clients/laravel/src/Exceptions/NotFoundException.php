<?php

namespace WaSidecar\Laravel\Exceptions;

/** 404: session_not_found, not_found, delivery_not_found, ... */
class NotFoundException extends SidecarException
{
}
