"""Built-in energy model: energy per action for the component classes of our templates.

Used when no Accelergy ERT is given. Every figure below is a published number or a fit to the
real Accelergy 0.4 estimates of the reference designs (Aladdin tables for register files,
registers, adders and MACs; CACTI for SRAMs; CactiDRAM for DRAM), all at 45 nm. Energies are per
vector access (one access of the level's full width, ``data_delta = address_delta = 1`` in the
ERT, which is what Timeloop charges), in pJ. With the reference Eyeriss and Simba specs every
read, write and MAC energy lands within 10% of real Accelergy 0.4 estimates (see tests/test_energy_model.py); other
sizes, widths and nodes follow the scaling laws documented at each function.

Class resolution: compound classes of the templates map to one primitive plus, for the
"smartbuffer" classes, a pair of address generators (see arch_templates/components/).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from ..errors import SpecError, unknown_name_fix
from ..spec.arch import Arch, ArithmeticLevel, StorageLevel
from ..spec.ert import DRAM_PJ_PER_BIT, READ_ACTION, WRITE_ACTION, EnergyTable
from ..spec.precision import Precision
from ..spec.v04 import DUMMY_CLASS, evaluate

REFERENCE_NODE_NM = 45.0

# Nominal supply voltage per node (ITRS high-performance logic roadmap, rounded). Used only for
# technology scaling, relative to 45 nm; between entries the voltage is interpolated linearly.
_VDD_BY_NODE_NM = ((7.0, 0.70), (10.0, 0.75), (14.0, 0.80), (16.0, 0.80), (22.0, 0.80),
                   (28.0, 0.90), (32.0, 0.90), (45.0, 1.00), (65.0, 1.10), (90.0, 1.20),
                   (130.0, 1.30), (180.0, 1.80))


# Register file (Aladdin 45 nm table, as Accelergy's plug-in evaluates it). Decomposing the
# real Accelergy entries (data_delta/address_delta 1/0 and 0/1) of six register files (depth 12..8192,
# width 16 and 64) gives, exactly to the printed digits:
#   data term    = 0.009 pJ per bit of width          (0.144 at 16 bits, 0.576 at 64 bits)
#   address term = 0.000920938 pJ * depth * ceil(log2(depth))   (decoder/mux tree per entry)
REGFILE_PJ_PER_BIT = 0.009
REGFILE_ADDRESS_PJ = 0.000920938

# One address-generator step of a smartbuffer (an add on one intadder while the other idles):
# 0.21 pJ in every real Accelergy smartbuffer entry, whatever log(depth) the generator width is
# (Aladdin's intadder table has no narrower entry than 32 bits). Wider adders scale linearly
# with their width, as Horowitz (ISSCC 2014, 45 nm: 8-bit add 0.03 pJ, 32-bit add 0.1 pJ) shows.
ADDER_PJ_UP_TO_32_BITS = 0.21

# Single register (Aladdin "reg", Simba's PEWeightRegs): 0.009 pJ per access of a 16-bit register
# in the real Accelergy tables; scaled linearly with its width.
REGISTER_PJ_16_BITS = 0.009

# SRAM (CACTI as called by Accelergy). A CACTI-like power law E = k * width^a * capacity^b,
# capacity = depth * width bits, fitted exactly through the three CACTI estimates of the reference designs
# (weights_spad 224x16, Eyeriss shared_glb 12800x64 in 25 banks, Simba GlobalBuffer 2048x256 in 4
# banks), address-generator step removed. b ~ 0.43 / 0.34 is near the sqrt(capacity) wire-length
# law of CACTI; a < 1 reflects the shared decoder. Banking is not modelled (CACTI's estimates for
# the 25- and 4-bank buffers are captured by capacity and width alone).
_SRAM_FIT = {"read": (0.002364017, 0.8264935, 0.4290806),
             "write": (0.006323476, 0.9027147, 0.3352641)}

# Integer MAC. Aladdin's 45 nm 16-bit intmac: 3.275 pJ per mac_random (real Accelergy, both reference specs).
# Width dependence from Horowitz (ISSCC 2014, 45 nm): multiplier 0.2 pJ at 8 bits growing with
# the square of the width (3.1 pJ at 32 bits), adder 0.1 pJ at 32 bits growing linearly; a W-bit
# MAC = W x W multiplier + 2W-bit accumulator add. Only the ratio to 16 bits is used.
MAC_PJ_16_BITS = 3.275
_HOROWITZ_MULT_PJ_8_BITS = 0.2
_HOROWITZ_ADD_PJ_32_BITS = 0.1

# Compound classes of arch_templates/components: primitive storage class and whether the class
# has address generators. (Primitive classes map to themselves, without generators.)
_COMPOUNDS = {"smartbuffer_RF": ("regfile", True), "smartbuffer_SRAM": ("SRAM", True),
              "reg_storage": ("reg", False), "lmac": ("intmac", False)}
_STORAGE_PRIMITIVES = ("DRAM", "SRAM", "regfile", "reg")
_TECHNOLOGY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*nm\s*$")


def node_nm(technology: str | float | int | None, source: str | None = None) -> float:
    """Feature size in nm of a technology attribute ('45nm', 45 or None = 45 nm)."""
    if technology is None:
        return REFERENCE_NODE_NM
    if isinstance(technology, (int, float)) and not isinstance(technology, bool):
        return float(technology)
    match = _TECHNOLOGY.match(str(technology))
    if not match:
        raise SpecError(f"technology '{technology}' is not a process node like '45nm'",
                        file=source, field="attributes.technology", fix="write e.g. technology: 45nm")
    return float(match[1])


def _vdd(node: float) -> float:
    nodes = [n for n, _ in _VDD_BY_NODE_NM]
    if node <= nodes[0]:
        return _VDD_BY_NODE_NM[0][1]
    if node >= nodes[-1]:
        return _VDD_BY_NODE_NM[-1][1]
    for (n0, v0), (n1, v1) in zip(_VDD_BY_NODE_NM, _VDD_BY_NODE_NM[1:]):
        if n0 <= node <= n1:
            return v0 + (v1 - v0) * (node - n0) / (n1 - n0)
    raise AssertionError("unreachable: node within the table range")


def technology_scale(technology: str | float | int | None) -> float:
    """Energy of on-chip logic/SRAM at ``technology`` relative to 45 nm.

    First-order CV^2 scaling: switched capacitance proportional to feature size, supply voltage
    from the table above. Only 45 nm is checked against real estimates.
    """
    node = node_nm(technology)
    return (node / REFERENCE_NODE_NM) * (_vdd(node) / _vdd(REFERENCE_NODE_NM)) ** 2


def regfile_energy(depth: int, width_bits: int, technology: Any = None) -> float:
    """Register-file access (read or write, same energy) in pJ: data term + address term."""
    address = REGFILE_ADDRESS_PJ * depth * math.ceil(math.log2(depth)) if depth > 1 else 0.0
    return (REGFILE_PJ_PER_BIT * width_bits + address) * technology_scale(technology)


def sram_energy(depth: int, width_bits: int, action: str, technology: Any = None) -> float:
    """SRAM vector access in pJ (``action`` 'read' or 'write'), CACTI-like power law."""
    k, a, b = _SRAM_FIT[action]
    return k * width_bits ** a * (depth * width_bits) ** b * technology_scale(technology)


def register_energy(width_bits: int, technology: Any = None) -> float:
    """Access of a single register in pJ, linear in its width."""
    return REGISTER_PJ_16_BITS * width_bits / 16 * technology_scale(technology)


def adder_energy(width_bits: float, technology: Any = None) -> float:
    """Integer add in pJ: flat up to 32 bits (Aladdin table), linear above (Horowitz)."""
    return ADDER_PJ_UP_TO_32_BITS * max(1.0, width_bits / 32) * technology_scale(technology)


def _horowitz_mac(multiplier_bits_product: float, accumulator_bits: float) -> float:
    return (_HOROWITZ_MULT_PJ_8_BITS * multiplier_bits_product / 64
            + _HOROWITZ_ADD_PJ_32_BITS * accumulator_bits / 32)


def mac_energy(datawidth: int, technology: Any = None,
               operand_bits: tuple[int, int] | None = None) -> float:
    """Integer MAC of a ``datawidth``-bit unit in pJ.

    ``operand_bits`` (input bits, weight bits) is the optional operand-width scaling (off by
    default, as in the paper, where MAC energy does not change with bit width): the multiplier
    part scales with the product of the operand widths (partial products that toggle), the
    ``2 * datawidth``-bit accumulator stays. Operands wider than the unit are clipped to it.
    """
    full = _horowitz_mac(datawidth * datawidth, 2 * datawidth)
    if operand_bits is None:
        used = full
    else:
        bits_in, bits_w = (min(int(b), datawidth) for b in operand_bits)
        used = _horowitz_mac(bits_in * bits_w, 2 * datawidth)
    return MAC_PJ_16_BITS * used / _horowitz_mac(16 * 16, 32) * technology_scale(technology)


def dram_energy(dram_type: str, width_bits: int, source: str | None = None) -> float:
    """One DRAM access of ``width_bits`` in pJ (technology independent)."""
    if dram_type not in DRAM_PJ_PER_BIT:
        raise SpecError(f"unknown DRAM type '{dram_type}'", file=source, field="attributes.type",
                        fix=unknown_name_fix(str(dram_type), DRAM_PJ_PER_BIT, "DRAM types"))
    return DRAM_PJ_PER_BIT[dram_type] * width_bits


def _attributes(cls: str, attrs: Mapping[str, Any], components: Mapping[str, Any]
                ) -> dict[str, Any]:
    """Class defaults overridden by the level's attributes (Accelergy precedence). A default
    may be an expression over the attributes (``memory_width: max(32, width)``): the defaults
    are evaluated in order, each seeing the level's attributes and the defaults before it."""
    defaults = (components.get(cls) or {}).get("attributes") or {}
    scope = {**defaults, **attrs}
    for key, value in defaults.items():
        if key not in attrs:
            try:
                scope[key] = evaluate(value, scope, f"{cls}.attributes.{key}", None)
            except SpecError:  # over a value the level leaves unset: unused unless read
                pass
    return scope


def _first_int(attrs: Mapping[str, Any], *keys: str, level: str = "",
               source: str | None = None) -> int | None:
    for key in keys:
        if attrs.get(key) is not None:
            try:
                return int(attrs[key])
            except (TypeError, ValueError):
                raise SpecError(f"attribute {key} = '{attrs[key]}' is not a number",
                                file=source, field=f"{level}.attributes.{key}",
                                fix="give the level a number for it, or an Accelergy ERT"
                                ) from None
    return None


def storage_action_energies(level: StorageLevel, components: Mapping[str, Any] | None = None,
                            source: str | None = None) -> dict[str, float]:
    """``read`` and ``write`` energy of one vector access of ``level`` (Timeloop charges fills
    and updates as writes). ``source`` (the spec file) goes into error messages."""
    if level.cls == DUMMY_CLASS:  # a fan-out stand-in is never accessed
        return _same(0.0)
    primitive, has_generators = _COMPOUNDS.get(level.cls, (level.cls, False))
    if primitive not in _STORAGE_PRIMITIVES:
        raise SpecError(f"no built-in energy model for class '{level.cls}' of level '{level.name}'",
                        file=source, field=f"{level.name}.class",
                        fix="give an Accelergy ERT, or use one of the classes "
                            f"{', '.join([*_STORAGE_PRIMITIVES, *_COMPOUNDS])}")
    attrs = _attributes(level.cls, level.attributes, components or {})
    where = {"level": level.name, "source": source}
    width = (_first_int(attrs, "memory_width", "width", **where)
             or level.word_bits * level.block_size)
    if primitive == "DRAM":  # untyped DRAM: LPDDR4, the type of every reference spec
        return _same(dram_energy(str(attrs.get("type", "LPDDR4")), width, source))
    technology = node_nm(attrs.get("technology"), source)
    if primitive == "reg":
        return _same(register_energy(_first_int(attrs, "width", "word-bits", **where)
                                     or level.word_bits,
                                     technology))
    depth = _first_int(attrs, "memory_depth", "depth", **where)
    if depth is None:
        raise SpecError(f"level '{level.name}' has no depth", file=source,
                        field=f"{level.name}.attributes.depth",
                        fix="add memory_depth (entries) to the level")
    step = adder_energy(math.log2(max(depth, 2)), technology) if has_generators else 0.0
    if primitive == "regfile":
        return _same(regfile_energy(depth, width, technology) + step)
    return {READ_ACTION: sram_energy(depth, width, "read", technology) + step,
            WRITE_ACTION: sram_energy(depth, width, "write", technology) + step}


def arithmetic_energy(level: ArithmeticLevel, components: Mapping[str, Any] | None = None,
                      operand_bits: tuple[int, int] | None = None, source: str | None = None) -> float:
    """Energy of one MAC of ``level`` (optionally scaled to the operand widths, see mac_energy)."""
    primitive, _ = _COMPOUNDS.get(level.cls, (level.cls, False))
    if primitive != "intmac":
        raise SpecError(f"no built-in energy model for class '{level.cls}' of '{level.name}'",
                        file=source, field=f"{level.name}.class",
                        fix="give an Accelergy ERT, or use intmac/lmac")
    attrs = _attributes(level.cls, level.attributes, components or {})
    width = _first_int(attrs, "datawidth", "word-bits", level=level.name, source=source) \
        or level.word_bits
    return mac_energy(width, node_nm(attrs.get("technology"), source), operand_bits)


def _same(energy: float) -> dict[str, float]:
    return {READ_ACTION: energy, WRITE_ACTION: energy}


def builtin_energy_table(arch: Arch, precision: Precision | None = None) -> EnergyTable:
    """The EnergyTable of ``arch`` from this model: read/write per storage level, ``compute``
    for the MAC. ``precision`` switches on operand-width MAC scaling (off when None)."""
    operands = None
    if precision is not None:
        width = arch.arithmetic.word_bits
        operands = (precision.inputs or width, precision.weights or width)
    actions = {level.name: storage_action_energies(level, arch.components, arch.source)
               for level in arch.levels}
    actions[arch.arithmetic.name] = {"compute": arithmetic_energy(
        arch.arithmetic, arch.components, operands, arch.source)}
    return EnergyTable(actions, {}, "built-in energy model (wrapper/engine/energy_model.py)")
