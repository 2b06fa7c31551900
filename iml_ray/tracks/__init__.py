"""Rules-policy code templates: one module per track, plus the shared prep and runner."""
