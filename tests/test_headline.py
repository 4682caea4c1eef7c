"""The report's headline: savings at no test-accuracy drop, judged within the seed spread."""

from __future__ import annotations

import pytest

from wrapper.explore.hardware import HardwareTotals
from wrapper.explore.headline import as_accurate, headline_row
from wrapper.explore.results import Candidate, Reference, SeedScores


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
