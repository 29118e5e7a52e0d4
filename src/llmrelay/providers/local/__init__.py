"""Models on this machine (provider kind ``local``): no wire format, no network."""
