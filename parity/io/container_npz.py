"""Container NPZ files: :func:`read_npz` and :func:`write_npz` in PtychoPINN's key convention.

Keys: ``diffraction`` or ``diff3d`` (n, N, N) amplitudes, ``xcoords``/``ycoords`` (n,) patch
centres in object pixels, ``probeGuess`` (N, N), optional ``objectGuess`` (H, W) and an optional
JSON ``_metadata`` object. The reader tells each kind of file that is not an NPZ apart, refuses
pickles, normalises legacy layouts (recording what it did in the provenance) and wraps every
:class:`~parity.container.ContainerError` with the file and the key it concerns.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from parity.container import (
    DEFAULT_NPHOTONS,
    METADATA_KEYS,
    Container,
    ContainerError,
    ContainerMetadata,
    ContainerTypeError,
)
from parity.container_checks import (
    NPHOTONS_ESTIMATE_NOTE,
    check_centred,
    check_counts_match_nphotons,
    estimate_nphotons,
    mean_pattern_peak,
)
from parity.conventions import patch_centre_index
from parity.io._files import HDF5_SIGNATURE, NPY_SIGNATURE, ZIP_SIGNATURES, atomic_output, read_head
from parity.truth_coverage import check_truth_coverage

__all__ = ["read_npz", "write_npz"]


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
    with atomic_output(path) as partial, open(partial, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


_READ_ERRORS = (OSError, zipfile.BadZipFile, EOFError, zlib.error)
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _hdf5_hint(path: Path) -> str:
    """What to do with an HDF5 file given as a container: ``parity convert`` for a ptychodus
    product (with ``--diffraction``), the CXI route otherwise (both from the converter, which
    tells the formats apart)."""
    from parity.io.convert import detect_format  # the converter imports this module

    try:
        kind = detect_format(path)
    except ValueError as err:  # names the keys; for a CXI file it carries the CXI route
        return str(err)
    if kind == "product-h5":
        return ("a ptychodus product; make a container with `parity convert PRODUCT.h5 OUT.npz "
                "--diffraction PATTERNS`")
    return f"a {kind} file; pair it with a product through `parity convert ... --diffraction`"


def _open_npz(path: Path) -> Any:
    """``np.load(path)`` of an NPZ archive, with a message for each kind of file that is not one."""
    if not path.exists():
        raise FileNotFoundError(f"no such container file: {path}")
    head = read_head(path, ContainerError, "an NPZ container file")
    if head.startswith(NPY_SIGNATURE):
        raise ContainerError(
            f"{path} holds a single NumPy array (.npy format), not an NPZ container; save the "
            "arrays together: np.savez(path, diffraction=..., xcoords=..., ycoords=..., "
            "probeGuess=...)"
        )
    if head == HDF5_SIGNATURE:
        raise ContainerError(f"{path} is an HDF5 file, not an NPZ container: {_hdf5_hint(path)}")
    if not head.startswith(ZIP_SIGNATURES):
        raise ContainerError(f"{path} is not an NPZ (zip) file: it starts with {head!r}, not with "
                             "the zip signature 'PK'; expected an archive written by np.savez")
    try:
        archive = np.load(path, allow_pickle=False)
    except zipfile.BadZipFile as err:  # "File is not a zip file": its directory is missing
        raise ContainerError(f"{path} is not a readable NPZ file: {err} (truncated, or not an "
                             "NPZ archive?)") from err
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
    centre = (patch_centre_index(size), patch_centre_index(size))
    as_first = mean_pattern_peak(array.mean(axis=0, dtype=np.float64)) == centre
    as_last = mean_pattern_peak(array.mean(axis=2, dtype=np.float64)) == centre
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


def _estimated_nphotons(diffraction: np.ndarray) -> tuple[float, str]:
    """Photon count estimated from the patterns, and the provenance note that says so."""
    try:
        value = estimate_nphotons(diffraction)
    except ValueError:  # NaN, zero or non-numeric patterns: the container names the problem
        return DEFAULT_NPHOTONS, "not in the file's _metadata; the patterns give no estimate"
    return value, (f"not in the file's _metadata; {NPHOTONS_ESTIMATE_NOTE} = {value:.4g} (right "
                   "only if the patterns are sqrt(photon counts); record 'nphotons' in _metadata "
                   "if it is known)")


def _check_conventions(container: Container, *, nphotons_given: bool) -> None:
    """Patterns centred, and amplitudes rather than counts when nphotons was given (not
    estimated from them)."""
    check_centred(container.diffraction, error=ContainerError)
    if nphotons_given:
        check_counts_match_nphotons(container.diffraction, container.metadata.nphotons,
                                    error=ContainerError)


def _in_file(path: Path, message: str, keys: dict[str, str]) -> str:
    """``message`` from the container, prefixed by the file and the key of the field it names."""
    for field_name, key in keys.items():
        if message.startswith(field_name) and key != field_name:
            return f"{path}: {key}: {message}"
    return f"{path}: {message}"


def _promoted_to_complex(array: np.ndarray, what: str, note_key: str,
                         provenance: dict[str, Any]) -> np.ndarray:
    """``array`` as complex64 when it is real (integer or float), recording
    ``provenance[note_key] = "real <what> promoted to complex64"``; complex arrays unchanged."""
    if array.dtype.kind not in "iuf":
        return array
    provenance[note_key] = f"real {what} promoted to complex64"
    return array.astype(np.complex64)


def read_npz(path: str | Path, *, name: str | None = None, nphotons: float | None = None,
             gridsize: int | None = None, K: int | None = None) -> Container:
    """Read a PtychoPINN-style NPZ into a :class:`Container`.

    Accepts ``diff3d`` or ``diffraction`` (both only when they hold the same patterns) in
    ``(n, N, N)``, ``(n, N, N, 1)`` or the legacy ``(N, N, n)`` layout (recognised by matching
    the coordinate count; when ``n == N`` the array is ``(k, k, k)`` and the order is the one in
    which the mean pattern peaks at the centre ``(N//2, N//2)``, else an error asks for
    ``(n, N, N)``). ``xcoords``/``ycoords`` must be real numbers. Metadata comes from a JSON
    ``_metadata`` object (a 0-d str or bytes array) with keys from
    :data:`~parity.container.METADATA_KEYS`; keyword arguments override it. A pickled
    ``_metadata`` object array is not loaded (pickles run code). Without a photon count (no
    ``_metadata``, none in it, or a pickled one) it is estimated from the patterns
    (:func:`~parity.container_checks.estimate_nphotons`), and the provenance's
    ``nphotons_note`` says so. With ``objectGuess``,
    :func:`~parity.truth_coverage.check_truth_coverage` must pass. The patterns must be centred
    (:func:`~parity.container_checks.check_centred`) and, when the file or the caller gives
    ``nphotons``, amplitudes rather than counts
    (:func:`~parity.container_checks.check_counts_match_nphotons`). The provenance records the
    file's absolute path (``source_file``), and ``probe_note`` / ``object_note`` when a real
    ``probeGuess`` / ``objectGuess`` was promoted to complex64.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ContainerError
        (a ``ValueError``; :class:`ContainerTypeError` for a wrong dtype or type) If the file is
        not a readable NPZ (a directory, a ``.npy`` array, text, HDF5, truncated), a required
        key is missing, an array is pickled, ``diff3d`` and ``diffraction`` differ, the
        ``_metadata`` is not a JSON object of known keys, the arrays are invalid, the patterns
        are not centred or look like counts. The message names the file and the key.
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
    # absolute: the record must still say which file it was when read from another directory
    provenance: dict[str, Any] = {"source_file": str(path.resolve()), "diffraction_key": diff_key}
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
    probe = _promoted_to_complex(probe, "probe", "probe_note", provenance)
    if truth is not None and truth.ndim == 3 and truth.shape[0] == 1:
        truth = truth[0]
    if truth is not None:
        truth = _promoted_to_complex(truth, "object", "object_note", provenance)
    stored = meta.pop("provenance", {})
    provenance = {**stored, **provenance}
    if metadata_note:
        provenance["metadata_note"] = metadata_note
    nphotons_recorded = "nphotons" in meta
    if not nphotons_recorded and nphotons is None:
        meta["nphotons"], provenance["nphotons_note"] = _estimated_nphotons(diffraction)
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
        _check_conventions(container, nphotons_given=nphotons_recorded or nphotons is not None)
    except ContainerError as err:
        raise type(err)(_in_file(path, str(err), names)) from err
    return container
