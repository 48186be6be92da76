"""Backend jobs (framework-free): each backend's task list, its ``job.json`` and the shared input
files, the result cache, the CPU cores shared between jobs run side by side, and running a plan's
jobs, then the L5 cross-inference jobs, into one outcome per backend (:func:`run_jobs`).

A job directory ``<work>/<backend>/`` holds ``job.json`` (backend, device, seed, configs, the
task list, any injection) and, once run, one ``<task>.npz`` per task plus ``manifest.json``;
inputs shared by every backend live in ``<work>/inputs/`` and tasks name them relative to the
job directory (``../inputs/<name>.npz``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.config import ModelConfig, TrainConfig
from parity.inputs import L4_NOISE_RERUNS
from parity.runner import BackendOutcome, run_backend

if TYPE_CHECKING:
    from parity.engine import RunPlan

__all__ = ["backend_tasks", "cached_or_run", "forward_tasks", "job_key", "job_threads",
           "l4_noise_reruns", "load_output", "merge_outcomes", "noise_tasks", "run_backend_cached",
           "run_jobs", "save_input", "train_tasks", "write_job"]


def save_input(path: Path, arrays: Mapping[str, Any]) -> str:
    """Save shared inputs as ``<work>/inputs/<name>.npz``; return the path a task names."""
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return f"../inputs/{path.name}"


def load_output(path: Path) -> dict[str, np.ndarray]:
    """A task's output arrays, or ``{}`` when the task wrote none (it failed or did not run)."""
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def train_tasks(plan: RunPlan) -> list[tuple[str, int | None]]:
    """``(task name, training seed)`` of each L5 training: ``train`` first (its outputs feed the
    same-weights check, the figures and ``RunResult.metrics``), then ``train_seed<s>``."""
    if not plan.seeds:
        return [("train", None)]
    return [("train", plan.seeds[0]), *((f"train_seed{s}", s) for s in plan.seeds[1:])]


def l4_noise_reruns() -> list[tuple[str, str]]:
    """``(task name, input file key)`` of each of the baseline's L4 noise reruns
    (:data:`parity.inputs.L4_NOISE_RERUNS`); rerun 0 shares L3's jittered weights."""
    suffixes = [f"_{rerun}" if rerun else "" for rerun in range(L4_NOISE_RERUNS)]
    return [(f"train_steps_noise{s}", f"weights_perturbed{s}") for s in suffixes]


def forward_tasks(levels: Iterable[str]) -> tuple[str, ...]:
    """The forward stages (``physics``, ``network``) a run computes for ``levels``.

    L1 and L2 judge their values; L0 judges their layouts (shape, dtype kind, keys), so it needs
    both outputs too, even when L1 and L2 are not asked for (both are cheap forward passes). L3
    needs the network's max-pool inputs (same weights and batch): they tell a pool winner that
    float32 rounding flipped from a routing bug (:func:`parity.ladder.pool_routing`); without
    them, ``--levels L3`` alone judged such gradients strictly and reported a divergence.
    """
    wanted = set(levels)
    return tuple(task for task, needed_by in (("physics", {"L0", "L1"}),
                                              ("network", {"L0", "L2", "L3"}))
                 if wanted & needed_by)


def noise_tasks(plan: RunPlan, files: Mapping[str, str]) -> list[dict[str, Any]]:
    """The baseline's noise-floor reruns for the plan's levels: the L4 steps from each jittered
    weight set (:data:`L4_NOISE_RERUNS` of them), then L3 from the first set.

    They are what the baseline's L3 and L4 outputs are judged against, and they read only the
    shared input files, so they can run in the baseline's own job or in one of their own
    (:func:`run_jobs` does the latter when the jobs run side by side).
    """
    levels = set(plan.levels)
    tasks: list[dict[str, Any]] = []
    if "L4" in levels:
        tasks += [{"name": name, "kind": "train_steps", "weights": files[weights],
                   "batches": files["batches"]} for name, weights in l4_noise_reruns()]
    if "L3" in levels:
        tasks.append({"name": "loss_and_grads_noise", "kind": "loss_and_grads",
                      "weights": files["weights_perturbed"], "batch": files["batch"]})
    return tasks


def backend_tasks(plan: RunPlan, files: Mapping[str, str], *, is_baseline: bool,
                  with_noise: bool = True) -> list[dict[str, Any]]:
    """The task list of one backend's job for the plan's levels.

    ``files`` maps input names (``data``, ``physics``, ``weights``, ``batch``, ``batches``,
    ``weights_perturbed``, ``weights_perturbed_1`` ...) to their paths relative to the job
    directory. The baseline's job also holds its :func:`noise_tasks` unless ``with_noise`` is
    False (they then run in a job of their own).
    """
    levels = set(plan.levels)
    forward = forward_tasks(levels)
    tasks: list[dict[str, Any]] = [{"name": "effective_config", "kind": "effective_config"}]
    if "physics" in forward:
        tasks.append({"name": "physics", "kind": "forward_physics", "inputs": files["physics"]})
    if "network" in forward:
        tasks.append({"name": "network", "kind": "network_forward",
                      "weights": files["weights"], "batch": files["batch"]})
    if "L3" in levels:
        tasks.append({"name": "loss_and_grads", "kind": "loss_and_grads",
                      "weights": files["weights"], "batch": files["batch"]})
    if "L4" in levels:
        tasks.append({"name": "train_steps", "kind": "train_steps",
                      "weights": files["weights"], "batches": files["batches"]})
    if is_baseline and with_noise:
        # After the L4 steps: a task run earlier in the same process changed TensorFlow's traced
        # L4 trajectory on the chaotic siemens-star case (a different rounding, not a different
        # result), so the noise reruns come after L4, which runs exactly as without them.
        tasks += noise_tasks(plan, files)
    if "L5" in levels:
        for name, seed in train_tasks(plan):
            task = {"name": name, "kind": "train", "data": files["data"],
                    "workdir": "bundle" if name == "train" else f"bundle_{name}"}
            if seed is not None:
                task["seed"] = seed
            tasks.append(task)
    return tasks


def job_key(job_dir: Path, tasks: list[dict[str, Any]]) -> str:
    """Cache key of a job: ``job.json`` and the bytes of every input file its tasks name."""
    digest = hashlib.sha256((job_dir / "job.json").read_bytes())
    for task in tasks:
        for _key, value in sorted(task.items()):
            if isinstance(value, str) and value.startswith("../inputs/"):
                digest.update((job_dir / value).read_bytes())
    return digest.hexdigest()[:32]


def write_job(job_dir: Path, plan: RunPlan, model: ModelConfig, train: TrainConfig,
              backend: str, tasks: list[dict[str, Any]]) -> Path:
    """Create ``job_dir`` with its ``job.json`` (what :mod:`parity.worker` runs); return it."""
    job_dir.mkdir(exist_ok=True)
    job = {"backend": backend, "device": plan.device, "seed": plan.seed,
           "deterministic": train.deterministic, "model": dataclasses.asdict(model),
           "train": dataclasses.asdict(train), "tasks": tasks,
           "injection": plan.injections.get(backend)}
    (job_dir / "job.json").write_text(json.dumps(job, indent=1))
    return job_dir


def job_threads(plan: RunPlan) -> dict[str, str] | None:
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


def merge_outcomes(main: BackendOutcome, extra: BackendOutcome, *,
                   job: str = "cross-inference job") -> BackendOutcome:
    """One outcome per backend: its main job plus an extra ``job`` of the same backend (the L5
    cross-inference job, or the baseline's noise-floor job): tasks merged, log appended, the
    worse status, the extra job's message prefixed with ``job``, and the two jobs' seconds summed
    (job time, not wall time: the noise-floor job runs beside its backend's main job)."""
    manifest = {**main.manifest, "tasks": {**main.manifest.get("tasks", {}),
                                           **extra.manifest.get("tasks", {})}}
    if extra.log_path.is_file() and main.log_path.is_file() and extra.log_path != main.log_path:
        with open(main.log_path, "a") as log:
            log.write(f"\n--- {job} ({extra.log_path.parent.name}) ---\n")
            log.write(extra.log_path.read_text(errors="replace"))
    status = main.status if extra.status == "ok" else \
        (extra.status if main.status == "ok" else main.status)
    message = "; ".join(m for m in (main.message, extra.message and
                                    f"{job}: {extra.message}") if m)
    return BackendOutcome(main.backend, status, main.seconds + extra.seconds, manifest,
                          main.log_path, message)


def cached_or_run(plan: RunPlan, job_dir: Path, tasks: list[dict[str, Any]],
                  progress: Callable[[dict[str, Any]], None], adapter: Any, *,
                  env: dict[str, str] | None = None,
                  cancel: threading.Event | None = None) -> BackendOutcome:
    """Run a job (:func:`parity.runner.run_backend`), or reuse its files from
    ``plan.cache_dir`` when a finished job with the same :func:`job_key` is there."""
    cached = None
    if plan.cache_dir is not None:
        cached = Path(plan.cache_dir) / job_key(job_dir, tasks)
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


def run_jobs(plan: RunPlan, work: Path, files: Mapping[str, str],
             progress: Callable[[dict[str, Any]], None],
             adapter_factory: Callable[[str], Any] | None
             ) -> tuple[dict[str, BackendOutcome], dict[str, dict[str, dict[str, np.ndarray]]]]:
    """Write and run every backend's job, then the L5 cross-inference jobs; return the outcome
    and the output arrays (task -> name -> array) of each backend.

    ``files`` are the shared inputs already in ``<work>/inputs/`` (:func:`save_input`). The jobs
    run side by side when :func:`job_threads` allows it (Ctrl-C or SIGTERM then stops them all),
    otherwise one after another; each is reused from ``plan.cache_dir`` when it can be
    (:func:`cached_or_run`). Side by side, the baseline's :func:`noise_tasks` are a job of their
    own, queued behind the backends' jobs, and merged into the baseline's outcome and outputs
    (:func:`merge_outcomes`). ``adapter_factory`` (in-process isolation only) builds a backend's
    adapter instance.
    """
    outcomes: dict[str, BackendOutcome] = {}
    outputs: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    baseline = plan.backends[0]
    threads = job_threads(plan)
    # Side by side, the baseline's noise-floor reruns get a job of their own: it waits for a free
    # worker, so it runs on the core the first finished job frees instead of lengthening the
    # baseline's job, the run's critical path. One after another, it would only add an import.
    noise = noise_tasks(plan, files) if threads is not None else []
    jobs: dict[str, tuple[str, Path, list[dict[str, Any]]]] = {}
    for backend in plan.backends:
        tasks = backend_tasks(plan, files, is_baseline=backend == baseline, with_noise=not noise)
        jobs[backend] = (backend, write_job(work / backend, plan, plan.model, plan.train,
                                            backend, tasks), tasks)
    noise_job = f"{baseline}-noise"
    if noise:
        jobs[noise_job] = (baseline, write_job(work / noise_job, plan, plan.model, plan.train,
                                               baseline, noise), noise)

    cancel = threading.Event()

    def run_job(name: str, env: dict[str, str] | None) -> None:
        backend, job_dir, tasks = jobs[name]
        job = {"job": name} if name != backend else {}  # names an extra job in the progress
        progress({"backend": backend, **job, "event": "backend-start",
                  "tasks": [t["name"] for t in tasks]})
        instance = adapter_factory(backend) if adapter_factory is not None else None
        outcome = cached_or_run(plan, job_dir, tasks, progress, instance, env=env,
                                cancel=cancel)
        outcomes[name] = outcome
        outputs[name] = {t["name"]: load_output(job_dir / f"{t['name']}.npz") for t in tasks}
        progress({"backend": backend, **job, "event": "backend-end", "status": outcome.status,
                  "seconds": outcome.seconds})

    if threads is None:
        for name in jobs:
            run_job(name, None)
    else:
        pool = ThreadPoolExecutor(max_workers=len(plan.backends))
        try:
            for future in [pool.submit(run_job, name, threads) for name in jobs]:
                future.result()
        except BaseException:  # Ctrl-C / SIGTERM reach this thread only: stop every job
            cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if noise:
        outcomes[baseline] = merge_outcomes(outcomes[baseline], outcomes.pop(noise_job),
                                            job="noise-floor job")
        outputs[baseline].update(outputs.pop(noise_job))
    if "L5" in plan.levels:
        _run_cross_inference(plan, work, files, progress, adapter_factory, outcomes, outputs)
    return outcomes, outputs


def _run_cross_inference(plan: RunPlan, work: Path, files: Mapping[str, str],
                         progress: Callable[[dict[str, Any]], None],
                         adapter_factory: Callable[[str], Any] | None,
                         outcomes: dict[str, BackendOutcome],
                         outputs: dict[str, dict[str, dict[str, np.ndarray]]]) -> None:
    """L5 same weights: each other backend predicts with the baseline's trained weights, in a
    short job of its own once the baseline has trained (it cannot run inside the parallel jobs).
    Its outcome is merged into the backend's (:func:`merge_outcomes`), its output added to the
    backend's outputs as ``baseline_weights``."""
    base_train = outputs.get(plan.backends[0], {}).get("train", {})
    cross = {k[len("weights/"):]: v for k, v in base_train.items() if k.startswith("weights/")}
    if not cross or len(plan.backends) < 2:
        return
    weights_file = save_input(work / "inputs" / "baseline_weights.npz", cross)
    for backend in plan.backends[1:]:
        if outcomes[backend].status in ("crashed", "timeout", "oom"):
            continue  # the backend failed on its own; its report says so
        task = {"name": "baseline_weights", "kind": "predict_with_weights",
                "weights": weights_file, "data": files["data"]}
        job_dir = write_job(work / f"{backend}-cross", plan, plan.model, plan.train, backend,
                            [task])
        progress({"backend": backend, "job": job_dir.name, "event": "backend-start",
                  "tasks": [task["name"]]})
        instance = adapter_factory(backend) if adapter_factory is not None else None
        extra = cached_or_run(plan, job_dir, [task], progress, instance, env=None)
        outcomes[backend] = merge_outcomes(outcomes[backend], extra)
        outputs[backend]["baseline_weights"] = load_output(job_dir / "baseline_weights.npz")
        progress({"backend": backend, "job": job_dir.name, "event": "backend-end",
                  "status": extra.status, "seconds": extra.seconds})
