"""Command groups of the CLI, one module per area; each exposes `register(app)`."""
