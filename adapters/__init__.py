"""Provider adapters: one interface, one class per provider."""
