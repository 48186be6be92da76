"""The CI gate: the small case through the whole ladder with both real backends, and the
self-test that proves the gate catches each injected port bug at its stage.

Both spawn the backends as subprocesses (this test process loads no framework).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from parity.injections import INJECTIONS
from parity.registry import available_adapters

pytestmark = pytest.mark.skipif(
    not {"tensorflow", "torch"} <= set(available_adapters()),
    reason="both backend adapters must be installed for the gate",
)


def _parity(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=1800, check=False)


def test_small_case_full_ladder_holds_parity(tmp_path):
    out = tmp_path / "reports"
    run = _parity("run", "--case", "small", "--levels", "all", "--out", str(out), "--quiet",
                  cwd=Path.cwd())
    assert run.returncode == 0, run.stdout + run.stderr
    bundles = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(bundles) == 1
    bundle = bundles[0]
    report = json.loads((bundle / "report.json").read_text())
    assert report["verdict"] == "parity"
    assert {c["level"] for c in report["checks"]} == {"L0", "L1", "L2", "L3", "L4", "L5"}
    for name in ("summary.md", "junit.xml", "evidence.npz", "provenance.json", "COMPLETE"):
        assert (bundle / name).exists(), name
    assert list((bundle / "figures").glob("*.png"))


def test_selftest_catches_every_injection(tmp_path):
    target = tmp_path / "selftest.json"
    run = _parity("selftest", "--json", str(target), cwd=Path.cwd())
    rows = json.loads(target.read_text())
    assert rows[0]["injection"] == "clean" and rows[0]["caught"], run.stdout
    missed = [r for r in rows[1:] if not r["caught"]]
    assert not missed, run.stdout
    assert {r["injection"] for r in rows[1:]} == set(INJECTIONS)
    assert run.returncode == 0


def test_two_runs_on_the_same_seed_agree_on_every_verdict():
    from parity.flake import run_flake

    report = run_flake(case="small", repeats=2, levels=("L0", "L1", "L2", "L3"))
    assert report.identical, report.text()
    assert report.exit_codes == [0, 0], report.text()
