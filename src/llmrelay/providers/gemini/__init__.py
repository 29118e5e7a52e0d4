"""The Google Gemini API wire format (``generateContent``, v1beta), provider kind ``gemini``."""
