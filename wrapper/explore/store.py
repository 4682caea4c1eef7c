"""The SQLite results store: the single source of truth for caching and for ``--resume``.

Three kinds of rows, each written in its own atomic transaction:

- layer results: the best mapping and its statistics for one (engine + version, arch spec, layer
  problem with precision, mapper settings), keyed by ``wrapper.costmodel.content_hash`` of exactly
  those parts, so a result can never be filed under the wrong bit widths or mapper settings
  (docs/search.md). A second key, the packing-signature key, lets precisions that pack identically
  share one mapper run.
- accuracies: top-1 of one bit configuration, keyed by (model, data, QAT settings, bits): the
  validation top-1 the search selects on, and for the final evaluation (fresh seeds) also the
  test top-1, which the search never reads.
- generations: the population of one search generation of one run, so a killed run continues
  from its last finished generation; evaluations: every candidate a run scored, per generation.

WAL mode plus ``BEGIN IMMEDIATE`` and a busy timeout make the store safe for several processes
writing at once. A row that already exists is never overwritten: a second write of the same key
only increments ``recomputed``, which is how tests (and users) see that resume re-did no work.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import ConfigError
from ..spec.mapping import Mapping, mapping_from_dict, mapping_to_dict
from ..spec.stats import Stats

# 2: accuracies gained test_accuracy (the held-out test split of the final evaluation).
# 3: accuracies gained equivalents (what computing one cost, in QAT-run equivalents); a schema-2
#    store is upgraded in place, its earlier rows with equivalents unknown (NULL).
SCHEMA_VERSION = 3
_UPGRADES = {2: ("ALTER TABLE accuracies ADD COLUMN equivalents REAL",)}
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layer_results (
    key TEXT PRIMARY KEY,
    signature_key TEXT NOT NULL,
    layer TEXT NOT NULL,
    precision TEXT NOT NULL,
    mapping TEXT,
    stats TEXT NOT NULL,
    created REAL NOT NULL,
    recomputed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS layer_results_signature ON layer_results (signature_key);
CREATE TABLE IF NOT EXISTS accuracies (
    key TEXT PRIMARY KEY,
    bits TEXT NOT NULL,
    accuracy REAL NOT NULL,
    test_accuracy REAL,
    equivalents REAL,
    source TEXT NOT NULL,
    created REAL NOT NULL,
    recomputed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS generations (
    run TEXT NOT NULL,
    generation INTEGER NOT NULL,
    population TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run, generation)
);
CREATE TABLE IF NOT EXISTS evaluations (
    run TEXT NOT NULL,
    generation INTEGER NOT NULL,
    genome TEXT NOT NULL,
    objectives TEXT NOT NULL,
    phase TEXT NOT NULL,
    PRIMARY KEY (run, generation, genome)
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class LayerResult:
    """The stored outcome of one mapper run: best mapping (None when nothing fit) and its stats."""

    key: str
    signature_key: str
    layer: str
    precision: str
    mapping: Mapping | None
    stats: Stats


@dataclass(frozen=True)
class AccuracyResult:
    """The stored top-1 of one bit configuration and what produced it (QAT epochs or a proxy):
    ``accuracy`` on the validation split, ``test_accuracy`` on the test split (None for the
    search's own scores, which never look at the test split)."""

    key: str
    bits: tuple[tuple[int, int], ...]
    accuracy: float
    source: str
    test_accuracy: float | None = None
    equivalents: float | None = None  # cost in QAT-run equivalents (None: not recorded)


@dataclass(frozen=True)
class GenerationRecord:
    """One finished generation: the surviving population as (genome, objective values) pairs."""

    run: str
    generation: int
    population: tuple[tuple[tuple[tuple[int, int], ...], tuple[float, ...]], ...]


class Store:
    """A connection to one store file; cheap to open, one per process (never share across fork)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_S,
                                       isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the results store: {exc}", file=str(self.path),
                              field="store", fix="use a writable folder for -o / store.path") \
                from None
        self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._create_schema()

    def _create_schema(self) -> None:
        """Create tables once; upgrades a store of a compatible older schema in place (so a run
        stays resumable) and fails clearly on any other version."""
        with self.transaction() as db:
            row = db.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone()
            version = None if row is None else db.execute(
                "SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if version is not None and int(version[0]) in _UPGRADES:
                for statement in _UPGRADES[int(version[0])]:
                    db.execute(statement)
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema'",
                           (str(SCHEMA_VERSION),))
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise ConfigError(f"store schema {row[0]} is not {SCHEMA_VERSION} (written by "
                                  "another QuantMap version, which scored accuracy differently)",
                                  file=str(self.path), field="store",
                                  fix="use a new results folder or delete the old store")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock up front, so concurrent writers queue
        behind the busy timeout instead of failing halfway; rolls back on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- layer results -------------------------------------------------------------------------

    def put_layers(self, results: Sequence[LayerResult]) -> None:
        """Store mapper results in one transaction (existing keys only count a recomputation)."""
        now = time.time()
        rows = [(r.key, r.signature_key, r.layer, r.precision,
                 None if r.mapping is None else json.dumps(mapping_to_dict(r.mapping)),
                 json.dumps(r.stats.to_dict()), now) for r in results]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO layer_results (key, signature_key, layer, precision, mapping, stats,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                " recomputed = recomputed + 1", rows)

    def get_layer(self, key: str) -> LayerResult | None:
        """The result stored under ``key``, or None."""
        row = self._db.execute(
            "SELECT key, signature_key, layer, precision, mapping, stats FROM layer_results"
            " WHERE key = ?", (key,)).fetchone()
        return None if row is None else _layer_from_row(row)

    def get_layer_by_signature(self, signature_key: str) -> LayerResult | None:
        """Any result with the same packing signature (identical mapper outcome), or None."""
        row = self._db.execute(
            "SELECT key, signature_key, layer, precision, mapping, stats FROM layer_results"
            " WHERE signature_key = ? LIMIT 1", (signature_key,)).fetchone()
        return None if row is None else _layer_from_row(row)

    # -- accuracies ------------------------------------------------------------------------------

    def put_accuracy(self, result: AccuracyResult) -> None:
        """Store one candidate's accuracy (an existing key only counts a recomputation)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO accuracies (key, bits, accuracy, test_accuracy, equivalents,"
                " source, created) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
                " recomputed = recomputed + 1",
                (result.key, json.dumps(result.bits), result.accuracy, result.test_accuracy,
                 result.equivalents, result.source, time.time()))

    def get_accuracy(self, key: str) -> AccuracyResult | None:
        row = self._db.execute("SELECT key, bits, accuracy, source, test_accuracy, equivalents"
                               " FROM accuracies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return AccuracyResult(row[0], _bits(json.loads(row[1])), float(row[2]), row[3],
                              None if row[4] is None else float(row[4]),
                              None if row[5] is None else float(row[5]))

    # -- generations -----------------------------------------------------------------------------

    def put_generation(self, record: GenerationRecord) -> None:
        """Store (or replace, when a run restarts from scratch) one generation's population."""
        population = [[[list(pair) for pair in genome], list(values)]
                      for genome, values in record.population]
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?)",
                       (record.run, record.generation, json.dumps(population), time.time()))

    def drop_generations(self, run: str) -> None:
        """Forget a run's generations and evaluations (a fresh, non-resumed start); cached
        layer results and accuracies stay."""
        with self.transaction() as db:
            db.execute("DELETE FROM generations WHERE run = ?", (run,))
            db.execute("DELETE FROM evaluations WHERE run = ?", (run,))

    def generations(self, run: str) -> list[GenerationRecord]:
        """All stored generations of a run, in order."""
        rows = self._db.execute("SELECT generation, population FROM generations WHERE run = ?"
                                " ORDER BY generation", (run,)).fetchall()
        return [GenerationRecord(run, int(gen), tuple(
                    (_bits(genome), tuple(float(v) for v in values))
                    for genome, values in json.loads(text))) for gen, text in rows]

    def put_evaluations(self, run: str, generation: int, phase: str,
                        scored: Sequence[tuple[tuple[tuple[int, int], ...], tuple[float, ...]]]
                        ) -> None:
        """Record which candidates a generation scored and how (for the all-candidates table)."""
        rows = [(run, generation, json.dumps(genome), json.dumps(values), phase)
                for genome, values in scored]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?)", rows)

    def evaluations(self, run: str) -> list[tuple[int, tuple[tuple[int, int], ...],
                                                  tuple[float, ...], str]]:
        """(generation, genome, objective values, phase) of every candidate a run scored."""
        rows = self._db.execute("SELECT generation, genome, objectives, phase FROM evaluations"
                                " WHERE run = ? ORDER BY generation, rowid", (run,)).fetchall()
        return [(int(gen), _bits(json.loads(genome)), tuple(float(v) for v in json.loads(vals)),
                 phase) for gen, genome, vals, phase in rows]

    # -- failures and bookkeeping ----------------------------------------------------------------

    def put_failure(self, key: str, kind: str, message: str, attempts: int) -> None:
        """Record a job that kept failing after its retries (reported, never silently dropped)."""
        with self.transaction() as db:
            db.execute("INSERT INTO failures VALUES (?, ?, ?, ?, ?)",
                       (key, kind, message, attempts, time.time()))

    def failures(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT key, kind, message, attempts FROM failures").fetchall()
        return [dict(zip(("key", "kind", "message", "attempts"), row)) for row in rows]

    def counts(self) -> dict[str, Any]:
        """Row counts, the QAT-run equivalents every stored accuracy cost together, and the
        total number of recomputations (0 when nothing was done twice)."""
        out = {}
        for table in ("layer_results", "accuracies", "generations", "failures"):
            out[table] = int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        out["qat_equivalents"] = round(float(self._db.execute(
            "SELECT COALESCE(SUM(equivalents), 0) FROM accuracies").fetchone()[0]), 2)
        out["recomputed"] = sum(int(self._db.execute(
            f"SELECT COALESCE(SUM(recomputed), 0) FROM {table}").fetchone()[0])
            for table in ("layer_results", "accuracies"))
        return out


def _bits(raw: Any) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(w)) for a, w in raw)


def _layer_from_row(row: tuple[Any, ...]) -> LayerResult:
    key, signature_key, layer, precision, mapping, stats = row
    return LayerResult(key, signature_key, layer, precision,
                       None if mapping is None else mapping_from_dict(json.loads(mapping),
                                                                      "<store>"),
                       Stats.from_dict(json.loads(stats)))
