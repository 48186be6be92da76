"""Tests of parity.selftest: progress lines while the injections run, and --quiet."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from parity import engine, registry, selftest, session
from parity.cli import main


def _fake_runs(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> None:
    """No backend runs: the clean pair passes, each injection is caught at L1."""
    def run_parity(plan: Any, work: Any, progress: Any = None) -> tuple[Any, None]:
        # the progress line of a run is printed before it starts, not only after it ends
        assert lines and lines[-1].endswith(" ..."), lines
        injected = bool(plan.injections)
        first = SimpleNamespace(name="L1/offset_check/torch", level="L1") if injected else None
        return SimpleNamespace(exit_code=1 if injected else 0, first_divergence=first), None

    monkeypatch.setattr(engine, "run_parity", run_parity)
    monkeypatch.setattr(registry, "check_backend_names", lambda names, what: None)
    monkeypatch.setattr(session, "resolve_inputs", lambda **kwargs: (None, None, None, "sizing"))


def test_each_run_is_announced_as_it_starts_and_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The self-test printed nothing for minutes until every run had finished."""
    lines: list[str] = []
    _fake_runs(monkeypatch, lines)
    outcomes = selftest.run_selftest(injections=["offset_sign"], announce=lines.append)
    assert [o.injection for o in outcomes] == ["clean", "offset_sign"]
    assert len(lines) == 4
    assert lines[0] == "selftest [1/2] clean pair (L0, L1, L2, L3) ..."
    assert lines[1].startswith("selftest [1/2] OK   clean") and lines[1].endswith(" s)")
    assert lines[2] == "selftest [2/2] offset_sign into torch (L0, L1, L2, L3) ..."
    assert lines[3].startswith("selftest [2/2] OK   offset_sign")


@pytest.mark.parametrize("quiet", [False, True])
def test_the_command_prints_progress_on_stderr_unless_quiet(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], quiet: bool) -> None:
    lines: list[str] = []
    _fake_runs(monkeypatch, lines)
    real = selftest.run_selftest

    def recording(**kwargs: Any) -> list[selftest.SelftestOutcome]:
        announce = kwargs.pop("announce")

        def both(line: str) -> None:
            lines.append(line)
            if announce is not None:
                announce(line)

        return real(**kwargs, announce=both)

    monkeypatch.setattr(selftest, "run_selftest", recording)
    assert main(["selftest", "--only", "offset_sign", *(["--quiet"] if quiet else [])]) == 0
    captured = capsys.readouterr()
    assert "selftest [" not in captured.out  # stdout holds the results only
    assert ("selftest [2/2] offset_sign into torch" in captured.err) is not quiet
    assert "detection rate: 1/1" in captured.out
