<?php

namespace WaSidecar\Laravel\Exceptions;

/** 413 payload_too_large: the body (or a media file it names) is over the limit. */
class PayloadTooLargeException extends SidecarException
{
}
