"""OpenAI-compatible services: the openai wire format plus a row of quirks each.

A service that speaks OpenAI's chat completions API is not a new provider
module, just a ``Quirks`` row: where it lives, which environment variables its
users already set, and the few places where it departs from OpenAI.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quirks:
    base_url: str
    api_key_env: str | None = None
    base_url_env: str | None = None
    price_provider: str = "openai"
    requires_key: bool = True
    max_tokens_field: str = "max_tokens"
    seed_field: str = "seed"
    stream_usage_option: bool = True
    """Send ``stream_options.include_usage`` (some servers reject it)."""
    required_tool_choice: str = "required"
    """What ``tool_choice="required"`` is called (Mistral says ``any``)."""
    embed_base64: bool = False
    """Ask embeddings as base64 float32 (smaller, faster to decode)."""
    send_user: bool = True
    max_embed_inputs: int = 32
    """Texts per embeddings request. Undocumented for most compatible servers (Ollama,
    vLLM, llama.cpp, LM Studio, Together...): 32, a conservative guess."""
    max_embed_tokens: int | None = None
    """Tokens summed over one embeddings request's texts, when the service caps the sum."""
    continues: bool = False
    """Continues a last assistant message with ``CONTINUE_FINAL_MESSAGE`` (``prefill.py``)."""


CONTINUE_FINAL_MESSAGE = {"continue_final_message": True, "add_generation_prompt": False}
"""vLLM's fields (SGLang and llama.cpp's server take them too) for "go on with the last
assistant message" rather than "answer after it"."""


COMPAT_KINDS: dict[str, Quirks] = {
    "openai": Quirks(
        base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
        max_tokens_field="max_completion_tokens",
        embed_base64=True,
        max_embed_inputs=2048,  # API reference: an input array holds at most 2048 items (Azure: the same)
        max_embed_tokens=300_000,  # ... and at most 300,000 tokens summed across them
    ),
    "mistral": Quirks(
        base_url="https://api.mistral.ai/v1",
        api_key_env="MISTRAL_API_KEY",
        price_provider="mistral",
        seed_field="random_seed",
        stream_usage_option=False,  # usage always comes in the last chunk
        required_tool_choice="any",
        send_user=False,
        # Undocumented. Past 256 texts the API answers "Too many inputs in request, split into
        # more batches" (reported, not documented): half of that. LangChain keeps a request's
        # texts under 16,000 tokens in all: the same here.
        max_embed_inputs=128,
        max_embed_tokens=16_000,
    ),
    "groq": Quirks(
        base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        price_provider="groq",
    ),
    "deepseek": Quirks(
        base_url="https://api.deepseek.com/v1",
        api_key_env="DEEPSEEK_API_KEY",
        price_provider="deepseek",
    ),
    "together": Quirks(
        base_url="https://api.together.xyz/v1",
        api_key_env="TOGETHER_API_KEY",
        price_provider="together",
    ),
    "openrouter": Quirks(
        base_url="https://openrouter.ai/api/v1",
        api_key_env="OPENROUTER_API_KEY",
        price_provider="openrouter",
    ),
    "vllm": Quirks(
        base_url="http://localhost:8000/v1",
        api_key_env="VLLM_API_KEY",
        base_url_env="VLLM_BASE_URL",
        price_provider="",
        requires_key=False,
        continues=True,
    ),
    "sglang": Quirks(
        base_url="http://localhost:30000/v1",
        api_key_env="SGLANG_API_KEY",
        base_url_env="SGLANG_BASE_URL",
        price_provider="",
        requires_key=False,
        continues=True,
    ),
    "llamacpp": Quirks(
        base_url="http://localhost:8080/v1",
        api_key_env="LLAMACPP_API_KEY",
        base_url_env="LLAMACPP_BASE_URL",
        price_provider="",
        requires_key=False,
        continues=True,
    ),
    "lmstudio": Quirks(
        base_url="http://localhost:1234/v1",
        api_key_env="LMSTUDIO_API_KEY",
        base_url_env="LMSTUDIO_BASE_URL",
        price_provider="",
        requires_key=False,
    ),
    "ollama": Quirks(
        base_url="http://localhost:11434/v1",
        api_key_env="OLLAMA_API_KEY",
        base_url_env="OLLAMA_BASE_URL",
        price_provider="",
        requires_key=False,
    ),
}
"""Services with no price in the catalogue (self-hosted) have ``price_provider=""``:
their cost is ``None`` (unknown), never a made-up 0."""


def quirks_for(kind: str) -> Quirks:
    return COMPAT_KINDS.get(kind, COMPAT_KINDS["openai"])
