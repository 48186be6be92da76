"""The backend side of the runner: executes a job for ONE adapter, in its own process.

``python -m parity.worker JOB_DIR`` reads ``JOB_DIR/job.json``, loads the adapter named there
through :mod:`parity.registry` (which imports that one framework), runs each task, and writes
``JOB_DIR/<task>.npz`` plus ``JOB_DIR/manifest.json`` after EVERY task, so that a crash later keeps
what was done. A task that raises is recorded (with its traceback) and the next task still runs.
Progress lines go to stdout as ``PARITY-PROGRESS {json}``.

This module imports no framework itself; the adapter does, lazily.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig, config_from_dict
from parity.contract import Adapter, PreparedData
from parity.results import jsonable

__all__ = ["HARNESS_PID_ENV", "OUT_OF_MEMORY_ERRORS", "PROGRESS_PREFIX", "TASK_HOOKS",
           "TASK_KINDS", "main", "run_job"]

#: Prefix of the progress lines a worker prints.
PROGRESS_PREFIX = "PARITY-PROGRESS "

#: Environment variable holding the harness's process id; when set, the worker dies with it.
HARNESS_PID_ENV = "PARITY_HARNESS_PID"

#: Exception class names that mean "out of memory": Python's own, torch's (``torch.OutOfMemoryError``,
#: a ``RuntimeError``, raised for CUDA allocations) and TensorFlow's
#: (``tf.errors.ResourceExhaustedError``, an ``OpError``). Matched by name so that the harness
#: imports no framework.
OUT_OF_MEMORY_ERRORS: tuple[str, ...] = ("MemoryError", "OutOfMemoryError",
                                         "ResourceExhaustedError")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` (or a class it derives from) is one of :data:`OUT_OF_MEMORY_ERRORS`."""
    return any(cls.__name__ in OUT_OF_MEMORY_ERRORS for cls in type(err).__mro__)

#: Task kinds a job may list.
TASK_KINDS: tuple[str, ...] = (
    "effective_config",
    "forward_physics",
    "network_forward",
    "loss_and_grads",
    "train_steps",
    "train",
    "predict_with_weights",
    "bench",
)


#: Hooks each task kind calls; a task whose hooks the adapter does not list in
#: ``Adapter.capabilities`` is not run and is recorded as ``unsupported``.
TASK_HOOKS: Mapping[str, tuple[str, ...]] = {
    "effective_config": ("effective_config",),
    "forward_physics": ("forward_physics",),
    "network_forward": ("network_forward",),
    "loss_and_grads": ("loss_and_grads",),
    "train_steps": ("train_steps",),
    "train": ("train", "infer", "stitch"),
    "predict_with_weights": ("network_forward", "stitch"),
    "bench": ("train", "infer", "stitch"),
}


def _unsupported_hooks(adapter: Adapter, kind: str) -> list[str]:
    return [hook for hook in TASK_HOOKS.get(kind, ()) if hook not in adapter.capabilities]


def _output_arrays(hook: str, outputs: Any) -> dict[str, np.ndarray]:
    """A hook's outputs as NumPy arrays, or TypeError naming the hook and the offending key (a
    framework tensor, ``None``, a nested object): NumPy is the contract's exchange format."""
    if not isinstance(outputs, Mapping):
        raise TypeError(f"{hook} returned {type(outputs).__name__}; expected a mapping of output "
                        "name -> NumPy array")
    arrays = {}
    for key, value in outputs.items():
        kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
        if not isinstance(value, np.ndarray | np.generic | int | float | complex | bool):
            raise TypeError(f"{hook} output {key!r} is a {kind}, not a NumPy array (convert it "
                            "at the adapter boundary, e.g. tensor.detach().cpu().numpy())")
        array = np.asarray(value)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{hook} output {key!r} has dtype {array.dtype}; expected numbers")
        arrays[str(key)] = array
    return arrays


def _json_checked(value: Any, what: str) -> Any:
    """``value`` made JSON-safe, or TypeError naming ``what`` when it cannot be written as JSON."""
    safe = jsonable(value)
    try:
        json.dumps(safe)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} is not JSON-able: {err}") from err
    return safe


def _environment(adapter: Adapter) -> dict[str, Any]:
    """``adapter.environment()`` for the manifest; a failure or a value that is not JSON-able
    becomes ``{"error": ...}`` (it describes the run; it must not fail it)."""
    try:
        return _json_checked(adapter.environment(), f"{adapter.name} environment()")
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"}


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _save_npz(path: Path, arrays: Mapping[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    partial.replace(path)


def _write_json(path: Path, obj: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(jsonable(obj), indent=1, sort_keys=True))
    partial.replace(path)


def _emit(event: dict[str, Any]) -> None:
    print(PROGRESS_PREFIX + json.dumps(jsonable(event)), flush=True)


def _unstack_batches(arrays: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    k = arrays["diffraction"].shape[0]
    return [
        {
            "diffraction": arrays["diffraction"][i],
            "relative_px": arrays["relative_px"][i],
            "probe": arrays["probe"],
            "intensity_scale": arrays["intensity_scale"],
        }
        for i in range(k)
    ]


def _nonfinite(arrays: Mapping[str, np.ndarray]) -> list[str]:
    bad = []
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad.append(key)
    return bad


def _predict_with_weights(adapter: Adapter, model: ModelConfig, weights: Mapping[str, np.ndarray],
                          data: PreparedData, batch_size: int) -> dict[str, np.ndarray]:
    trimmed = adapter.predict_with_weights(model, weights, data, batch_size=batch_size)
    obj, origin = adapter.stitch(trimmed, data.centres_px, crop_px=model.stitch_crop_px)
    return {"trimmed_obj": trimmed, "reconstructed_obj": obj, "origin_px": np.asarray(origin)}


def run_job(job_dir: Path, *, adapter: Adapter | None = None,
            emit: Callable[[dict[str, Any]], None] = _emit) -> dict[str, Any]:
    """Run every task of ``job_dir/job.json``; return the manifest (also written to disk).

    Parameters
    ----------
    job_dir : pathlib.Path
        Holds ``job.json`` and the input NPZ files it names.
    adapter : Adapter, optional
        Use this adapter instance (in-process mode) instead of loading it from the registry.
    emit : callable
        Receives progress events.
    """
    from parity.injections import apply_injection, transform_inputs

    job_dir = Path(job_dir)
    job = json.loads((job_dir / "job.json").read_text())
    manifest: dict[str, Any] = {"backend": job["backend"], "tasks": {}, "environment": {},
                                "pid": os.getpid()}
    manifest_path = job_dir / "manifest.json"
    _write_json(manifest_path, manifest)
    if adapter is None:
        from parity.registry import load_adapter

        adapter = load_adapter(job["backend"], device=job.get("device"))
    model = config_from_dict(ModelConfig, job["model"])
    train = config_from_dict(TrainConfig, job["train"])
    injection = job.get("injection")
    reported_model, reported_train = model, train
    if injection:
        package = type(adapter).__module__.rsplit(".", 1)[0]
        model, train = apply_injection(injection, package, model, train)
        manifest["injection"] = injection

    def load(relative: str) -> dict[str, np.ndarray]:
        return transform_inputs(injection, _load_npz(job_dir / relative))

    adapter.configure_numerics(seed=int(job.get("seed", 0)),
                               deterministic=bool(job.get("deterministic", True)))
    for task in job["tasks"]:
        name, kind = task["name"], task["kind"]
        started = time.perf_counter()
        record: dict[str, Any] = {"kind": kind, "status": "running"}
        manifest["tasks"][name] = record
        _write_json(manifest_path, manifest)
        emit({"backend": job["backend"], "task": name, "event": "start"})
        unsupported = _unsupported_hooks(adapter, kind)
        try:
            outputs: dict[str, Any] = {}
            if unsupported:
                record["status"] = "unsupported"
                record["error"] = (f"not supported by {adapter.name}: {', '.join(unsupported)} "
                                   "not in its Adapter.capabilities")
            elif kind == "effective_config":
                # An injected "silent" config change must not show here: that is the bug class.
                record["config"] = _json_checked(
                    adapter.effective_config(reported_model, reported_train),
                    "effective_config() result")
            elif kind == "forward_physics":
                outputs = _output_arrays("forward_physics",
                                         adapter.forward_physics(model, load(task["inputs"])))
            elif kind == "network_forward":
                outputs = _output_arrays("network_forward", adapter.network_forward(
                    model, load(task["weights"]), load(task["batch"])))
            elif kind == "loss_and_grads":
                outputs = _output_arrays("loss_and_grads", adapter.loss_and_grads(
                    model, train, load(task["weights"]), load(task["batch"])))
            elif kind == "train_steps":
                batches = _unstack_batches(load(task["batches"]))
                outputs = _output_arrays("train_steps", adapter.train_steps(
                    model, train, load(task["weights"]), batches))
            elif kind == "train":
                data = PreparedData.from_arrays(load(task["data"]))
                workdir = job_dir / task["workdir"]
                workdir.mkdir(parents=True, exist_ok=True)
                initial = task.get("initial_weights")
                # Multi-seed L5: a task may name its own training seed (initialisation and
                # shuffling); without one the job's TrainConfig.seed is used.
                task_train = train if task.get("seed") is None else \
                    dataclasses.replace(train, seed=int(task["seed"]))
                record["seed"] = task_train.seed

                def progress(epoch: int, logs: Mapping[str, Any], _name: str = name) -> None:
                    emit({"backend": job["backend"], "task": _name, "event": "epoch",
                          "epoch": epoch, **dict(logs)})

                result = adapter.train(model, task_train, data, workdir,
                                       initial_weights=load(initial) if initial
                                       else None, progress=progress)
                record["history"] = {k: list(map(float, v)) for k, v in result.history.items()}
                record["epochs_run"] = result.epochs_run
                record["train_seconds"] = result.seconds
                patches = adapter.infer(result.bundle_dir, data)
                obj, origin = adapter.stitch(np.asarray(patches), data.centres_px,
                                             crop_px=model.stitch_crop_px)
                weights = _load_npz(Path(result.bundle_dir) / "weights.npz")
                outputs = {"trimmed_obj": patches, "reconstructed_obj": obj,
                           "origin_px": np.asarray(origin),
                           **{f"weights/{k}": v for k, v in weights.items()}}
                losses = record["history"].get("loss", [])
                if any(not math.isfinite(v) for v in losses):
                    raise FloatingPointError(f"training loss became non-finite: {losses}")
            elif kind == "predict_with_weights":
                data = PreparedData.from_arrays(load(task["data"]))
                outputs = _predict_with_weights(adapter, model,
                                                load(task["weights"]), data,
                                                int(task.get("batch_size", 64)))
            elif kind == "bench":
                from parity.bench import bench_backend

                record["bench"] = bench_backend(adapter, model, train, task, job_dir, emit)
            else:
                raise ValueError(f"unknown task kind {kind!r}; expected one of {TASK_KINDS}")
            if outputs:
                outputs = _output_arrays(kind, outputs)
                _save_npz(job_dir / f"{name}.npz", outputs)
            bad = _nonfinite(outputs)
            if not unsupported:
                record["status"] = "nan" if bad else "ok"
            if bad:
                record["error"] = f"non-finite values in {bad}"
        except Exception as err:  # a backend failure is data for the report, not a harness crash
            oom = is_out_of_memory(err)
            record["status"] = "oom" if oom else "error"
            record["error"] = f"{'out of memory: ' if oom else ''}{type(err).__name__}: {err}"
            record["traceback"] = traceback.format_exc()
        if "traceback" in record:  # the log is what the bundle keeps; it must show the failure
            print(f"task {name} ({kind}) failed: {record['status']}\n{record['traceback']}",
                  file=sys.stderr, flush=True)
        record["seconds"] = time.perf_counter() - started
        emit({"backend": job["backend"], "task": name, "event": "end", "status": record["status"],
              "seconds": record["seconds"]})
        manifest["environment"] = _environment(adapter)
        _write_json(manifest_path, manifest)
    manifest["finished"] = True
    _write_json(manifest_path, manifest)
    return manifest


def _die_with_harness() -> None:
    """Have the kernel SIGKILL this worker when the harness that started it dies (Linux).

    The runner puts its process id in :data:`HARNESS_PID_ENV`. The runner kills the worker's
    process group itself on a timeout or Ctrl-C, but a harness killed with SIGKILL cannot;
    without this a hung or busy backend would compute on, unseen, holding a GPU. Elsewhere (no
    ``prctl``) this does nothing.
    """
    parent = os.environ.get(HARNESS_PID_ENV, "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the harness died before the request took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m parity.worker JOB_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m parity.worker JOB_DIR", file=sys.stderr)
        return 2
    _die_with_harness()
    run_job(Path(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
