"""The input commands of ``parity`` (parity/cli_inputs.py): ``cases`` and ``fixtures``; the bad
destinations and inputs of ``fixtures`` and ``convert`` are in io/test_cli_io.py."""

from __future__ import annotations

import numpy as np
import pytest

from parity.cli import main
from parity.io.container_npz import read_npz


def test_cases_lists_the_default_case(capsys):
    assert main(["cases"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "small" in out


def test_fixtures_writes_a_readable_container(tmp_path, capsys):
    target = tmp_path / "small.npz"
    assert main(["fixtures", "--write", "small", "-o", str(target)]) == 0
    container = read_npz(target)
    assert container.metadata.name == "small"
    assert container.object_truth is not None
    assert np.isfinite(container.diffraction).all()


@pytest.mark.parametrize(("argv", "named"), [
    (["-o", "foo.npz"], "--output needs --write CASE"),
    (["--seed", "5"], "--seed needs --write CASE"),
    (["--seed", "0", "--force"], "--seed and --force need --write CASE"),
])
def test_fixtures_options_without_write_are_usage_errors(argv, named, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fixtures", *argv]) == 2
    assert named in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_fixtures_records_the_seed_given(tmp_path, capsys):
    target = tmp_path / "s3.npz"
    assert main(["fixtures", "--write", "small", "--seed", "3", "-o", str(target)]) == 0
    assert read_npz(target).metadata.provenance["fixture_seed"] == 3
