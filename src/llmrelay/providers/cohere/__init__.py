"""The Cohere API v2 wire format (``/v2/chat``, ``/v2/embed``), provider kind ``cohere``."""
