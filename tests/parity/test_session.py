"""``parity.session.run_and_report``: the plan it builds from the command's options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parity import session
from parity.engine import RunPlan
from parity.results import DEFAULT_TIMEOUT_S, default_timeout_s


class _PlannedError(Exception):
    """Raised by the stand-in engine to hand back the plan without running it."""

    def __init__(self, plan: RunPlan) -> None:
        super().__init__("planned")
        self.plan = plan


def _plan_of(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **options: Any) -> RunPlan:
    def planned(plan: RunPlan, work: Path, **kwargs: Any) -> None:
        raise _PlannedError(plan)

    monkeypatch.setattr(session, "run_parity", planned)
    with pytest.raises(_PlannedError) as caught:
        session.run_and_report(case="small", reports_root=tmp_path, **options)
    return caught.value.plan


def test_the_default_job_timeout_covers_each_l5_training(monkeypatch, tmp_path) -> None:
    """A multi-seed run trains once per seed in each backend's job: 23 seeds under the one-
    training limit of 900 s were killed at seed 7 (TensorFlow) and 11 (torch)."""
    assert default_timeout_s() == DEFAULT_TIMEOUT_S == 900.0
    assert default_timeout_s((0, 1, 2)) == 3 * DEFAULT_TIMEOUT_S
    assert _plan_of(monkeypatch, tmp_path).timeout_s == DEFAULT_TIMEOUT_S
    seeds = tuple(range(5))
    assert _plan_of(monkeypatch, tmp_path, levels=("L5",),
                    seeds=seeds).timeout_s == 5 * DEFAULT_TIMEOUT_S
    assert _plan_of(monkeypatch, tmp_path, levels=("L5",), seeds=seeds,
                    timeout_s=60.0).timeout_s == 60.0  # the caller's limit is kept
