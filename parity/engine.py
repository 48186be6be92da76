"""The parity engine: prepares one set of inputs, runs every backend through its adapter (each in
its own subprocess by default), and judges the stage ladder L0-L5.

Order of work: shared preparation (grouping, normalisation, seeded stage inputs, NumPy weights) ->
the float64 oracle's expectations (in process) -> the baseline backend's job -> each other
backend's job (including inference with the baseline's trained weights) -> checks -> RunResult.

Multi-seed mode (``RunPlan.seeds``): L5 trains each backend once per seed, as extra ``train``
tasks of the same job, and judges the per-seed metric differences with an equivalence test
(:mod:`parity.equivalence`, margins read from the tolerance file before any backend runs);
L0-L4 stay single-seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig
from parity.container import Container
from parity.contract import NETWORK_OUTPUT_KEYS, PHYSICS_OUTPUT_KEYS
from parity.divergences import DivergenceRegistry, load_registry
from parity.equivalence import equivalence_margins, multi_seed_evaluation
from parity.inputs import (
    initial_weights,
    l4_batches,
    network_batch,
    perturbed_weights,
    physics_inputs,
)
from parity.judge import Judge
from parity.prepare import group_container, prepare
from parity.results import LEVELS, BackendRun, Check, RunResult
from parity.runner import BackendOutcome, run_backend
from parity.tolerances import ToleranceTable, load_table

__all__ = ["ISOLATIONS", "RunPlan", "run_parity"]

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
    timeout_s: float = 900.0
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


def _save(path: Path, arrays: Mapping[str, Any]) -> str:
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return f"../inputs/{path.name}"


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _train_tasks(plan: RunPlan) -> list[tuple[str, int | None]]:
    """``(task name, training seed)`` of each L5 training: ``train`` first (its outputs feed the
    same-weights check, the figures and ``RunResult.metrics``), then ``train_seed<s>``."""
    if not plan.seeds:
        return [("train", None)]
    return [("train", plan.seeds[0]), *((f"train_seed{s}", s) for s in plan.seeds[1:])]


def _device_kind(environment: Mapping[str, Any]) -> str:
    device = str(environment.get("device", "cpu"))
    return "cuda" if device.startswith("cuda") or device.startswith("/GPU") or "gpu" in \
        device.lower() else "cpu"


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
    inputs_dir = work / "inputs"
    inputs_dir.mkdir(exist_ok=True)
    oracle = OracleAdapter()
    expected: dict[str, dict[str, np.ndarray]] = {}
    files: dict[str, str] = {"data": _save(inputs_dir / "prepared.npz", data.to_arrays())}
    if "L1" in levels:
        phys = physics_inputs(container, model, seed=plan.seed)
        files["physics"] = _save(inputs_dir / "physics.npz", phys)
        expected["physics"] = oracle.forward_physics(model, phys)
    if levels & {"L2", "L3", "L4"}:
        weights = initial_weights(model, seed=plan.seed)
        batch = network_batch(data)
        files["weights"] = _save(inputs_dir / "weights.npz", weights)
        files["batch"] = _save(inputs_dir / "batch.npz", batch)
        if "L2" in levels:
            expected["network"] = oracle.network_forward(model, weights, batch)
    if "L4" in levels:
        files["batches"] = _save(inputs_dir / "batches.npz",
                                 l4_batches(data, train, steps=L4_STEPS, seed=plan.seed))
        files["weights_perturbed"] = _save(inputs_dir / "weights_perturbed.npz",
                                           perturbed_weights(weights, seed=plan.seed))

    outcomes: dict[str, BackendOutcome] = {}
    outputs: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    baseline = plan.backends[0]
    jobs: dict[str, tuple[Path, list[dict[str, Any]]]] = {}
    for backend in plan.backends:
        tasks: list[dict[str, Any]] = [{"name": "effective_config", "kind": "effective_config"}]
        if "L1" in levels:
            tasks.append({"name": "physics", "kind": "forward_physics",
                          "inputs": files["physics"]})
        if "L2" in levels:
            tasks.append({"name": "network", "kind": "network_forward",
                          "weights": files["weights"], "batch": files["batch"]})
        if "L3" in levels:
            tasks.append({"name": "loss_and_grads", "kind": "loss_and_grads",
                          "weights": files["weights"], "batch": files["batch"]})
        if "L4" in levels:
            tasks.append({"name": "train_steps", "kind": "train_steps",
                          "weights": files["weights"], "batches": files["batches"]})
            if backend == baseline:  # the noise floor of L4: the same steps from jittered weights
                tasks.append({"name": "train_steps_noise", "kind": "train_steps",
                              "weights": files["weights_perturbed"],
                              "batches": files["batches"]})
        if "L5" in levels:
            for name, seed in _train_tasks(plan):
                task = {"name": name, "kind": "train", "data": files["data"],
                        "workdir": "bundle" if name == "train" else f"bundle_{name}"}
                if seed is not None:
                    task["seed"] = seed
                tasks.append(task)
        jobs[backend] = (_write_job(work / backend, plan, model, train, backend, tasks), tasks)

    cancel = threading.Event()

    def run_job(backend: str, env: dict[str, str] | None) -> None:
        job_dir, tasks = jobs[backend]
        progress({"backend": backend, "event": "backend-start",
                  "tasks": [t["name"] for t in tasks]})
        instance = adapter_factory(backend) if adapter_factory is not None else None
        outcome = _cached_or_run(plan, job_dir, tasks, progress, instance, env=env,
                                 cancel=cancel)
        outcomes[backend] = outcome
        outputs[backend] = {t["name"]: _load(job_dir / f"{t['name']}.npz") for t in tasks}
        progress({"backend": backend, "event": "backend-end", "status": outcome.status,
                  "seconds": outcome.seconds})

    threads = _job_threads(plan)
    if threads is None:
        for backend in plan.backends:
            run_job(backend, None)
    else:
        pool = ThreadPoolExecutor(max_workers=len(plan.backends))
        try:
            for future in [pool.submit(run_job, b, threads) for b in plan.backends]:
                future.result()
        except BaseException:  # Ctrl-C / SIGTERM reach this thread only: stop every job
            cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # L5 same weights: each other backend predicts with the baseline's trained weights, in a
    # short job of its own once the baseline has trained (it cannot run inside the parallel jobs).
    base_train = outputs.get(baseline, {}).get("train", {})
    cross = {k[len("weights/"):]: v for k, v in base_train.items() if k.startswith("weights/")}
    if "L5" in levels and cross and len(plan.backends) > 1:
        files["baseline_weights"] = _save(inputs_dir / "baseline_weights.npz", cross)
        for backend in plan.backends[1:]:
            if outcomes[backend].status in ("crashed", "timeout", "oom"):
                continue  # the backend failed on its own; its report says so
            task = {"name": "baseline_weights", "kind": "predict_with_weights",
                    "weights": files["baseline_weights"], "data": files["data"]}
            job_dir = _write_job(work / f"{backend}-cross", plan, model, train, backend, [task])
            progress({"backend": backend, "event": "backend-start", "tasks": [task["name"]]})
            instance = adapter_factory(backend) if adapter_factory is not None else None
            extra = _cached_or_run(plan, job_dir, [task], progress, instance, env=None)
            outcomes[backend] = _merge_outcomes(outcomes[backend], extra)
            outputs[backend]["baseline_weights"] = _load(job_dir / "baseline_weights.npz")
            progress({"backend": backend, "event": "backend-end", "status": extra.status,
                      "seconds": extra.seconds})

    device = _device_kind(outcomes[baseline].manifest.get("environment", {}))
    judge = Judge(table, known, device=device)
    checks: list[Check] = []
    histories: dict[str, Any] = {}
    evidence: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {}
    for backend in plan.backends:
        tasks_manifest = outcomes[backend].manifest.get("tasks", {})
        config_record = tasks_manifest.get("effective_config", {})
        if "L0" in levels:
            checks.extend(_level0(judge, oracle, plan, backend, baseline, config_record,
                                  {b: outcomes[b].manifest.get("tasks", {}) for b in outcomes},
                                  outputs, expected))
        if "L1" in levels:
            checks.extend(_compare_stage(judge, "L1", backend, outcomes[backend], "physics",
                                         outputs[backend].get("physics", {}),
                                         expected["physics"], PHYSICS_OUTPUT_KEYS, "oracle"))
        if "L2" in levels:
            checks.extend(_compare_stage(judge, "L2", backend, outcomes[backend], "network",
                                         outputs[backend].get("network", {}),
                                         expected["network"], NETWORK_OUTPUT_KEYS, "oracle"))
        history = tasks_manifest.get("train", {}).get("history")
        if history:
            histories[backend] = history
            for key, values in history.items():
                evidence[f"{backend}/history/{key}"] = np.asarray(values, dtype=np.float64)
        trained = outputs[backend].get("train", {})
        if "reconstructed_obj" in trained:
            evidence[f"{backend}/reconstructed_obj"] = trained["reconstructed_obj"]
            evidence[f"{backend}/origin_px"] = trained["origin_px"]

    for backend in plan.backends[1:]:
        pair_name = backend
        for level, task, keys in (("L2", "network", NETWORK_OUTPUT_KEYS),):
            if level in levels:
                checks.extend(_compare_stage(judge, level, pair_name, outcomes[backend], task,
                                             outputs[backend].get(task, {}),
                                             outputs[baseline].get(task, {}), keys, baseline,
                                             stage_prefix="pair.",
                                             reference_outcome=outcomes[baseline]))
        if "L3" in levels:
            checks.extend(_level3(judge, backend, baseline, outcomes, outputs))
        if "L4" in levels:
            checks.extend(_level4(judge, backend, baseline, outcomes, outputs))
        if "L5" in levels:
            checks.extend(_level5_same_weights(judge, backend, baseline, outcomes, outputs,
                                               evidence))
    equivalence: dict[str, Any] = {}
    if "L5" in levels:
        from parity.evaluation import independent_checks

        l5_checks, metrics, l5_evidence = independent_checks(
            judge, plan.backends, container, data, model, outcomes, outputs)
        if plan.seeds:
            seed_tasks = [(seed, name) for (name, _), seed
                          in zip(_train_tasks(plan), plan.seeds, strict=True)]
            l5_checks, equivalence = multi_seed_evaluation(
                judge, plan.backends, container, data, model, outcomes, outputs,
                seed_tasks=seed_tasks, first=(l5_checks, metrics), margins=margins,
                margins_source=table.source)
        checks.extend(l5_checks)
        evidence.update(l5_evidence)
    if container.object_truth is not None:
        evidence["truth/object"] = container.object_truth

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
        backends=tuple(plan.backends), checks=tuple(checks), backend_runs=backend_runs,
        histories=histories, metrics=metrics, equivalence=equivalence,
        config={"model": dataclasses.asdict(model), "train": dataclasses.asdict(train),
                "seed": plan.seed, **({"seeds": list(plan.seeds)} if plan.seeds else {}),
                "device_request": plan.device, "device": device,
                "isolation": plan.isolation, "sizing": plan.sizing,
                "injections": dict(plan.injections), "n_groups": grouping.n_groups,
                "intensity_scale": data.intensity_scale, "normalisation": data.normalisation},
        provenance={"data_hash": container.content_hash(),
                    "container": container.metadata.to_dict(),
                    "tolerance_file": table.source, "divergence_registry": known.source},
        warnings=tuple(judge.warnings),
    )
    for backend, outcome in outcomes.items():
        log_copy = work / f"{backend}.log"
        if outcome.log_path.exists() and outcome.log_path != log_copy:
            shutil.copyfile(outcome.log_path, log_copy)
    return result, evidence


def _job_key(job_dir: Path, tasks: list[dict[str, Any]]) -> str:
    digest = hashlib.sha256((job_dir / "job.json").read_bytes())
    for task in tasks:
        for _key, value in sorted(task.items()):
            if isinstance(value, str) and value.startswith("../inputs/"):
                digest.update((job_dir / value).read_bytes())
    return digest.hexdigest()[:32]


def _write_job(job_dir: Path, plan: RunPlan, model: ModelConfig, train: TrainConfig,
               backend: str, tasks: list[dict[str, Any]]) -> Path:
    job_dir.mkdir(exist_ok=True)
    job = {"backend": backend, "device": plan.device, "seed": plan.seed,
           "deterministic": train.deterministic, "model": dataclasses.asdict(model),
           "train": dataclasses.asdict(train), "tasks": tasks,
           "injection": plan.injections.get(backend)}
    (job_dir / "job.json").write_text(json.dumps(job, indent=1))
    return job_dir


def _job_threads(plan: RunPlan) -> dict[str, str] | None:
    """Environment for backend jobs run side by side, or None to run them one after another.

    Side by side when the plan allows it (``parallel``), jobs are subprocesses and there is more
    than one backend. The CPU cores are shared out (``OMP_NUM_THREADS``, which both backends'
    ``configure_numerics`` honour) unless the caller pinned the thread count already.
    """
    if not plan.parallel or plan.isolation != "subprocess" or len(plan.backends) < 2:
        return None
    if os.environ.get("OMP_NUM_THREADS"):
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"OMP_NUM_THREADS": str(max(1, (cores or 1) // len(plan.backends)))}


def _merge_outcomes(main: BackendOutcome, extra: BackendOutcome) -> BackendOutcome:
    """One outcome per backend: its main job plus its cross-inference job (log appended)."""
    manifest = {**main.manifest, "tasks": {**main.manifest.get("tasks", {}),
                                           **extra.manifest.get("tasks", {})}}
    if extra.log_path.is_file() and main.log_path.is_file() and extra.log_path != main.log_path:
        with open(main.log_path, "a") as log:
            log.write(f"\n--- cross-inference job ({extra.log_path.parent.name}) ---\n")
            log.write(extra.log_path.read_text(errors="replace"))
    status = main.status if extra.status == "ok" else \
        (extra.status if main.status == "ok" else main.status)
    message = "; ".join(m for m in (main.message, extra.message and
                                    f"cross-inference job: {extra.message}") if m)
    return BackendOutcome(main.backend, status, main.seconds + extra.seconds, manifest,
                          main.log_path, message)


def _cached_or_run(plan: RunPlan, job_dir: Path, tasks: list[dict[str, Any]],
                   progress: Callable[[dict[str, Any]], None], adapter: Any, *,
                   env: dict[str, str] | None = None,
                   cancel: threading.Event | None = None) -> BackendOutcome:
    cached = None
    if plan.cache_dir is not None:
        cached = Path(plan.cache_dir) / _job_key(job_dir, tasks)
        manifest = cached / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("finished"):
            for item in cached.iterdir():
                if item.is_file() and item.name != "job.json":
                    shutil.copyfile(item, job_dir / item.name)
            outcome = run_backend_cached(job_dir)
            if outcome is not None:
                return outcome
    outcome = run_backend(job_dir, timeout_s=plan.timeout_s, isolation=plan.isolation,
                          on_progress=progress, adapter=adapter, env=env, cancel=cancel)
    if cached is not None and outcome.status == "ok":
        cached.mkdir(parents=True, exist_ok=True)
        for item in job_dir.iterdir():
            if item.is_file():
                shutil.copyfile(item, cached / item.name)
    return outcome


def run_backend_cached(job_dir: Path) -> BackendOutcome | None:
    """An outcome rebuilt from a finished job's files (no process started)."""
    try:
        manifest = json.loads((job_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return BackendOutcome(manifest.get("backend", job_dir.name), "ok", 0.0, manifest,
                          job_dir / "backend.log", "reused from the cache")


def _missing(level: str, stage: str, backend: str, reference: str,
             outcome: BackendOutcome, task: str) -> Check:
    record = outcome.manifest.get("tasks", {}).get(task, {})
    reason = record.get("error") or outcome.message or f"task {task} produced no output"
    supported = "not supported" in str(reason) or "does not implement" in str(reason)
    # Name the backend whose task failed (it may be the reference, not the one under test).
    return Check(level, stage, "*", backend, reference, "skipped" if supported else "error",
                 message=f"{outcome.backend} {task}: {reason}"[:500])


def _compare_stage(judge: Judge, level: str, backend: str, outcome: BackendOutcome, task: str,
                   actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                   keys: tuple[str, ...], reference: str, *,
                   stage_prefix: str = "",
                   reference_outcome: BackendOutcome | None = None) -> list[Check]:
    if not actual:
        return [_missing(level, f"{stage_prefix}{task}", backend, reference, outcome, task)]
    if not expected and reference_outcome is not None:
        # The reference backend produced nothing: say so, rather than silently emit no check.
        return [_missing(level, f"{stage_prefix}{task}", backend, reference, reference_outcome,
                         task)]
    checks = []
    for key in keys:
        if key not in expected:
            continue
        if key not in actual:
            checks.append(Check(level, f"{stage_prefix}{key}", key, backend, reference, "fail",
                                message=f"{backend} did not return {key!r}"))
            continue
        checks.append(judge.compare(level=level, stage=f"{stage_prefix}{key}", quantity=key,
                                    backend=backend, reference=reference,
                                    expected=expected[key], actual=actual[key]))
    return checks


def _level0(judge: Judge, oracle: Any, plan: RunPlan, backend: str, baseline: str,
            record: Mapping[str, Any], manifests: Mapping[str, Any],
            outputs: Mapping[str, Any], expected: Mapping[str, Any]) -> list[Check]:
    checks = []
    config = record.get("config")
    if config is None:
        return [Check("L0", "effective_config", "config", backend, "oracle", "error",
                      message=f"{backend} reported no effective config: "
                              f"{record.get('error', 'task missing')}")]
    reference = oracle.effective_config(plan.model, plan.train)
    shared = {k: v for k, v in config.items() if k != "framework"}
    checks.append(judge.exact(level="L0", stage="effective_config", quantity="config",
                              backend=backend, reference="oracle",
                              expected={k: v for k, v in reference.items() if k != "framework"},
                              actual=shared))
    for task, keys in (("physics", PHYSICS_OUTPUT_KEYS), ("network", NETWORK_OUTPUT_KEYS)):
        ours = outputs.get(backend, {}).get(task, {})
        ref = expected.get(task, {})
        if not ours or not ref:
            continue
        layout_expected = {k: [list(np.shape(ref[k])), np.asarray(ref[k]).dtype.kind]
                           for k in keys if k in ref}
        layout_actual = {k: [list(np.shape(ours[k])), np.asarray(ours[k]).dtype.kind]
                         for k in keys if k in ours}
        checks.append(judge.exact(level="L0", stage="layout", quantity=task, backend=backend,
                                  reference="oracle", expected=layout_expected,
                                  actual=layout_actual))
    return checks


def _level3(judge: Judge, backend: str, baseline: str, outcomes: Mapping[str, BackendOutcome],
            outputs: Mapping[str, Any]) -> list[Check]:
    ours = outputs[backend].get("loss_and_grads", {})
    base = outputs[baseline].get("loss_and_grads", {})
    if not ours or not base:
        failed = backend if not ours else baseline
        return [_missing("L3", "loss_and_grads", backend, baseline, outcomes[failed],
                         "loss_and_grads")]
    checks = [judge.compare(level="L3", stage="loss", quantity="loss", backend=backend,
                            reference=baseline, expected=base["loss"], actual=ours["loss"])]
    grads = sorted(k for k in base if k.startswith("grad/"))
    # A bias gradient sums over every pixel and cancels down far below its terms, so float32
    # rounding is judged against the largest gradient of its layer, kernel and bias together
    # (``group_max_abs``; the decoder head's bias gradient is ~1e-3 of its kernel's).
    layer_max: dict[str, float] = {}
    for key in grads:
        layer = key.rsplit(".", 1)[0]
        values = np.asarray(base[key], dtype=np.float64)
        top = float(np.max(np.abs(values), initial=0.0)) if np.isfinite(values).all() \
            else float("nan")
        layer_max[layer] = max(layer_max.get(layer, 0.0), top)
    for key in grads:
        group = layer_max[key.rsplit(".", 1)[0]]
        name = key.split("/", 1)[1]
        if key not in ours:
            checks.append(Check("L3", "grad", name, backend, baseline, "fail",
                                message=f"{backend} did not return {key}"))
            continue
        checks.append(judge.compare(level="L3", stage="grad", quantity=name, backend=backend,
                                    reference=baseline, expected=base[key], actual=ours[key],
                                    group_max_abs=group if np.isfinite(group) else None))
    checks.extend(_pooled_weights(judge, "L3", "stepped", backend, baseline, base, ours))
    return checks


def _pooled_weights(judge: Judge, level: str, stage: str, backend: str, baseline: str,
                    base: Mapping[str, np.ndarray], ours: Mapping[str, np.ndarray]) -> list[Check]:
    """Weights after Adam steps (``<stage>/<name>`` arrays) as ONE check over the network.

    Adam turns float noise in a ~0 gradient into a full step of +-lr, so a handful of elements of
    the whole network may differ (the tolerance's ``max_fraction``); judged per array, one such
    element of a 32-element bias would already be 3 %. A missing or reshaped array fails on its
    own; the message of the pooled check names the worst array.
    """
    prefix = f"{stage}/"
    keys = sorted(k for k in base if k.startswith(prefix))
    missing = [k for k in keys if k not in ours or np.shape(ours[k]) != np.shape(base[k])]
    checks = [Check(level, stage, key.split("/", 1)[1], backend, baseline, "fail",
                    message=f"{backend} returned {key} with shape "
                            f"{np.shape(ours[key]) if key in ours else None}; expected "
                            f"{np.shape(base[key])}")
              for key in missing]
    if missing or not keys:
        return checks
    expected = np.concatenate([np.ravel(base[k]) for k in keys])
    actual = np.concatenate([np.ravel(ours[k]) for k in keys])
    check = judge.compare(level=level, stage=stage, quantity="all", backend=backend,
                          reference=baseline, expected=expected, actual=actual)
    worst = max(keys, key=lambda k: float(np.max(np.abs(
        np.asarray(ours[k], np.float64) - np.asarray(base[k], np.float64)), initial=0.0)))
    note = f"all {len(keys)} arrays pooled ({expected.size} elements); worst array {worst}"
    checks.append(dataclasses.replace(
        check, message=f"{check.message}; {note}" if check.message else note))
    return checks


def _level4(judge: Judge, backend: str, baseline: str, outcomes: Mapping[str, BackendOutcome],
            outputs: Mapping[str, Any]) -> list[Check]:
    ours = outputs[backend].get("train_steps", {})
    base = outputs[baseline].get("train_steps", {})
    if not ours or not base:
        failed = backend if not ours else baseline
        return [_missing("L4", "train_steps", backend, baseline, outcomes[failed],
                         "train_steps")]
    noise = outputs[baseline].get("train_steps_noise", {})
    losses = judge.compare(level="L4", stage="loss_curve", quantity="losses", backend=backend,
                           reference=baseline, expected=base["losses"], actual=ours["losses"])
    if "losses" in noise:
        ulp = np.spacing(np.abs(np.asarray(base["losses"], np.float32))).astype(np.float64)
        losses = _within_noise_floor(
            judge, losses, _deviation(ours["losses"], base["losses"]),
            np.maximum(_deviation(noise["losses"], base["losses"]), ulp))
    checks = [losses]
    for check in _pooled_weights(judge, "L4", "weights", backend, baseline, base, ours):
        keys = sorted(k for k in base if k.startswith("weights/"))
        if check.quantity == "all" and keys and all(k in noise for k in keys):
            flat = {name: np.concatenate([np.ravel(source[k]) for k in keys])
                    for name, source in (("base", base), ("ours", ours), ("noise", noise))}
            check = _within_noise_floor(
                judge, check, np.array([_rms(flat["ours"] - flat["base"])]),
                np.array([_rms(flat["noise"] - flat["base"])]))
        checks.append(check)
    return checks


def _deviation(a: Any, b: Any) -> np.ndarray:
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values.astype(np.float64))))) if values.size else 0.0


def _within_noise_floor(judge: Judge, check: Check, cross: np.ndarray,
                        floor: np.ndarray) -> Check:
    """Turn a failed chaotic-stage check into a pass when the backends differ by at most the
    tolerance's ``noise_factor`` times the baseline's own noise floor (same run, weights jittered
    by one part in 1e7); the measured ratio is recorded either way."""
    try:
        factor = judge.table.lookup(level=check.level, stage=check.stage, quantity=check.quantity,
                                    dtype=judge.dtype, device=judge.device).noise_factor
    except KeyError:
        return check
    if factor is None or check.verdict != "fail":
        return check
    ratio = float(np.max(cross / np.maximum(floor, np.finfo(np.float64).tiny)))
    measured = {**check.measured, "noise_floor_ratio": ratio, "noise_factor": factor}
    if np.all(np.isfinite(cross)) and ratio <= factor:
        return dataclasses.replace(check, verdict="pass", measured=measured, message=(
            f"within the noise floor: {ratio:.2g}x the baseline's own spread from weights "
            f"jittered by 1e-7 (limit {factor:g}x); the elementwise bound alone failed: "
            f"{check.message}"))
    return dataclasses.replace(check, measured=measured, message=(
        f"{check.message}; {ratio:.2g}x the baseline's own noise floor (limit {factor:g}x)"))


def _level5_same_weights(judge: Judge, backend: str, baseline: str,
                         outcomes: Mapping[str, BackendOutcome], outputs: Mapping[str, Any],
                         evidence: dict[str, np.ndarray]) -> list[Check]:
    ours = outputs[backend].get("baseline_weights", {})
    base = outputs[baseline].get("train", {})
    if not base:
        return [_missing("L5", "same_weights", backend, baseline, outcomes[baseline], "train")]
    if not ours:
        return [_missing("L5", "same_weights", backend, baseline, outcomes[backend],
                         "baseline_weights")]
    checks = [judge.exact(level="L5", stage="same_weights", quantity="origin_px",
                          backend=backend, reference=baseline,
                          expected=np.asarray(base["origin_px"]).tolist(),
                          actual=np.asarray(ours["origin_px"]).tolist())]
    expected_obj, actual_obj = base["reconstructed_obj"], ours["reconstructed_obj"]
    evidence[f"{backend}/same_weights/reconstructed_obj"] = actual_obj
    for key, exp, act in (
        ("reconstructed_obj", expected_obj, actual_obj),
        ("recon_amp", np.abs(expected_obj), np.abs(actual_obj)),
        ("recon_phase", _masked_phase(expected_obj), _masked_phase(actual_obj, expected_obj)),
    ):
        checks.append(judge.compare(level="L5", stage="same_weights", quantity=key,
                                    backend=backend, reference=baseline, expected=exp,
                                    actual=act))
    return checks


def _masked_phase(obj: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Phase where the amplitude is meaningful (>= 5 % of max), 0 elsewhere; wrap-aligned to
    ``reference`` so that a +-pi wrap does not count as an error."""
    ref = obj if reference is None else reference
    mask = np.abs(ref) >= 0.05 * np.abs(ref).max()
    phase = np.angle(obj)
    if reference is not None:
        phase = np.angle(reference) + np.angle(obj * np.conj(reference))
    return np.where(mask, phase, 0.0)


