"""The known-divergence registry as a user edits it (parity/divergences.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.divergences import Divergence, DivergenceRegistry, load_registry

ENTRY = '''[[divergence]]
id = "D-1"
backend = "torch"
level = "L1"
stage = "translated"
quantity = "*"
rtol = 1e-3
atol = 1e-4
reason = "offset sign under investigation"
'''


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('reason = "offset sign under investigation"', 'reason = ""', "has no reason"),
    ("atol = 1e-4", "atol = -1.0", "atol=-1.0; expected a finite number >= 0"),
    ("rtol = 1e-3", "rtol = true", "rtol=True"),
    ('quantity = "*"', 'quantity = "*"\ndevice = "gpu"', "device='gpu'; expected one of"),
    ('level = "L1"', 'level = "L6"', "level='L6'; expected one of L0, L1"),
    ("[[divergence]]", "[[divergences]]", "unknown table(s) ['divergences']"),
])
def test_bad_entries_are_named_with_the_file(tmp_path: Path, old: str, new: str,
                                             needle: str) -> None:
    path = tmp_path / "divergences.toml"
    path.write_text(ENTRY.replace(old, new))
    with pytest.raises(ValueError) as info:
        load_registry(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_allowances_that_match_no_check_of_the_run_are_listed() -> None:
    used = Divergence("D-1", "torch", "L1", "translated", "*", 1e-3, 1e-4, "reason")
    typo = Divergence("D-2", "torch", "L1", "translate", "*", 1e-3, 1e-4, "reason")
    other_level = Divergence("D-3", "torch", "L3", "grad", "*", 1e-3, 1e-4, "reason")
    gpu_only = Divergence("D-4", "torch", "L1", "translated", "*", 1e-3, 1e-4, "reason",
                          device="cuda")
    registry = DivergenceRegistry([used, typo, other_level, gpu_only], source="x.toml")
    assert registry.find(backend="torch", level="L1", stage="translated",
                         quantity="translated", device="cpu") is used
    unmatched = registry.unmatched(levels=("L0", "L1", "L2"), backends=("tensorflow", "torch"),
                                   device="cpu")
    assert [e.id for e in unmatched] == ["D-2"]  # L3 did not run; D-4 is for another device
