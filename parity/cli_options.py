"""Parsing and checking of the options several ``parity`` sub-commands share.

Each check runs before any work, so a typo costs nothing and never loses a finished run: a bad
value raises ``ValueError`` naming the option and the problem, which the command line turns into
one ``parity: error:`` line and exit code 2.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_REPORTS", "check_device", "check_positive", "output_file", "parse_levels", "parse_names",
           "reports_dir"]


#: The reports root of every command that writes or reads bundles when ``--out`` is not given.
DEFAULT_REPORTS = Path("reports")

def parse_levels(text: str, *, option: str = "--levels") -> tuple[str, ...]:
    """``L0,L2`` / ``l3`` / ``all`` -> the levels in ladder order.

    Raises
    ------
    ValueError
        No level, a name outside :data:`parity.results.LEVELS`, ``all`` together with other
        names, or a level given twice (likely a typo for another level).
    """
    from parity.results import LEVELS

    levels = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    if levels == ("ALL",):
        return LEVELS
    if "ALL" in levels:
        raise ValueError(f"{option} {text!r}: 'all' cannot be combined with other levels; give "
                         "'all' alone or a comma list of levels")
    repeated = sorted({lv for lv in levels if levels.count(lv) > 1})
    if repeated:
        raise ValueError(f"{option} {text!r}: level(s) {', '.join(repeated)} given twice; give "
                         "each level once")
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ValueError(f"{option} {text!r}: unknown level(s) {bad}; choose from "
                         f"{', '.join(LEVELS)}, or 'all'" if bad else
                         f"{option} {text!r}: no level given; choose from {', '.join(LEVELS)}, "
                         "or 'all'")
    return tuple(lv for lv in LEVELS if lv in levels)


def parse_names(text: str | None) -> tuple[str, ...]:
    """A comma list (``"tensorflow, torch"``) -> its stripped, non-empty names, in order."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def reports_dir(text: str, *, option: str = "--out") -> Path:
    """The directory new bundles go to: created when missing, and checked to be writable.

    Raises
    ------
    ValueError
        The path is a file or a finished bundle, cannot be created, or is not writable.
    """
    # The check ``parity list`` makes (it owns what counts as a bundle): a new bundle written
    # inside a finished one would hide in it.
    from parity.report.runs import check_reports_root

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {text!r} is a file, not a directory for report bundles")
    try:
        check_reports_root(path)
    except ValueError as err:
        raise ValueError(f"{option} {text!r}: {err}") from err
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{option} {text!r}: cannot create the reports directory "
                         f"({err.strerror or err})") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {text!r}: the reports directory is not writable")
    return path


def output_file(text: str, *, option: str) -> Path:
    """A file a command will write when it ends (e.g. ``--json``); checked before any work.

    An existing file is replaced (the option's help says so); a directory, a missing parent
    directory or an unwritable one is an error.

    Raises
    ------
    ValueError
        The path is a directory, its parent does not exist, or it cannot be written.
    """
    path = Path(text)
    if path.is_dir() or not path.name:
        raise ValueError(f"{option} {text!r} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {text!r}: directory {str(parent)!r} does not exist")
    writable = os.access(path, os.W_OK) if path.exists() else os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        raise ValueError(f"{option} {text!r} cannot be written (permission denied)")
    return path


#: Device requests every backend understands: ``auto``, ``cpu``, ``cuda`` / ``gpu`` (the same
#: accelerator), optionally with an index (``cuda:1``), or TensorFlow's ``/CPU:0`` / ``/GPU:0``.
_DEVICE = re.compile(r"(auto|cpu|cuda|gpu)(:\d+)?|/(cpu|gpu):\d+", re.IGNORECASE)


def check_device(text: str | None, *, option: str = "--device") -> str | None:
    """A device request, checked before any work (``None``: each backend's automatic choice).

    Raises
    ------
    ValueError
        Anything but ``auto``, ``cpu``, ``cuda``/``gpu`` with an optional ``:index``, or
        ``/CPU:n`` / ``/GPU:n``. Whether the machine has that device is the backend's to say.
    """
    if text is None:
        return None
    if not _DEVICE.fullmatch(text.strip()):
        raise ValueError(f"{option} {text!r}: expected auto, cpu, cuda (or gpu), cuda:N, /CPU:N "
                         "or /GPU:N")
    return text.strip()


def check_positive(options: Iterable[tuple[str, float | None]]) -> None:
    """Raise ``ValueError`` naming the first ``(option, value)`` given (not None) that is not a
    finite number > 0 (sizes, distances, energies, photon counts)."""
    for option, value in options:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{option} {value:g}: expected a finite number > 0")
