"""Compare two ``evaluate --json`` results (e.g. the built-in engine and the real Timeloop).

Usage: python3 scripts/compare_stats.py A.json B.json

Counts, cycles and validity must be identical; energies may differ by Timeloop's print
precision (stats.txt gives pJ with two decimals), so floats agree within 1e-6 relative or
0.01 absolute. Prints one line per difference and exits 1 if there is any, else prints one
summary line. Standard library only: it runs on the host of a container check.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Iterator


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Every leaf where ``a`` and ``b`` disagree, as 'path: a != b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield f"{path}{key}: only in {'the first' if key in a else 'the second'}"
            else:
                yield from differences(a[key], b[key], f"{path}{key}.")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f"{path}{i}.")
    elif isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and math.isclose(a, b, rel_tol=1e-6, abs_tol=0.01)):
            yield f"{path.rstrip('.')}: {a!r} != {b!r}"
    elif a != b:
        yield f"{path.rstrip('.')}: {a!r} != {b!r}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: compare_stats.py A.json B.json", file=sys.stderr)
        return 2
    first, second = (json.load(open(p)) for p in argv)
    found = list(differences(first, second))
    for line in found:
        print(line)
    if found:
        print(f"{argv[0]} and {argv[1]} differ in {len(found)} values")
        return 1
    print(f"equal: {argv[0]} and {argv[1]} (energy {first.get('energy_pj')} pJ,"
          f" cycles {first.get('cycles')}; counts exact, energies to 0.01 pJ)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
