"""Tests of the sandbox: the web.whatsapp.com stand-in and its control API."""
