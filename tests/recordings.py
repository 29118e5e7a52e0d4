"""Loading the recorded provider traffic in ``tests/fixtures`` (``LLMRELAY_FIXTURES`` overrides it).

Formats: ``.sse`` raw SSE bytes; ``.cassette.yaml`` VCR cassettes (JSON bodies
re-serialised as ``parsed_body``, stream bodies verbatim under ``body.string``);
``.chunks.jsonl`` one SSE data payload per line (we re-frame them as SSE).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixtures_dir() -> Path:
    env = os.environ.get("LLMRELAY_FIXTURES")
    return Path(env) if env else FIXTURES


@dataclass
class Interaction:
    method: str
    uri: str
    request_json: Any
    status: int
    headers: dict[str, str]
    body: bytes
    response_json: Any

    @property
    def is_stream(self) -> bool:
        return self.response_json is None


def load_cassette(name: str) -> list[Interaction]:
    data = yaml.safe_load((fixtures_dir() / name).read_text())
    out = []
    for item in data["interactions"]:
        req, resp = item["request"], item["response"]
        headers = {k: v[0] if isinstance(v, list) else v for k, v in (resp.get("headers") or {}).items()}
        parsed = resp.get("parsed_body")
        if parsed is not None:
            body = json.dumps(parsed).encode()
        else:
            raw = resp["body"]["string"]
            body = raw if isinstance(raw, bytes) else raw.encode()
        out.append(
            Interaction(
                method=req["method"],
                uri=req["uri"],
                request_json=req.get("parsed_body"),
                status=resp["status"]["code"],
                headers=headers,
                body=body,
                response_json=parsed,
            )
        )
    return out


def load_sse(name: str) -> bytes:
    return (fixtures_dir() / name).read_bytes()


def load_chunks_as_sse(name: str, with_event_names: bool = False) -> bytes:
    """A ``.chunks.jsonl`` file framed as SSE (``event:`` lines from ``type`` if asked)."""
    out = []
    for line in (fixtures_dir() / name).read_text().splitlines():
        if not line.strip():
            continue
        if with_event_names:
            kind = json.loads(line).get("type", "message")
            out.append(f"event: {kind}\ndata: {line}\n\n")
        else:
            out.append(f"data: {line}\n\n")
    return "".join(out).encode()


def load_json(name: str) -> Any:
    return json.loads((fixtures_dir() / name).read_text())
