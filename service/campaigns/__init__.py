"""Campaigns: one message to many recipients, fed into the durable queue at a paced rate."""
