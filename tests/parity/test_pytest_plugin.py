"""The pytest plugin (parity/pytest_plugin.py) as a user's test suite sees it, in a pytest run
of its own (pytester, subprocess: the workers inherit PYTHONPATH and the adapter variable)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parity.registry import ADAPTERS_ENV

pytest_plugins = ["pytester"]

TWIN = '''
from typing import ClassVar
from parity.oracle.adapter import OracleAdapter

class Twin(OracleAdapter):
    name: ClassVar[str] = "twin"

class Off(OracleAdapter):
    """A port with one bug: the far-field amplitude 5 % high."""
    name: ClassVar[str] = "off"

    def forward_physics(self, config, inputs):
        out = super().forward_physics(config, inputs)
        return {**out, "farfield_amplitude": out["farfield_amplitude"] * 1.05}
'''

USER_TESTS = '''
import pytest

def test_twin_holds_parity(parity_run):
    outcome = parity_run(case="small", levels="L1,L0", backends=("oracle", "twin"))
    assert outcome.result.levels == ("L0", "L1")
    outcome.assert_parity()

def test_off_diverges(parity_run):
    parity_run(case="small", levels=("L0", "L1"), backends="oracle, off").assert_parity()

def test_unknown_backend_is_refused_before_any_work(parity_run):
    with pytest.raises(ValueError, match="unknown backend"):
        parity_run(case="small", levels="L0", backends=("oracle", "nosuch"))

def test_unknown_level(parity_run):
    with pytest.raises(ValueError, match="unknown level"):
        parity_run(case="small", levels="L9", backends=("oracle", "twin"))
'''


@pytest.fixture
def user_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makepyfile(user_adapters=TWIN, test_user=USER_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.setenv(ADAPTERS_ENV, "twin=user_adapters:Twin,off=user_adapters:Off")
    return pytester


def test_plugin_runs_the_ladder_and_reports_like_summary_md(user_suite: pytest.Pytester) -> None:
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3, failed=1)
    # the failure reads like the report: verdict, first divergent stage, its numbers
    result.stdout.fnmatch_lines(["*parity verdict: divergence (exit 1)*",
                                 "*first divergent stage: L1/farfield_amplitude*max_rel_error*"])


def test_parity_keep_keeps_the_scratch_directory(user_suite: pytest.Pytester) -> None:
    result = user_suite.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-s",
                                             "--parity-keep", "-k", "twin_holds")
    result.assert_outcomes(passed=1)
    kept = [line.split("kept at ", 1)[1] for line in result.outlines if "kept at " in line]
    assert len(kept) == 1
    workdir = Path(kept[0].strip())
    try:
        assert (workdir / "twin.log").is_file()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
