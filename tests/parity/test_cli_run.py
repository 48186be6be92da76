"""Option parsing of ``parity run`` (parity/cli_run.py); the command itself is tested through
``parity.cli.main`` in test_cli.py."""

from __future__ import annotations

from parity.cli_run import _parse_overrides


def test_python_spellings_of_json_values_are_understood():
    assert _parse_overrides(["deterministic=True", "fast = false", "x=None"], "train") == \
        {"deterministic": True, "fast": False, "x": None}
