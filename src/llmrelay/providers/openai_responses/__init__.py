"""The OpenAI Responses API wire format (``POST /responses``), provider kind
``openai-responses``: the same account as kind ``openai``."""
