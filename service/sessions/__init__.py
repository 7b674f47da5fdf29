"""Sessions: the manager behind the API, the on-disk layout and (later) the browser runtime."""
