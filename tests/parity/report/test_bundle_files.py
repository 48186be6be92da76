"""parity/report/_bundle_files.py: the file plumbing of a bundle being written (the writer that
uses it: test_bundle.py) and its files checked against the manifest (the listing, show and diff
that use it: test_runs.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from parity.report._bundle_files import (
    checked_evidence,
    file_manifest,
    json_text,
    manifest_problem,
    write_synced,
)


def test_json_text_makes_numpy_plain_non_finite_null_and_other_values_text() -> None:
    record = json.loads(json_text({"x": np.float32(1.5), "n": np.int64(3), "bad": float("nan"),
                                   "inf": np.inf, "path": Path("a/b")}))
    assert record == {"x": 1.5, "n": 3, "bad": None, "inf": None, "path": "a/b"}


def test_write_synced_creates_parents_and_the_manifest_lists_every_file(tmp_path: Path) -> None:
    write_synced(tmp_path / "logs" / "torch.log", b"log line\n")
    write_synced(tmp_path / "report.json", b"{}\n")
    manifest = file_manifest(tmp_path)
    assert list(manifest) == ["logs/torch.log", "report.json"]
    assert manifest["logs/torch.log"] == {
        "bytes": 9, "sha256": hashlib.sha256(b"log line\n").hexdigest()}


def test_checked_evidence_keeps_relative_names_and_numeric_arrays() -> None:
    arrays = checked_evidence({"torch/reconstructed_obj": [[1.0, 2.0]], "labels": ["a", "b"]})
    assert arrays["torch/reconstructed_obj"].shape == (1, 2)
    assert arrays["labels"].dtype.kind == "U"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", 3])
def test_checked_evidence_rejects_names_that_leave_the_archive(key: object) -> None:
    with pytest.raises(ValueError, match="expected a relative name"):
        checked_evidence({key: np.zeros(2)})


def test_checked_evidence_rejects_object_arrays() -> None:
    with pytest.raises(TypeError, match="dtype object"):
        checked_evidence({"a": np.array([{}, None], dtype=object)})


def _bundle_with_manifest(directory: Path, manifest: object) -> Path:
    (directory / "a.txt").write_text("abc")
    (directory / "sub").mkdir()
    (directory / "sub" / "b.bin").write_bytes(b"xyz")
    files = file_manifest(directory) if manifest is None else manifest
    (directory / "provenance.json").write_text(json.dumps({"bundle": {"files": files}}))
    return directory


def test_manifest_problem_names_the_first_file_that_differs(tmp_path: Path) -> None:
    bundle = _bundle_with_manifest(tmp_path, None)
    assert manifest_problem(bundle, hashes=True) is None
    (bundle / "notes.txt").write_text("added later")  # not listed: not judged
    assert manifest_problem(bundle, hashes=True) is None
    (bundle / "sub" / "b.bin").write_bytes(b"xyZ")  # same size
    assert manifest_problem(bundle, hashes=False) is None  # sizes only
    assert manifest_problem(bundle, hashes=True) == (
        "sub/b.bin has changed since the run: its SHA-256 differs from provenance.json's")
    (bundle / "a.txt").write_text("abcd")
    assert manifest_problem(bundle, hashes=False) == "a.txt has 4 bytes; provenance.json lists 3"


@pytest.mark.parametrize(("manifest", "problem"), [
    ({"../etc/passwd": {"bytes": 1, "sha256": "0"}},
     "provenance.json lists '../etc/passwd'; expected a relative path inside the bundle"),
    ({"a.txt": {"bytes": "3", "sha256": "0"}},
     "provenance.json: the entry of a.txt is {'bytes': '3', 'sha256': '0'}; expected bytes and "
     "sha256"),
    ([], "provenance.json has no file manifest (bundle.files)"),
])
def test_manifest_problem_rejects_a_bad_manifest(tmp_path: Path, manifest: object,
                                                 problem: str) -> None:
    assert manifest_problem(_bundle_with_manifest(tmp_path, manifest), hashes=False) == problem
