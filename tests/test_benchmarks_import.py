"""Benchmarks run by hand, never in CI; this only proves they still import against the code."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO_ROOT

BENCHMARKS = sorted((REPO_ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports(path, shared_dir):  # benchmarks read golden cases
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # guarded by __main__: nothing is timed here
