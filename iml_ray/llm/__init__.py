"""Talking to an OpenAI-compatible LLM endpoint: settings, client, ledger, cache, answer parsing."""
