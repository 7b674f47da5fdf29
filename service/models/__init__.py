"""The wire contract as pydantic models: requests, responses and webhook events."""
