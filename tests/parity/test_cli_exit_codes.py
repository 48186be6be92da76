"""The exit codes of ``parity`` (parity/cli_exit_codes.py): stable values, one meaning each, and
the same codes importable from the entry point ``parity.cli``."""

from __future__ import annotations

import parity.cli
from parity import cli_exit_codes

#: The values the module doc of ``parity.cli`` and the README promise (scripts and CI read them).
DOCUMENTED = {"EXIT_OK": 0, "EXIT_DIVERGENCE": 1, "EXIT_USAGE": 2, "EXIT_BACKEND_FAILED": 3,
              "EXIT_INTERNAL": 4, "EXIT_INTERRUPTED": 130, "EXIT_BROKEN_PIPE": 141,
              "EXIT_TERMINATED": 143}


def test_exit_codes_keep_their_documented_values():
    codes = {name: getattr(cli_exit_codes, name) for name in cli_exit_codes.__all__
             if name.startswith("EXIT_")}
    assert codes == DOCUMENTED


def test_the_entry_point_exports_the_same_codes():
    for name in DOCUMENTED:
        assert name in parity.cli.__all__
        assert getattr(parity.cli, name) == getattr(cli_exit_codes, name)
    assert parity.cli.UsageError is cli_exit_codes.UsageError
