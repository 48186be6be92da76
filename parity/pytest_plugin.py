"""pytest plugin: write parity tests against the ladder in a few lines.

Registered under the ``pytest11`` entry point, so any project with ptycho-parity installed gets::

    def test_my_port(parity_run):
        result = parity_run(case="default", levels=("L0", "L1", "L2"),
                            backends=("tensorflow", "my_adapter"))
        result.assert_parity()

``parity_run`` runs :func:`parity.engine.run_parity` (each backend in its own subprocess) and
returns a :class:`ParityOutcome`; ``assert_parity`` fails with the first divergent stage and its
numbers, in the same words as ``summary.md``. Options: ``--parity-backends`` overrides the
backends of every ``parity_run`` call; ``--parity-keep`` keeps the scratch directories.

Imports here are lazy: loading the plugin costs nothing in test runs that never use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ParityOutcome", "parity_run", "pytest_addoption"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the ``ptycho-parity`` group."""
    group = parser.getgroup("ptycho-parity")
    group.addoption("--parity-backends", default=None,
                    help="comma list of adapters for every parity_run call (first = baseline)")
    group.addoption("--parity-keep", action="store_true",
                    help="keep each parity_run scratch directory (job files, logs) in a new "
                         "temporary directory whose path is printed, whatever pytest's "
                         "tmp_path retention")


@dataclass(frozen=True)
class ParityOutcome:
    """A finished ladder run as seen by a test."""

    result: Any
    evidence: dict[str, Any]
    workdir: Path

    def assert_parity(self) -> None:
        """Fail unless every check passed and every backend ran (report-like message)."""
        __tracebackhide__ = True
        result = self.result
        if result.exit_code == 0:
            return
        lines = [f"parity verdict: {result.verdict} (exit {result.exit_code})"]
        first = result.first_divergence
        if first is not None:
            lines.append(f"first divergent stage: {first.name}: {first.message}")
        for run in result.backend_runs:
            if run.failed:
                first = run.message.splitlines()[0] if run.message else ""
                log_file = self.workdir / f"{run.backend}.log"
                log = f" (log: {log_file})" if log_file.exists() else ""
                lines.append(f"backend {run.backend}: {run.status}: {first[:600]}{log}")
        failed = [c for c in result.checks if c.verdict in ("fail", "error")]
        lines += [f"  {c.name}: {c.message}" for c in failed[:20]]
        pytest.fail("\n".join(lines))


@pytest.fixture
def parity_run(request: pytest.FixtureRequest,
               tmp_path: Path) -> Callable[..., ParityOutcome]:
    """Factory running the ladder: ``parity_run(case=..., levels=..., backends=..., **options)``.

    Keyword options are those of :class:`parity.engine.RunPlan` plus ``case``, ``seed``,
    ``model`` and ``train`` (override dicts).
    """

    def run(*, case: str = "small",
            levels: tuple[str, ...] | str = ("L0", "L1", "L2", "L3", "L4"),
            backends: tuple[str, ...] | str = ("tensorflow", "torch"), seed: int = 0,
            model: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
            **plan_options: Any) -> ParityOutcome:
        from parity.cli_options import parse_levels, parse_names
        from parity.engine import RunPlan, run_parity
        from parity.registry import check_backend_names
        from parity.session import resolve_inputs

        # The same checks as `parity run`, before any work: "L0,L1" or ("L1", "L0") both mean
        # L0 and L1 in ladder order; backends are named once and installed.
        levels = parse_levels(levels if isinstance(levels, str) else ",".join(levels),
                              option="levels")
        chosen = request.config.getoption("--parity-backends")
        if chosen:
            backends = parse_names(chosen)
        elif isinstance(backends, str):
            backends = parse_names(backends)
        backends = check_backend_names(tuple(backends), what="--parity-backends" if chosen
                                       else "backends")
        container, model_cfg, train_cfg, sizing = resolve_inputs(
            case=case, container_path=None, model_overrides=model or {},
            train_overrides=train or {}, seed=seed)
        plan = RunPlan(container=container, model=model_cfg, train=train_cfg,
                       backends=backends, levels=levels, seed=seed, sizing=sizing,
                       **plan_options)
        if request.config.getoption("--parity-keep"):
            import tempfile

            workdir = Path(tempfile.mkdtemp(prefix=f"parity-{case}-{seed}-"))
            print(f"parity_run: scratch directory kept at {workdir}")
        else:
            workdir = tmp_path / f"parity-{case}-{seed}"
        result, evidence = run_parity(plan, workdir)
        return ParityOutcome(result, evidence, workdir)

    return run
