"""Tests of parity.report.bundle_names: what bundles and the files in them are called."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from parity.report.bundle_names import (
    BUNDLE_FILES,
    bundle_file_path,
    bundle_name,
    case_directory_part,
    stamp_now,
)

STAMP = "20240131T235959Z"


def test_stamp_now_format() -> None:
    stamp = stamp_now()
    assert len(stamp) == 16 and stamp[8] == "T" and stamp.endswith("Z")


def test_bundle_name_is_stamp_and_the_case_made_safe() -> None:
    assert bundle_name(STAMP, "lines64") == f"{STAMP}_lines64"
    assert bundle_name(STAMP, "../my case/1") == f"{STAMP}_my_case_1"
    with pytest.raises(ValueError, match="stamp '2024-01-31'"):
        bundle_name("2024-01-31", "lines64")


def test_case_directory_part_neither_escapes_nor_hides() -> None:
    assert case_directory_part(".hidden-case") == "hidden-case"
    with pytest.raises(ValueError, match=r"case name '\.\./'"):
        case_directory_part("../")
    with pytest.raises(TypeError, match="expected str"):
        case_directory_part(3)  # type: ignore[arg-type]


def test_bundle_file_path_reads_backslashes_and_refuses_escapes_and_reserved_names() -> None:
    assert bundle_file_path("logs\\torch.log") == PurePosixPath("logs/torch.log")
    for name in ("", "/abs.txt", "../escape.txt", "logs/../../escape.txt"):
        with pytest.raises(ValueError, match="relative path inside the bundle"):
            bundle_file_path(name)
    for name in BUNDLE_FILES:
        with pytest.raises(ValueError, match="written by commit"):
            bundle_file_path(name)


def test_a_unicode_case_name_stays_readable() -> None:
    """A container metadata name ``échantillon_α`` became ``chantillon__``: every non-ASCII
    letter was replaced by ``_`` (and the leading one stripped)."""
    assert bundle_name(STAMP, "échantillon_α") == f"{STAMP}_échantillon_α"
    # decomposed input (e + combining acute, as macOS file names come) is composed first
    assert case_directory_part("e\u0301chantillon") == "échantillon"
    assert case_directory_part("проба 2/ü²") == "проба_2_ü²"
    # separators, controls and other punctuation are still replaced, leading ones stripped
    assert case_directory_part("_/α\\β\x00γ:δ*") == "α_β_γ_δ_"
    with pytest.raises(ValueError, match="expected letters or digits"):
        case_directory_part("._\u200b")  # a zero-width space is not a letter
