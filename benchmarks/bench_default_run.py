"""Wall and CPU time of the default main job, as a user runs it (run by hand, never in CI).

    python benchmarks/bench_default_run.py [-o DIR] [--set key=value ...]

Runs ``python -m wrapper.explore`` with the default experiment in a fresh results folder and
prints the wall time, the user+sys CPU time of the run and all its worker processes, and the
load average before and after. On a shared machine the wall time depends on the other load;
the CPU time does not, and CPU time / cores bounds the wall time on an idle machine of that many
cores from below (the default run keeps its 2 workers busy most of the time).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", help="results folder (default: a temporary one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the default experiment (repeatable)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="quantmap-bench-"))
    if out.exists():
        shutil.rmtree(out)
    command = [sys.executable, "-m", "wrapper.explore", "-o", str(out)]
    for item in args.set:
        command += ["--set", item]
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    print(f"default run ({' '.join(args.set) or 'no overrides'}), {os.cpu_count()} cores, "
          f"results in {out}")
    print(f"wall time     : {wall:7.1f} s ({wall / 60:.1f} min)")
    print(f"CPU user+sys  : {user + system:7.1f} s (user {user:.1f}, sys {system:.1f}); "
          f"/ 2 cores = {(user + system) / 2 / 60:.1f} min")
    print(f"load average  : {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
