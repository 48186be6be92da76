"""One parity run from options to a committed report bundle (what ``parity run`` calls)."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from parity.cli_options import DEFAULT_REPORTS
from parity.config import ModelConfig, TrainConfig, config_from_dict
from parity.container import Container
from parity.engine import RunPlan, run_parity
from parity.io.container_npz import read_npz
from parity.results import LEVELS, RunResult, default_timeout_s
from parity.truth_coverage import check_truth_coverage

__all__ = ["DEFAULT_CASE", "host_provenance", "resolve_inputs", "run_and_report"]

#: The built-in case ``parity run`` uses when neither a case nor a container is given.
DEFAULT_CASE = "default"


def _build_config(cls: type, base: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
    """``cls`` from ``base`` updated by ``overrides`` (the config class checks types and values).

    Overrides come from the command line as JSON, so ``epochs=1.5``, ``learning_rate=NaN`` or
    ``gridsize={}`` arrive as such; the config class names them (:mod:`parity.config`).

    Raises
    ------
    ValueError
        An unknown key, a value of the wrong type, or one the config class rejects.
    """
    try:
        return config_from_dict(cls, {**base, **overrides})
    except TypeError as err:  # a value the type check above lets through but cls cannot take
        raise ValueError(f"{cls.__name__} options {dict(overrides)}: {err}") from err


def resolve_inputs(*, case: str | None, container_path: str | None,
                   model_overrides: Mapping[str, Any], train_overrides: Mapping[str, Any],
                   seed: int = 0) -> tuple[Container, ModelConfig, TrainConfig, str]:
    """Container and configs from a case name or a container file, with overrides applied.

    Returns ``(container, model, train, sizing note)``.

    Raises
    ------
    ValueError
        An unknown case, a bad container file, a negative seed, or an override that is unknown,
        of the wrong type or out of range (the message names it).
    FileNotFoundError
        ``container_path`` does not exist.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}; expected an integer >= 0")
    if container_path is not None:
        try:
            container = read_npz(container_path)
        except zlib.error as err:  # a corrupted deflate stream; read_npz lets it through
            raise ValueError(f"{container_path} is not a readable NPZ file: corrupted "
                             f"compressed data ({err})") from err
        model = _build_config(ModelConfig, {"N": container.N,
                                            "gridsize": container.metadata.gridsize},
                              model_overrides)
        check_truth_coverage(container, crop_px=model.stitch_crop_px)  # with the crop in use
        train = _build_config(TrainConfig, {}, train_overrides)
        sizing = f"container file {container_path}; CPU-sized defaults unless overridden"
        return container, model, train, sizing
    from fixtures.cases import get_case

    spec = get_case(case or DEFAULT_CASE)
    # Options are checked before the (possibly slow) simulation of the case.
    model = _build_config(ModelConfig, spec.model, model_overrides)
    train = _build_config(TrainConfig, spec.train, train_overrides)
    container = spec.build(seed)
    full = model.n_filters_scale >= 2
    sizing = (f"case {spec.name}: {'full-size (filter scale >= 2)' if full else 'CPU-sized'} "
              f"configuration, N={model.N}, gridsize {model.gridsize}, filter scale "
              f"{model.n_filters_scale}, {train.epochs} epochs, {container.n_patterns} patterns")
    return container, model, train, sizing


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10, check=False)
        revision = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return revision + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def host_provenance() -> dict[str, Any]:
    """Versions and host facts of the harness process (framework facts come from the backends)."""
    import scipy

    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "git_revision": _git_revision(),
        "argv": sys.argv,
        "env_flags": {k: os.environ.get(k) for k in ("TF_ENABLE_ONEDNN_OPTS",
                                                     "NVIDIA_TF32_OVERRIDE",
                                                     "CUBLAS_WORKSPACE_CONFIG",
                                                     "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")},
    }


def run_and_report(*, case: str | None = None, container_path: str | None = None,
                   levels: tuple[str, ...] = LEVELS,
                   backends: tuple[str, ...] = ("tensorflow", "torch"),
                   device: str | None = None, seed: int = 0,
                   model_overrides: Mapping[str, Any] | None = None,
                   train_overrides: Mapping[str, Any] | None = None,
                   reports_root: Path = DEFAULT_REPORTS, timeout_s: float | None = None,
                   isolation: str = "subprocess", injections: Mapping[str, str] | None = None,
                   progress: Callable[[dict[str, Any]], None] | None = None,
                   seeds: tuple[int, ...] = (), parallel: bool = True
                   ) -> tuple[Path, RunResult]:
    """Run the ladder and commit a timestamped bundle; return ``(bundle path, result)``.

    ``seeds`` (at least 2) turns on the L5 multi-seed equivalence mode; ``parallel`` runs the
    backends' jobs side by side (both: :class:`RunPlan`). ``timeout_s`` limits each backend job;
    None: :func:`parity.results.default_timeout_s` (900 s per L5 training the job runs).

    Raises
    ------
    ValueError
        On an unknown case, backend or level, a bad container file or bad overrides, or bad
        seeds.
    """
    from parity.injections import INJECTIONS
    from parity.registry import check_backend_names
    from parity.report.bundle import new_bundle_dir
    from parity.report.bundle_names import stamp_now

    check_backend_names(backends)
    if seeds and "seed" in (train_overrides or {}):
        raise ValueError(f"--train seed={train_overrides['seed']} has no effect with --seeds "
                         f"{','.join(map(str, seeds))}: each L5 training takes its seed from "
                         "--seeds")
    for backend, name in (injections or {}).items():
        if backend not in backends:
            raise ValueError(f"--inject {backend}={name}: {backend!r} is not one of the backends "
                             f"of this run {list(backends)}")
        if name not in INJECTIONS:
            raise ValueError(f"unknown injection {name!r} for {backend}; known: "
                             f"{', '.join(INJECTIONS)}")
    container, model, train, sizing = resolve_inputs(
        case=case, container_path=container_path, model_overrides=model_overrides or {},
        train_overrides=train_overrides or {}, seed=seed)
    plan = RunPlan(container=container, model=model, train=train, backends=backends,
                   levels=levels, device=device, seed=seed,
                   timeout_s=default_timeout_s(tuple(seeds)) if timeout_s is None else timeout_s,
                   isolation=isolation, injections=dict(injections or {}), sizing=sizing,
                   seeds=tuple(seeds), parallel=parallel)
    stamp = stamp_now()
    work = Path(tempfile.mkdtemp(prefix="parity-run-"))
    try:
        result, evidence = run_parity(plan, work, progress=progress, stamp=stamp)
        provenance = {**result.provenance, **host_provenance()}
        result = dataclasses.replace(result, provenance=provenance)
        with new_bundle_dir(Path(reports_root), container.metadata.name, stamp=stamp) as writer:
            for backend in backends:
                log = work / f"{backend}.log"
                if log.exists():
                    writer.add_file(f"logs/{backend}.log", log)
            bundle = writer.commit(result, evidence)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bundle, result
