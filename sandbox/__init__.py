"""A local stand-in for web.whatsapp.com and a phone control API."""
