"""The model bundle on disk, for every backend: what ``train.fit`` writes and ``infer`` reads.

A bundle directory holds

- ``config.json``: ``{"backend", "model", "train", "intensity_scale", "history"}`` (the effective
  model and training configs, the photon scale ``s`` and the per-epoch loss history);
- ``weights.npz``: every trainable weight in the framework-neutral layout
  (:mod:`parity.conventions`), so that any backend, or the judge, can read the trained network;
- ``probe.npy``: the raw probe, complex64;
- the backend's native checkpoint (its name is the backend's, e.g. ``model.weights.h5`` or
  ``model.ckpt``), which the backend reloads bit for bit.

Every file is written to a temporary name and renamed into place, so a crash never leaves half a
file under a final name. Reading checks every file before any is used and names the first one
that is missing or unreadable. Framework-free: the backends pass in how to write and how to read
their own checkpoint.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig, config_from_dict

__all__ = ["BUNDLE_CONFIG", "BUNDLE_PROBE", "BUNDLE_WEIGHTS", "BundleFiles", "atomic_write",
           "check_checkpoint_agrees", "read_bundle", "write_bundle"]

BUNDLE_CONFIG, BUNDLE_WEIGHTS, BUNDLE_PROBE = "config.json", "weights.npz", "probe.npy"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through ``write(temporary_path)``, then rename onto ``path`` (never half a file).

    The temporary name keeps the final suffixes (Keras insists on ``.weights.h5``).
    """
    temporary = path.with_name(f".partial-{path.name}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _write_with(write: Callable[[Any], None]) -> Callable[[Path], None]:
    """Adapt ``write(binary_file_object)`` to :func:`atomic_write`'s ``write(path)``."""
    def to_path(path: Path) -> None:
        with open(path, "wb") as handle:
            write(handle)
    return to_path


def write_bundle(bundle_dir: str | os.PathLike[str], *, backend: str, model: ModelConfig,
                 train: TrainConfig, probe: np.ndarray, intensity_scale: float,
                 history: Mapping[str, list[float]], weights: Mapping[str, np.ndarray],
                 checkpoint_name: str, write_checkpoint: Callable[[Path], None]) -> None:
    """Write the four bundle files, each atomically (keyword-only after ``bundle_dir``).

    ``weights`` are the neutral-layout arrays of the trained network; ``write_checkpoint(path)``
    writes the backend's native checkpoint to ``path``.
    """
    directory = Path(bundle_dir)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "backend": backend,
        "model": asdict(model),
        "train": asdict(train),
        "intensity_scale": float(intensity_scale),
        "history": {key: [float(v) for v in values] for key, values in history.items()},
    }
    text = json.dumps(config, indent=2).encode("utf-8")
    arrays = {key: np.asarray(value) for key, value in weights.items()}
    atomic_write(directory / BUNDLE_CONFIG, _write_with(lambda f: f.write(text)))
    atomic_write(directory / BUNDLE_WEIGHTS, _write_with(lambda f: np.savez(f, **arrays)))
    atomic_write(directory / BUNDLE_PROBE,
                 _write_with(lambda f: np.save(f, np.asarray(probe, dtype=np.complex64))))
    atomic_write(directory / checkpoint_name, write_checkpoint)


@dataclass(frozen=True)
class BundleFiles:
    """The framework-free content of a bundle, parsed and checked by :func:`read_bundle`."""

    directory: Path
    config: dict[str, Any]
    model: ModelConfig
    train: TrainConfig
    intensity_scale: float
    weights: dict[str, np.ndarray]
    probe: np.ndarray
    checkpoint: Path


def read_bundle(bundle_dir: str | os.PathLike[str], checkpoint_name: str) -> BundleFiles:
    """Read and check a bundle's framework-free files; the checkpoint is only located.

    Raises
    ------
    FileNotFoundError
        Naming the first bundle file that is missing (config, weights, probe, checkpoint).
    ValueError
        Naming a file that cannot be read or parsed, or a config that is not a valid bundle
        config (missing key, invalid model or train field).
    """
    directory = Path(bundle_dir)
    for name in (BUNDLE_CONFIG, BUNDLE_WEIGHTS, BUNDLE_PROBE, checkpoint_name):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"bundle {directory} lacks {name} ({directory / name})")
    config_path = directory / BUNDLE_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        model = config_from_dict(ModelConfig, dict(config["model"]))
        train = config_from_dict(TrainConfig, dict(config.get("train", {})))
        intensity_scale = float(config["intensity_scale"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config_path} is not a valid bundle config: {err!r}") from err
    try:
        with np.load(directory / BUNDLE_WEIGHTS) as npz:
            weights = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {directory / BUNDLE_WEIGHTS}: {err}") from err
    try:
        probe = np.load(directory / BUNDLE_PROBE)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"cannot read {directory / BUNDLE_PROBE}: {err}") from err
    return BundleFiles(directory=directory, config=config, model=model, train=train,
                       intensity_scale=intensity_scale, weights=weights, probe=probe,
                       checkpoint=directory / checkpoint_name)


def check_checkpoint_agrees(files: BundleFiles, exported: Mapping[str, np.ndarray]) -> None:
    """Raise ``ValueError`` unless the checkpoint's weights (``exported``, neutral layout) equal
    ``weights.npz`` bit for bit, naming the first differing weights."""
    neutral = files.weights
    differing = sorted(k for k in set(exported) | set(neutral)
                       if k not in neutral or k not in exported
                       or not np.array_equal(exported[k], neutral[k]))
    if differing:
        raise ValueError(f"{files.directory / BUNDLE_WEIGHTS} disagrees with {files.checkpoint} "
                         f"at {differing[:5]} ({len(differing)} weight(s))")
