"""Tests of parity.report.bundle_names: what bundles and the files in them are called."""

from __future__ import annotations

from parity.report.bundle_names import stamp_now


def test_stamp_now_format() -> None:
    stamp = stamp_now()
    assert len(stamp) == 16 and stamp[8] == "T" and stamp.endswith("Z")
