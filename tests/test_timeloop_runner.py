"""Fault injection for the Timeloop runner and cost model with small fake executables.

The fakes only imitate how the real tools fail (crash, hang, garbage, no mapping, assertion
abort); no number computed from a fake is ever checked for correctness.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from conftest import SHARED_DIR, golden_case

from wrapper.backends import get_cost_model
from wrapper.errors import BackendError, PrecisionError
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.precision import Precision
from wrapper.timeloop.costmodel import TimeloopCostModel
from wrapper.timeloop.discovery import Binaries, find_binaries
from wrapper.timeloop.energy_tables import AccelergyCache, tables_in
from wrapper.timeloop.probe import NATIVE, STOCK, probe_mode
from wrapper.timeloop.runner import WorkDirs, run_job, run_parallel

ASSERTION = ("timeloop-model: src/model/buffer.cpp:1148: ComputeScalarAccesses: Assertion "
             "`workload->GetBitwidth(pvi) <= (specs_.word_bits.Get())' failed.")

ABORT_BODY = f"cat >&2 <<'END'\n{ASSERTION}\nEND\nkill -ABRT $$\n"


def fake(folder: Path, name: str, body: str) -> Path:
    """An executable shell script standing in for a tool."""
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; SIGKILL is delivered asynchronously, so allow it a moment."""
    for _ in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True


def test_crash_becomes_backend_error_with_signal_and_log(tmp_path: Path) -> None:
    tool = fake(tmp_path, "timeloop-model", "echo starting\nkill -SEGV $$\n")
    with pytest.raises(BackendError, match="crashed with signal SIGSEGV") as info:
        run_job([str(tool)], tmp_path / "job", timeout_s=30)
    assert "starting" in info.value.log_tail


def test_assertion_abort_is_reported_with_the_assertion(tmp_path: Path) -> None:
    tool = fake(tmp_path, "timeloop-model", ABORT_BODY)
    with pytest.raises(BackendError, match="aborted on an assertion .SIGABRT.: .*GetBitwidth"):
        run_job([str(tool)], tmp_path / "job", timeout_s=30)


def test_error_exit_names_the_error_line(tmp_path: Path) -> None:
    tool = fake(tmp_path, "timeloop-model",
                "echo 'ERROR: parsing permutation: dimension M not found'\nexit 1\n")
    with pytest.raises(BackendError, match="exited with code 1: ERROR: parsing permutation"):
        run_job([str(tool)], tmp_path / "job", timeout_s=30)


def test_hang_past_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    tool = fake(tmp_path, "timeloop-mapper", f"""\
        sh -c 'trap "" TERM; echo $$ > {pid_file}; while true; do sleep 1; done' &
        echo searching
        while true; do sleep 1; done
        """)
    with pytest.raises(BackendError, match="timed out after 1 s") as info:
        run_job([str(tool)], tmp_path / "job", timeout_s=1)
    assert "searching" in info.value.log_tail
    child = int(pid_file.read_text())
    assert not _alive(child), "a child ignoring SIGTERM must be SIGKILLed with its group"


def test_missing_executable_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="cannot start"):
        run_job([str(tmp_path / "nope")], tmp_path / "job", timeout_s=5)


def test_work_dirs_keep_failed_jobs_and_remove_successful_ones(tmp_path: Path) -> None:
    dirs = WorkDirs(tmp_path / "work")
    ok = fake(tmp_path, "ok", "echo fine\n")
    bad = fake(tmp_path, "bad", "echo broken\nexit 3\n")
    used: list[Path] = []

    def job(tool: Path):
        def inner(work_dir: Path) -> None:
            used.append(work_dir)
            run_job([str(tool)], work_dir, timeout_s=30)
        return inner

    dirs.run("good", job(ok))
    with pytest.raises(BackendError, match="exited with code 3"):
        dirs.run("bad", job(bad))
    assert not used[0].exists()
    assert "broken" in (used[1] / "run.log").read_text()


def test_parallel_jobs_return_failures_in_place(tmp_path: Path) -> None:
    ok = fake(tmp_path, "ok", "echo fine\n")
    bad = fake(tmp_path, "bad", "kill -SEGV $$\n")
    tasks = [lambda i=i, t=t: run_job([str(t)], tmp_path / f"job{i}", timeout_s=30).returncode
             for i, t in enumerate((ok, bad, ok, ok))]
    results = run_parallel(tasks, workers=2)
    assert results[0] == results[2] == results[3] == 0
    assert isinstance(results[1], BackendError) and "SIGSEGV" in str(results[1])


def test_discovery_env_path_and_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("QUANTMAP_TIMELOOP_MAPPER", "QUANTMAP_TIMELOOP_MODEL", "QUANTMAP_ACCELERGY"):
        monkeypatch.delenv(var, raising=False)
    found = find_binaries()
    assert found == Binaries(None, None, None)
    with pytest.raises(BackendError, match="timeloop-model not found") as info:
        found.require("timeloop-model")
    assert "Docker" in str(info.value) and "QUANTMAP_TIMELOOP_MODEL" in str(info.value)
    model = fake(tmp_path, "my-model", "exit 0\n")
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MODEL", str(model))
    fake(tmp_path, "timeloop-mapper", "exit 0\n")
    found = find_binaries()
    assert found.model == model.resolve() and found.mapper == (tmp_path / "timeloop-mapper").resolve()
    monkeypatch.setenv("QUANTMAP_ACCELERGY", str(tmp_path / "missing"))
    with pytest.raises(BackendError, match=r"\$QUANTMAP_ACCELERGY is not an executable"):
        find_binaries()


def test_accelergy_runs_once_per_arch_content(shared_dir: Path, tmp_path: Path) -> None:
    ert_dir = shared_dir / "golden" / "ert" / "eyeriss"
    calls = tmp_path / "calls"
    tool = fake(tmp_path, "accelergy", f"""\
        echo run >> {calls}
        mkdir -p out
        cp {ert_dir}/timeloop-mapper.ERT.yaml out/ERT.yaml
        cp {ert_dir}/timeloop-mapper.ART.yaml out/ART.yaml
        """)
    cache = AccelergyCache(tool, tmp_path / "cache")
    spec = {"architecture": {"version": 0.3, "subtree": []}}
    first = cache.tables_for(spec)
    second = cache.tables_for(dict(spec))
    assert first == second and first.ert.name == "ERT.yaml"
    assert calls.read_text().count("run") == 1
    cache.tables_for({"architecture": {"version": 0.3, "subtree": [{"name": "other"}]}})
    assert calls.read_text().count("run") == 2


def test_accelergy_garbage_is_not_cached(tmp_path: Path) -> None:
    tool = fake(tmp_path, "accelergy", "mkdir -p out\necho 'not: a table' > out/ERT.yaml\n"
                                       "cp out/ERT.yaml out/ART.yaml\n")
    cache = AccelergyCache(tool, tmp_path / "cache")
    with pytest.raises(BackendError, match="not an Accelergy ERT"):
        cache.tables_for({"architecture": {}})
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]


# --- the cost model driven by fakes: failure handling only -------------------------------------

def _model(tmp_path: Path, model_body: str = "exit 0\n", mapper_body: str = "exit 0\n"):
    binaries = Binaries(fake(tmp_path, "timeloop-mapper", mapper_body),
                        fake(tmp_path, "timeloop-model", model_body), None)
    return TimeloopCostModel(binaries, mode=NATIVE, work_root=tmp_path / "work", timeout_s=5)


def test_cost_model_is_registered() -> None:
    assert isinstance(get_cost_model("timeloop", binaries=Binaries(None, None, None),
                                     mode=NATIVE), TimeloopCostModel)


def test_too_wide_or_zero_bits_are_refused_before_any_binary(shared_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    model = _model(tmp_path, f"touch {marker}\n")
    _, arch, problem, mapping = golden_case()
    ert = shared_dir / "golden" / "ert" / "eyeriss"
    for bad in (Precision(8, 8, 32), Precision(8, 17, 8), Precision(0, 8, 8)):
        with pytest.raises(PrecisionError, match="wider than the 16-bit word|must be > 0"):
            model.evaluate(arch, problem.with_precision(bad), mapping, ert)
        with pytest.raises(PrecisionError):
            model.find_mapping(arch, problem.with_precision(bad), MapperSettings(), ert)
    assert not marker.exists()


def test_model_garbage_output_is_a_backend_error(shared_dir: Path, tmp_path: Path) -> None:
    model = _model(tmp_path, "echo 'Segmentation fault?' > timeloop-model.stats.txt\n")
    _, arch, problem, mapping = golden_case()
    with pytest.raises(BackendError, match="unreadable Timeloop output") as info:
        model.evaluate(arch, problem, mapping, shared_dir / "golden" / "ert" / "eyeriss")
    kept = list((tmp_path / "work").iterdir())
    assert len(kept) == 1 and (kept[0] / "problem.yaml").is_file(), "failed job's inputs are kept"
    assert "bitwidths" in (kept[0] / "problem.yaml").read_text(), "native mode emits bitwidths"
    assert str(kept[0]) in str(info.value) or info.value.file


def test_model_assertion_abort_reaches_the_caller_with_log(shared_dir: Path, tmp_path: Path) -> None:
    model = _model(tmp_path, ABORT_BODY)
    _, arch, problem, mapping = golden_case()
    with pytest.raises(BackendError, match="assertion") as info:
        model.evaluate(arch, problem, mapping, shared_dir / "golden" / "ert" / "eyeriss")
    assert "GetBitwidth" in info.value.log_tail


def test_mapper_no_valid_mappings_exit_0_empty_map(shared_dir: Path, tmp_path: Path) -> None:
    model = _model(tmp_path, mapper_body="""\
        echo '[  0] STATEMENT: 1000 invalid mappings (738 fanout, 262 capacity) found'
        echo 'MESSAGE: no valid mappings found within search criteria.'
        : > timeloop-mapper.map.yaml
        exit 0
        """)
    _, arch, problem, _ = golden_case()
    with pytest.raises(BackendError, match="no valid mappings") as info:
        model.find_mapping(arch, problem, MapperSettings(max_evaluations=10),
                     shared_dir / "golden" / "ert" / "eyeriss")
    assert "MESSAGE: no valid mappings" in info.value.log_tail


def test_mapper_hang_is_killed_and_the_batch_goes_on(shared_dir: Path, tmp_path: Path) -> None:
    model = _model(tmp_path, model_body="while true; do sleep 1; done\n")
    model.timeout_s = 1
    _, arch, problem, mapping = golden_case()
    ert = shared_dir / "golden" / "ert" / "eyeriss"
    results = model.evaluate_many([(arch, problem, mapping)] * 2, energy_table=ert)
    assert all(isinstance(r, BackendError) and "timed out" in str(r) for r in results)


def test_probe_tells_fork_from_stock_by_counts_and_caches_per_binary(shared_dir: Path,
                                                                     tmp_path: Path) -> None:
    raw = shared_dir / "golden" / "raw"
    packed = next((raw / "eyeriss__mbv1_L3__i4w4o8").glob("model_0_*")) / "timeloop-model.stats.txt"
    plain = next((raw / "eyeriss__mbv1_L3__none").glob("model_0_*")) / "timeloop-model.stats.txt"
    calls = tmp_path / "calls"
    needs_tables = ('echo run >> ' + str(calls) + '\n'
                    'case "$*" in *probe.ERT.yaml*probe.ART.yaml*) ;; *) exit 9;; esac\n')
    fork = fake(tmp_path, "fork-model", needs_tables + f"""\
        if grep -q bitwidths problem.yaml; then cp {packed} timeloop-model.stats.txt
        else cp {plain} timeloop-model.stats.txt; fi
        """)
    stock = fake(tmp_path, "stock-model", needs_tables + f"cp {plain} timeloop-model.stats.txt\n")
    cache = tmp_path / "probe-cache"
    assert probe_mode(fork, WorkDirs(tmp_path / "w1"), cache_dir=cache) == NATIVE
    assert probe_mode(stock, WorkDirs(tmp_path / "w2"), cache_dir=cache) == STOCK
    assert calls.read_text().count("run") == 4
    assert probe_mode(fork, WorkDirs(tmp_path / "w1"), cache_dir=cache) == NATIVE
    assert probe_mode(stock, WorkDirs(tmp_path / "w2"), cache_dir=cache) == STOCK
    assert calls.read_text().count("run") == 4, "verdicts come from the cache"
    fork.write_text(fork.read_text() + "\n")  # a rebuilt binary is probed again
    assert probe_mode(fork, WorkDirs(tmp_path / "w1"), cache_dir=cache) == NATIVE
    assert calls.read_text().count("run") == 6


def test_golden_ert_folders_are_readable(shared_dir: Path) -> None:
    for arch in ("eyeriss", "simba"):
        tables = tables_in(shared_dir / "golden" / "ert" / arch)
        assert tables.ert.name == "timeloop-mapper.ERT.yaml"
        assert json.dumps(yaml.safe_load(tables.art.read_text()))  # parses
    assert os.path.isdir(SHARED_DIR)


def _record_files(record: dict, folder: Path) -> list[Path]:
    """A golden record's arch, problem, mapping and component texts as files in ``folder``."""
    files = [folder / "arch.yaml", folder / "prob.yaml", folder / "map.yaml"]
    for path, text in zip(files, (record["arch_yaml"], record["problem_yaml"],
                                  record["mapping_yaml"])):
        path.write_text(text)
    for i, text in enumerate(record["components_yaml"].values()):
        files.append(folder / f"component{i}.yaml")
        files[-1].write_text(text)
    return files


def test_evaluate_cli_hands_the_given_tables_to_timeloop(
        shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plumbing only: files in, binary called with the user's ERT/ART, stats parsed (the fake
    replays the golden output)."""
    from wrapper.backends import evaluate_files

    record, *_ = golden_case()
    raw = next((shared_dir / "golden" / "raw" / record["case_id"]).glob("model_0_*"))
    ert_dir = shared_dir / "golden" / "ert" / "eyeriss"
    files = _record_files(record, tmp_path) + [ert_dir / "timeloop-mapper.ERT.yaml",
                                               ert_dir / "timeloop-mapper.ART.yaml"]
    tool = fake(tmp_path, "timeloop-model", f"""\
        case "$*" in *timeloop-mapper.ERT.yaml*timeloop-mapper.ART.yaml*) ;; *) exit 9;; esac
        cp {raw}/timeloop-model.stats.txt {raw}/timeloop-model.stats.csv .
        """)
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MODEL", str(tool))
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MODE", NATIVE)
    stats = evaluate_files(files, "timeloop")
    assert stats.cycles == record["results"]["summary"]["cycles"]


def test_a_mapping_timeloop_cannot_map_is_an_invalid_result(shared_dir: Path,
                                                            tmp_path: Path) -> None:
    model = _model(tmp_path, """\
        echo "ERROR: couldn't map level psum_spad: mapped tile size 48 exceeds buffer capacity 24" >&2
        exit 1
        """)
    _, arch, problem, mapping = golden_case()
    stats = model.evaluate(arch, problem, mapping, shared_dir / "golden" / "ert" / "eyeriss")
    assert not stats.valid
    assert stats.reason == "psum_spad: mapped tile size 48 exceeds buffer capacity 24"


def test_a_crash_while_the_build_is_rewritten_is_retried_once(tmp_path: Path) -> None:
    """An install rewriting a running tool's library in place gets it killed with SIGBUS; the
    fake does both itself on its first run."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libtimeloop-mapper.so").write_text("old build")
    tool = fake(tmp_path / "bin", "timeloop-mapper", f"""\
        if [ ! -e {tmp_path}/reinstalled ]; then
          touch {tmp_path}/reinstalled; echo 'new build, longer' > {tmp_path}/lib/libtimeloop-mapper.so
          kill -BUS $$
        fi
        echo second run fine
        """)
    result = run_job([str(tool)], tmp_path / "job", timeout_s=30)
    log = result.log_path.read_text()
    assert result.returncode == 0 and "second run fine" in log
    assert "build changed on disk" in log and "libtimeloop-mapper.so" in log


def test_a_crash_of_an_unchanged_build_is_not_retried(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    tool = fake(tmp_path, "timeloop-mapper", f"echo run >> {calls}\nkill -BUS $$\n")
    with pytest.raises(BackendError, match="crashed with signal SIGBUS"):
        run_job([str(tool)], tmp_path / "job", timeout_s=30)
    assert calls.read_text().count("run") == 1
