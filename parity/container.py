"""The data container: the one input both backends receive.

A :class:`Container` holds diffraction amplitudes, scan positions, the probe, an optional
ground-truth object and metadata. It is validated on construction; its arrays are copies marked
read-only. NPZ files in PtychoPINN's key convention are read and written by
:mod:`parity.io.container_npz`; :mod:`parity.truth_coverage` checks that a truth leaves L5 a
region to score.

Bad content raises :class:`ContainerError`, a ``ValueError`` that names the field, file key or
metadata key and the problem; a field of the wrong kind (dtype, Python type) raises
:class:`ContainerTypeError`, which is both a ``ContainerError`` and a ``TypeError``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from parity.container_checks import check_extent, check_scan_in_pixels, plain_numbers, unit_hint
from parity.conventions import POSITION_AXES

__all__ = [
    "DEFAULT_NPHOTONS",
    "METADATA_KEYS",
    "Container",
    "ContainerError",
    "ContainerMetadata",
    "ContainerTypeError",
]

#: PtychoPINN's TensorFlow default photon count, used (and recorded as assumed) when a file has none.
DEFAULT_NPHOTONS: float = 1e9

#: Keys a JSON ``_metadata`` object may hold (the fields of :class:`ContainerMetadata`).
METADATA_KEYS: tuple[str, ...] = ("name", "nphotons", "gridsize", "K", "seed", "provenance")

#: Patterns whose duplicated positions are listed in full; beyond it, the first ones and a count.
_LISTED_INDICES = 10


class ContainerError(ValueError):
    """Bad container content: the message names the field (or file key) and the problem."""


class ContainerTypeError(ContainerError, TypeError):
    """A field of the wrong kind (dtype or Python type).

    Both a :class:`ContainerError` (so a ``ValueError``: bad input) and a ``TypeError``, as
    NumPy's ``AxisError`` is both a ``ValueError`` and an ``IndexError``.
    """


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

    Raises
    ------
    ContainerError
        (a ``ValueError``) A value out of range: an empty name or one with spaces or slashes,
        ``nphotons`` not finite and > 0, ``gridsize`` outside 1..4, ``K < 1`` or ``K < C``,
        ``seed < 0``, a provenance that is not JSON-serialisable.
    ContainerTypeError
        (a ``ContainerError`` and a ``TypeError``) A value of the wrong Python type: a name that
        is not a string, a ``gridsize``/``K``/``seed`` that is not an integer (``2.0`` and
        ``True`` are not), an ``nphotons`` that is not a number (``True`` is not), a provenance
        that is not a mapping.
    """

    name: str = "unnamed"
    nphotons: float = DEFAULT_NPHOTONS
    gridsize: int = 1
    K: int = 4
    seed: int = 0
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ContainerTypeError(f"name={self.name!r} is {type(self.name).__name__}; "
                                     "expected a string")
        for field_name in ("gridsize", "K", "seed"):
            value = getattr(self, field_name)
            if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
                raise ContainerTypeError(f"{field_name}={value!r} is {type(value).__name__}; "
                                         "expected an integer")
        if not self.name or any(c in self.name for c in "/\\ \n\t"):
            raise ContainerError(f"case name {self.name!r} must be non-empty, without spaces or "
                                 "slashes")
        nphotons = self.nphotons
        if isinstance(nphotons, bool | np.bool_) or not isinstance(nphotons, numbers.Real):
            raise ContainerTypeError(f"nphotons={nphotons!r} is {type(nphotons).__name__}; "
                                     "expected a finite number")
        if not math.isfinite(nphotons):
            raise ContainerError(f"nphotons={nphotons!r}; expected a finite number")
        if nphotons <= 0:
            raise ContainerError(f"nphotons={nphotons}; expected > 0")
        if not 1 <= int(self.gridsize) <= 4:
            raise ContainerError(f"gridsize={self.gridsize}; expected 1..4")
        if int(self.K) < 1:
            raise ContainerError(f"K={self.K}; expected an integer >= 1 (nearest neighbours)")
        if int(self.K) < int(self.gridsize) ** 2 and int(self.gridsize) > 1:
            raise ContainerError(f"K={self.K} < C={self.gridsize**2}: a group cannot be formed")
        if int(self.seed) < 0:
            raise ContainerError(f"seed={self.seed}; expected an integer >= 0")
        if not isinstance(self.provenance, Mapping):
            raise ContainerTypeError(f"provenance is {type(self.provenance).__name__}; expected a "
                                     "mapping (a JSON object)")
        try:
            json.dumps(dict(self.provenance))
        except (TypeError, ValueError) as err:
            raise ContainerError(f"provenance must be JSON-serialisable: {err}") from err
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
    ContainerError
        (a ``ValueError``) On a wrong shape, NaN/inf, negative amplitudes, an empty or
        duplicated scan, a scan of distinct positions spanning under one pixel on both axes or
        (bounding box plus ``N``) over :data:`parity.conventions.MAX_CANVAS_SIDE_PX` on a side
        (positions not in object pixels), a probe whose size does not match the patterns, or
        positions outside the object.
    ContainerTypeError
        (a ``ContainerError`` and a ``TypeError``) On a wrong dtype (integer counts, complex
        diffraction, real probe) or metadata that is not a :class:`ContainerMetadata`.
    """

    diffraction: np.ndarray
    positions_px: np.ndarray
    probe: np.ndarray
    object_truth: np.ndarray | None = None
    metadata: ContainerMetadata = field(default_factory=ContainerMetadata)

    def __post_init__(self) -> None:
        diffraction = _as_array("diffraction", self.diffraction)
        if diffraction.ndim != 3:
            raise ContainerError(f"diffraction has shape {diffraction.shape}; expected (n, N, N)")
        n, rows, cols = diffraction.shape
        if n == 0:
            raise ContainerError("diffraction is empty: the scan has no patterns")
        if rows != cols:
            raise ContainerError(f"diffraction patterns are {rows}x{cols}; expected square N x N")
        if diffraction.dtype.kind in "iu":
            raise ContainerTypeError(
                f"diffraction has integer dtype {diffraction.dtype}; expected float amplitudes "
                "(sqrt of counts) - convert counts with np.sqrt first"
            )
        if diffraction.dtype.kind == "c":
            raise ContainerTypeError(
                f"diffraction has complex dtype {diffraction.dtype}; expected real float32 "
                "amplitudes (the modulus of the far field, not the field itself)"
            )
        if diffraction.dtype.kind != "f":
            raise ContainerTypeError(
                f"diffraction has dtype {diffraction.dtype}; expected real float32 amplitudes"
            )
        bad = ~np.isfinite(diffraction)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ContainerError(
                f"diffraction has {int(bad.sum())} non-finite values (first at index {first})"
            )
        if (diffraction < 0).any():
            first = tuple(int(i) for i in np.argwhere(diffraction < 0)[0])
            raise ContainerError(f"diffraction amplitudes must be >= 0; negative at index {first}")
        energy = np.sum(diffraction.astype(np.float64) ** 2, axis=(1, 2))
        if not (energy > 0).any():
            raise ContainerError("every diffraction pattern is zero")

        positions = _as_array("positions_px", self.positions_px)
        if positions.dtype.kind not in "fiu":
            raise ContainerTypeError(
                f"positions_px has dtype {positions.dtype}; expected real numbers"
            )
        if positions.shape != (n, 2):
            raise ContainerError(
                f"positions_px has shape {positions.shape}; expected ({n}, 2) with axes "
                f"{POSITION_AXES} to match {n} diffraction patterns"
            )
        positions = positions.astype(np.float64)
        _check_positions(positions)

        probe = _as_array("probe", self.probe)
        if probe.shape != (rows, cols):
            raise ContainerError(
                f"probe has shape {probe.shape}; expected ({rows}, {cols}) to match diffraction"
            )
        if probe.dtype.kind != "c":
            raise ContainerTypeError(f"probe has dtype {probe.dtype}; expected complex64")
        if not np.isfinite(probe).all():
            raise ContainerError("probe has non-finite values")
        if not np.abs(probe).any():
            raise ContainerError("probe is zero everywhere")

        truth = self.object_truth
        if truth is not None:
            truth = np.asarray(truth)
            if truth.ndim != 2:
                raise ContainerError(f"object_truth has shape {truth.shape}; expected (H, W)")
            if truth.dtype.kind != "c":
                raise ContainerTypeError(
                    f"object_truth has dtype {truth.dtype}; expected complex64"
                )
            if not np.isfinite(truth).all():
                raise ContainerError("object_truth has non-finite values")
            height, width = truth.shape
            outside = (
                (positions[:, 0] < 0)
                | (positions[:, 0] > width - 1)
                | (positions[:, 1] < 0)
                | (positions[:, 1] > height - 1)
            )
            if outside.any():
                index = int(np.argmax(outside))
                raise ContainerError(
                    f"{int(outside.sum())} positions lie outside the {height}x{width} object "
                    f"(first: positions_px[{index}] = {positions[index].tolist()} as (x, y))"
                )
            truth = _frozen(truth.astype(np.complex64))
        _check_extent(positions, rows)  # after the truth check, which names a lone outlier
        if not isinstance(self.metadata, ContainerMetadata):
            raise ContainerTypeError(
                f"metadata is {type(self.metadata).__name__}; expected ContainerMetadata"
            )

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
            raise ContainerError("subset indices must be a non-empty 1-D array")
        if idx.min() < 0 or idx.max() >= self.n_patterns:
            raise ContainerError(f"subset indices must lie in [0, {self.n_patterns})")
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
        raise ContainerError(f"{field_name} is not a rectangular array: {err}") from err


def _check_positions(positions: np.ndarray) -> None:
    """Finite, spanning a pixel or more (not metres), without duplicates."""
    if not np.isfinite(positions).all():
        index = int(np.argwhere(~np.isfinite(positions))[0][0])
        raise ContainerError(f"positions_px[{index}] = {plain_numbers(positions[index])} (x, y) "
                             "is not finite")
    check_scan_in_pixels(positions, error=ContainerError)
    _check_duplicates(positions)


def _check_extent(positions: np.ndarray, N: int) -> None:
    # Every stitcher allocates about this extent (parity.oracle.stitch.canvas_geometry); refusing
    # it here names the file before a run asks for a canvas of tens of GB.
    span = np.ptp(positions, axis=0)
    check_extent(math.ceil(span[1]) + N, math.ceil(span[0]) + N,
                 what=f"positions_px: the scan (bounding box plus N={N})", error=ContainerError)


def _check_duplicates(positions: np.ndarray) -> None:
    # Two patterns at the same position make the KNN grouping and the stitching weights ill-posed;
    # the usual cause is a reader that repeated a row.
    rounded = np.round(positions, 6)
    _, first, counts = np.unique(rounded, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = rounded[first[counts > 1][0]]
        where = np.flatnonzero((rounded == dup).all(axis=1)).tolist()
        raise ContainerError(
            f"positions_px: {int((counts > 1).sum())} scan positions are duplicated; e.g. (x, y) = "
            f"{dup.tolist()} at {_index_list(where)}{unit_hint(positions)}"
        )


def _index_list(indices: list[int]) -> str:
    """``indices [1, 3]``, or the first :data:`_LISTED_INDICES` and a count when there are more."""
    if len(indices) <= _LISTED_INDICES:
        return f"indices {indices}"
    shown = ", ".join(str(i) for i in indices[:_LISTED_INDICES])
    return f"{len(indices)} indices [{shown}, ...]"
