"""The parity engine: prepares one set of inputs, runs every backend through its adapter (each in
its own subprocess by default), and judges the stage ladder L0-L5.

Order of work: shared preparation (grouping, normalisation, seeded stage inputs, NumPy weights) ->
the float64 oracle's expectations (in process) -> every backend's job (side by side by default,
else the baseline's first) -> at L5, each other backend's inference with the baseline's trained
weights -> checks -> RunResult.
The stage inputs and the oracle's expectations are written here; job files, the cache, core
sharing and running the jobs are :mod:`parity.jobs`'; judging the outputs is
:mod:`parity.run_checks`' (the checks of each stage: :mod:`parity.ladder` for L0-L2,
:mod:`parity.ladder_training` for L3-L5).

Multi-seed mode (``RunPlan.seeds``): L5 trains each backend once per seed, as extra ``train``
tasks of the same job, and judges the per-seed metric differences with an equivalence test
(:mod:`parity.equivalence`, margins read from the tolerance file before any backend runs);
L0-L4 stay single-seed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig, validation_split
from parity.container import Container
from parity.contract import PreparedData
from parity.divergences import DivergenceRegistry, load_registry
from parity.equivalence import equivalence_margins
from parity.inputs import (
    initial_weights,
    l4_batches,
    network_batch,
    perturbed_weights,
    physics_inputs,
)
from parity.jobs import forward_tasks, l4_noise_reruns, run_jobs, save_input
from parity.prepare import group_container, prepare
from parity.results import DEFAULT_TIMEOUT_S, LEVELS, BackendRun, RunResult
from parity.run_checks import collect_checks
from parity.tolerances import ToleranceTable, load_table

__all__ = ["ISOLATIONS", "L4_STEPS", "RunPlan", "run_parity"]

#: Optimiser steps compared at L4.
L4_STEPS = 4

#: How a backend's job may run (:func:`parity.runner.run_backend`).
ISOLATIONS: tuple[str, ...] = ("subprocess", "inprocess")


@dataclass(frozen=True)
class RunPlan:
    """What to run.

    Attributes
    ----------
    container : Container
        The data.
    model : ModelConfig
        Model options (both backends).
    train : TrainConfig
        Training options (both backends).
    backends : tuple[str, ...]
        Adapter names; the first is the baseline the others are compared against.
    levels : tuple[str, ...]
        Ladder levels to evaluate.
    device : str or None
        Device request passed to the adapters (None: each picks, CUDA when available).
    seed : int
        Seed of the stage inputs and NumPy weights (>= 0).
    timeout_s : float
        Per-backend wall-clock limit, s (> 0; ``inf``: no limit).
    isolation : str
        ``subprocess`` or ``inprocess`` (:data:`ISOLATIONS`).
    injections : Mapping[str, str]
        Backend -> injection name (self-test).
    sizing : str
        A note on which configuration size was used (reports say it).
    cache_dir : pathlib.Path or None
        Reuse a backend's finished job when an identical one (same job file, same input bytes)
        ran before (the self-test runs the unmodified baseline once for all injections).
    parallel : bool
        Run the backends' jobs side by side, the CPU cores shared between them (subprocess
        isolation only); the L5 same-weights inference then runs as a short job of its own.
    seeds : tuple[int, ...]
        Training seeds of the L5 multi-seed mode (``TrainConfig.seed`` of each training);
        empty: one training per backend with ``train.seed`` and the single-seed L5 checks.
        When given, at least 2 distinct integers >= 0, and L5 must be among ``levels``.

    Raises
    ------
    ValueError
        Unknown levels, no or repeated backends, an injection for a backend not run, a timeout
        that is not > 0, a negative or non-integer seed, an unknown isolation, or seeds that
        are fewer than 2, repeated, negative, not integers, or given without L5.
    """

    container: Container
    model: ModelConfig
    train: TrainConfig
    backends: tuple[str, ...] = ("tensorflow", "torch")
    levels: tuple[str, ...] = LEVELS
    device: str | None = None
    seed: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    isolation: str = "subprocess"
    injections: Mapping[str, str] = field(default_factory=dict)
    sizing: str = ""
    cache_dir: Path | None = None
    parallel: bool = True
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = [lv for lv in self.levels if lv not in LEVELS]
        if unknown:
            raise ValueError(f"unknown level(s) {unknown}; expected a subset of {LEVELS}")
        if len(self.backends) < 1 or len(set(self.backends)) != len(self.backends):
            raise ValueError(f"backends {self.backends}: need at least one, without repeats")
        for backend in self.injections:
            if backend not in self.backends:
                raise ValueError(f"injection targets {backend!r}, which is not being run")
        # A bad limit or seed is the caller's mistake: caught here it is a usage error, instead
        # of a "timeout" blamed on a backend (timeout_s <= 0) or a NumPy error deep in the inputs.
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int | float) \
                or not self.timeout_s > 0:
            raise ValueError(f"timeout_s={self.timeout_s!r}; expected a number of seconds > 0 "
                             "(inf: no limit)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) \
                or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}; expected an integer >= 0")
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation={self.isolation!r}; expected one of {ISOLATIONS}")
        seeds = tuple(self.seeds)
        bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int | np.integer)
               or s < 0]
        if bad:
            raise ValueError(f"seeds={seeds!r}: {bad} are not integers >= 0")
        if seeds:
            if len(seeds) < 2 or len(set(seeds)) != len(seeds):
                raise ValueError(f"seeds={seeds!r}: an equivalence test needs at least 2 "
                                 "distinct seeds")
            if "L5" not in self.levels:
                raise ValueError(f"seeds={seeds!r} given but L5 is not among the levels "
                                 f"{self.levels}: only L5 trains once per seed")
        object.__setattr__(self, "seeds", tuple(int(s) for s in seeds))


def run_parity(plan: RunPlan, workdir: Path | None = None, *,
               tolerances: ToleranceTable | None = None,
               registry: DivergenceRegistry | None = None,
               progress: Callable[[dict[str, Any]], None] | None = None,
               stamp: str = "",
               adapter_factory: Callable[[str], Any] | None = None
               ) -> tuple[RunResult, dict[str, np.ndarray]]:
    """Run the ladder; return the result and the evidence arrays for the bundle.

    Parameters
    ----------
    plan : RunPlan
        What to run.
    workdir : pathlib.Path, optional
        Scratch directory (job files, bundles, logs); a temporary one when None.
    tolerances, registry
        Override the project's tolerance table and divergence registry.
    progress : callable, optional
        Receives progress events (backend, task, epoch, loss, ...).
    stamp : str
        UTC stamp of the run (for the result).
    adapter_factory : callable, optional
        In-process isolation only: builds the adapter instance for a backend name (tests use it
        to run adapters that are not installed as entry points).
    """
    table = tolerances or load_table()
    known = registry or load_registry()
    own_tmp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="parity-")) if own_tmp else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(plan, work, table, known, progress or (lambda e: None), stamp,
                    adapter_factory)
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


def _run(plan: RunPlan, work: Path, table: ToleranceTable, known: DivergenceRegistry,
         progress: Callable[[dict[str, Any]], None], stamp: str,
         adapter_factory: Callable[[str], Any] | None) -> tuple[RunResult, dict[str, np.ndarray]]:
    from parity.oracle.adapter import OracleAdapter

    levels = set(plan.levels)
    container, model, train = plan.container, plan.model, plan.train
    # Read before any backend runs: fixed before the result is known, and a missing one stops
    # the run before hours of training.
    margins = equivalence_margins(table) if plan.seeds else {}
    grouping = group_container(container, model)
    data = prepare(container, grouping, model)
    if levels & {"L4", "L5"}:  # a split with no training group is bad input, not a backend error
        validation_split(data.diffraction.shape[0], train.validation_fraction)
    oracle = OracleAdapter()
    files, expected = _write_stage_inputs(plan, data, work / "inputs", oracle)
    outcomes, outputs = run_jobs(plan, work, files, progress, adapter_factory)
    judged = collect_checks(plan, data, oracle, expected, outcomes, outputs, table=table,
                            known=known, margins=margins)

    backend_runs = tuple(
        BackendRun(
            backend=b, status=outcomes[b].status, seconds=outcomes[b].seconds,
            tasks={n: {k: v for k, v in t.items() if k in ("status", "error", "seconds", "kind")}
                   for n, t in outcomes[b].manifest.get("tasks", {}).items()},
            environment=outcomes[b].manifest.get("environment", {}),
            log_path=f"logs/{b}.log", message=outcomes[b].message,
        )
        for b in plan.backends
    )
    result = RunResult(
        case=container.metadata.name, stamp=stamp, levels=tuple(plan.levels),
        backends=tuple(plan.backends), checks=tuple(judged.checks), backend_runs=backend_runs,
        histories=judged.histories, metrics=judged.metrics, equivalence=judged.equivalence,
        config={"model": dataclasses.asdict(model), "train": dataclasses.asdict(train),
                "seed": plan.seed, **({"seeds": list(plan.seeds)} if plan.seeds else {}),
                "device_request": plan.device, "device": judged.device,
                "isolation": plan.isolation, "sizing": plan.sizing,
                "injections": dict(plan.injections), "n_groups": grouping.n_groups,
                "intensity_scale": data.intensity_scale, "normalisation": data.normalisation},
        provenance={"data_hash": container.content_hash(),
                    "container": container.metadata.to_dict(),
                    "tolerance_file": table.source, "divergence_registry": known.source},
        warnings=judged.warnings,
    )
    for backend, outcome in outcomes.items():
        log_copy = work / f"{backend}.log"
        if outcome.log_path.exists() and outcome.log_path != log_copy:
            shutil.copyfile(outcome.log_path, log_copy)
    # the arrays behind the first divergence, for the reviewer (evidence.npz, divergence.png)
    return result, {**judged.evidence, **judged.judge.evidence_of(result.first_divergence)}


def _write_stage_inputs(plan: RunPlan, data: PreparedData, inputs_dir: Path, oracle: Any
                        ) -> tuple[dict[str, str], dict[str, dict[str, np.ndarray]]]:
    """Save the inputs every backend's job reads to ``inputs_dir``, for the plan's levels, and
    compute the oracle's expectations of them.

    Returns the input files by name (``data``, ``physics``, ``weights``, ``batch``, ``batches``,
    ``weights_perturbed``, ``weights_perturbed_1`` ..., as :func:`parity.jobs.backend_tasks`
    names them) and the oracle's outputs per forward task (``physics``, ``network``:
    :func:`parity.jobs.forward_tasks`, at L1, L2 and L0), with, at L3, the ``initial_weights``
    the Adam steps start from (:func:`parity.ladder_training.adam_step_check`).
    """
    levels = set(plan.levels)
    forward = forward_tasks(levels)
    container, model, train = plan.container, plan.model, plan.train
    inputs_dir.mkdir(exist_ok=True)
    expected: dict[str, dict[str, np.ndarray]] = {}
    files: dict[str, str] = {"data": save_input(inputs_dir / "prepared.npz", data.to_arrays())}
    if "physics" in forward:
        phys = physics_inputs(container, model, seed=plan.seed)
        files["physics"] = save_input(inputs_dir / "physics.npz", phys)
        expected["physics"] = oracle.forward_physics(model, phys)
    if "network" in forward or levels & {"L3", "L4"}:
        weights = initial_weights(model, seed=plan.seed)
        batch = network_batch(data)
        files["weights"] = save_input(inputs_dir / "weights.npz", weights)
        if "L3" in levels:  # each backend's Adam step is judged from these and its own gradients
            expected["initial_weights"] = weights
        files["batch"] = save_input(inputs_dir / "batch.npz", batch)
        if "network" in forward:
            expected["network"] = oracle.network_forward(model, weights, batch)
    if "L4" in levels:
        files["batches"] = save_input(inputs_dir / "batches.npz",
                                      l4_batches(data, train, steps=L4_STEPS, seed=plan.seed))
    if levels & {"L3", "L4"}:  # the baseline's own noise floor: the same stage, weights jittered
        files["weights_perturbed"] = save_input(inputs_dir / "weights_perturbed.npz",
                                                perturbed_weights(weights, seed=plan.seed))
    if "L4" in levels:
        for rerun, (_, key) in enumerate(l4_noise_reruns()):
            if key not in files:
                files[key] = save_input(inputs_dir / f"{key}.npz",
                                        perturbed_weights(weights, seed=plan.seed, rerun=rerun))
    return files, expected
