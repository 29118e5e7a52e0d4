"""Install hints say what works for the way llmrelay was installed (pip's PEP 610 record)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from llmrelay import _install


class Installed:
    """A distribution whose ``direct_url.json`` is ``record`` (``None``: pip wrote none)."""

    def __init__(self, record: object | None) -> None:
        self.record = record

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.record is None else json.dumps(self.record)


def hint_when(monkeypatch: pytest.MonkeyPatch, found: Installed | None, extra: str = "gateway") -> str:
    def distribution(name: str) -> Installed:
        assert name == "llmrelay"
        if found is None:
            raise metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(_install.metadata, "distribution", distribution)
    _install._source.cache_clear()
    try:
        return _install.install_hint(extra)
    finally:
        _install._source.cache_clear()


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (Installed(None), "pip install 'llmrelay[gateway]'"),
        (
            Installed({"url": "file:///home/ann/llmrelay", "dir_info": {"editable": True}}),
            "pip install -e '/home/ann/llmrelay[gateway]'",
        ),
        (
            Installed({"url": "file:///srv/my%20code/llmrelay", "dir_info": {}}),
            "pip install '/srv/my code/llmrelay[gateway]'",
        ),
        (
            Installed({"url": "https://example.org/llmrelay-0.1.0.tar.gz", "archive_info": {}}),
            "pip install 'llmrelay[gateway] @ https://example.org/llmrelay-0.1.0.tar.gz'",
        ),
        (Installed("not an object"), "pip install 'llmrelay[gateway]'"),
        (None, "pip install -e '.[gateway]'"),
    ],
)
def test_the_hint_follows_the_installation(
    monkeypatch: pytest.MonkeyPatch, found: Installed | None, expected: str
) -> None:
    assert hint_when(monkeypatch, found) == expected


def test_the_local_extra_is_built_portably(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hint_when(monkeypatch, Installed(None), "local") == (
        "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'llmrelay[local]'"
    )


def test_this_checkout_names_its_own_folder() -> None:
    """The test suite runs from a checkout installed by path: the hint names that path."""
    root = Path(__file__).resolve().parents[1]
    hint = _install.install_hint("gateway")
    assert f"{root}[gateway]" in hint, hint
