"""Find the timeloop-mapper, timeloop-model and accelergy executables.

Lookup order per tool: an explicit path, then its environment variable, then PATH. We never build
or download the tools; when one is missing the error says which and how to get it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendError

ENV_VARS = {"timeloop-mapper": "QUANTMAP_TIMELOOP_MAPPER",
            "timeloop-model": "QUANTMAP_TIMELOOP_MODEL",
            "accelergy": "QUANTMAP_ACCELERGY"}

HOW_TO_GET = ("install Timeloop and Accelergy: build upstream Timeloop with QuantMap's patch series "
              "(patches/apply.sh, patches/build.sh; or docker build --build-arg "
              "TIMELOOP_REF=v3.0.3), or use the official Timeloop/Accelergy Docker images (stock "
              "Timeloop, handled by QuantMap's spec rewrite); then put the binaries on PATH or "
              "set {env}")


@dataclass(frozen=True)
class Binaries:
    """Resolved executables; ``accelergy`` may be None when energy tables are always supplied."""

    mapper: Path | None
    model: Path | None
    accelergy: Path | None

    def require(self, tool: str) -> Path:
        """The path of ``tool``, or a BackendError naming what is missing and how to get it."""
        path = {"timeloop-mapper": self.mapper, "timeloop-model": self.model,
                "accelergy": self.accelergy}[tool]
        if path is None:
            raise BackendError(f"{tool} not found (looked at ${ENV_VARS[tool]} and PATH)",
                               field=tool, fix=HOW_TO_GET.format(env=ENV_VARS[tool]))
        return path


def _resolve(tool: str, explicit: str | Path | None) -> Path | None:
    candidate = explicit if explicit is not None else os.environ.get(ENV_VARS[tool])
    if candidate:
        path = Path(candidate).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
        found = shutil.which(str(candidate))
        if found:
            return Path(found).resolve()
        source = "argument" if explicit is not None else f"${ENV_VARS[tool]}"
        raise BackendError(f"{tool} given by {source} is not an executable file: {candidate}",
                           field=tool, fix=f"point {source} at the {tool} executable, or unset "
                                           f"it to search PATH")
    found = shutil.which(tool)
    return Path(found).resolve() if found else None


def find_binaries(mapper: str | Path | None = None, model: str | Path | None = None,
                  accelergy: str | Path | None = None) -> Binaries:
    """Resolve the three tools (explicit path > environment variable > PATH); None if absent."""
    return Binaries(_resolve("timeloop-mapper", mapper), _resolve("timeloop-model", model),
                    _resolve("accelergy", accelergy))
