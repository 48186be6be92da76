"""What review bundles and the files in them are called.

A bundle directory is ``<stamp>_<case>`` (``-2``, ``-3``, ... for same-second repeats), a bundle
still being written is ``.staging-*``, and a few file names are reserved for
:meth:`parity.report.bundle.BundleWriter.commit`. Standard library only, so
:mod:`parity.report.runs` can read bundle names without the writer.
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import PurePosixPath

__all__ = [
    "BUNDLE_FILES",
    "COMPLETE_MARKER",
    "STAGING_PREFIX",
    "bundle_file_path",
    "bundle_name",
    "case_directory_part",
    "stamp_now",
]

#: Written last; a bundle without it is not complete.
COMPLETE_MARKER: str = "COMPLETE"

#: Hidden prefix of directories still being written.
STAGING_PREFIX: str = ".staging-"

#: Files :meth:`parity.report.bundle.BundleWriter.commit` writes (plus ``figures/*.png``); not
#: writable by name.
BUNDLE_FILES: tuple[str, ...] = ("report.json", "summary.md", "junit.xml", "evidence.npz",
                                 "provenance.json", COMPLETE_MARKER)

_STAMP = re.compile(r"\d{8}T\d{6}Z")

#: Kept as they are in a case's directory name, besides Unicode letters, marks and digits.
_SAFE_PUNCTUATION = "._+=-"

#: Unicode general categories kept: letters (L*), combining marks (M*, so that scripts written
#: with them stay legible) and numbers (N*). Path separators, spaces, controls and the rest of
#: punctuation are not among them.
_SAFE_CATEGORIES = ("L", "M", "N")


def stamp_now() -> str:
    """Current UTC time as ``YYYYmmddTHHMMSSZ``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def case_directory_part(case: str) -> str:
    """The case as it appears in directory names.

    The name is NFC-normalised; Unicode letters, marks and digits and ``._+=-`` are kept (a
    metadata name ``échantillon_α`` stays ``échantillon_α``), every other character (path
    separators, spaces, controls, other punctuation) becomes ``_``; leading dots, dashes and
    underscores go, so a case name can neither escape ``root`` nor hide the bundle. A long run
    must not be lost to an odd name, hence no error unless nothing is left.

    Examples
    --------
    >>> case_directory_part("../échantillon α/1")
    'échantillon_α_1'
    """
    if not isinstance(case, str):
        raise TypeError(f"case name is {type(case).__name__}; expected str")
    part = "".join(_safe_character(c) for c in unicodedata.normalize("NFC", case)).lstrip("._-")
    if not part:
        raise ValueError(f"case name {case!r} cannot name a bundle directory; expected letters "
                         "or digits")
    return part


def _safe_character(character: str) -> str:
    """``character`` when a directory name may hold it as is (:func:`case_directory_part`),
    else ``_``."""
    keep = (character in _SAFE_PUNCTUATION
            or unicodedata.category(character).startswith(_SAFE_CATEGORIES))
    return character if keep else "_"


def bundle_name(stamp: str, case: str) -> str:
    """Base directory name of a bundle, ``<stamp>_<case>`` (the case made filesystem-safe).

    Same-second repeats get ``-2``, ``-3``, ... appended at commit time.
    """
    _check_stamp(stamp)
    return f"{stamp}_{case_directory_part(case)}"


def _check_stamp(stamp: str) -> None:
    if not isinstance(stamp, str) or not _STAMP.fullmatch(stamp):
        raise ValueError(f"stamp {stamp!r}; expected UTC YYYYmmddTHHMMSSZ, e.g. {stamp_now()}")


def bundle_file_path(name: str | os.PathLike[str]) -> PurePosixPath:
    """``name`` as a safe relative path inside a bundle (``\\`` read as ``/``).

    Raises
    ------
    ValueError
        ``name`` is empty, absolute, has a ``.``/``..``/empty part, or is one of
        :data:`BUNDLE_FILES`.
    """
    path = PurePosixPath(os.fspath(name).replace("\\", "/"))
    if not path.parts or path.is_absolute() or any(p in ("", ".", "..") for p in path.parts):
        raise ValueError(f"bundle file name {name!r}; expected a relative path inside the bundle")
    if str(path) in BUNDLE_FILES:
        raise ValueError(f"{name!r} is written by commit(); reserved names: {BUNDLE_FILES}")
    return path
