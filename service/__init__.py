"""wa-sidecar: WhatsApp Web sessions in headless Chromium for Laravel."""

__version__ = "0.1.0"
