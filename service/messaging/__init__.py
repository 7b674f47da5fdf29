"""Messaging: the send request, the durable queue and its senders, inbound messages and acks."""
