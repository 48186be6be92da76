"""The exit codes of the ``parity`` command, and the exception that means "bad input" (code 2).

The sub-command modules (``parity.cli_run``, ``parity.cli_inputs``, ``parity.cli_bundles``) and
``parity.cli.main`` both import from here, so that no command module imports the entry point.
The meaning of each code is documented in ``parity.cli``.
"""

from __future__ import annotations

__all__ = [
    "EXIT_BACKEND_FAILED",
    "EXIT_BROKEN_PIPE",
    "EXIT_DIVERGENCE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "UsageError",
]

EXIT_OK = 0
EXIT_DIVERGENCE = 1
EXIT_USAGE = 2
EXIT_BACKEND_FAILED = 3
#: A harness bug; without it Python's own exit status 1 would read as "divergence".
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """Bad input or options (exit code 2)."""
