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
