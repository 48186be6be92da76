"""Convert between container NPZ files and ptychodus product files (``parity convert SRC DST``).

Formats (:data:`FORMATS`), recognised by content, not by name:

``container-npz``
    PtychoPINN-style NPZ (``diff3d``/``diffraction``, ``xcoords``, ``ycoords``, ``probeGuess``),
    read and written by :mod:`parity.io.container_npz`.
``product-h5``, ``product-npz``
    ptychodus product files (:mod:`parity.io.ptychodus`). They hold no diffraction patterns.
``diffraction-h5``, ``diffraction-npz``
    ptychodus diffraction files (``patterns`` counts, ``indexes``, ``bad_pixels``); read only, as
    the pattern source when a product becomes a container.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from parity.container import Container
from parity.io._files import HDF5_SIGNATURE, NPY_SIGNATURE, ZIP_SIGNATURES, read_head
from parity.io.container_npz import read_npz, write_npz
from parity.io.detector import fill_bad_pixels
from parity.io.ptychodus import (
    HDF5_SUFFIXES,
    container_from_product,
    container_to_product,
    read_product,
    write_product,
)

__all__ = ["FORMATS", "OUTPUT_FORMATS", "check_destination", "convert", "detect_format",
           "read_diffraction"]

#: Every format :func:`detect_format` recognises.
FORMATS: tuple[str, ...] = ("container-npz", "product-h5", "product-npz", "diffraction-h5",
                            "diffraction-npz")
#: Formats :func:`convert` can write.
OUTPUT_FORMATS: tuple[str, ...] = ("container-npz", "product-h5", "product-npz")


#: Entries every ptychodus product holds; a file with two or more of them is taken for a product.
_PRODUCT_ENTRIES = ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m",
                    "probe", "object")


def _kind_from_keys(path: Path, keys: set[str], family: str) -> str:
    if "probe_position_x_m" in keys:
        return f"product-{family}"
    present = [k for k in _PRODUCT_ENTRIES if k in keys]
    if len(present) >= 2:
        missing = [k for k in _PRODUCT_ENTRIES if k not in keys]
        entry = "dataset(s)" if family == "h5" else "key(s)"
        raise ValueError(f"{path}: a ptychodus product without the required {entry} {missing} "
                         f"(it has {present})")
    if "patterns" in keys:
        return f"diffraction-{family}"
    if family == "npz" and "xcoords" in keys and ({"diff3d", "diffraction"} & keys):
        return "container-npz"
    hint = " (a CXI file: load it with fixtures.real.read_cxi)" if "entry_1" in keys else ""
    raise ValueError(f"{path}: unknown {family.upper()} content{hint}; keys {sorted(keys)[:20]}; "
                     f"recognised formats: {', '.join(FORMATS)}")


def detect_format(path: str | Path) -> str:
    """The format of ``path``, one of :data:`FORMATS`, judged by content.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a directory or cannot be read, the file is neither HDF5 nor a ZIP/NPZ
        archive (empty, a ``.npy`` array, text), a product lacks required entries (named), or
        its keys match no known format (the message lists the keys found and the known
        formats).
    """
    path = Path(path)
    head = read_head(path, ValueError, f"a data file (recognised formats: {', '.join(FORMATS)})")
    if head.startswith(NPY_SIGNATURE):
        raise ValueError(f"{path} holds a single NumPy array (.npy format), not an NPZ archive "
                         f"or an HDF5 file; recognised formats: {', '.join(FORMATS)}")
    if head == HDF5_SIGNATURE:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                keys = set(handle.keys())
        except OSError as err:
            raise ValueError(f"{path} is not a readable HDF5 file: {err}") from err
        return _kind_from_keys(path, keys, "h5")
    if head.startswith(ZIP_SIGNATURES):
        try:
            with np.load(path, allow_pickle=False) as archive:
                keys = set(archive.files)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"{path} is not a readable NPZ file: {err}") from err
        return _kind_from_keys(path, keys, "npz")
    raise ValueError(f"{path}: unknown file format (first bytes {head!r}: neither HDF5 nor "
                     f"NPZ); recognised formats: {', '.join(FORMATS)}")


def read_diffraction(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read a ptychodus diffraction file.

    Returns
    -------
    patterns : numpy.ndarray
        ``(n, H, W)`` counts as stored (beam centred, as recorded).
    indexes : numpy.ndarray
        ``(n,)`` int64 scan index of each pattern (``0 .. n-1`` when the file has none).
    bad_pixels : numpy.ndarray or None
        ``(H, W)`` bool, ``True`` = bad.

    Raises
    ------
    ValueError
        If the file is not a diffraction file or is unreadable.
    """
    path = Path(path)
    kind = detect_format(path)
    if not kind.startswith("diffraction-"):
        raise ValueError(f"{path} is a {kind} file, not a ptychodus diffraction file")
    try:
        if kind == "diffraction-h5":
            import h5py

            with h5py.File(path, "r") as handle:
                entries = {k: handle[k][()] for k in ("patterns", "indexes", "bad_pixels")
                           if k in handle}
        else:
            with np.load(path, allow_pickle=False) as archive:
                entries = {k: archive[k] for k in ("patterns", "indexes", "bad_pixels")
                           if k in archive.files}
    except (OSError, KeyError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise ValueError(f"{path}: could not read the patterns ({err}); truncated file?") from err
    patterns = np.asarray(entries["patterns"])
    if patterns.ndim != 3:
        raise ValueError(f"{path}: patterns have shape {patterns.shape}; expected (n, H, W)")
    indexes = np.asarray(entries.get("indexes", np.arange(patterns.shape[0])), dtype=np.int64)
    bad = entries.get("bad_pixels")
    return patterns, indexes, None if bad is None else np.asarray(bad, dtype=bool)


def _output_format(src_kind: str, dst: Path, to: str | None, has_diffraction: bool) -> str:
    if to is not None:
        if to not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output kind {to!r} (--to / to=); expected one of "
                             f"{OUTPUT_FORMATS}")
        return to
    suffix = dst.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "product-h5"
    if suffix == ".npz":
        if src_kind == "container-npz":
            return "product-npz"
        return "container-npz" if has_diffraction else "product-npz"
    raise ValueError(f"cannot tell the output format from {dst.name!r}; use a suffix in "
                     f"{[*HDF5_SUFFIXES, '.npz']} or give the output kind, one of "
                     f"{OUTPUT_FORMATS}: --to (CLI) / to= (Python)")


def _patterns_for_product(path: Path, *, fill: str
                          ) -> tuple[np.ndarray, str, np.ndarray | None, str, float | None]:
    kind = detect_format(path)
    if kind == "container-npz":
        source = read_npz(path)
        return (np.asarray(source.diffraction), "amplitude", None, f"diffraction of {path}",
                source.metadata.nphotons)
    if kind.startswith("diffraction-"):
        patterns, indexes, bad = read_diffraction(path)
        note = f"patterns of {path}"
        if bad is not None and bad.any():
            patterns = fill_bad_pixels(patterns, bad, method=fill)
            note += f"; {int(bad.sum())} bad pixels filled ({fill})"
        return patterns, "counts", indexes, note, None
    raise ValueError(f"diffraction source {path} is a {kind} file; expected a container NPZ or "
                     "a ptychodus diffraction file")


def convert(src: str | Path, dst: str | Path, *, to: str | None = None,
            diffraction: str | Path | None = None, nphotons: float | None = None,
            pixel_size_m: float | None = None, detector_distance_m: float | None = None,
            photon_energy_eV: float | None = None, bad_pixel_fill: str = "neighbours",
            overwrite: bool = False) -> Path:
    """Convert ``src`` into ``dst`` (written atomically).

    Parameters
    ----------
    src : str or pathlib.Path
        A container NPZ or a product file (format detected by content).
    dst : str or pathlib.Path
        Output path. Without ``to``: ``.h5``/``.hdf5``/``.hdf`` -> product HDF5; ``.npz`` ->
        a product NPZ when ``src`` is a container, a container NPZ when ``src`` is a product and
        ``diffraction`` is given, else a product NPZ (a product holds no patterns, so a
        container needs ``diffraction``). The suffix must match the output kind.
    to : str, optional
        Output format, one of :data:`OUTPUT_FORMATS`, overriding the suffix rule.
    diffraction : str or pathlib.Path, optional
        Pattern source for product -> container (a product has no patterns): a container NPZ
        (its amplitudes) or a ptychodus diffraction file (counts, paired by scan index, bad
        pixels filled by ``bad_pixel_fill``).
    nphotons : float, optional
        Container photon count (product -> container); default: the pattern source's when it is
        a container NPZ, else estimated from the patterns.
    pixel_size_m, detector_distance_m, photon_energy_eV : float, optional
        Geometry for container -> product when the container's provenance lacks it; each must
        be finite and > 0.
    bad_pixel_fill : {"neighbours", "zero"}
        See :func:`parity.io.detector.fill_bad_pixels`.
    overwrite : bool
        Replace an existing ``dst`` (never ``src`` or ``diffraction`` themselves).

    Returns
    -------
    pathlib.Path
        ``dst``.

    Raises
    ------
    ValueError
        On an unknown input or output format, an output suffix that does not match the output
        kind, a ``dst`` that is a directory, one of the inputs, or (without ``overwrite``) an
        existing file, a product -> container conversion without ``diffraction``, or missing or
        non-positive geometry (each message says which option to pass). All are raised before
        anything is written.
    """
    src, dst = Path(src), Path(dst)
    src_kind = detect_format(src)
    check_destination(dst, inputs=[src] if diffraction is None else [src, Path(diffraction)],
                      overwrite=overwrite)
    if src_kind.startswith("diffraction-"):
        raise ValueError(f"{src} holds diffraction patterns only; convert its product instead and "
                         f"give this file as the patterns: --diffraction {src} (CLI) / "
                         f"diffraction={str(src)!r} (Python)")
    out = _output_format(src_kind, dst, to, diffraction is not None)
    _check_suffix(dst, out)
    if src_kind == "container-npz":
        container = read_npz(src)
        if out == "container-npz":
            return write_npz(container, dst)
        product = container_to_product(container, pixel_size_m=pixel_size_m,
                                       detector_distance_m=detector_distance_m,
                                       photon_energy_eV=photon_energy_eV)
        return write_product(product, dst)
    product = read_product(src)
    if out != "container-npz":
        return write_product(product, dst)
    if diffraction is None:
        raise ValueError(f"{src} is a product and holds no diffraction patterns; give a container "
                         "NPZ or ptychodus diffraction file with the patterns: --diffraction "
                         "(CLI) / diffraction= (Python)")
    patterns, kind, indexes, note, source_nphotons = _patterns_for_product(
        Path(diffraction), fill=bad_pixel_fill)
    try:
        container: Container = container_from_product(
            product, patterns, nphotons=nphotons if nphotons is not None else source_nphotons,
            diffraction_kind=kind,
            diffraction_indexes=indexes, provenance={"diffraction_source": note,
                                                     "converted_from": str(src)})
    except ValueError as err:
        raise ValueError(f"{src} with the patterns of {diffraction}: {err}") from err
    return write_npz(container, dst)


def check_destination(dst: str | Path, *, inputs: list[Path], overwrite: bool,
                      force_option: str = "overwrite=True") -> Path:
    """Refuse an output path that would lose data, before any work.

    Parameters
    ----------
    dst : str or pathlib.Path
        The file about to be written.
    inputs : list of pathlib.Path
        Files the command reads: ``dst`` may never be one of them.
    overwrite : bool
        Whether an existing ``dst`` may be replaced.
    force_option : str
        How the caller spells "overwrite" in the message (``--force`` on the command line).

    Raises
    ------
    ValueError
        ``dst`` is a directory, is one of ``inputs`` (same file, also through a link), or
        exists and ``overwrite`` is false.
    """
    dst = Path(dst)
    if dst.is_dir():
        raise ValueError(f"{dst} is a directory; give a file name for the output")
    if dst.exists():
        for source in inputs:
            if source.exists() and os.path.samefile(source, dst):
                raise ValueError(f"{dst} is the input {source}: writing it would destroy the "
                                 "data being converted; write to another file")
        if not overwrite:
            raise ValueError(f"{dst} already exists; choose another name, or pass "
                             f"{force_option} to replace it")
    return dst


def _check_suffix(dst: Path, out: str) -> None:
    # The writers pick HDF5/NPZ by suffix; an explicit `to=` may disagree with it.
    suffix = dst.suffix.lower()
    if out.endswith("npz") and suffix != ".npz":
        raise ValueError(f"output kind {out!r} (--to / to=) needs a '.npz' file name; got "
                         f"{dst.name!r}")
    if out == "product-h5" and suffix not in HDF5_SUFFIXES:
        raise ValueError(f"output kind {out!r} (--to / to=) needs a file name ending in one of "
                         f"{HDF5_SUFFIXES}; got {dst.name!r}")
