"""Per-dataspace bit widths of one layer and the word-packing rules (docs/packing.md).

This module is the single place that decides how many operands share a hardware word; the
built-in engine, the mapper, the Timeloop backend and the patch rules all ask it, so they can
never disagree about packing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from ..errors import PrecisionError, unknown_name_fix

DATASPACES: tuple[str, ...] = ("Weights", "Inputs", "Outputs")


@dataclass(frozen=True)
class Precision:
    """Bit widths of the Inputs, Weights and Outputs of one layer; None means native word width."""

    inputs: int | None = None
    weights: int | None = None
    outputs: int | None = None

    def bits(self, dataspace: str) -> int | None:
        """The bit width of a dataspace by its Timeloop name (Inputs, Weights, Outputs)."""
        try:
            return {"Inputs": self.inputs, "Weights": self.weights, "Outputs": self.outputs}[dataspace]
        except KeyError:
            raise PrecisionError(f"unknown dataspace '{dataspace}'", field="bitwidths",
                                 fix=unknown_name_fix(dataspace, DATASPACES, "dataspaces")) from None

    @property
    def is_native(self) -> bool:
        """True when no dataspace has a bit width (stock Timeloop behaviour)."""
        return self.inputs is None and self.weights is None and self.outputs is None

    @classmethod
    def uniform(cls, bits: int | None) -> "Precision":
        """All three dataspaces at the same width (the fork's ``commonBitwidth``)."""
        return cls(bits, bits, bits)

    @classmethod
    def from_bitwidths(cls, mapping: Mapping[str, object] | None, *, file: str | None = None,
                       field: str = "problem.instance.bitwidths") -> "Precision":
        """Build from the fork's ``bitwidths:`` map; missing dataspaces stay native."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise PrecisionError("expected a map like {Inputs: 8, Weights: 4, Outputs: 8}",
                                 file=file, field=field, fix="write one integer per dataspace")
        values: dict[str, int] = {}
        for key, value in mapping.items():
            if key not in DATASPACES:
                raise PrecisionError(f"unknown dataspace '{key}'", file=file, field=f"{field}.{key}",
                                     fix=unknown_name_fix(str(key), DATASPACES, "dataspaces"))
            if isinstance(value, bool) or not isinstance(value, int):
                raise PrecisionError(f"bit width {value!r} is not an integer", file=file,
                                     field=f"{field}.{key}", fix="use a whole number of bits, e.g. 8")
            if value <= 0:
                raise PrecisionError(f"bit width {value} must be > 0", file=file,
                                     field=f"{field}.{key}", fix="use a whole number of bits >= 1")
            values[str(key)] = value
        return cls(values.get("Inputs"), values.get("Weights"), values.get("Outputs"))

    def to_bitwidths(self) -> dict[str, int]:
        """The fork's ``bitwidths:`` map (only dataspaces that have a width)."""
        pairs = (("Inputs", self.inputs), ("Weights", self.weights), ("Outputs", self.outputs))
        return {name: bits for name, bits in pairs if bits is not None}

    @classmethod
    def from_label(cls, label: str, *, field: str = "--bits") -> "Precision":
        """Inverse of :meth:`label`: ``i8w4o8`` (``-`` = native width) or ``native``/``none``."""
        text = label.strip().lower()
        if text in ("native", "none"):
            return cls()
        match = re.fullmatch(r"i(\d+|-)w(\d+|-)o(\d+|-)", text)
        if match is None:
            raise PrecisionError(f"bad bit-width label '{label}'", file="<command line>",
                                 field=field, fix="write i<A>w<W>o<O>, e.g. i8w4o8, or 'native'")
        widths = dict(zip(("Inputs", "Weights", "Outputs"), match.groups()))
        return cls.from_bitwidths({k: int(v) for k, v in widths.items() if v != "-"},
                                  file="<command line>", field=field)

    def label(self) -> str:
        """A short name such as ``i8w4o8`` (``native`` when no widths are set)."""
        if self.is_native:
            return "native"
        return "".join(f"{p}{'-' if b is None else b}" for p, b in
                       (("i", self.inputs), ("w", self.weights), ("o", self.outputs)))


def packing_problem(bits: int | None, word_bits: int) -> str | None:
    """Why ``bits`` cannot be stored in ``word_bits``-bit words, or None when it can."""
    if bits is None:
        return None
    if bits <= 0:
        return f"bit width {bits} must be > 0"
    if bits > word_bits:
        return f"bit width {bits} is wider than the {word_bits}-bit word"
    return None


def packing_factor(bits: int | None, word_bits: int) -> int:
    """Operands per hardware word: floor(W / b) where b is set and differs from W, else 1.

    Raises PrecisionError for b > W or b <= 0 (the real fork aborts there; we explain instead).
    """
    problem = packing_problem(bits, word_bits)
    if problem is not None:
        raise PrecisionError(problem, field="bitwidths",
                             fix=f"use a bit width between 1 and {word_bits}")
    if bits is None or bits == word_bits:
        return 1
    return word_bits // bits


def wasted_bits(bits: int | None, word_bits: int) -> int:
    """Bits per word left unused because an operand never straddles two words."""
    packing_factor(bits, word_bits)  # validates
    return 0 if bits is None else word_bits % bits


def packed_count(count: int, k: int) -> int:
    """Number of words that ``count`` operands occupy at ``k`` operands per word: ceil(count/k)."""
    return -(-count // k)
