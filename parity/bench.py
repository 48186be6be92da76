"""Benchmarks: what each backend costs, measured in one run, side by side.

``parity bench`` runs, per backend and in its own subprocess: training throughput (groups/s, the
median epoch after a warm-up epoch), inference throughput (groups/s, second call), stitching
throughput (output pixels/s) of the vectorised stitcher and of a plain per-patch loop, peak host
memory (RSS) and GPU peak where the adapter reports one; a scaling sweep over the number of
groups, N and batch size; stitching at the case's own geometry against the 50x target; and the
time each ladder level takes. Medians over repeats; JSON plus a markdown table in a timestamped
bundle; torch/TF ratios.

Figures are measured, never asserted in unit tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig
from parity.contract import Adapter, PreparedData

__all__ = ["BENCH_DETERMINISTIC", "LOOP_REPEATS", "MIN_MEASURED_GROUPS", "STITCH_REPEATS",
           "STITCH_SPEEDUP_TARGET", "STITCH_WARMUP", "THROUGHPUTS", "bench_backend",
           "check_bench_settings", "default_sweep", "device_ratios", "run_bench"]


def _synthetic_data(n_groups: int, config: ModelConfig, seed: int) -> PreparedData:
    """Random positive 'diffraction' with the right statistics for timing (not for quality)."""
    rng = np.random.default_rng(seed)
    N, C = config.N, config.channels
    diffraction = rng.gamma(2.0, 0.5, size=(n_groups, C, N, N)).astype(np.float32)
    diffraction *= (N / 2) / np.sqrt(np.mean(np.sum(diffraction**2, axis=(-2, -1))))
    relative = rng.uniform(-2, 2, size=(n_groups, C, 2))
    if C > 1:
        relative -= relative.mean(axis=1, keepdims=True)
    side = int(np.ceil(np.sqrt(n_groups)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:n_groups]
    centres = 40.0 + 3.3 * grid + rng.uniform(-0.5, 0.5, size=(n_groups, 2))
    from fixtures.probes import default_probe

    return PreparedData(diffraction=diffraction, relative_px=relative, centres_px=centres,
                        probe=default_probe(N), intensity_scale=1e3 / (N / 2),
                        normalisation=1.0)


_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak_rss() -> bool:
    """Start a new peak-RSS window: Linux resets the process's high-water mark (``VmHWM``) when
    ``5`` is written to ``/proc/self/clear_refs``. False where that is not possible: the figure
    is then the process's peak so far (it only grows over the sweep)."""
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_mb() -> float:
    """Peak resident memory in MiB: ``VmHWM`` (since :func:`_reset_peak_rss`) where ``/proc``
    has it, else ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0


#: Training throughput: the median epoch of at least ``repeats`` epochs after the warm-up one, and
#: of enough epochs to see this many groups (short epochs vary by ~20 % on a shared CPU).
MIN_MEASURED_GROUPS = 1024

#: Stitching figures: warm-up calls, then the median of this many timed calls (vectorised; the
#: per-patch loop, slow on purpose, takes the median of ``LOOP_REPEATS``).
STITCH_WARMUP = 2
STITCH_REPEATS = 21
LOOP_REPEATS = 3

#: Throughput is measured without deterministic kernels (what a production training uses; a
#: parity run turns them on, which can cost speed on a GPU). The report says so.
BENCH_DETERMINISTIC = False

#: The issue's target: vectorised stitching at least this many times faster than the loop.
STITCH_SPEEDUP_TARGET = 50.0


def _seconds(call: Callable[[], Any], *, warmup: int, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``call`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t0)
    return seconds


def _stitch_figures(adapter: Adapter, loop: Callable[..., Any], patches: np.ndarray,
                    centres_px: np.ndarray, crop_px: int) -> dict[str, Any]:
    """Vectorised stitching (the adapter's hook) against the per-patch loop, same inputs.

    Medians, and the spread of the timed calls: ``stitch_speedup_range`` is ``[worst, best]``,
    the fastest loop call over the slowest vectorised one, and the slowest loop call over the
    fastest vectorised one, so a reader sees how far the machine's noise moves the ratio.
    """
    obj, _ = adapter.stitch(patches, centres_px, crop_px=crop_px)
    vectorised = _seconds(lambda: adapter.stitch(patches, centres_px, crop_px=crop_px),
                          warmup=STITCH_WARMUP, repeats=STITCH_REPEATS)
    looped = _seconds(lambda: loop(patches, centres_px, crop_px=crop_px),
                      warmup=0, repeats=LOOP_REPEATS)
    vec_median, loop_median = statistics.median(vectorised), statistics.median(looped)
    pixels = float(np.asarray(obj).size)
    return {"patches": int(patches.shape[0]), "canvas_px": list(np.shape(obj)),
            "crop_px": crop_px, "stitch_ms": vec_median * 1e3, "loop_ms": loop_median * 1e3,
            "stitch_ms_range": [min(vectorised) * 1e3, max(vectorised) * 1e3],
            "loop_ms_range": [min(looped) * 1e3, max(looped) * 1e3],
            "stitch_pixels_per_s": pixels / vec_median,
            "stitch_loop_pixels_per_s": pixels / loop_median,
            "stitch_speedup": loop_median / vec_median,
            "stitch_speedup_range": [min(looped) / max(vectorised),
                                     max(looped) / min(vectorised)]}


def _case_stitch(adapter: Adapter, loop: Callable[..., Any],
                 spec: Mapping[str, Any]) -> dict[str, Any]:
    """Stitching at the case's own group centres and crop (seeded random patches: the cost does
    not depend on their values)."""
    centres = np.asarray(spec["centres_px"], dtype=np.float64)
    N = int(spec["N"])
    rng = np.random.default_rng(0)
    shape = (centres.shape[0], N, N)
    patches = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    return _stitch_figures(adapter, loop, patches, centres, int(spec["crop_px"]))


def bench_backend(adapter: Adapter, model: ModelConfig, train: TrainConfig,
                  task: Mapping[str, Any], job_dir: Path,
                  emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Measure one backend in its worker process (task ``bench``); returns JSON-able figures."""
    sweep = task.get("sweep") or [{"n_groups": 256, "N": model.N, "batch_size": 16}]
    repeats = int(task.get("repeats", 3))
    package = type(adapter).__module__.rsplit(".", 1)[0]
    stitch_module = importlib.import_module(f"{package}.stitch")
    rows = []
    for i, point in enumerate(sweep):
        config = dataclasses.replace(model, N=int(point["N"]),
                                     stitch_crop_px=min(model.stitch_crop_px, int(point["N"])))
        measured_epochs = max(repeats, math.ceil(MIN_MEASURED_GROUPS / int(point["n_groups"])))
        # deterministic=False like the job's numerics (BENCH_DETERMINISTIC): fit() re-applies it.
        settings = dataclasses.replace(train, batch_size=int(point["batch_size"]),
                                       epochs=1 + measured_epochs, validation_fraction=0.0,
                                       plateau_patience=1000, early_stop_patience=1000,
                                       deterministic=BENCH_DETERMINISTIC)
        data = _synthetic_data(int(point["n_groups"]), config, seed=i)
        stamps: list[float] = []
        workdir = job_dir / f"bench-{i}"
        workdir.mkdir(exist_ok=True)
        rss_window = _reset_peak_rss()
        adapter.device_memory_peak(reset=True)
        start = time.perf_counter()

        def mark(epoch: int, logs: Mapping[str, Any], _stamps: list[float] = stamps) -> None:
            _stamps.append(time.perf_counter())

        result = adapter.train(config, settings, data, workdir, progress=mark)
        marks = [start, *stamps]
        epoch_s = [b - a for a, b in itertools.pairwise(marks)][1:]  # drop the warm-up epoch
        n_groups = data.diffraction.shape[0]
        train_gps = n_groups / statistics.median(epoch_s) if epoch_s else None
        train_range = [n_groups / max(epoch_s), n_groups / min(epoch_s)] if epoch_s else None
        infer_s = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            patches = adapter.infer(result.bundle_dir, data)
            infer_s.append(time.perf_counter() - t0)
        infer_gps = data.diffraction.shape[0] / statistics.median(infer_s[1:] or infer_s)
        stitching = _stitch_figures(adapter, stitch_module.stitch_patches_loop,
                                    np.asarray(patches), data.centres_px, config.stitch_crop_px)
        row = {**point, "train_groups_per_s": train_gps, "train_groups_per_s_range": train_range,
               "epoch_seconds": epoch_s, "infer_groups_per_s": infer_gps,
               **{k: stitching[k] for k in ("stitch_pixels_per_s", "stitch_loop_pixels_per_s",
                                            "stitch_speedup")},
               "peak_rss_mb": _peak_rss_mb(), "peak_rss_scope": "point" if rss_window else "process"}
        gpu_peak = adapter.device_memory_peak()
        if gpu_peak is not None:
            row["gpu_peak_mb"] = gpu_peak / 2**20
        rows.append(row)
        emit({"backend": adapter.name, "task": "bench", "event": "point", **row})
    figures: dict[str, Any] = {"rows": rows, "environment": adapter.environment()}
    if task.get("case_stitch"):
        figures["case_stitch"] = _case_stitch(adapter, stitch_module.stitch_patches_loop,
                                              task["case_stitch"])
        emit({"backend": adapter.name, "task": "bench", "event": "case_stitch",
              **figures["case_stitch"]})
    return figures


def default_sweep(case_N: int, *, quick: bool = False) -> list[dict[str, int]]:
    """The scaling sweep at a case's patch size ``case_N``: 128 and 512 groups at batch 16, 256
    at batch 32, and 128 groups at the other of N = 64 / 128 (``quick``: the first point only)."""
    other_N = 64 if case_N == 128 else 128
    points = [{"n_groups": 128, "N": case_N, "batch_size": 16},
              {"n_groups": 512, "N": case_N, "batch_size": 16},
              {"n_groups": 256, "N": case_N, "batch_size": 32},
              {"n_groups": 128, "N": other_N, "batch_size": 16}]
    return points[:1] if quick else points


def check_bench_settings(*, backends: tuple[str, ...], case: str, repeats: int,
                         sweep: list[dict[str, int]] | None) -> None:
    """Raise ``ValueError`` for settings a benchmark cannot run with: a backend list that
    :func:`parity.registry.check_backend_names` rejects, an unknown case, ``repeats < 1``, or a
    sweep point that is not ``{"n_groups", "N", "batch_size"}`` with positive integers."""
    from fixtures.cases import get_case
    from parity.registry import check_backend_names

    check_backend_names(backends, what="--backends")
    get_case(case)
    if repeats < 1:
        raise ValueError(f"repeats={repeats}; expected >= 1")
    for point in sweep or []:
        if (set(point) != {"n_groups", "N", "batch_size"}
                or not all(isinstance(v, int) and v >= 1 for v in point.values())):
            raise ValueError(f"sweep point {point}; expected positive integers n_groups, N, "
                             "batch_size")


def run_bench(*, backends: tuple[str, ...] = ("tensorflow", "torch"), case: str = "default",
              sweep: list[dict[str, int]] | None = None, device: str | None = None,
              repeats: int = 3, ladder: bool = True, quick: bool = False,
              progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Benchmark every backend; return ``{"backends": {name: figures}, "ladder": ..., ...}``.

    Without ``sweep``, the points of :func:`default_sweep` at the case's ``N`` (``quick``: its
    first point only).

    Raises
    ------
    ValueError
        Before any work: see :func:`check_bench_settings`.
    """
    check_bench_settings(backends=backends, case=case, repeats=repeats, sweep=sweep)
    from parity.prepare import group_container, prepare
    from parity.runner import run_backend
    from parity.session import resolve_inputs

    container, model, train, sizing = resolve_inputs(case=case, container_path=None,
                                                     model_overrides={}, train_overrides={})
    sweep = sweep or default_sweep(model.N, quick=quick)
    figures: dict[str, Any] = {"case": case, "device": device, "sizing": sizing, "sweep": sweep,
                               "deterministic": BENCH_DETERMINISTIC, "backends": {},
                               "model": dataclasses.asdict(model),
                               "train": dataclasses.asdict(train)}
    centres = prepare(container, group_container(container, model), model).centres_px
    case_stitch = {"centres_px": centres.tolist(), "N": model.N, "crop_px": model.stitch_crop_px}
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        for backend in backends:
            job_dir = Path(tmp) / backend
            job_dir.mkdir()
            job = {"backend": backend, "device": device, "seed": 0,
                   "deterministic": BENCH_DETERMINISTIC,
                   "model": dataclasses.asdict(model), "train": dataclasses.asdict(train),
                   "tasks": [{"name": "bench", "kind": "bench", "sweep": sweep,
                              "repeats": repeats, "case_stitch": case_stitch}]}
            (job_dir / "job.json").write_text(json.dumps(job))
            outcome = run_backend(job_dir, timeout_s=3600, on_progress=progress)
            record = outcome.manifest.get("tasks", {}).get("bench", {})
            figures["backends"][backend] = {"status": outcome.status,
                                            "message": outcome.message,
                                            **record.get("bench", {})}
        if ladder:
            from parity.engine import RunPlan, run_parity

            plan = RunPlan(container=container, model=model, train=train, backends=backends,
                           device=device, sizing=sizing)
            t0 = time.perf_counter()
            result, _ = run_parity(plan, Path(tmp) / "ladder", progress=progress)
            figures["ladder"] = {
                "wall_seconds": time.perf_counter() - t0,
                "verdict": result.verdict,
                "tasks": {run.backend: {name: t.get("seconds") for name, t in run.tasks.items()}
                          for run in result.backend_runs},
            }
    figures["ratios"] = _ratios(figures["backends"])
    return figures


#: Throughput figures that get ratios (torch over TensorFlow; one device over another).
THROUGHPUTS = ("train_groups_per_s", "infer_groups_per_s", "stitch_pixels_per_s")


def _row_ratios(rows: list[Mapping[str, Any]],
                reference: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per sweep point (same sweep, same order), each throughput of ``rows`` over ``reference``."""
    out = []
    for row, ref in zip(rows, reference, strict=False):
        ratio: dict[str, Any] = {k: row[k] for k in ("n_groups", "N", "batch_size")}
        for key in THROUGHPUTS:
            if row.get(key) and ref.get(key):
                ratio[key] = row[key] / ref[key]
        out.append(ratio)
    return out


def _ratios(backends: Mapping[str, Any]) -> list[dict[str, Any]]:
    """torch / TensorFlow per sweep point (empty unless both ran)."""
    if "torch" not in backends or "tensorflow" not in backends:
        return []
    return _row_ratios(backends["torch"].get("rows", []), backends["tensorflow"].get("rows", []))


def device_ratios(reference: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Each backend's throughputs on ``other``'s device over ``reference``'s (e.g. GPU / CPU),
    per sweep point, and the case stitching time ratio (``reference`` ms / ``other`` ms)."""
    out: dict[str, Any] = {}
    for backend, record in other["backends"].items():
        base = reference["backends"].get(backend, {})
        entry: dict[str, Any] = {"rows": _row_ratios(record.get("rows", []), base.get("rows", []))}
        mine, theirs = record.get("case_stitch"), base.get("case_stitch")
        if mine and theirs:
            entry["case_stitch_speedup"] = theirs["stitch_ms"] / mine["stitch_ms"]
        out[backend] = entry
    return out
