"""The data container: the one input both backends receive.

A :class:`Container` holds diffraction amplitudes, scan positions, the probe, an optional
ground-truth object and metadata. It is validated on construction; its arrays are copies marked
read-only. NPZ files in PtychoPINN's key convention are read and written here.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from parity.conventions import POSITION_AXES

__all__ = ["DEFAULT_NPHOTONS", "Container", "ContainerMetadata", "read_npz", "write_npz"]

#: PtychoPINN's TensorFlow default photon count, used (and recorded as assumed) when a file has none.
DEFAULT_NPHOTONS: float = 1e9


def _frozen(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy


@dataclass(frozen=True)
class ContainerMetadata:
    """Metadata of a container.

    Attributes
    ----------
    name : str
        Short case name (used in report directory names).
    nphotons : float
        Expected photon count per pattern the data were scaled to.
    gridsize : int
        Group side the case is meant for (``C = gridsize**2`` patches per group).
    K : int
        Nearest neighbours considered when grouping (``gridsize > 1``).
    seed : int
        Seed that built the case (simulation) or subsampled it (real data).
    provenance : Mapping[str, Any]
        Where the data came from (JSON-serialisable values only).
    """

    name: str = "unnamed"
    nphotons: float = DEFAULT_NPHOTONS
    gridsize: int = 1
    K: int = 4
    seed: int = 0
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name={self.name!r}; expected a string")
        for field_name in ("gridsize", "K", "seed"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{field_name}={value!r}; expected an integer")
        if not self.name or any(c in self.name for c in "/\\ \n\t"):
            raise ValueError(f"case name {self.name!r} must be non-empty, without spaces or slashes")
        if not (isinstance(self.nphotons, int | float) and math.isfinite(self.nphotons)):
            raise ValueError(f"nphotons={self.nphotons!r}; expected a finite number")
        if self.nphotons <= 0:
            raise ValueError(f"nphotons={self.nphotons}; expected > 0")
        if not 1 <= int(self.gridsize) <= 4:
            raise ValueError(f"gridsize={self.gridsize}; expected 1..4")
        if int(self.K) < int(self.gridsize) ** 2 and int(self.gridsize) > 1:
            raise ValueError(f"K={self.K} < C={self.gridsize**2}: a group cannot be formed")
        try:
            json.dumps(dict(self.provenance))
        except TypeError as err:
            raise ValueError(f"provenance must be JSON-serialisable: {err}") from err
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable)."""
        return {
            "name": self.name,
            "nphotons": float(self.nphotons),
            "gridsize": int(self.gridsize),
            "K": int(self.K),
            "seed": int(self.seed),
            "provenance": dict(self.provenance),
        }


@dataclass(frozen=True)
class Container:
    """Diffraction data, scan, probe and optional truth, validated on construction.

    Attributes
    ----------
    diffraction : numpy.ndarray
        ``(n, N, N)`` float32 amplitudes (sqrt of counts), zero frequency at index ``N // 2``.
    positions_px : numpy.ndarray
        ``(n, 2)`` float64 patch centres in object pixels, last axis ``(x, y)``
        (:data:`parity.conventions.POSITION_AXES`).
    probe : numpy.ndarray
        ``(N, N)`` complex64 probe on the object pixel grid (not normalised).
    object_truth : numpy.ndarray or None
        ``(H, W)`` complex64 ground-truth object in the frame of ``positions_px``.
    metadata : ContainerMetadata
        Photon count, grouping parameters, seed, provenance.

    Raises
    ------
    ValueError
        On a wrong shape, NaN/inf, negative amplitudes, an empty or duplicated scan, a probe whose
        size does not match the patterns, or positions outside the object.
    TypeError
        On a wrong dtype (integer counts, complex diffraction, real probe).
    """

    diffraction: np.ndarray
    positions_px: np.ndarray
    probe: np.ndarray
    object_truth: np.ndarray | None = None
    metadata: ContainerMetadata = field(default_factory=ContainerMetadata)

    def __post_init__(self) -> None:
        diffraction = _as_array("diffraction", self.diffraction)
        if diffraction.ndim != 3:
            raise ValueError(f"diffraction has shape {diffraction.shape}; expected (n, N, N)")
        n, rows, cols = diffraction.shape
        if n == 0:
            raise ValueError("diffraction is empty: the scan has no patterns")
        if rows != cols:
            raise ValueError(f"diffraction patterns are {rows}x{cols}; expected square N x N")
        if diffraction.dtype.kind in "iub":
            raise TypeError(
                f"diffraction has integer dtype {diffraction.dtype}; expected float amplitudes "
                "(sqrt of counts) - convert counts with np.sqrt first"
            )
        if diffraction.dtype.kind != "f":
            raise TypeError(f"diffraction has dtype {diffraction.dtype}; expected real float32")
        bad = ~np.isfinite(diffraction)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"diffraction has {int(bad.sum())} non-finite values (first at index {first})"
            )
        if (diffraction < 0).any():
            first = tuple(int(i) for i in np.argwhere(diffraction < 0)[0])
            raise ValueError(f"diffraction amplitudes must be >= 0; negative at index {first}")
        energy = np.sum(diffraction.astype(np.float64) ** 2, axis=(1, 2))
        if not (energy > 0).any():
            raise ValueError("every diffraction pattern is zero")

        positions = _as_array("positions_px", self.positions_px)
        if positions.dtype.kind not in "fiu":
            raise TypeError(f"positions_px has dtype {positions.dtype}; expected real numbers")
        if positions.shape != (n, 2):
            raise ValueError(
                f"positions_px has shape {positions.shape}; expected ({n}, 2) with axes "
                f"{POSITION_AXES} to match {n} diffraction patterns"
            )
        positions = positions.astype(np.float64)
        if not np.isfinite(positions).all():
            index = int(np.argwhere(~np.isfinite(positions))[0][0])
            raise ValueError(f"positions_px[{index}] = {positions[index]} is not finite")
        _check_duplicates(positions)

        probe = _as_array("probe", self.probe)
        if probe.shape != (rows, cols):
            raise ValueError(
                f"probe has shape {probe.shape}; expected ({rows}, {cols}) to match diffraction"
            )
        if probe.dtype.kind != "c":
            raise TypeError(f"probe has dtype {probe.dtype}; expected complex64")
        if not np.isfinite(probe).all():
            raise ValueError("probe has non-finite values")
        if not np.abs(probe).any():
            raise ValueError("probe is zero everywhere")

        truth = self.object_truth
        if truth is not None:
            truth = np.asarray(truth)
            if truth.ndim != 2:
                raise ValueError(f"object_truth has shape {truth.shape}; expected (H, W)")
            if truth.dtype.kind != "c":
                raise TypeError(f"object_truth has dtype {truth.dtype}; expected complex64")
            if not np.isfinite(truth).all():
                raise ValueError("object_truth has non-finite values")
            height, width = truth.shape
            outside = (
                (positions[:, 0] < 0)
                | (positions[:, 0] > width - 1)
                | (positions[:, 1] < 0)
                | (positions[:, 1] > height - 1)
            )
            if outside.any():
                index = int(np.argmax(outside))
                raise ValueError(
                    f"{int(outside.sum())} positions lie outside the {height}x{width} object "
                    f"(first: positions_px[{index}] = {positions[index].tolist()} as (x, y))"
                )
            truth = _frozen(truth.astype(np.complex64))
        if not isinstance(self.metadata, ContainerMetadata):
            raise TypeError(f"metadata is {type(self.metadata).__name__}; expected ContainerMetadata")

        object.__setattr__(self, "diffraction", _frozen(diffraction.astype(np.float32)))
        object.__setattr__(self, "positions_px", _frozen(positions))
        object.__setattr__(self, "probe", _frozen(probe.astype(np.complex64)))
        object.__setattr__(self, "object_truth", truth)

    @property
    def n_patterns(self) -> int:
        """Number of diffraction patterns ``n``."""
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:  # noqa: N802 - N is the physics name of the pattern side
        """Pattern side ``N`` in pixels."""
        return int(self.diffraction.shape[-1])

    def content_hash(self) -> str:
        """SHA-256 over every array's dtype, shape and bytes, plus the metadata (hex digest).

        The provenance is left out: it says where the data came from, not what they are, and a
        reader adds to it (``source_file``), so a container read back from its NPZ hashes as the
        one written.
        """
        digest = hashlib.sha256()
        arrays = [
            ("diffraction", self.diffraction),
            ("positions_px", self.positions_px),
            ("probe", self.probe),
        ]
        if self.object_truth is not None:
            arrays.append(("object_truth", self.object_truth))
        for name, array in arrays:
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        identity = {k: v for k, v in self.metadata.to_dict().items() if k != "provenance"}
        digest.update(json.dumps(identity, sort_keys=True).encode())
        return digest.hexdigest()

    def subset(self, indices: np.ndarray, *, name: str | None = None) -> Container:
        """A container holding only the patterns at ``indices`` (provenance records the subset)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError("subset indices must be a non-empty 1-D array")
        if idx.min() < 0 or idx.max() >= self.n_patterns:
            raise ValueError(f"subset indices must lie in [0, {self.n_patterns})")
        meta = self.metadata.to_dict()
        meta["provenance"] = {**meta["provenance"], "subset_of": self.content_hash()[:16],
                              "subset_size": int(idx.size)}
        if name is not None:
            meta["name"] = name
        return Container(
            diffraction=self.diffraction[idx],
            positions_px=self.positions_px[idx],
            probe=self.probe,
            object_truth=self.object_truth,
            metadata=ContainerMetadata(**meta),
        )


def _as_array(field_name: str, value: object) -> np.ndarray:
    """``np.asarray`` that names the field when the input is ragged or not array-like."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{field_name} is not a rectangular array: {err}") from err


def _check_duplicates(positions: np.ndarray) -> None:
    # Two patterns at the same position make the KNN grouping and the stitching weights ill-posed;
    # the usual cause is a reader that repeated a row.
    rounded = np.round(positions, 6)
    _, first, counts = np.unique(rounded, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = rounded[first[counts > 1][0]]
        where = np.flatnonzero((rounded == dup).all(axis=1)).tolist()
        raise ValueError(
            f"positions_px: {int((counts > 1).sum())} scan positions are duplicated; e.g. (x, y) = "
            f"{dup.tolist()} at indices {where}"
        )


def write_npz(container: Container, path: str | Path) -> Path:
    """Write a container as an NPZ in PtychoPINN's key convention.

    Keys: ``diffraction`` (n, N, N) float32 amplitudes, ``xcoords``/``ycoords`` (n,) float64,
    ``probeGuess`` (N, N) complex64, ``objectGuess`` (H, W) complex64 when present, and
    ``_metadata`` holding the metadata as a JSON string (no pickles). Written atomically.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "diffraction": container.diffraction,
        "xcoords": container.positions_px[:, 0],
        "ycoords": container.positions_px[:, 1],
        "probeGuess": container.probe,
        "_metadata": np.array(json.dumps(container.metadata.to_dict())),
    }
    if container.object_truth is not None:
        arrays["objectGuess"] = container.object_truth
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    partial.replace(path)
    return path


def read_npz(path: str | Path, *, name: str | None = None, nphotons: float | None = None,
             gridsize: int | None = None, K: int | None = None) -> Container:
    """Read a PtychoPINN-style NPZ into a :class:`Container`.

    Accepts ``diff3d`` or ``diffraction`` in ``(n, N, N)``, ``(n, N, N, 1)`` or the legacy
    ``(N, N, n)`` layout (recognised by matching the coordinate count). Metadata comes from a JSON
    ``_metadata`` entry when present; keyword arguments override it. A pickled ``_metadata`` object
    array is not loaded (pickles run code); the photon count then falls back to
    :data:`DEFAULT_NPHOTONS`, and the provenance says so.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable NPZ, a required key is missing, or the arrays are invalid.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such container file: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path} is not a readable NPZ file: {err}") from err
    with archive:
        keys = set(archive.files)
        diff_key = "diff3d" if "diff3d" in keys else "diffraction" if "diffraction" in keys else None
        missing = [k for k in ("xcoords", "ycoords", "probeGuess") if k not in keys]
        if diff_key is None:
            missing.insert(0, "diff3d|diffraction")
        if missing:
            raise ValueError(f"{path} lacks key(s) {missing}; found {sorted(keys)}")
        try:
            diffraction = np.asarray(archive[diff_key])
            xcoords = np.asarray(archive["xcoords"], dtype=np.float64)
            ycoords = np.asarray(archive["ycoords"], dtype=np.float64)
            probe = np.asarray(archive["probeGuess"])
            truth = np.asarray(archive["objectGuess"]) if "objectGuess" in keys else None
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: an array could not be read ({err}); truncated file?") from err
        meta: dict[str, Any] = {}
        provenance: dict[str, Any] = {"source_file": str(path), "diffraction_key": diff_key}
        if "_metadata" in keys:
            try:
                meta = json.loads(str(archive["_metadata"]))
            except ValueError:
                provenance["metadata_note"] = "pickled _metadata not loaded (allow_pickle=False)"
    if xcoords.shape != ycoords.shape or xcoords.ndim != 1:
        raise ValueError(f"{path}: xcoords {xcoords.shape} and ycoords {ycoords.shape} must be (n,)")
    n = xcoords.shape[0]
    if diffraction.ndim == 4 and diffraction.shape[-1] == 1:
        diffraction = diffraction[..., 0]
    if diffraction.ndim == 3 and diffraction.shape[0] != n and diffraction.shape[-1] == n:
        diffraction = np.moveaxis(diffraction, -1, 0)  # legacy (N, N, n)
        provenance["legacy_layout"] = "(N, N, n) transposed to (n, N, N)"
    if probe.ndim == 3 and probe.shape[0] == 1:
        probe = probe[0]
    if probe.dtype.kind != "c":
        probe = probe.astype(np.complex64)
        provenance["probe_note"] = "real probe promoted to complex64"
    if truth is not None and truth.ndim == 3 and truth.shape[0] == 1:
        truth = truth[0]
    if truth is not None and truth.dtype.kind != "c":
        truth = truth.astype(np.complex64)
    stored = meta.pop("provenance", {}) if isinstance(meta, dict) else {}
    provenance = {**stored, **provenance}
    if "nphotons" not in meta and nphotons is None:
        provenance["nphotons_note"] = f"not in file; assumed PtychoPINN default {DEFAULT_NPHOTONS:g}"
    overrides = {"name": name, "nphotons": nphotons, "gridsize": gridsize, "K": K}
    meta.update({k: v for k, v in overrides.items() if v is not None})
    meta.setdefault("name", path.stem.replace(" ", "_"))
    known = {"name", "nphotons", "gridsize", "K", "seed"}
    metadata = ContainerMetadata(
        **{k: v for k, v in meta.items() if k in known}, provenance=provenance
    )
    return Container(
        diffraction=diffraction,
        positions_px=np.stack([xcoords, ycoords], axis=1),
        probe=probe,
        object_truth=truth,
        metadata=metadata,
    )
