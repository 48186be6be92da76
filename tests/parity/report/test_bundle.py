"""Tests of parity.report.bundle: atomic, never-overwriting review bundles."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from parity.report import bundle as bundle_module
from parity.report import junit
from parity.report.bundle import new_bundle_dir
from parity.report.bundle_names import BUNDLE_FILES, COMPLETE_MARKER
from parity.results import BackendRun, Check, RunResult

STAMP = "20240131T235959Z"


def _result(case: str = "lines64") -> RunResult:
    checks = (
        Check("L1", "exit_wave", "complex", "torch", "oracle", "pass", {"max_abs_err": 1e-8},
              {"atol": 1e-6, "reason": "f32"}),
        Check("L1", "farfield_amplitude", "amplitude", "torch", "oracle", "fail",
              {"max_abs_err": 3e-4}, {"atol": 1e-6, "reason": "f32"}),
        Check("L3", "grad", "head.kernel", "pair", "tensorflow", "skipped", message="crashed"),
    )
    runs = (BackendRun("tensorflow", "ok", 1.0),
            BackendRun("torch", "crashed", 0.5, log_path="logs/torch.log", message="exit -11"))
    return RunResult(case, STAMP, ("L1", "L3"), ("tensorflow", "torch"), checks, runs,
                     histories={"tensorflow": {"loss": [2.0, 1.0]}},
                     config={"data_path": Path("/data/lines.npz"), "sizing": "cpu-default"},
                     provenance={"git_rev": "abc123", "data_sha256": "ff00"})


def _evidence() -> dict[str, np.ndarray]:
    obj = (np.arange(64, dtype=np.float32).reshape(8, 8) + 1j).astype(np.complex64)
    return {"tensorflow/reconstructed_obj": obj, "tensorflow/origin_px": np.array([1, 2]),
            "truth/object": obj}


def _no_staging(root: Path) -> bool:
    return not [p for p in root.iterdir() if p.name.startswith(".staging-")]


def test_commit_writes_the_full_layout(tmp_path: Path) -> None:
    log = tmp_path / "torch.log"
    log.write_text("starting\nSegmentation fault\n")
    root = tmp_path / "reports"
    with new_bundle_dir(root, "lines64", stamp=STAMP) as writer:
        assert writer.staging.name.startswith(f".staging-{STAMP}_lines64-{os.getpid()}-")
        writer.add_file("logs/torch.log", log)
        writer.write_json("extra/config.json", {"x": np.float32(1.5), "bad": float("nan")})
        final = writer.commit(_result(), _evidence())
    assert final == root / f"{STAMP}_lines64"
    assert _no_staging(root)
    for name in BUNDLE_FILES:
        assert (final / name).is_file(), name
    assert json.loads((final / "extra/config.json").read_text()) == {"x": 1.5, "bad": None}
    report = json.loads((final / "report.json").read_text())
    assert report["config"]["data_path"] == "/data/lines.npz"  # a Path is written as text
    assert report == json.loads(json.dumps(_result().to_dict(), default=str))
    with np.load(final / "evidence.npz") as npz:
        assert sorted(npz.files) == sorted(_evidence())
        np.testing.assert_array_equal(npz["tensorflow/reconstructed_obj"],
                                      _evidence()["tensorflow/reconstructed_obj"])
    pngs = sorted(p.name for p in (final / "figures").iterdir())
    assert pngs == ["differences.png", "loss.png", "objects.png"]
    summary = (final / "summary.md").read_text()
    assert "- [figures/objects.png](figures/objects.png)" in summary
    assert "- not drawn: frc:" in summary
    assert "Segmentation fault" in (final / "junit.xml").read_text()  # log tail from the bundle
    provenance = json.loads((final / "provenance.json").read_text())
    assert provenance["run"] == {"git_rev": "abc123", "data_sha256": "ff00"}
    files = provenance["bundle"]["files"]
    assert COMPLETE_MARKER not in files and "provenance.json" not in files
    digest = hashlib.sha256((final / "evidence.npz").read_bytes()).hexdigest()
    assert files["evidence.npz"]["sha256"] == digest


@pytest.mark.parametrize("error", [RuntimeError("backend exploded"), KeyboardInterrupt()])
def test_interrupted_run_leaves_nothing(tmp_path: Path, error: BaseException) -> None:
    earlier = new_bundle_dir(tmp_path, "lines64", stamp="20240101T000000Z")
    with earlier:
        earlier_path = earlier.commit(_result(), {})
    before = (earlier_path / "report.json").read_bytes()
    with pytest.raises(type(error)), new_bundle_dir(tmp_path, "lines64", stamp=STAMP) as writer:
        writer.write_text("notes.txt", "half")
        raise error
    assert sorted(p.name for p in tmp_path.iterdir()) == [earlier_path.name]
    assert (earlier_path / "report.json").read_bytes() == before


def test_failure_inside_commit_removes_staging(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(junit, "render_junit", broken)
    writer = new_bundle_dir(tmp_path, "lines64", stamp=STAMP)
    with pytest.raises(OSError, match="No space"):
        writer.commit(_result(), _evidence())  # no with block: commit cleans up by itself
    assert list(tmp_path.iterdir()) == []


def test_leaving_the_block_without_commit_discards(tmp_path: Path) -> None:
    with new_bundle_dir(tmp_path, "lines64") as writer:
        writer.write_text("notes.txt", "never committed")
    assert list(tmp_path.iterdir()) == []


def test_same_second_runs_get_distinct_directories(tmp_path: Path) -> None:
    paths = []
    for _ in range(3):
        with new_bundle_dir(tmp_path, "lines64", stamp=STAMP) as writer:
            paths.append(writer.commit(_result(), {}))
    assert [p.name for p in paths] == [f"{STAMP}_lines64", f"{STAMP}_lines64-2",
                                       f"{STAMP}_lines64-3"]
    assert all((p / COMPLETE_MARKER).is_file() for p in paths)


def test_existing_bundle_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / f"{STAMP}_lines64"
    existing.mkdir()
    (existing / "report.json").write_text("precious")
    with new_bundle_dir(tmp_path, "lines64", stamp=STAMP) as writer:
        final = writer.commit(_result(), {})
    assert final.name == f"{STAMP}_lines64-2"
    assert (existing / "report.json").read_text() == "precious"


def test_losing_the_rename_race_moves_to_the_next_name(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Another process publishes the same name between our existence check and our rename:
    # rename(2) onto its non-empty directory fails and we take the next suffix.
    rival = tmp_path / f"{STAMP}_lines64"
    rival.mkdir()
    (rival / "report.json").write_text("rival")
    monkeypatch.setattr(bundle_module, "_taken", lambda _: False)
    with new_bundle_dir(tmp_path, "lines64", stamp=STAMP) as writer:
        final = writer.commit(_result(), {})
    assert final.name == f"{STAMP}_lines64-2"
    assert (rival / "report.json").read_text() == "rival"


def test_writer_rejects_bad_names_and_late_writes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"case name '\.\./'"):
        new_bundle_dir(tmp_path, "../")
    with pytest.raises(ValueError, match="stamp '2024-01-31'"):
        new_bundle_dir(tmp_path, "lines64", stamp="2024-01-31")
    with new_bundle_dir(tmp_path, "lines64", stamp=STAMP) as writer:
        with pytest.raises(ValueError, match="relative path inside the bundle"):
            writer.write_text("../escape.txt", "x")
        with pytest.raises(ValueError, match="written by commit"):
            writer.write_text("report.json", "x")
        with pytest.raises(TypeError, match="dtype object"):
            writer.write_npz("extra.npz", {"a": np.array([{}, None], dtype=object)})
        with pytest.raises(FileNotFoundError, match="not a file"):
            writer.add_file("log.txt", tmp_path / "missing.log")
        with pytest.raises(ValueError, match="result is for case 'other'"):
            writer.commit(_result("other"), {})
        assert not writer.staging.exists()  # a failed commit discards the staging directory
    assert list(tmp_path.iterdir()) == []
    with new_bundle_dir(tmp_path, "lines64", stamp=STAMP) as writer:
        writer.commit(_result(), {})
        with pytest.raises(RuntimeError, match="closed"):
            writer.write_text("late.txt", "x")
        with pytest.raises(RuntimeError, match="already committed"):
            writer.commit(_result(), {})


def _commit_many(root: Path, count: int) -> list[str]:
    bare = RunResult("lines64", STAMP, ("L1",), ("tensorflow",), (),
                     (BackendRun("tensorflow", "ok"),))
    names = []
    for _ in range(count):
        with new_bundle_dir(root, "lines64", stamp=STAMP) as writer:
            names.append(writer.commit(bare, {}).name)
    return names


def test_concurrent_writers_never_share_a_bundle(tmp_path: Path) -> None:
    # Threads race through the same rename(2) calls as processes would (the kernel decides),
    # without forking a test process that may hold framework threads.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(_commit_many, [tmp_path] * 4, [3] * 4))
    names = [n for batch in batches for n in batch]
    assert len(names) == len(set(names)) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert all((tmp_path / n / COMPLETE_MARKER).is_file() for n in names)


def test_commit_plain_publishes_extra_files_only(tmp_path: Path) -> None:
    with new_bundle_dir(tmp_path, "bench-lines64", stamp=STAMP) as writer:
        writer.write_json("bench.json", {"patterns_per_s": 45.0})
        final = writer.commit_plain(provenance={"host": "ci"}, config={"repeats": 3})
    assert final.name == f"{STAMP}_bench-lines64"
    assert sorted(p.name for p in final.iterdir()) == [COMPLETE_MARKER, "bench.json",
                                                       "provenance.json"]
    provenance = json.loads((final / "provenance.json").read_text())
    assert provenance["run"] == {"host": "ci"} and list(provenance["bundle"]["files"]) == \
        ["bench.json"]
    assert provenance["config"] == {"repeats": 3}
    assert _no_staging(tmp_path)


def test_odd_case_names_become_safe_directory_names(tmp_path: Path) -> None:
    case = "../my case/1"
    with new_bundle_dir(tmp_path, case, stamp=STAMP) as writer:
        bare = RunResult(case, STAMP, (), (), (), ())
        final = writer.commit(bare, {})
    assert final.parent == tmp_path and final.name == f"{STAMP}_my_case_1"
    assert json.loads((final / "report.json").read_text())["case"] == case
