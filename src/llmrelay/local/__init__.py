"""Models that run on this machine with no network: SmolLM2 for chat (through
llama-cpp-python) and all-MiniLM-L6-v2 for embeddings (numpy). Model files
come from PyPI packages installed beside llmrelay; nothing is downloaded."""
