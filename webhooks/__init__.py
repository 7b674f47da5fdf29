"""Outbound signed webhooks and the Reverb/Pusher broadcaster."""
