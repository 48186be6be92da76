"""``parity bench`` on the command line (parity/cli_bench.py): every option checked before any
work, the bundle it writes, and its exit codes. The measuring is stubbed (``bench.run_bench``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from parity import bench

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from bench_records import backend_record


def test_bench_command_names_a_bad_repeat_count(capsys: pytest.CaptureFixture[str]) -> None:
    from parity.cli import main

    assert main(["bench", "--repeats", "0"]) == 2
    assert "repeats=0; expected >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(("devices", "message"), [
    ("cpu,cuda,cuda:1", "give one device, or two to compare"),
    ("cpu,CPU", "the same device twice"),
    ("tpu", "expected auto, cpu, cuda"),
])
def test_bench_command_takes_one_or_two_distinct_devices(devices: str, message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from parity.cli import main

    assert main(["bench", "--device", devices]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("backends", "message"), [
    ("nosuch", "unknown backend(s) ['nosuch']"),
    ("torch, torch", "['torch'] named more than once"),
    (",", "no backend named"),
])
def test_bench_command_checks_backends_before_any_work(backends: str, message: str, tmp_path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from parity.cli import main

    assert main(["bench", "--backends", backends, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written


def test_bench_command_checks_out_before_any_work(tmp_path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from parity.cli import main

    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert main(["bench", "--out", str(a_file)]) == 2
    assert "is a file, not a directory for report bundles" in capsys.readouterr().err


def test_bench_command_exits_3_when_a_backend_failed(monkeypatch, tmp_path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The report is still written (what ran is kept), and the exit code says a backend failed."""
    from parity.cli import main

    def fake_run_bench(**kwargs: Any) -> dict[str, Any]:
        return {"case": "default", "device": kwargs["device"], "sizing": "",
                "backends": {"torch": backend_record(60.0),
                             "tensorflow": {"status": "crashed", "message": "boom\ntraceback"}},
                "ratios": []}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert main(["bench", "--quick", "--device", "cpu", "--out", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert "backend(s) failed: tensorflow on cpu" in out
    assert "| tensorflow | failed (crashed): boom ... (full message in bench.json) |" in out
    assert len(list(tmp_path.glob("*_bench-default/bench.json"))) == 1


def test_bench_quick_passes_through_to_one_point_at_the_cases_own_n(monkeypatch, tmp_path) -> None:
    """``--quick`` measures the case's own N (a fixed N=64 would bench n128 at the wrong size)."""
    from parity.cli import main

    seen: list[dict[str, Any]] = []

    def fake_run_bench(**kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs)
        return {"case": "default", "device": kwargs["device"], "sizing": "",
                "backends": {"torch": backend_record(60.0)}, "ratios": []}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert main(["bench", "--quick", "--case", "n128", "--backends", "torch",
                 "--out", str(tmp_path)]) == 0
    assert seen[0]["quick"] is True and seen[0]["ladder"] is False
    assert seen[0].get("sweep") is None


def test_bench_json_and_provenance_record_the_target_host_and_options(
        monkeypatch, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench.json states the stitching target and each verdict (bench.md was the only place);
    provenance.json records the host as a run bundle does, and the options as its config."""
    import json

    from parity.cli import main

    def fake_run_bench(**kwargs: Any) -> dict[str, Any]:
        return {"case": "default", "device": kwargs["device"], "sizing": "", "sweep": [],
                "deterministic": False, "model": {"N": 64}, "train": {"epochs": 8},
                "backends": {"torch": backend_record(30.0),
                             "tensorflow": backend_record(120.0)}, "ratios": []}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert main(["bench", "--quick", "--repeats", "2", "--out", str(tmp_path)]) == 0
    (bundle,) = tmp_path.glob("*_bench-default")
    figures = json.loads((bundle / "bench.json").read_text())
    assert figures["stitch_speedup_target"] == bench.STITCH_SPEEDUP_TARGET
    verdicts = {name: (record["case_stitch"]["target_speedup"],
                       record["case_stitch"]["target_verdict"])
                for name, record in figures["backends"].items()}
    assert verdicts == {"torch": (50.0, "NOT met"), "tensorflow": (50.0, "met")}
    provenance = json.loads((bundle / "provenance.json").read_text())
    assert {"git_revision", "argv", "cpu_count", "python", "numpy"} <= set(provenance["run"])
    assert provenance["run"]["kind"] == "bench"
    config = provenance["config"]
    assert (config["repeats"], config["quick"], config["backends"], config["devices"]) == (
        2, True, ["tensorflow", "torch"], [])
    assert config["model"] == {"N": 64} and config["train"] == {"epochs": 8}
    capsys.readouterr()
