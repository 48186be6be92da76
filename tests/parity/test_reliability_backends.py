"""Reliability of the ``parity`` command with failing backends: their statuses and logs in the
bundle, a doctored backend as a divergence, and interrupted runs that leave no bundle behind.

The CLI runs in a subprocess with the float64 oracle as baseline and the adapters of
``tests/parity/support/faulty_adapters.py`` (registered through ``PTYCHO_PARITY_ADAPTERS``), at
L0-L2: no framework is loaded and each worker starts in about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from parity.registry import ADAPTERS_ENV
from parity.report.bundle_names import COMPLETE_MARKER, STAGING_PREFIX
from parity.report.runs import list_runs

SUPPORT = Path(__file__).resolve().parent / "support"
sys.path.insert(0, str(SUPPORT))
import faulty_adapters  # noqa: E402  (a plain module under tests/parity/support)

#: Backends of the one CLI run that shows every failure mode in a single bundle.
FAILING = ("faulty-raise", "faulty-segv", "faulty-hang", "faulty-oom", "faulty-nan")
EXPECTED_STATUS = {"faulty-raise": "partial", "faulty-segv": "crashed",
                   "faulty-hang": "timeout", "faulty-oom": "oom", "faulty-nan": "nan"}
#: What each failing backend's log must show (the bundle keeps the log, not the manifest).
LOG_EVIDENCE = {"faulty-raise": "RuntimeError", "faulty-segv": "about to segfault",
                "faulty-hang": "hanging in forward_physics", "faulty-oom": "MemoryError",
                "faulty-nan": '"status": "nan"'}

#: Per-backend timeout of the failing run, s: the oracle needs about 1 s at L0-L2 even on a
#: loaded 2-core machine, and the hanging backend costs exactly this long.
HANG_TIMEOUT_S = 6
#: Limit on any CLI subprocess, s (a run here takes 5-15 s; this only stops a stuck test).
PROCESS_LIMIT_S = 180


def _env(tmpdir: Path | None = None) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": str(SUPPORT) + (os.pathsep + path if path else ""),
           ADAPTERS_ENV: faulty_adapters.adapters_env(), "OMP_NUM_THREADS": "1"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


def _cli(root: Path, backends: str, *, timeout_s: float = 120, tmpdir: Path | None = None
         ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "run", "--case", "small", "--backends", backends,
         "--levels", "L0,L1,L2", "--timeout", str(timeout_s), "--out", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmpdir))


def _bundle(root: Path) -> Path:
    (bundle,) = [run.path for run in list_runs(root)]
    return bundle


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """Two CLI runs started together: every failure mode in one run, and a divergence."""
    roots = {"failing": tmp_path_factory.mktemp("failing"),
             "doctored": tmp_path_factory.mktemp("doctored")}
    processes = {
        "failing": _cli(roots["failing"], ",".join(("oracle", *FAILING)),
                        timeout_s=HANG_TIMEOUT_S),
        "doctored": _cli(roots["doctored"], "oracle,faulty-doctored"),
    }
    out = {}
    for key, process in processes.items():
        stdout, stderr = process.communicate(timeout=PROCESS_LIMIT_S)
        assert "Traceback" not in stderr, stderr
        out[key] = (process.returncode, stdout, _bundle(roots[key]))
    return out


# -- failing backends in the bundle -----------------------------------------------------------


def test_failed_backends_exit_3_and_each_status_is_in_the_report(cli_runs):
    code, stdout, bundle = cli_runs["failing"]
    assert code == 3
    report = json.loads((bundle / "report.json").read_text())
    assert report["exit_code"] == 3 and report["verdict"] == "backend-failure"
    statuses = {run["backend"]: run["status"] for run in report["backend_runs"]}
    assert statuses == {"oracle": "ok", **EXPECTED_STATUS}
    crashed = next(r for r in report["backend_runs"] if r["backend"] == "faulty-segv")
    assert "SIGSEGV" in crashed["message"]
    for backend, status in EXPECTED_STATUS.items():
        line = next(line for line in stdout.splitlines() if line.startswith(f"backend {backend}:"))
        assert f": {status}:" in line and f"logs/{backend}.log" in line, line


def test_each_failed_backend_log_is_in_the_bundle_and_named(cli_runs):
    _, _, bundle = cli_runs["failing"]
    summary = (bundle / "summary.md").read_text()
    cases = {case.get("name"): case
             for case in ET.parse(bundle / "junit.xml").getroot().iter("testcase")
             if case.get("classname") == "backends"}
    for backend, status in EXPECTED_STATUS.items():
        log = bundle / "logs" / f"{backend}.log"
        assert LOG_EVIDENCE[backend] in log.read_text(errors="replace"), backend
        row = next(line for line in summary.splitlines()
                   if line.startswith(f"| {backend} |"))
        assert status.upper() in row and f"logs/{backend}.log" in row, row
        error = cases[backend].find("error")
        assert error is not None and error.get("type") == status, backend
        assert f"logs/{backend}.log" in (error.text or ""), backend
    assert cases["oracle"].find("error") is None
    assert (bundle / "logs" / "oracle.log").is_file()


def test_the_healthy_backend_checks_are_kept(cli_runs):
    _, _, bundle = cli_runs["failing"]
    report = json.loads((bundle / "report.json").read_text())
    own = [c for c in report["checks"] if c["backend"] == "oracle"]
    assert {c["level"] for c in own} == {"L0", "L1", "L2"}
    assert own and all(c["verdict"] == "pass" for c in own)
    # the stages a failed backend never produced are errors, never passes nor silent gaps
    for backend in ("faulty-segv", "faulty-hang"):
        l1 = [c for c in report["checks"] if c["backend"] == backend and c["level"] == "L1"]
        assert [c["verdict"] for c in l1] == ["error"], backend


def test_doctored_finite_numbers_are_a_divergence_exit_1(cli_runs):
    code, stdout, bundle = cli_runs["doctored"]
    assert code == 1
    report = json.loads((bundle / "report.json").read_text())
    assert report["verdict"] == "divergence" and report["exit_code"] == 1
    assert all(run["status"] == "ok" for run in report["backend_runs"])
    first = report["first_divergence"]
    assert (first["level"], first["stage"], first["backend"]) == (
        "L1", "farfield_amplitude", "faulty-doctored")
    # a 5 % scale error is measured as such (1e-6: float64 rounding of the ratio, nothing else)
    assert abs(first["measured"]["max_rel_error"] - (faulty_adapters.DOCTOR_FACTOR - 1)) < 1e-6
    assert "first divergent stage: L1/farfield_amplitude/" in stdout
    assert "farfield_amplitude" in (bundle / "summary.md").read_text().split("## Checks")[0]


# -- interrupted runs -------------------------------------------------------------------------


def _digest(tree: Path) -> dict[str, str]:
    return {p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*")) if p.is_file()}


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for_hang(tmpdir: Path, process: subprocess.Popen[str]) -> int:
    """Block until the hanging backend is inside its hook; return the worker's pid."""
    deadline = time.monotonic() + PROCESS_LIMIT_S
    while time.monotonic() < deadline:
        for job in tmpdir.glob("parity-run-*/faulty-hang"):
            log = job / "backend.log"
            if log.exists() and "hanging in forward_physics" in log.read_text(errors="replace"):
                return int(json.loads((job / "manifest.json").read_text())["pid"])
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the hanging backend never started")


@pytest.mark.parametrize(("signum", "expected_code", "cleans_up"), [
    (signal.SIGINT, 130, True),
    (signal.SIGTERM, 143, True),
    (signal.SIGKILL, -signal.SIGKILL, False),
])
def test_interrupted_run_leaves_no_bundle_and_touches_none(cli_runs, tmp_path, signum,
                                                            expected_code, cleans_up):
    root, tmpdir = tmp_path / "reports", tmp_path / "tmp"
    tmpdir.mkdir()
    earlier = root / cli_runs["failing"][2].name
    shutil.copytree(cli_runs["failing"][2], earlier)
    before = _digest(earlier)
    process = _cli(root, "faulty-hang,oracle", tmpdir=tmpdir)  # hang first: no wait for oracle
    worker = None
    try:
        worker = _wait_for_hang(tmpdir, process)
        time.sleep(1.0)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == expected_code, stderr
        assert "Traceback" not in stderr
        # the backend's worker goes too: killed by the harness, or by the kernel when the
        # harness itself was SIGKILLed (10 s: the kill is immediate; this is only a bound)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), f"worker {worker} outlived the interrupted harness"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)
    visible = sorted(p.name for p in root.iterdir() if not p.name.startswith(STAGING_PREFIX))
    assert visible == [earlier.name], "an interrupted run left a bundle-like directory"
    complete = [p for p in root.iterdir() if (p / COMPLETE_MARKER).exists()]
    assert complete == [earlier]
    assert [run.path for run in list_runs(root)] == [earlier]
    assert _digest(earlier) == before, "an interrupted run modified an earlier bundle"
    if cleans_up:  # Ctrl-C and SIGTERM also remove the run's scratch directory
        assert list(tmpdir.glob("parity-run-*")) == []
