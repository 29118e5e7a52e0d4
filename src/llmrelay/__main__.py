"""``python -m llmrelay`` is the ``llmrelay`` command."""

from .cli import main

main()
