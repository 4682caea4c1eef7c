"""The SQLite results store: exact round trips, no double work, and concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import GOLDEN_RECORDS
from wrapper.engine.evaluator import MappingEvaluator
from wrapper.errors import ConfigError
from wrapper.explore.store import AccuracyResult, GenerationRecord, LayerResult, Store
from wrapper.spec.arch import arch_from_dict
from wrapper.spec.mapping import mapping_from_dict
from wrapper.spec.problem import problem_from_dict
from wrapper.spec.yamlio import parse_yaml_text


def _golden_result(record: dict) -> LayerResult:
    """A real layer result: a golden mapping evaluated by the built-in engine."""
    spec = dict(parse_yaml_text(record["arch_yaml"]))
    classes = spec.setdefault("compound_components", {"classes": []})["classes"]
    for text in record["components_yaml"].values():
        classes.extend(parse_yaml_text(text)["compound_components"]["classes"])
    arch = arch_from_dict(spec, "golden")
    problem = problem_from_dict(parse_yaml_text(record["problem_yaml"], "problem"), "problem")
    mapping = mapping_from_dict(parse_yaml_text(record["mapping_yaml"], "mapping"), "mapping")
    stats = MappingEvaluator().evaluate(arch, problem, mapping)
    return LayerResult("k1", "s1", record["layer"], record["bitwidths_name"], mapping, stats)


def test_layer_result_round_trips_exactly(tmp_path: Path, shared_dir: Path) -> None:
    result = _golden_result(GOLDEN_RECORDS[0])
    assert result.stats.valid, result.stats.reason
    with Store(tmp_path / "s.sqlite") as store:
        store.put_layers([result])
    with Store(tmp_path / "s.sqlite") as store:  # a fresh connection reads what was committed
        back = store.get_layer("k1")
        assert back == result
        assert back.stats.energy_pj == result.stats.energy_pj  # floats survive bit-exactly
        assert store.get_layer_by_signature("s1") == result
        assert store.get_layer("other") is None


def test_second_write_of_a_key_keeps_the_first_and_counts_a_recomputation(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.put_accuracy(AccuracyResult("a", ((8, 8), (4, 2)), 0.75, "qat-1ep"))
        assert store.counts()["recomputed"] == 0
        store.put_accuracy(AccuracyResult("a", ((8, 8), (4, 2)), 0.5, "qat-1ep"))
        assert store.get_accuracy("a") == AccuracyResult("a", ((8, 8), (4, 2)), 0.75, "qat-1ep")
        assert store.counts()["recomputed"] == 1


def test_generations_are_journaled_per_run_and_can_be_dropped(tmp_path: Path) -> None:
    pop = ((((2, 3), (8, 8)), (0.5, 1e9)), (((4, 4), (4, 4)), (0.75, float("inf"))))
    with Store(tmp_path / "s.sqlite") as store:
        store.put_generation(GenerationRecord("run1", 0, pop))
        store.put_generation(GenerationRecord("run1", 1, pop[:1]))
        store.put_generation(GenerationRecord("run2", 0, pop))
        assert [g.generation for g in store.generations("run1")] == [0, 1]
        assert store.generations("run1")[0].population == pop
        store.drop_generations("run1")
        assert store.generations("run1") == []
        assert len(store.generations("run2")) == 1


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(RuntimeError):
            with store.transaction() as db:
                db.execute("INSERT INTO accuracies (key, bits, accuracy, source, created) "
                           "VALUES ('x', '[]', 1.0, 'q', 0)")
                raise RuntimeError("crash mid-transaction")
        assert store.get_accuracy("x") is None


def _writer(path: str, worker: int, count: int) -> None:
    """One worker process: many small transactions, half of the keys shared with the other."""
    with Store(path) as store:
        for i in range(count):
            key = f"shared-{i}" if i % 2 else f"w{worker}-{i}"
            store.put_accuracy(AccuracyResult(key, ((worker, i),), float(i), f"worker{worker}"))
            store.put_failure(f"w{worker}-{i}", "test", "boom", 1)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite")
    Store(path).close()  # create the schema first, as the explore driver does
    count = 200
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w, count)) for w in (1, 2)]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(120)
        assert proc.exitcode == 0
    with Store(path) as store:
        counts = store.counts()
        private = [f"w{w}-{i}" for w in (1, 2) for i in range(0, count, 2)]
        shared = [f"shared-{i}" for i in range(1, count, 2)]
        assert all(store.get_accuracy(k) is not None for k in private + shared)
        assert counts["accuracies"] == len(private) + len(shared)
        assert counts["recomputed"] == len(shared)  # each shared key was written twice
        assert counts["failures"] == 2 * count


def test_test_accuracy_round_trips_and_search_scores_have_none(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.put_accuracy(AccuracyResult("search", ((4, 4),), 0.9, "qat-1ep"))
        store.put_accuracy(AccuracyResult("final", ((4, 4),), 0.9, "retrain-1ep-seed1", 0.85))
        assert store.get_accuracy("search").test_accuracy is None
        assert store.get_accuracy("final").test_accuracy == 0.85


def test_a_store_of_an_older_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with pytest.raises(ConfigError) as info:
        Store(path)
    assert "schema 1" in str(info.value) and "\n" not in str(info.value)


def test_a_schema_2_store_is_upgraded_in_place_and_stays_resumable(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with sqlite3.connect(path) as db:  # the accuracies table as schema 2 wrote it
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '2')")
        db.execute("CREATE TABLE accuracies (key TEXT PRIMARY KEY, bits TEXT NOT NULL, accuracy "
                   "REAL NOT NULL, test_accuracy REAL, source TEXT NOT NULL, created REAL NOT "
                   "NULL, recomputed INTEGER NOT NULL DEFAULT 0)")
        db.execute("INSERT INTO accuracies VALUES ('old', '[[4, 4]]', 0.9, NULL, 'qat-1ep', 0, 0)")
    db.close()
    with Store(path) as store:
        assert store.get_accuracy("old") == AccuracyResult("old", ((4, 4),), 0.9, "qat-1ep")
        store.put_accuracy(AccuracyResult("new", ((2, 2),), 0.5, "qat-1ep", equivalents=1.0))
        store.put_accuracy(AccuracyResult("probe", ((2, 2),), 0.3, "ptq-w2", equivalents=0.25))
        assert store.get_accuracy("new").equivalents == 1.0
        assert store.counts()["qat_equivalents"] == 1.25  # the old row's cost is unknown
    with Store(path) as store:  # reopening an upgraded store changes nothing
        assert store.counts()["accuracies"] == 3
