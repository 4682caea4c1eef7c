"""Built-in energy model: close to the real Accelergy estimates (ert_real) on the reference specs,
and sensible, documented values for the golden_var variants and other settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wrapper.engine.energy_lookup import compute_energy, storage_energies
from wrapper.engine.energy_model import (
    builtin_energy_table,
    mac_energy,
    regfile_energy,
    sram_energy,
    technology_scale,
)
from wrapper.errors import SpecError
from wrapper.spec.arch import Arch, load_arch
from wrapper.spec.ert import DRAM_PJ_PER_BIT, EnergyTable, load_energy_table
from wrapper.spec.precision import Precision
from wrapper.spec.templates import render_arch

TOLERANCE = 0.10


def _reference_arch(shared_dir: Path, tmp_path: Path, arch: str) -> Arch:
    """The golden reference spec (arch + components) as files, read by the spec layer."""
    with (shared_dir / "golden" / "cases.jsonl").open() as handle:
        record = next(r for r in map(json.loads, handle) if r["arch"] == arch)
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = [tmp_path / "arch.yaml"]
    paths[0].write_text(record["arch_yaml"])
    for name, text in record["components_yaml"].items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    return load_arch(*paths)


def _variant_arch(shared_dir: Path, variant: str) -> Arch:
    folder = shared_dir / "golden_var" / "specs" / variant
    return load_arch(folder / f"{variant}.yaml", *sorted((folder / "components").glob("*.yaml")))


def _errors_vs_real(model: EnergyTable, real: EnergyTable) -> dict[str, float]:
    """Relative error of every read/write/access/MAC energy that ert_real has."""
    errors = {}
    for component, actions in real.actions.items():
        for action, expected in actions.items():
            if action in ("read", "write"):
                got = model.action(component, action)
            elif action in ("access",):  # a register: Accelergy's one action for reads and writes
                got = model.action(component, "read")
                assert got == model.action(component, "write")
            elif action in ("compute", "mac_random"):
                got = model.action(component, "compute")
            else:
                continue  # idle, mac_reused, mac_gated: Timeloop never charges them
            assert got is not None, f"model lacks {component}.{action}"
            errors[f"{component}.{action}"] = abs(got - expected) / expected
    return errors


@pytest.mark.parametrize("arch", ["eyeriss", "simba"])
def test_reference_specs_within_10_percent_of_ert_real(shared_dir: Path, tmp_path: Path, arch: str) -> None:
    model = builtin_energy_table(_reference_arch(shared_dir, tmp_path, arch))
    real = load_energy_table(shared_dir / "golden" / "ert_real" / arch / "ERT.yaml")
    errors = _errors_vs_real(model, real)
    assert len(errors) >= 10
    worst = max(errors, key=errors.__getitem__)
    print(f"{arch}: max error {errors[worst]:.4%} ({worst}) over {len(errors)} energies")
    assert errors[worst] <= TOLERANCE, f"{arch} {worst}: {errors[worst]:.1%} off ert_real"


def test_engine_lookup_uses_the_model_table(shared_dir: Path, tmp_path: Path) -> None:
    """The table goes through the same lookup as an Accelergy ERT (no PAT fallback)."""
    arch = _reference_arch(shared_dir, tmp_path, "simba")
    table = builtin_energy_table(arch)
    for level in arch.levels:
        energies = storage_energies(level, table)
        assert energies.source == "ERT" and energies.read > 0 and energies.write > 0
    assert compute_energy(arch.arithmetic, table) == pytest.approx(3.275, rel=1e-3)


def test_eyeriss_w8_variant(shared_dir: Path, tmp_path: Path) -> None:
    """8-bit words, capacity in bits kept: the same SRAMs cost the same, the narrower weights
    SRAM less, the 8-bit MAC about 0.28x (Horowitz: quadratic multiplier); the register files
    stay within 0.9-1.2x (Aladdin's depth*log2(depth) address term grows with the doubled depth
    while the data term halves)."""
    ref = builtin_energy_table(_reference_arch(shared_dir, tmp_path, "eyeriss"))
    w8 = builtin_energy_table(_variant_arch(shared_dir, "eyeriss_w8"))
    for same in ("DRAM", "shared_glb"):
        assert w8.actions[same] == pytest.approx(ref.actions[same])
    for action in ("read", "write"):
        assert 0.5 < w8.action("weights_spad", action) / ref.action("weights_spad", action) < 0.7
        for rf in ("DummyBuffer", "ifmap_spad", "psum_spad"):
            assert 0.9 < w8.action(rf, action) / ref.action(rf, action) < 1.2, rf
    assert w8.action("mac", "compute") / ref.action("mac", "compute") == pytest.approx(0.25 / 0.9)


def test_bigger_arrays(shared_dir: Path, tmp_path: Path) -> None:
    """16x16 Eyeriss: only the global buffer changes (16384 rows instead of 12800: about 11%
    more per access, the sqrt-like capacity law); 8-PE Simba: only the PE weight buffer (512
    instead of 4096 entries: about 10x less, Aladdin's address term)."""
    eyeriss = builtin_energy_table(_reference_arch(shared_dir, tmp_path / "e", "eyeriss"))
    big = builtin_energy_table(_variant_arch(shared_dir, "eyeriss_16x16"))
    assert {k for k in big.actions if big.actions[k] != eyeriss.actions[k]} == {"shared_glb"}
    assert 1.05 < big.action("shared_glb", "read") / eyeriss.action("shared_glb", "read") < 1.2
    simba = builtin_energy_table(_reference_arch(shared_dir, tmp_path / "s", "simba"))
    small = builtin_energy_table(_variant_arch(shared_dir, "simba_8pe"))
    assert {k for k in small.actions if small.actions[k] != simba.actions[k]} == {"PEWeightBuffer"}
    assert 5 < simba.action("PEWeightBuffer", "read") / small.action("PEWeightBuffer", "read") < 15


def test_operand_width_mac_scaling_is_off_by_default(shared_dir: Path, tmp_path: Path) -> None:
    arch = _reference_arch(shared_dir, tmp_path, "eyeriss")
    default = builtin_energy_table(arch).action("mac", "compute")
    assert builtin_energy_table(arch, Precision(16, 16, 16)).action("mac", "compute") == default
    assert builtin_energy_table(arch, Precision()).action("mac", "compute") == default
    scaled = [builtin_energy_table(arch, Precision(b, b, 8)).action("mac", "compute")
              for b in (2, 4, 8, 16)]
    assert scaled == sorted(scaled) and scaled[0] > 0
    assert mac_energy(16, "45nm", (8, 4)) < mac_energy(16, "45nm", (8, 8)) < default
    assert mac_energy(16, "45nm", (32, 32)) == default  # clipped to the unit's width


def test_scaling_laws_are_monotone() -> None:
    assert technology_scale("45nm") == 1.0
    assert technology_scale("32nm") < 1.0 < technology_scale("65nm")
    assert regfile_energy(64, 16) < regfile_energy(128, 16) and regfile_energy(64, 8) < regfile_energy(64, 16)
    for action in ("read", "write"):
        assert sram_energy(1024, 64, action) < sram_energy(4096, 64, action) < sram_energy(4096, 128, action)
    assert mac_energy(8) < mac_energy(16) < mac_energy(32)
    assert sorted(DRAM_PJ_PER_BIT, key=DRAM_PJ_PER_BIT.get) == ["HBM2", "LPDDR4", "GDDR5", "DDR3"]


def test_unknown_classes_and_types_are_refused(shared_dir: Path, tmp_path: Path) -> None:
    spec = (shared_dir / "golden_var" / "specs" / "eyeriss_w8" / "eyeriss_w8.yaml").read_text()
    bad = tmp_path / "arch.yaml"
    bad.write_text(spec.replace("type: LPDDR4", "type: LPDDR9"))
    with pytest.raises(SpecError, match="unknown DRAM type 'LPDDR9'"):
        builtin_energy_table(load_arch(bad))
    bad.write_text(spec.replace("technology: 45nm", "technology: small"))
    with pytest.raises(SpecError, match="not a process node") as err:
        builtin_energy_table(load_arch(bad))
    assert err.value.file == str(bad)
    bad.write_text(spec.replace("class: regfile", "class: cam"))
    with pytest.raises(SpecError, match="no built-in energy model for class 'cam'"):
        builtin_energy_table(load_arch(bad))


def test_class_defaults_that_are_expressions_are_evaluated(tmp_path: Path) -> None:
    """A compound component's default may be arithmetic over the attributes, as in the official
    exercises' ``memory_width: max(32, width)``: it is computed per level (Accelergy's
    evaluation) and prices the level as the same value written out would."""
    files = render_arch("simba")
    component = "components/smartbuffer_RF.yaml"
    assert "memory_width: 16," in files[component]

    def table(width: str) -> EnergyTable:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        paths = []
        for name, text in files.items():
            if not name.startswith("constraints/"):
                paths.append(folder / name)
                paths[-1].parent.mkdir(parents=True, exist_ok=True)
                paths[-1].write_text(text.replace("memory_width: 16,", f"memory_width: {width},"))
        return builtin_energy_table(load_arch(*paths))

    computed, written = table("'max(64, memory_depth // 64)'"), table("64")
    assert computed.actions == written.actions
    assert computed.actions != table("16").actions
