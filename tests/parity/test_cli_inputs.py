"""The input commands of ``parity`` (parity/cli_inputs.py): ``cases`` and ``fixtures``; the bad
destinations and inputs of ``fixtures`` and ``convert`` are in io/test_cli_io.py."""

from __future__ import annotations

import numpy as np

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
