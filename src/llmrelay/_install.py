"""What to type to add an optional extra, for the way llmrelay was installed.

Installed from PyPI, an extra is ``pip install 'llmrelay[gateway]'``; from a checkout
(editable or not), the checkout's path: ``pip install -e '/src/llmrelay[gateway]'``; from
a URL, ``'llmrelay[gateway] @ URL'``; run from a source tree pip never installed,
``pip install -e '.[gateway]'`` in the project's folder. pip records where a package
came from in ``direct_url.json`` (PEP 610).
"""

from __future__ import annotations

import json
import shlex
from functools import cache
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlsplit

_PREFIX = {"local": 'CMAKE_ARGS="-DGGML_NATIVE=OFF" '}  # llama-cpp-python compiles, portably


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` (``gateway``, ``local``, ``redis``, ...)."""
    editable, source = _source()
    # a VCS or archive URL: the same URL again
    target = f"llmrelay[{extra}] @ {source}" if "://" in source else f"{source}[{extra}]"
    flag = "-e " if editable else ""
    return f"{_PREFIX.get(extra, '')}pip install {flag}{shlex.quote(target)}"


@cache
def _source() -> tuple[bool, str]:
    """(editable, what to install): ``llmrelay``, a checkout's path, or ``.``."""
    try:
        dist = metadata.distribution("llmrelay")
    except metadata.PackageNotFoundError:
        return True, "."  # run from a source tree: from its folder
    text = dist.read_text("direct_url.json")
    try:
        origin = json.loads(text) if text else {}
    except ValueError:
        origin = {}
    if not isinstance(origin, dict) or not origin.get("url"):
        return False, "llmrelay"  # from an index
    url = str(origin["url"])
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs"):  # git+URL@commit, as pip wants it again
        commit = vcs.get("commit_id")
        return False, f"{vcs['vcs']}+{url}" + (f"@{commit}" if commit else "")
    if not url.startswith("file://"):
        return False, url  # an archive on the web
    path = Path(unquote(urlsplit(url).path))
    dir_info = origin.get("dir_info")
    if not isinstance(dir_info, dict) or not path.is_dir():
        return False, "llmrelay"  # a wheel or archive file, likely gone: the index has the rest
    return bool(dir_info.get("editable")), str(path)


__all__ = ["install_hint"]
