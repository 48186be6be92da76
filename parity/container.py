"""The data container: the one input both backends receive.

A :class:`Container` holds diffraction amplitudes, scan positions, the probe, an optional
ground-truth object and metadata. It is validated on construction; its arrays are copies marked
read-only. NPZ files in PtychoPINN's key convention are read and written here.

Bad content raises :class:`ContainerError`, a ``ValueError`` that names the field, file key or
metadata key and the problem; a field of the wrong kind (dtype, Python type) raises
:class:`ContainerTypeError`, which is both a ``ContainerError`` and a ``TypeError``.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from parity.conventions import POSITION_AXES

__all__ = [
    "DEFAULT_NPHOTONS",
    "METADATA_KEYS",
    "Container",
    "ContainerError",
    "ContainerMetadata",
    "ContainerTypeError",
    "check_truth_coverage",
    "read_npz",
    "write_npz",
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
        duplicated scan, a probe whose size does not match the patterns, or positions outside
        the object.
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
        if not np.isfinite(positions).all():
            index = int(np.argwhere(~np.isfinite(positions))[0][0])
            raise ContainerError(f"positions_px[{index}] = {positions[index]} is not finite")
        _check_duplicates(positions)

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
            f"{dup.tolist()} at {_index_list(where)}"
        )


def _index_list(indices: list[int]) -> str:
    """``indices [1, 3]``, or the first :data:`_LISTED_INDICES` and a count when there are more."""
    if len(indices) <= _LISTED_INDICES:
        return f"indices {indices}"
    shown = ", ".join(str(i) for i in indices[:_LISTED_INDICES])
    return f"{len(indices)} indices [{shown}, ...]"


def check_truth_coverage(container: Container, *, crop_px: int | None = None) -> None:
    """Check that L5 will find a region of ``object_truth`` to score the reconstructions on.

    L5 scores a stitched object against the truth only inside the box its central crops (side
    ``M = ModelConfig.stitch_crop_px``) cover on the truth, trimmed by ``M // 2`` on every side
    (:func:`parity.evaluation.score_against_truth`). Along each axis of an object ``L`` pixels
    long that leaves the patch centres in ``[max(c_min, M // 2), min(c_max, L - 1 - M // 2)]``.
    Patches that stick partly out of the object are normal at the edge of a real scan and pass;
    a scan all of whose centres lie within ``M // 2`` of the same edge does not. No-op without
    a truth.

    Parameters
    ----------
    container : Container
        The data to check.
    crop_px : int, optional
        Stitching crop ``M`` in pixels; default: ``ModelConfig``'s default (20), at most ``N``.

    Raises
    ------
    ContainerError
        If the scored region is empty along x or y (the message gives the centres' extent, the
        object's size and the crop).
    """
    truth = container.object_truth
    if truth is None:
        return
    if crop_px is None:
        import dataclasses

        from parity.config import ModelConfig

        default = next(f.default for f in dataclasses.fields(ModelConfig)
                       if f.name == "stitch_crop_px")
        crop_px = min(int(default), container.N)
    half = int(crop_px) // 2
    height, width = truth.shape
    problems = []
    for axis, column, size in (("x", 0, width), ("y", 1, height)):
        centres = container.positions_px[:, column]
        low, high = float(centres.min()), float(centres.max())
        if max(low, half) <= min(high, size - 1 - half):
            continue
        if size - 1 - half < half:
            problems.append(f"the object is {size} px along {axis}, too small for the "
                            f"{crop_px}-px stitching crop")
        else:
            problems.append(f"along {axis} the patch centres span {low:.6g}..{high:.6g} px, but "
                            f"only centres in [{half}, {size - 1 - half}] ({half} px or more "
                            "inside the edge) are scored")
    if problems:
        raise ContainerError(
            f"object_truth is {height}x{width} px and the scan leaves no region of it to evaluate "
            f"against: {'; '.join(problems)} (stitching crop {crop_px} px, patches N={container.N})"
            "; check the positions (xcoords/ycoords, in object pixels), or leave the truth out"
        )


def write_npz(container: Container, path: str | Path) -> Path:
    """Write a container as an NPZ in PtychoPINN's key convention.

    Keys: ``diffraction`` (n, N, N) float32 amplitudes, ``xcoords``/``ycoords`` (n,) float64,
    ``probeGuess`` (N, N) complex64, ``objectGuess`` (H, W) complex64 when present, and
    ``_metadata`` holding the metadata as a JSON string (no pickles). Written atomically: an
    existing file at ``path`` is replaced only once the new one is complete.

    Raises
    ------
    ValueError
        If ``path`` is a directory or cannot be written (an existing file is then left as it
        was).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name for the container NPZ")
    arrays: dict[str, np.ndarray] = {
        "diffraction": container.diffraction,
        "xcoords": container.positions_px[:, 0],
        "ycoords": container.positions_px[:, 1],
        "probeGuess": container.probe,
        "_metadata": np.array(json.dumps(container.metadata.to_dict())),
    }
    if container.object_truth is not None:
        arrays["objectGuess"] = container.object_truth
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        partial.replace(path)
    except OSError as err:
        raise ValueError(f"{path}: cannot be written ({err.strerror or err})") from err
    finally:
        partial.unlink(missing_ok=True)
    return path


_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")  # a member first; an empty archive
_NPY_SIGNATURE = b"\x93NUMPY"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_READ_ERRORS = (OSError, zipfile.BadZipFile, EOFError, zlib.error)
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _open_npz(path: Path) -> Any:
    """``np.load(path)`` of an NPZ archive, with a message for each kind of file that is not one."""
    if not path.exists():
        raise FileNotFoundError(f"no such container file: {path}")
    if path.is_dir():
        raise ContainerError(f"{path} is a directory, not an NPZ container file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as err:
        raise ContainerError(f"{path}: cannot be read ({err.strerror or err})") from err
    if not head:
        raise ContainerError(f"{path} is empty (0 bytes), not an NPZ container")
    if head.startswith(_NPY_SIGNATURE):
        raise ContainerError(
            f"{path} holds a single NumPy array (.npy format), not an NPZ container; save the "
            "arrays together: np.savez(path, diffraction=..., xcoords=..., ycoords=..., "
            "probeGuess=...)"
        )
    if head == _HDF5_SIGNATURE:
        raise ContainerError(f"{path} is an HDF5 file, not an NPZ container; a ptychodus product "
                             "converts with `parity convert`")
    if not head.startswith(_ZIP_SIGNATURES):
        raise ContainerError(f"{path} is not an NPZ (zip) file: it starts with {head!r}, not with "
                             "the zip signature 'PK'; expected an archive written by np.savez")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, *_READ_ERRORS) as err:
        raise ContainerError(f"{path} is not a readable NPZ file: {err}") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):  # pragma: no cover - the signature says zip
        raise ContainerError(f"{path} is not an NPZ archive")
    return archive


def _member_dtype(archive: Any, key: str) -> np.dtype | None:
    """The dtype an NPZ member declares in its header (None when the header cannot be read)."""
    try:
        with archive.zip.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                return np.lib.format.read_array_header_1_0(member)[2]
            if version == (2, 0):
                return np.lib.format.read_array_header_2_0(member)[2]
    except (ValueError, KeyError, *_READ_ERRORS):
        pass
    return None


def _load(archive: Any, path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as err:
        dtype = _member_dtype(archive, key)
        if dtype is not None and dtype.hasobject:
            raise ContainerError(
                f"{path}: array {key!r} has object dtype (pickled Python objects), which is not "
                "accepted (loading a pickle can run code); store it as a numeric array"
            ) from err
        raise ContainerError(f"{path}: array {key!r} could not be read ({err}); truncated or "
                             "corrupted file?") from err
    except _READ_ERRORS as err:
        raise ContainerError(f"{path}: array {key!r} could not be read ({err}); truncated or "
                             "corrupted file?") from err


def _json_kind(value: object) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _read_metadata(archive: Any, path: Path) -> tuple[dict[str, Any], str | None]:
    """The JSON ``_metadata`` object, or ``({}, note)`` for a pickled one (not loaded)."""
    dtype = _member_dtype(archive, "_metadata")
    if dtype is not None and dtype.hasobject:
        return {}, ("pickled _metadata not loaded (allow_pickle=False): its photon count, "
                    "grouping and seed were not read")
    raw = _load(archive, path, "_metadata")
    if raw.shape != () or raw.dtype.kind not in "US":
        raise ContainerError(
            f"{path}: _metadata has shape {raw.shape} and dtype {raw.dtype}; expected one JSON "
            "string (a 0-d str array: np.array(json.dumps({...})))"
        )
    text = raw.item()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ContainerError(f"{path}: _metadata is bytes that are not UTF-8 text ({err})"
                                 ) from err
    try:
        meta = json.loads(text)
    except ValueError as err:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ContainerError(f"{path}: _metadata is not valid JSON ({err}): {shown!r}") from err
    if not isinstance(meta, dict):
        raise ContainerError(f"{path}: _metadata is a JSON {_json_kind(meta)}; expected a JSON "
                             f"object with keys from {list(METADATA_KEYS)}")
    unknown = sorted(set(meta) - set(METADATA_KEYS))
    if unknown:
        raise ContainerError(f"{path}: _metadata has unknown key(s) {unknown}; known keys: "
                             f"{list(METADATA_KEYS)}")
    if not isinstance(meta.get("provenance", {}), dict):
        raise ContainerError(f"{path}: _metadata provenance is a JSON "
                             f"{_json_kind(meta['provenance'])}; expected a JSON object")
    return meta, None


def _coordinates(path: Path, key: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "c":
        raise ContainerTypeError(f"{path}: {key} has complex dtype {array.dtype}; expected real "
                                 "object-pixel coordinates (the imaginary part would be lost)")
    if array.dtype.kind not in "iuf":
        raise ContainerTypeError(f"{path}: {key} has dtype {array.dtype}; expected real "
                                 "numbers (object pixels)")
    return array.astype(np.float64)


def _diffraction_layout(path: Path, key: str, array: np.ndarray, n: int
                        ) -> tuple[np.ndarray, str | None]:
    """``array`` in ``(n, N, N)`` order, and a note when it was reordered or its order inferred."""
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        return array, None  # the container names the wrong shape
    first, second, last = array.shape
    if first == second == last == n:
        return _cube_layout(path, key, array)
    if first != n and last == n and first == second:
        return np.moveaxis(array, -1, 0), "(N, N, n) transposed to (n, N, N)"
    return array, None


def _cube_layout(path: Path, key: str, array: np.ndarray) -> tuple[np.ndarray, str | None]:
    # (k, k, k) with k patterns: (n, N, N) or the legacy (N, N, n)? The mean pattern has its
    # zero-frequency maximum at (N//2, N//2) in the right order only.
    if array.dtype.kind != "f" or not np.isfinite(array).all():
        return array, None  # the container names the dtype or the NaN
    size = array.shape[0]
    centre = (size // 2, size // 2)

    def peaks_at_centre(mean: np.ndarray) -> bool:
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(mean)), mean.shape)) == centre

    as_first = peaks_at_centre(array.mean(axis=0, dtype=np.float64))
    as_last = peaks_at_centre(array.mean(axis=2, dtype=np.float64))
    if as_first and not as_last:
        return array, ("(k, k, k) array read as (n, N, N): the mean pattern peaks at the centre "
                       "in that order only")
    if as_last and not as_first:
        return np.moveaxis(array, -1, 0), ("legacy (N, N, n) transposed to (n, N, N), told from "
                                           "the data: the mean pattern peaks at the centre in "
                                           "that order only")
    why = ("peaks at the centre in both orders" if as_first else
           f"peaks at the centre {centre} in neither order")
    raise ContainerError(
        f"{path}: {key} has shape {array.shape}, {size} patterns of {size}x{size} pixels: it may "
        f"be (n, N, N) or the legacy (N, N, n), and the data do not tell (the mean pattern "
        f"{why}); save {key} in (n, N, N) order"
    )


def _case_name(stem: str) -> str:
    return "".join("_" if c in "/\\ \n\t" else c for c in stem) or "unnamed"


def _in_file(path: Path, message: str, keys: dict[str, str]) -> str:
    """``message`` from the container, prefixed by the file and the key of the field it names."""
    for field_name, key in keys.items():
        if message.startswith(field_name) and key != field_name:
            return f"{path}: {key}: {message}"
    return f"{path}: {message}"


def read_npz(path: str | Path, *, name: str | None = None, nphotons: float | None = None,
             gridsize: int | None = None, K: int | None = None) -> Container:
    """Read a PtychoPINN-style NPZ into a :class:`Container`.

    Accepts ``diff3d`` or ``diffraction`` (both only when they hold the same patterns) in
    ``(n, N, N)``, ``(n, N, N, 1)`` or the legacy ``(N, N, n)`` layout (recognised by matching
    the coordinate count; when ``n == N`` the array is ``(k, k, k)`` and the order is the one in
    which the mean pattern peaks at the centre ``(N//2, N//2)``, else an error asks for
    ``(n, N, N)``). ``xcoords``/``ycoords`` must be real numbers. Metadata comes from a JSON
    ``_metadata`` object (a 0-d str or bytes array) with keys from :data:`METADATA_KEYS`;
    keyword arguments override it. A pickled ``_metadata`` object array is not loaded (pickles
    run code); the photon count then falls back to :data:`DEFAULT_NPHOTONS`, and the
    provenance says so. With ``objectGuess``, :func:`check_truth_coverage` must pass.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ContainerError
        (a ``ValueError``; :class:`ContainerTypeError` for a wrong dtype or type) If the file is
        not a readable NPZ (a directory, a ``.npy`` array, text, HDF5, truncated), a required
        key is missing, an array is pickled, ``diff3d`` and ``diffraction`` differ, the
        ``_metadata`` is not a JSON object of known keys, or the arrays are invalid. The
        message names the file and the key.
    """
    path = Path(path)
    archive = _open_npz(path)
    with archive:
        keys = set(archive.files)
        diff_keys = [k for k in ("diff3d", "diffraction") if k in keys]
        missing = [k for k in ("xcoords", "ycoords", "probeGuess") if k not in keys]
        if not diff_keys:
            missing.insert(0, "diff3d|diffraction")
        if missing:
            raise ContainerError(f"{path} lacks key(s) {missing}; found {sorted(keys)}")
        patterns = {k: _load(archive, path, k) for k in diff_keys}
        xcoords = _coordinates(path, "xcoords", _load(archive, path, "xcoords"))
        ycoords = _coordinates(path, "ycoords", _load(archive, path, "ycoords"))
        probe = _load(archive, path, "probeGuess")
        truth = _load(archive, path, "objectGuess") if "objectGuess" in keys else None
        meta, metadata_note = _read_metadata(archive, path) if "_metadata" in keys else ({}, None)
    if xcoords.shape != ycoords.shape or xcoords.ndim != 1:
        raise ContainerError(f"{path}: xcoords {xcoords.shape} and ycoords {ycoords.shape} must "
                             "be (n,)")
    n = xcoords.shape[0]
    diff_key = diff_keys[0]
    provenance: dict[str, Any] = {"source_file": str(path), "diffraction_key": diff_key}
    layouts = {k: _diffraction_layout(path, k, v, n) for k, v in patterns.items()}
    diffraction, layout_note = layouts[diff_key]
    if layout_note:
        key = "legacy_layout" if "transposed" in layout_note else "layout_note"
        provenance[key] = layout_note
    if len(layouts) == 2:
        other = layouts["diffraction"][0]
        if other.shape != diffraction.shape or not np.array_equal(other, diffraction):
            what = (f"shapes {diffraction.shape} and {other.shape}"
                    if other.shape != diffraction.shape else "the same shape, other values")
            raise ContainerError(f"{path}: both 'diff3d' and 'diffraction' are present and they "
                                 f"differ ({what}, after layout normalisation); keep one")
        provenance["diffraction_note"] = "'diff3d' and 'diffraction' both present and identical"
    if probe.ndim == 3 and probe.shape[0] == 1:
        probe = probe[0]
    if probe.dtype.kind in "iuf":
        probe = probe.astype(np.complex64)
        provenance["probe_note"] = "real probe promoted to complex64"
    if truth is not None and truth.ndim == 3 and truth.shape[0] == 1:
        truth = truth[0]
    if truth is not None and truth.dtype.kind in "iuf":
        truth = truth.astype(np.complex64)
    stored = meta.pop("provenance", {})
    provenance = {**stored, **provenance}
    if metadata_note:
        provenance["metadata_note"] = metadata_note
    if "nphotons" not in meta and nphotons is None:
        provenance["nphotons_note"] = f"not in file; assumed PtychoPINN default {DEFAULT_NPHOTONS:g}"
    overrides = {"name": name, "nphotons": nphotons, "gridsize": gridsize, "K": K}
    meta.update({k: v for k, v in overrides.items() if v is not None})
    meta.setdefault("name", _case_name(path.stem))
    try:
        metadata = ContainerMetadata(**meta, provenance=provenance)
    except ContainerError as err:
        raise type(err)(f"{path}: metadata: {err}") from err
    names = {"diffraction": diff_key, "positions_px": "xcoords/ycoords", "probe": "probeGuess",
             "object_truth": "objectGuess"}
    try:
        container = Container(
            diffraction=diffraction,
            positions_px=np.stack([xcoords, ycoords], axis=1),
            probe=probe,
            object_truth=truth,
            metadata=metadata,
        )
        check_truth_coverage(container)
    except ContainerError as err:
        raise type(err)(_in_file(path, str(err), names)) from err
    return container
