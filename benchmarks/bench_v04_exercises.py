"""The official exercises' v0.4 example designs against their stored Timeloop v4 outputs (run by
hand, never in CI).

    python benchmarks/bench_v04_exercises.py EXAMPLE_DESIGNS [--budget N] [--exact]
        [--timeloop-version fork|v3] [--exact]

EXAMPLE_DESIGNS is the exercises' ``workspace/example_designs/example_designs`` folder (with
``_components/``, ``_include/default_problem.yaml`` and each design's ``ref_outputs``). For every
design this prints:

- the stored mapping evaluated by the built-in engine with the stored ERT: cycles and energy
  against the stored ``timeloop-mapper.stats.txt``, and per storage level the energy on both
  sides with the Outputs fills each side counts (the fork counts a fill for the first write
  of every output tile, Timeloop v4 does not), and the leakage Timeloop v4 adds;
- QuantMap's own mapper on the same files (sampling, ``--budget`` evaluations; with
  ``--exact`` the default mapper, exact search first): its energy, cycles and EDP next to those
  of the mapping Timeloop's random search stored, its time and the peak memory so far.
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wrapper.backends import evaluate_files, map_files  # noqa: E402
from wrapper.spec.costmodel import TIMELOOP_VERSIONS, EngineSettings  # noqa: E402

DESIGNS = ("eyeriss_like", "simba_like", "simple_weight_stationary", "simple_output_stationary")
_SECTION = re.compile(r"^=== (\S+) ===$", re.M)


def reference_levels(stats_text: str) -> dict[str, dict[str, float]]:
    """Per level of the stored stats: dataspace energy (pJ), leakage (pJ), Outputs fills."""
    body = stats_text.split("Summary Stats")[0]
    marks = list(_SECTION.finditer(body))
    out: dict[str, dict[str, float]] = {}
    for mark, after in zip(marks, [*marks[1:], None]):
        text = body[mark.end():after.start() if after else len(body)]
        energies = re.findall(r"^ {8}Energy \(total\)\s+: ([\d.]+) pJ", text, re.M)
        leak = re.search(r"Leakage energy \(total\)\s+: ([\d.]+) pJ", text)
        outputs = text.split("    Outputs:")[1] if "    Outputs:" in text else ""
        fills = re.search(r"Scalar fills \(per-instance\)\s+: (\d+)", outputs)
        out.setdefault(mark[1], {"energy": sum(map(float, energies)),
                        "leak": float(leak[1]) if leak else 0.0,
                        "output_fills": float(fills[1]) if fills else 0.0})
    return out  # the first section of a name: a later summary part repeats the names


def design_files(root: Path, design: str) -> list[Path]:
    return [root / design / "arch.yaml", *sorted((root / "_components").glob("*.yaml")),
            root / "_include" / "default_problem.yaml"]


def compare(root: Path, design: str, budget: int, exact: bool, settings: EngineSettings) -> None:
    ref = root / design / "ref_outputs" / "default_problem"
    text = (ref / "timeloop-mapper.stats.txt").read_text()
    ref_cycles = int(re.search(r"^Cycles: (\d+)", text, re.M)[1])
    ref_uj = float(re.search(r"^Energy: ([\d.]+) uJ", text, re.M)[1])
    files = design_files(root, design)
    ert = ref / "timeloop-mapper.ERT.yaml"
    stats = evaluate_files([*files, ref / "timeloop-mapper.map.yaml", ert], settings=settings)
    ours_uj = stats.energy_pj / 1e6
    print(f"\n{design}: stored mapping, stored ERT, {settings.timeloop_version} accounting")
    print(f"  cycles  ours {stats.cycles}  ref {ref_cycles}  "
          f"{'equal' if stats.cycles == ref_cycles else 'DIFFERENT'}")
    print(f"  energy  ours {ours_uj:.3f} uJ  ref {ref_uj:.2f} uJ  "
          f"({(ours_uj - ref_uj) / ref_uj:+.2%})")
    levels = reference_levels(text)
    fill_pj = leak_pj = 0.0
    for level in stats.levels:
        refl = levels.get(level.name, {"energy": 0.0, "leak": 0.0, "output_fills": 0.0})
        outputs = level.dataspaces.get("Outputs")
        ours_fills = outputs.fills if outputs else 0
        if ours_fills != refl["output_fills"]:
            fill_pj += level.energy_pj - refl["energy"]
        leak_pj += refl["leak"]
        print(f"    {level.name:34s} ours {level.energy_pj / 1e6:9.4f} uJ  "
              f"ref {refl['energy'] / 1e6:9.4f} uJ  Outputs fills ours {ours_fills} "
              f"ref {int(refl['output_fills'])}  ref leakage {refl['leak']:.0f} pJ")
    rest = ours_uj - fill_pj / 1e6 - (ref_uj - leak_pj / 1e6)
    print(f"  levels whose Outputs fills differ: {fill_pj / 1e6:+.3f} uJ; "
          f"Timeloop v4 leakage {leak_pj / 1e6:.4f} uJ; left after both: {rest:+.4f} uJ "
          f"({rest / ref_uj:+.3%}, the stats' 2-decimal rounding is 0.005 uJ)")
    with tempfile.TemporaryDirectory() as tmp:
        mapper = Path(tmp, "mapper.yaml")
        mapper.write_text(f"mapper: {{exact: {str(exact).lower()}, max_evaluations: {budget}, "
                          "seed: 0}\n")
        start = time.perf_counter()
        _, _, found = map_files([*files, ert, mapper], Path(tmp, "out"), settings=settings)
        seconds = time.perf_counter() - start
    ref_edp = ref_uj * 1e6 * ref_cycles
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  QuantMap mapper: energy {found.energy_pj / 1e6:.3f} uJ, cycles {found.cycles}, "
          f"EDP {found.edp:.3e} pJ*cycles vs the stored mapping's {ref_edp:.3e} "
          f"({found.edp / ref_edp:.2f}x); {seconds:.1f} s, peak RSS so far {peak_mb:.0f} MB, "
          f"{found.certificate.comment() if found.certificate else 'no certificate'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("designs", help="the exercises' example_designs folder")
    parser.add_argument("--budget", type=int, default=5000, help="mapper evaluations per design")
    parser.add_argument("--exact", action="store_true",
                        help="run the default mapper (exact search first), not sampling only")
    parser.add_argument("--timeloop-version", choices=TIMELOOP_VERSIONS, default="fork",
                        help="whose accounting the built-in engine follows (default: fork)")
    args = parser.parse_args()
    settings = EngineSettings(timeloop_version=args.timeloop_version)
    for design in DESIGNS:
        compare(Path(args.designs), design, args.budget, args.exact, settings)


if __name__ == "__main__":
    main()
