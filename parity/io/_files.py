"""File plumbing every format of :mod:`parity.io` shares: what kind of file a path holds (by its
first bytes), and writing a file atomically (a ``.partial`` sibling renamed into place)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["HDF5_SIGNATURE", "NPY_SIGNATURE", "ZIP_SIGNATURES", "atomic_output", "read_head"]

#: First bytes of an HDF5 file.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: First bytes of a single-array ``.npy`` file.
NPY_SIGNATURE = b"\x93NUMPY"
#: First bytes of a ZIP archive (an NPZ): a member first, or an empty archive.
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def read_head(path: Path, error: type[Exception], what: str) -> bytes:
    """The first 8 bytes of ``path`` (enough for every signature above).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    error
        ``path`` is a directory or another file that is not a regular one (a FIFO, a device, a
        socket: it is not opened), cannot be read (the OS reason), or is empty; the message says
        it is not ``what`` (e.g. "an NPZ container file").
    """
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise error(f"{path} is a directory, not {what}")
    if not path.is_file():  # opening a FIFO waits for a writer forever; a device never ends
        raise error(f"{path} is {_special_kind(path)}, not a regular file; expected {what}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror or err})") from err
    if not head:
        raise error(f"{path} is empty (0 bytes), not {what}")
    return head


def _special_kind(path: Path) -> str:
    """What a path that is neither a directory nor a regular file is, in words."""
    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield ``<path>.partial`` to write into; on success it replaces ``path`` in one rename, so
    an existing file is never left half-written. ``path``'s directory is created.

    Raises
    ------
    ValueError
        The file cannot be written (the OS reason); ``path`` is then left as it was.
    """
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield partial
        partial.replace(path)
    except OSError as err:
        raise ValueError(f"{path}: cannot be written ({err.strerror or err})") from err
    finally:
        with suppress(OSError):  # nothing to clean where the directory itself was the problem
            partial.unlink(missing_ok=True)
