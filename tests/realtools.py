"""Which real Timeloop builds and Accelergy a test session can use (tests skip without them).

The default build is what ``find_binaries`` resolves (``$QUANTMAP_TIMELOOP_MODEL`` /
``$QUANTMAP_TIMELOOP_MAPPER`` / ``$QUANTMAP_ACCELERGY``, else PATH). ``$QUANTMAP_TIMELOOP_BUILDS``
adds more: install folders (each with ``bin/timeloop-model`` and ``bin/timeloop-mapper``)
separated like PATH, so one session can check the fork and stock builds side by side. Each build
is classified by the probe (native = honours ``bitwidths:``, stock = ignores them; accounting
``fork`` = counts as the fork and 4a74d71, ``v3`` = as stock v3.0.3).
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

from wrapper.errors import BackendError
from wrapper.timeloop.costmodel import TimeloopCostModel
from wrapper.timeloop.discovery import Binaries, find_binaries
from wrapper.timeloop.probe import probe_build
from wrapper.timeloop.runner import WorkDirs

BUILDS_ENV = "QUANTMAP_TIMELOOP_BUILDS"
NO_TOOLS = ("no real Timeloop build found (put timeloop-model/-mapper on PATH, set "
            "QUANTMAP_TIMELOOP_MODEL/_MAPPER, or list install folders in QUANTMAP_TIMELOOP_BUILDS)")


@lru_cache(maxsize=None)
def builds() -> tuple[tuple[str, Binaries, str, str], ...]:
    """(label, binaries, mode, accounting) of every usable build, default first, without
    duplicates."""
    default = find_binaries()
    found: list[Binaries] = [default] if default.model and default.mapper else []
    for folder in filter(None, os.environ.get(BUILDS_ENV, "").split(os.pathsep)):
        bin_dir = Path(folder).expanduser() / "bin"
        candidate = Binaries(bin_dir / "timeloop-mapper", bin_dir / "timeloop-model",
                             default.accelergy)
        if candidate.model.is_file() and candidate.mapper.is_file():
            found.append(Binaries(candidate.mapper.resolve(), candidate.model.resolve(),
                                  default.accelergy))
    work = WorkDirs(Path(tempfile.gettempdir()) / "quantmap-probe")
    out: list[tuple[str, Binaries, str, str]] = []
    for binaries in found:
        if any(binaries.model == b.model for _, b, _, _ in out):
            continue
        try:
            verdict = probe_build(binaries.model, work)
        except BackendError:
            continue
        out.append((binaries.model.parent.parent.name, binaries, verdict["mode"],
                    verdict["accounting"]))
    return tuple(out)


def builds_of(mode: str | None = None, accounting: str | None = None
              ) -> list[tuple[str, Binaries]]:
    """The usable builds of one mode and/or accounting, as (label, binaries)."""
    return [(label, b) for label, b, m, a in builds()
            if mode in (None, m) and accounting in (None, a)]


def accounting_of(binaries: Binaries) -> str:
    """The probed accounting (``fork`` or ``v3``) of one of the usable builds."""
    return next(a for _, b, _, a in builds() if b.model == binaries.model)


def accelergy() -> Path | None:
    """The Accelergy executable, if any."""
    return find_binaries().accelergy


def cost_model(binaries: Binaries, tmp: Path, **options: object) -> TimeloopCostModel:
    """A TimeloopCostModel on ``binaries`` with its work and cache folders under ``tmp``,
    counting as the build does unless ``timeloop_version`` is given."""
    options.setdefault("timeloop_version", accounting_of(binaries))
    return TimeloopCostModel(binaries, work_root=tmp / "work", cache_dir=tmp / "cache",
                             timeout_s=300, **options)
