"""The final evaluation's choice and the report's headline: savings at no accuracy drop, decided
on validation within the seed spread, reported with test top-1."""

from __future__ import annotations

import pytest

from wrapper.errors import ConfigError
from wrapper.explore.hardware import HardwareTotals
from wrapper.explore.headline import as_accurate, headline_row
from wrapper.explore.nsga2 import Objective
from wrapper.explore.results import Candidate, Reference, SeedScores
from wrapper.explore.selection import choose_final, claimants
from wrapper.explore.store import AccuracyResult


def _candidate(energy: float) -> Candidate:
    hardware = HardwareTotals(energy_pj=energy, cycles=1.0, edp=energy, dram_accesses=1.0,
                              memory_bits=1, valid=True)
    return Candidate(genome=((8, 8),), hardware=hardware, accuracy=None)


def _scores(*test: float) -> SeedScores:
    return SeedScores(val=test, test=test)


UNIFORM = [Reference(2, _candidate(20.0), _scores(0.10, 0.12, 0.11)),
           Reference(4, _candidate(50.0), _scores(0.90, 0.92, 0.91)),
           Reference(8, _candidate(100.0), _scores(0.95, 0.96, 0.97))]


def test_no_drop_means_within_the_larger_seed_spread() -> None:
    assert as_accurate(_scores(0.95, 0.96, 0.97), _scores(0.95, 0.96, 0.97))
    assert as_accurate(_scores(0.945, 0.955, 0.965), _scores(0.95, 0.96, 0.97))
    assert not as_accurate(_scores(0.90, 0.91, 0.92), _scores(0.95, 0.96, 0.97))


def test_savings_against_8_bit_and_the_cheapest_uniform_as_accurate() -> None:
    points = [("P01", _candidate(70.0), _scores(0.955, 0.96, 0.965)),  # as accurate as U8
              ("P02", _candidate(30.0), _scores(0.895, 0.905, 0.915)),  # about as good as U4
              ("P03", _candidate(10.0), _scores(0.50, 0.52, 0.54))]    # a real drop
    row = headline_row("energy", points, UNIFORM)
    assert row.vs_widest is not None
    assert (row.vs_widest.point, row.vs_widest.reference) == ("P01", "U8")
    assert row.vs_widest.saving == pytest.approx(0.30)
    # P02 against U4 (the cheapest uniform as accurate) saves 40%; P01 against U8 30%;
    # P03 is far less accurate than U4 (the cheapest uniform that reaches its accuracy): no
    # uniform configuration is at its accuracy, so it makes no claim.
    assert row.vs_same_accuracy is not None
    assert (row.vs_same_accuracy.point, row.vs_same_accuracy.reference) == ("P02", "U4")
    assert row.vs_same_accuracy.saving == pytest.approx(0.40)


def test_no_claim_when_every_point_loses_accuracy() -> None:
    row = headline_row("energy", [("P01", _candidate(10.0), _scores(0.5, 0.5, 0.5))],
                       UNIFORM[1:])
    assert row.vs_widest is None and row.vs_same_accuracy is None


def _scored(genome: tuple[tuple[int, int], ...], energy: float, memory: int,
            val: float) -> Candidate:
    hardware = HardwareTotals(energy_pj=energy, cycles=1.0, edp=energy, dram_accesses=1.0,
                              memory_bits=memory, valid=True)
    return Candidate(genome, hardware, AccuracyResult("k", genome, val, "qat-1ep"))


OBJECTIVES = (Objective("accuracy", maximize=True), Objective("energy"), Objective("memory"))


def test_front_points_dominating_a_uniform_reference_are_always_evaluated() -> None:
    # The default run's failure: evenly spaced picks take the all-2-bit end and the front
    # points equal to uniform references, and miss P04 (U4's validation accuracy at 13.5% less
    # energy).
    u2, u4, u8 = (tuple([(b, b)] * 3) for b in (2, 4, 8))
    uniform = [_scored(u2, 20.0, 60, 0.10), _scored(u4, 50.0, 120, 0.90),
               _scored(u8, 100.0, 240, 0.96)]
    front = [uniform[2],
             _scored(((8, 8), (4, 4), (8, 8)), 80.0, 200, 0.95),
             _scored(((8, 8), (2, 2), (8, 8)), 70.0, 180, 0.93),
             _scored(((4, 4), (4, 4), (8, 4)), 43.25, 110, 0.90),  # dominates U4
             uniform[1],
             _scored(((4, 4), (2, 2), (2, 2)), 30.0, 80, 0.40),
             uniform[0]]
    assert claimants(front, uniform, OBJECTIVES) == [3]  # the only point that can claim
    chosen = choose_final(front, uniform, OBJECTIVES, points=1)
    assert chosen == [3]  # always in, and it fills the one slot
    assert choose_final(front, uniform, OBJECTIVES, points=0) == [3]  # even with no slots
    wider = choose_final(front, uniform, OBJECTIVES, points=3)
    assert wider[:1] == chosen and len(wider) == 3  # more points only add rows
    assert not {0, 4, 6} & set(wider)  # uniform configurations are the references


def test_the_claim_is_decided_on_validation_not_test() -> None:
    # P01 and P02 both pass on validation; P02 would win on test alone if test decided.
    points = [("P01", _candidate(60.0), SeedScores(val=(0.955, 0.96, 0.965),
                                                   test=(0.90, 0.91, 0.92))),
              ("P02", _candidate(80.0), SeedScores(val=(0.90, 0.90, 0.90),
                                                   test=(0.97, 0.98, 0.99)))]
    row = headline_row("energy", points, UNIFORM)
    assert row.vs_widest is not None and row.vs_widest.point == "P01"
    scrambled = [(name, cand, SeedScores(scores.val, tuple(reversed(points[1 - i][2].test))))
                 for i, (name, cand, scores) in enumerate(points)]
    again = headline_row("energy", scrambled, UNIFORM)
    assert again.vs_widest is not None
    assert ((again.vs_widest.point, again.vs_widest.reference, again.vs_widest.saving)
            == (row.vs_widest.point, row.vs_widest.reference, row.vs_widest.saving))
    assert row.vs_same_accuracy is not None and again.vs_same_accuracy is not None
    assert ((again.vs_same_accuracy.point, again.vs_same_accuracy.reference)
            == (row.vs_same_accuracy.point, row.vs_same_accuracy.reference))


def test_a_missing_uniform_reference_is_an_error_naming_the_setting() -> None:
    missing = [*UNIFORM[:2], Reference(8, _candidate(100.0), None)]
    with pytest.raises(ConfigError, match="U8 has no final evaluation") as error:
        headline_row("energy", [("P01", _candidate(70.0), _scores(0.96))], missing)
    assert error.value.field == "search.bits"
