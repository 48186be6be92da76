"""Run bundles holding L5 reconstructions, for the tests of parity/io/export.py and
parity/cli_export.py: a tiny container, and a bundle written by the real bundle writer from a
hand-made RunResult and evidence (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parity.container import Container, ContainerMetadata
from parity.report.bundle import new_bundle_dir
from parity.results import RunResult

#: Pattern side of the tiny container.
N = 16
#: The metres frame and geometry the tiny container records (provenance ``frame_m``/``geometry``).
FRAME = {"pixel_width_m": 1e-8, "pixel_height_m": 2e-8, "origin_x_m": 5e-7, "origin_y_m": -5e-7}
GEOMETRY = {"detector_distance_m": 2.0, "photon_energy_eV": 9e3}


def tiny_container(*, geometry: bool = True, seed: int = 3) -> Container:
    """Six random ``N x N`` patterns named ``tiny``, recording :data:`FRAME` and
    :data:`GEOMETRY` unless ``geometry`` is false; ``seed`` draws other data."""
    rng = np.random.default_rng(seed)
    provenance = {"frame_m": FRAME, "geometry": GEOMETRY} if geometry else {}
    return Container(
        diffraction=rng.uniform(0, 3, size=(6, N, N)).astype(np.float32),
        positions_px=rng.uniform(10, 30, size=(6, 2)),
        probe=(rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex64),
        metadata=ContainerMetadata(name="tiny", nphotons=2e4, provenance=provenance))


def reconstruction(seed: int) -> np.ndarray:
    """A ``(40, 44)`` complex64 stand-in for a stitched object (``seed``: the backend's index)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(40, 44)) + 1j * rng.normal(size=(40, 44))).astype(np.complex64)


def write_bundle(root: Path, container: Container, *, stamp: str = "20240101T000000Z",
                 backends: tuple[str, ...] = ("tensorflow", "torch"),
                 trained: tuple[str, ...] | None = None) -> Path:
    """A complete run bundle of ``container``; ``trained`` backends (default: all) hold an L5
    reconstruction (``origin_px`` (3, 5)) and a training history in it."""
    trained = backends if trained is None else trained
    evidence: dict[str, np.ndarray] = {"truth/object": np.ones((8, 8), np.complex64)}
    for index, backend in enumerate(trained):
        evidence[f"{backend}/reconstructed_obj"] = reconstruction(index)
        evidence[f"{backend}/origin_px"] = np.array([3, 5], dtype=np.int64)
    histories = {b: {"loss": [3.0 - i, 2.0 - i], "lr": [1e-3, 1e-3]}
                 for i, b in enumerate(trained)}
    result = RunResult(container.metadata.name, stamp, ("L5",) if trained else ("L1",),
                       backends, (), (), histories=histories,
                       provenance={"data_hash": container.content_hash(),
                                   "container": container.metadata.to_dict()})
    with new_bundle_dir(root, container.metadata.name, stamp=stamp) as writer:
        return writer.commit(result, evidence)
