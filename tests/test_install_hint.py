"""Install hints say what works for the way llmrelay was installed (pip's PEP 610 record)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

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
    ("record", "expected"),
    [
        (None, "pip install 'llmrelay[gateway]'"),
        ({"url": "file://{dir}", "dir_info": {"editable": True}}, "pip install -e '{dir}[gateway]'"),
        ({"url": "file://{quoted}", "dir_info": {}}, "pip install '{dir}[gateway]'"),
        (  # a wheel file, deleted since: the index has llmrelay
            {"url": "file:///tmp/build/llmrelay-0.1.0-py3-none-any.whl", "archive_info": {}},
            "pip install 'llmrelay[gateway]'",
        ),
        (
            {"url": "https://example.org/llmrelay-0.1.0.tar.gz", "archive_info": {}},
            "pip install 'llmrelay[gateway] @ https://example.org/llmrelay-0.1.0.tar.gz'",
        ),
        (
            {"url": "https://github.com/acme/llmrelay.git", "vcs_info": {"vcs": "git", "commit_id": "0a1b2c"}},
            "pip install 'llmrelay[gateway] @ git+https://github.com/acme/llmrelay.git@0a1b2c'",
        ),
        ("not an object", "pip install 'llmrelay[gateway]'"),
    ],
)
def test_the_hint_follows_the_installation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, record: object, expected: str
) -> None:
    folder = tmp_path / "my code" / "llmrelay"
    folder.mkdir(parents=True)
    if isinstance(record, dict):
        record = {**record, "url": record["url"].format(dir=folder, quoted=quote(str(folder)))}
    assert hint_when(monkeypatch, Installed(record)) == expected.format(dir=folder)


def test_run_from_a_source_tree_pip_never_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hint_when(monkeypatch, None) == "pip install -e '.[gateway]'"


def test_the_local_extra_is_built_portably(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hint_when(monkeypatch, Installed(None), "local") == (
        "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'llmrelay[local]'"
    )


def test_this_checkout_names_its_own_folder() -> None:
    """Where the suite runs from a checkout pip installed by path, the hint names it."""
    root = Path(__file__).resolve().parents[1]
    text = metadata.distribution("llmrelay").read_text("direct_url.json") or "{}"
    if json.loads(text).get("url") != root.as_uri():
        pytest.skip("llmrelay is not installed from this checkout")
    assert f"{root}[gateway]" in _install.install_hint("gateway")
