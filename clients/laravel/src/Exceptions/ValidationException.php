<?php

namespace WaSidecar\Laravel\Exceptions;

/** 422 validation_failed: details.field names the offending field ("to", "meta.access_token"). */
class ValidationException extends SidecarException
{
    public function field(): ?string
    {
        $field = $this->detail('field');

        return is_string($field) ? $field : null;
    }
}
