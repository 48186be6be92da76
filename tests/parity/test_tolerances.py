"""The tolerance file as a user edits it (parity/tolerances.py): bad values are named with the
file and the entry before any work; a loose pattern never silently shadows an entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.tolerances import AmbiguousToleranceError, load_table

ENTRY = '''[[tolerance]]
level = "L1"
stage = "translated"
quantity = "{quantity}"
dtype = "*"
device = "*"
rtol = {rtol}
atol = {atol}
reason = "f32 vs f64"
{extra}
'''


def _table(tmp_path: Path, *entries: str, head: str = "") -> Path:
    path = tmp_path / "tolerances.toml"
    path.write_text(head + "\n".join(entries))
    return path


def _entry(quantity: str = "*", rtol: str = "1e-5", atol: str = "1e-6", extra: str = "") -> str:
    return ENTRY.format(quantity=quantity, rtol=rtol, atol=atol, extra=extra)


@pytest.mark.parametrize(("fields", "needle"), [
    ({"rtol": "true"}, "rtol=True; expected a finite number >= 0"),
    ({"atol": "nan"}, "atol=nan; expected a finite number >= 0"),
    ({"atol": "-1.0"}, "atol=-1.0; expected a finite number >= 0"),
    ({"rtol": '"1e-5"'}, "rtol='1e-5'; expected a finite number"),
    ({"extra": "max_fraction = 1.5"}, "max_fraction=1.5; expected a finite number >= 0, < 1"),
    ({"extra": "min_cosine = 2.0"}, "min_cosine=2.0; expected a finite number >= -1, <= 1"),
    ({"extra": 'atol_scale = "maxabs"'}, "expected one of absolute, max_abs, group_max_abs"),
])
def test_bad_values_name_the_file_entry_and_field(tmp_path: Path, fields: dict[str, str],
                                                  needle: str) -> None:
    path = _table(tmp_path, _entry(), _entry(quantity="translated", **fields))
    with pytest.raises(ValueError) as info:
        load_table(path)
    message = str(info.value)
    assert str(path) in message and "[[tolerance]] entry 2" in message and needle in message


@pytest.mark.parametrize(("old", "new", "needle"), [
    ('level = "L1"', 'level = "l1"', "level='l1'; expected one of L0, L1, L2, L3, L4, L5"),
    ('device = "*"', 'device = "gpu"', "device='gpu'; expected one of *, cpu, cuda"),
])
def test_a_key_no_check_could_match_is_refused(tmp_path: Path, old: str, new: str,
                                               needle: str) -> None:
    """A misspelt level or device would make the entry match nothing, silently."""
    path = _table(tmp_path, _entry(), _entry(quantity="translated").replace(old, new))
    with pytest.raises(ValueError) as info:
        load_table(path)
    message = str(info.value)
    assert str(path) in message and "[[tolerance]] entry 2" in message and needle in message


def test_a_misspelt_table_is_refused_not_read_as_empty(tmp_path: Path) -> None:
    path = _table(tmp_path, _entry().replace("[[tolerance]]", "[[tolerances]]"))
    with pytest.raises(ValueError, match=r"unknown table\(s\) \['tolerances'\]"):
        load_table(path)


def test_the_most_specific_entry_wins_whatever_the_order(tmp_path: Path) -> None:
    for order in ((_entry("*", rtol="10"), _entry("translated")),
                  (_entry("translated"), _entry("*", rtol="10"))):
        table = load_table(_table(tmp_path, *order))
        assert table.lookup(level="L1", stage="translated", quantity="translated",
                            dtype="float32", device="cpu").rtol == 1e-5


def test_equally_specific_entries_matching_one_check_are_an_error(tmp_path: Path) -> None:
    """A loose 'transl*' placed before the '*' entry used to win silently (first in the file)."""
    table = load_table(_table(tmp_path, _entry("transl*", rtol="10", atol="10"), _entry("*")))
    with pytest.raises(AmbiguousToleranceError, match="equally specific"):
        table.lookup(level="L1", stage="translated", quantity="translated", dtype="float32",
                     device="cpu")
    with pytest.raises(KeyError):  # the judge turns both into an ``error`` check
        table.lookup(level="L1", stage="translated", quantity="translated", dtype="float32",
                     device="cpu")


def test_the_projects_table_has_no_equally_specific_pair() -> None:
    table = load_table()
    for entry in table.entries:
        quantity = entry.quantity.replace("*", "x").replace("?", "x")
        table.lookup(level=entry.level, stage=entry.stage, quantity=quantity,
                     dtype="float32" if entry.dtype == "*" else entry.dtype,
                     device="cpu" if entry.device == "*" else entry.device)


def test_a_misspelt_dtype_is_refused(tmp_path: Path) -> None:
    """The judge looks tolerances up at ``float32``: an entry keyed ``flaot32`` matched nothing
    and loaded without a word."""
    path = _table(tmp_path, _entry(), _entry(quantity="translated").replace(
        'dtype = "*"', 'dtype = "flaot32"'))
    with pytest.raises(ValueError) as info:
        load_table(path)
    message = str(info.value)
    assert str(path) in message and "[[tolerance]] entry 2" in message
    assert "dtype='flaot32'; expected one of *, float16, bfloat16, float32, float64" in message
