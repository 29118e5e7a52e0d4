"""The version, in one place (the package, the CLI and the gateway read it here)."""

__version__ = "0.1.0"
