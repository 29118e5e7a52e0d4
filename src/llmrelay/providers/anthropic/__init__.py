"""The Anthropic Messages API wire format (provider kind ``anthropic``; the
gateway's ``/v1/messages`` speaks it through :mod:`.inbound`)."""
