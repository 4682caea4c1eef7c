"""Check a Timeloop build with the storage-model patch series against golden records.

Every golden record holds the inputs of one timeloop-model run of the authors' fork (architecture,
component classes, ERT/ART reference, mapping, problem) and the fork's parsed results. This script
reruns each record with a given timeloop-model and compares, in one of two modes:

- ``fork``: the build must reproduce the fork: same cycles, and per storage level and dataspace the
  same utilized capacity, reads, updates, fills, temporal reductions, address generations and
  energy (as printed, 2 decimals), so also the same total energy.
- ``packing``: the build is compared with an unpatched Timeloop of the same version (``--reference``).
  Records without bit widths must give identical counts, energy and cycles; with bit widths, every
  count of a dataspace with b bits at a level with W-bit words must be ceil(x / floor(W / b)) of
  the unpatched count x (the unpatched build ignores bit widths); address generations are the sum
  of the packed accesses they count (reads or updates, plus fills). Where the unpatched build
  refuses a mapping that only fits packed, its counts come from a rerun with every storage depth
  multiplied by CAPACITY_SCALE: capacity decides validity, never counts.

Usage (from the repository root, so that ``wrapper`` is importable):

    python patches/verify.py --mode fork --model PREFIX/bin/timeloop-model \\
        ../shared/golden ../shared/golden_dw
    python patches/verify.py --mode packing --model PREFIX/bin/timeloop-model \\
        --reference STOCK/bin/timeloop-model ../shared/golden ../shared/golden_dw

A golden folder holds ``cases.jsonl``; ERT/ART references are resolved against the folder itself,
then against a sibling ``golden`` folder (where ``golden_dw`` keeps them). Prints one line per
record that is not identical and a summary; exits 1 when any record differs or is refused.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wrapper.timeloop.stats_text import number, split_stats_txt  # noqa: E402

# Per-dataspace counts compared: stats.txt key -> key in a golden record's parsed results.
COUNT_KEYS = {"Utilized capacity": "utilized_capacity",
              "Scalar reads (per-instance)": "reads_per_instance",
              "Scalar updates (per-instance)": "updates_per_instance",
              "Scalar fills (per-instance)": "fills_per_instance",
              "Temporal reductions (per-instance)": "temporal_reductions_per_instance",
              "Address generations (per-cluster)": "address_generations_per_cluster"}
ENERGY_KEY = "Energy (total)"
ADDRESS_KEY = "Address generations (per-cluster)"
CAPACITY_KEYS = ("depth", "memory_depth", "size", "entries")
CAPACITY_SCALE = 64

# {level: {dataspace: {key: value}}} plus cycles; values as printed in stats.txt.
Counts = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class Outcome:
    """The result of one record: ``identical``, ``differing`` or ``refused``, with the reasons."""

    record_id: str
    status: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """Parsed output of one timeloop-model run: total cycles and per-level dataspace values."""

    cycles: int
    levels: Counts
    word_bits: dict[str, int]


def load_records(folder: Path) -> list[dict[str, Any]]:
    """The records of ``folder/cases.jsonl`` (one JSON object per line)."""
    with (folder / "cases.jsonl").open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def table_path(folder: Path, ref: str) -> Path:
    """An ERT/ART reference of a record: relative to its folder or to the sibling ``golden``."""
    for base in (folder, folder.parent / "golden"):
        if (base / ref).is_file():
            return base / ref
    raise FileNotFoundError(f"{ref} not found under {folder} or {folder.parent / 'golden'}")


def write_inputs(record: dict[str, Any], folder: Path, work: Path) -> list[str]:
    """Write the record's model inputs into ``work``; returns the file names in argument order."""
    files = {"arch.yaml": record["arch_yaml"]}
    files.update({f"comp_{name}": text for name, text in sorted(record["components_yaml"].items())})
    for ref in (record["ert_ref"], record["art_ref"]):
        files[Path(ref).name] = table_path(folder, ref).read_text()
    files["map.yaml"] = record["mapping_yaml"]
    files["prob.yaml"] = record["problem_yaml"]
    for name, text in files.items():
        (work / name).write_text(text)
    return list(files)


def run_model(model: Path, record: dict[str, Any], folder: Path,
              arch_yaml: str | None = None) -> RunResult | str:
    """Run ``model`` on the record's inputs; the parsed result, or the error text on failure."""
    with tempfile.TemporaryDirectory(prefix="tl-verify-") as tmp:
        work = Path(tmp)
        files = write_inputs({**record, "arch_yaml": arch_yaml or record["arch_yaml"]}, folder, work)
        proc = subprocess.run([str(model), *files], cwd=work, capture_output=True, text=True,
                              timeout=600, check=False)
        stats = work / "timeloop-model.stats.txt"
        if proc.returncode != 0 or not stats.is_file():
            return f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-300:]}"
        return parse_run(stats.read_text())


def parse_run(text: str) -> RunResult:
    """Cycles and the compared per-dataspace values of each storage level of a stats.txt."""
    parsed = split_stats_txt(text)
    levels: Counts = {}
    word_bits: dict[str, int] = {}
    for block in parsed.levels[1:]:
        word_bits[block.name] = int(number(block.specs.get("Word bits")) or 0)
        levels[block.name] = {
            ds: {key: number(values.get(key)) or 0.0 for key in (*COUNT_KEYS, ENERGY_KEY)}
            for ds, values in block.dataspaces.items()}
        levels[block.name]["(level)"] = {"Cycles": number(block.stats.get("Cycles")) or 0.0}
    return RunResult(int(number(parsed.summary["Cycles"]) or 0), levels, word_bits)


def golden_counts(record: dict[str, Any]) -> RunResult:
    """The fork's results stored in a golden record, in the shape of ``parse_run``."""
    levels: Counts = {}
    for level in record["results"]["storage"]:
        levels[level["name"]] = {
            ds: {**{key: float(values[gkey]) for key, gkey in COUNT_KEYS.items()},
                 ENERGY_KEY: float(values["energy_total_pJ"])}
            for ds, values in level["dataspaces"].items()}
        levels[level["name"]]["(level)"] = {"Cycles": float(level["cycles"])}
    return RunResult(int(record["results"]["summary"]["cycles"]), levels,
                     {lv["name"]: int(lv["specs"]["Word bits"]) for lv in record["results"]["storage"]})


def differences(got: RunResult, want: RunResult) -> list[str]:
    """Every value of ``want`` that ``got`` does not reproduce exactly, as readable lines."""
    out = [] if got.cycles == want.cycles else [f"cycles {got.cycles} != {want.cycles}"]
    for level, dataspaces in want.levels.items():
        for ds, values in dataspaces.items():
            mine = got.levels.get(level, {}).get(ds)
            if mine is None:
                out.append(f"{level}.{ds} missing")
                continue
            out += [f"{level}.{ds} {key} {mine.get(key)} != {value}"
                    for key, value in values.items() if mine.get(key) != value]
    return out


def enlarged(arch_yaml: str) -> str:
    """The architecture with every storage depth multiplied by CAPACITY_SCALE."""
    def scale(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: value * CAPACITY_SCALE if key in CAPACITY_KEYS and isinstance(value, int)
                    else scale(value) for key, value in node.items()}
        return [scale(item) for item in node] if isinstance(node, list) else node
    return yaml.safe_dump(scale(yaml.safe_load(arch_yaml)), sort_keys=False)


def packed(reference: RunResult, bitwidths: dict[str, int]) -> RunResult:
    """What packing makes of an unpacked run: counts of d at a W-bit level become ceil(x/k).

    Energies and cycles are left out: they follow from the packed counts through the energy table
    and bandwidths, which the ``fork`` mode checks against the authors' build.
    """
    levels: Counts = {}
    for level, dataspaces in reference.levels.items():
        word = reference.word_bits[level]
        levels[level] = {}
        for ds, values in dataspaces.items():
            if ds == "(level)":
                continue
            bits = bitwidths.get(ds)
            k = word // bits if bits else 1
            words = {key: float(math.ceil(values[key] / k)) for key in COUNT_KEYS}
            # Address generations count read-or-update accesses plus fills, each packed on its own.
            reads = "Scalar reads (per-instance)"
            if values[ADDRESS_KEY] != values[reads] + values["Scalar fills (per-instance)"]:
                reads = "Scalar updates (per-instance)"
            words[ADDRESS_KEY] = words[reads] + words["Scalar fills (per-instance)"]
            levels[level][ds] = words
    return RunResult(-1, levels, reference.word_bits)


def check_fork(model: Path, record: dict[str, Any], folder: Path) -> Outcome:
    """``fork`` mode for one record."""
    got = run_model(model, record, folder)
    if isinstance(got, str):
        return Outcome(record["record_id"], "refused", (got,))
    diff = differences(got, golden_counts(record))
    return Outcome(record["record_id"], "differing" if diff else "identical", tuple(diff))


def check_packing(model: Path, reference: Path, record: dict[str, Any], folder: Path) -> Outcome:
    """``packing`` mode for one record."""
    got = run_model(model, record, folder)
    ref = run_model(reference, record, folder)
    if isinstance(ref, str) and "exceeds buffer capacity" in ref and record.get("bitwidths"):
        ref = run_model(reference, record, folder, enlarged(record["arch_yaml"]))
    for result in (got, ref):
        if isinstance(result, str):
            return Outcome(record["record_id"], "refused", (result,))
    assert isinstance(got, RunResult) and isinstance(ref, RunResult)
    bitwidths = record.get("bitwidths") or {}
    want = packed(ref, bitwidths) if bitwidths else ref
    diff = [d for d in differences(got, want) if not (bitwidths and d.startswith("cycles"))]
    return Outcome(record["record_id"], "differing" if diff else "identical", tuple(diff))


def main(argv: list[str] | None = None) -> int:
    """Run the chosen check over every record of the given golden folders."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="golden folders with cases.jsonl")
    parser.add_argument("--model", type=Path, required=True, help="timeloop-model to check")
    parser.add_argument("--mode", choices=("fork", "packing"), default="fork")
    parser.add_argument("--reference", type=Path, help="unpatched timeloop-model (packing mode)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N records (0: all)")
    args = parser.parse_args(argv)
    if args.mode == "packing" and args.reference is None:
        parser.error("--mode packing needs --reference (an unpatched timeloop-model)")
    jobs = [(record, folder) for folder in args.folders for record in load_records(folder)]
    jobs = jobs[:args.limit] if args.limit else jobs

    def check(job: tuple[dict[str, Any], Path]) -> Outcome:
        record, folder = job
        if args.mode == "fork":
            return check_fork(args.model, record, folder)
        return check_packing(args.model, args.reference, record, folder)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(check, jobs))
    for outcome in outcomes:
        if outcome.status != "identical":
            print(f"{outcome.status}: {outcome.record_id}: {'; '.join(outcome.reasons[:4])}")
    totals = {status: sum(o.status == status for o in outcomes)
              for status in ("identical", "differing", "refused")}
    print(f"{args.mode}: {len(outcomes)} records: " + ", ".join(f"{n} {s}" for s, n in totals.items()))
    return 0 if totals["identical"] == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
