"""The OpenAI chat completions wire format: OpenAI, Azure OpenAI and every
OpenAI-compatible service (a quirks row each in :mod:`.compat`)."""
