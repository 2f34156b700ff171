"""Real components the integration tests start and stop: one module per component."""
