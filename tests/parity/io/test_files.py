"""parity/io/_files.py: the file plumbing every format shares."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parity.io._files import atomic_output, read_head


def test_atomic_output_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.npz"
    with atomic_output(target) as partial:
        partial.write_bytes(b"new")
    assert target.read_bytes() == b"new" and not partial.exists()
    with pytest.raises(RuntimeError), atomic_output(target) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new" and not partial.exists()  # the old file is intact


def test_atomic_output_names_an_unwritable_destination(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot be written"), \
            atomic_output(blocker / "below.npz") as partial:
        partial.write_bytes(b"never")


def test_read_head_names_what_the_file_is_not(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_head(tmp_path / "missing", ValueError, "a data file")
    with pytest.raises(ValueError, match="is a directory, not a data file"):
        read_head(tmp_path, ValueError, "a data file")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"is empty \(0 bytes\), not a data file"):
        read_head(empty, ValueError, "a data file")
    (tmp_path / "data").write_bytes(b"PK\x03\x04rest of the archive")
    assert read_head(tmp_path / "data", ValueError, "x") == b"PK\x03\x04rest"


def test_read_head_refuses_a_fifo_without_opening_it(tmp_path: Path) -> None:
    # Opening a FIFO blocks until a writer comes: `--container fifo.npz` hung forever.
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"fifo\.npz is a named pipe \(FIFO\), not a regular "
                                         r"file; expected a data file"):
        read_head(fifo, ValueError, "a data file")
    with pytest.raises(ValueError, match=r"is a character device, not a regular file"):
        read_head(Path(os.devnull), ValueError, "a data file")
