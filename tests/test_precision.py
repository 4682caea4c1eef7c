"""The packing rules of METHOD.md section 2, the one place every engine asks."""

from __future__ import annotations

import pytest

from wrapper.errors import PrecisionError
from wrapper.spec.precision import Precision, packed_count, packing_factor, wasted_bits


@pytest.mark.parametrize("word_bits,expected", [
    (16, {2: 8, 3: 5, 4: 4, 5: 3, 6: 2, 7: 2, 8: 2}),   # METHOD.md cheat sheet
    (8, {2: 4, 3: 2, 4: 2, 5: 1, 6: 1, 7: 1, 8: 1}),
])
def test_packing_factor_cheat_sheet(word_bits, expected):
    assert {b: packing_factor(b, word_bits) for b in expected} == expected


def test_native_and_full_width_do_not_pack():
    assert packing_factor(None, 16) == 1
    assert packing_factor(16, 16) == 1
    assert wasted_bits(None, 16) == 0 and wasted_bits(16, 16) == 0


def test_wasted_bits_are_the_remainder_of_the_word():
    assert wasted_bits(3, 16) == 1   # five 3-bit operands use 15 of 16 bits
    assert wasted_bits(6, 16) == 4   # two 6-bit operands use 12 bits
    assert wasted_bits(9, 16) == 7   # one operand per word, the rest is unused


@pytest.mark.parametrize("bits", [17, 32, 0, -1])
def test_unstorable_widths_are_refused_with_a_reason(bits):
    with pytest.raises(PrecisionError, match=str(bits)):
        packing_factor(bits, 16)


def test_packed_count_rounds_up():
    assert packed_count(10, 4) == 3 and packed_count(8, 4) == 2 and packed_count(0, 4) == 0


@pytest.mark.parametrize("label", ["i8w4o8", "i2w-o16", "native"])
def test_label_round_trip(label):
    assert Precision.from_label(label).label() == label
