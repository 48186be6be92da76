"""Sub-commands beyond the core set: self-test, flake check and benchmarks."""

from __future__ import annotations

from typing import Any

__all__ = ["add_extra_commands"]


def add_extra_commands(sub: Any) -> None:
    """Register ``selftest``, ``bench``, ``flake`` and ``export`` on the ``parity`` sub-parser set."""
    from parity.selftest import add_selftest_command

    add_selftest_command(sub)
    from parity.cli_bench import add_bench_command

    add_bench_command(sub)
    from parity.flake import add_flake_command

    add_flake_command(sub)
    from parity.cli_export import add_export_command

    add_export_command(sub)


