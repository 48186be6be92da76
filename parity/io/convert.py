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

from parity.container import Container, ContainerMetadata
from parity.io._files import HDF5_SIGNATURE, NPY_SIGNATURE, ZIP_SIGNATURES, read_head
from parity.io._product_record import read_record
from parity.io.container_npz import read_npz, write_npz
from parity.io.detector import check_counts, fill_bad_pixels
from parity.io.ptychodus import (
    HDF5_SUFFIXES,
    container_from_product,
    container_to_product,
    read_product,
    write_product,
)

__all__ = ["CXI_HINT", "FORMATS", "OUTPUT_FORMATS", "check_destination", "check_suffix", "convert",
           "detect_format", "output_format", "read_diffraction"]

#: Every format :func:`detect_format` recognises.
FORMATS: tuple[str, ...] = ("container-npz", "product-h5", "product-npz", "diffraction-h5",
                            "diffraction-npz")
#: Formats :func:`convert` can write.
OUTPUT_FORMATS: tuple[str, ...] = ("container-npz", "product-h5", "product-npz")


#: Entries every ptychodus product holds; a file with two or more of them is taken for a product.
_PRODUCT_ENTRIES = ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m",
                    "probe", "object")


#: Keys of a container NPZ; a file with three or more of them is taken for one, and the
#: container reader then names any required key it lacks.
_CONTAINER_ENTRIES = ("diff3d", "diffraction", "xcoords", "ycoords", "probeGuess", "objectGuess",
                      "_metadata")

#: Where a CXI file goes instead (``parity convert`` reads no CXI): the one path to a container.
CXI_HINT = ("a CXI file: `parity convert` does not read CXI; make a container NPZ in Python with "
            "parity.io.write_npz(fixtures.real.cxi_to_container(fixtures.real.read_cxi(path)), "
            "'case.npz'), then use that file")


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
    if family == "npz" and ((len(keys & set(_CONTAINER_ENTRIES)) >= 3)
                            or ("xcoords" in keys and {"diff3d", "diffraction"} & keys)):
        return "container-npz"  # an incomplete one: read_npz names the missing keys
    hint = f" ({CXI_HINT})" if "entry_1" in keys else ""
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
        If the file is not a diffraction file or is unreadable, its patterns are not
        ``(n, H, W)`` real, finite counts >= 0, or its ``bad_pixels`` is not ``(H, W)`` (the
        message names the file and the first bad index or both shapes).
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
    patterns = check_counts(np.asarray(entries["patterns"]), where=str(path))
    indexes = np.asarray(entries.get("indexes", np.arange(patterns.shape[0])), dtype=np.int64)
    bad = entries.get("bad_pixels")
    if bad is not None and np.shape(bad) != patterns.shape[1:]:
        # Checked even when no pixel is marked: a mask of another shape belongs to other data.
        raise ValueError(f"{path}: bad_pixels has shape {np.shape(bad)}; expected "
                         f"{patterns.shape[1:]}, the (H, W) of its patterns {patterns.shape}")
    return patterns, indexes, None if bad is None else np.asarray(bad, dtype=bool)


def output_format(src_kind: str, dst: Path, to: str | None, has_diffraction: bool) -> str:
    """The output kind (one of :data:`OUTPUT_FORMATS`) for a source of kind ``src_kind``: ``to``
    when given, else by ``dst``'s suffix (``.npz`` from a product with patterns: a container).

    Raises ``ValueError`` for an unknown ``to`` or a suffix that names no output kind.
    """
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


def _patterns_for_product(path: Path, *, fill: str) -> tuple[
        np.ndarray, str, np.ndarray | None, str, ContainerMetadata | None]:
    kind = detect_format(path)
    if kind == "container-npz":
        source = read_npz(path)
        return (np.asarray(source.diffraction), "amplitude", None, f"diffraction of {path}",
                source.metadata)
    if kind.startswith("diffraction-"):
        patterns, indexes, bad = read_diffraction(path)
        note = f"patterns of {path}"
        if bad is not None and bad.any():
            patterns = fill_bad_pixels(patterns, bad, method=fill)
            note += f"; {int(bad.sum())} bad pixels filled ({fill})"
        return patterns, "counts", indexes, note, None
    raise ValueError(f"diffraction source {path} is a {kind} file; expected a container NPZ or "
                     "a ptychodus diffraction file")


#: How each option of :func:`convert` is spelled on the command line.
_CLI_NAMES = {"diffraction": "--diffraction", "nphotons": "--nphotons",
              "object_as_truth": "--object-as-truth", "pixel_size_m": "--pixel-size-m",
              "detector_distance_m": "--detector-distance-m",
              "photon_energy_eV": "--photon-energy-ev"}
#: The options each direction uses ((source family, output family) -> names), and why the
#: others do not apply.
_USED = {("container", "product"): ("pixel_size_m", "detector_distance_m", "photon_energy_eV"),
         ("product", "container"): ("diffraction", "nphotons", "object_as_truth")}
_WHY_NOT = {("container", "product"): "the product takes the container's photon count, "
                                      "object and positions; only the geometry options apply",
            ("product", "container"): "the product records its pixel size, distance and "
                                      "energy",
            ("container", "container"): "a container copy takes no options",
            ("product", "product"): "a product copy takes no options"}


def _check_applicable(src_kind: str, out: str, given: dict[str, object]) -> None:
    """Refuse an option the conversion would ignore (a silent no-op hides a mistake)."""
    direction = (src_kind.split("-")[0], out.split("-")[0])
    unused = [k for k, v in given.items() if v not in (None, False)
              and k not in _USED.get(direction, ())]
    if unused:
        names = ", ".join(f"{_CLI_NAMES[k]} / {k}=" for k in unused)
        raise ValueError(f"{names} does not apply to {src_kind} -> {out} ({_WHY_NOT[direction]}); "
                         "drop it")


def convert(src: str | Path, dst: str | Path, *, to: str | None = None,
            diffraction: str | Path | None = None, nphotons: float | None = None,
            object_as_truth: bool = False, pixel_size_m: float | None = None,
            detector_distance_m: float | None = None, photon_energy_eV: float | None = None,
            bad_pixel_fill: str = "neighbours", overwrite: bool = False,
            not_carried: list[str] | None = None) -> Path:
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
        Product -> container only. Pattern source (a product has no patterns): a container NPZ
        (its amplitudes, and its nphotons, gridsize, K, seed) or a ptychodus diffraction file
        (counts, paired by scan index, bad pixels filled by ``bad_pixel_fill``).
    nphotons : float, optional
        Product -> container only. Container photon count; default: the pattern source's when
        it is a container NPZ, else the one the product records (a product written from a
        container), else estimated from the patterns.
    object_as_truth : bool
        Product -> container only. Keep the product's object as ``objectGuess`` (ground truth):
        for a product whose object is the truth (one written from a container with
        ``objectGuess``, or a simulation); a reconstruction is an estimate.
    pixel_size_m, detector_distance_m, photon_energy_eV : float, optional
        Container -> product only. Geometry the container's provenance lacks; each finite and
        > 0. A pixel size the container records may be repeated, not changed.
    bad_pixel_fill : {"neighbours", "zero"}
        See :func:`parity.io.detector.fill_bad_pixels`.
    overwrite : bool
        Replace an existing ``dst`` (never ``src`` or ``diffraction`` themselves).
    not_carried : list of str, optional
        Receives one item per thing of ``src`` that ``dst`` cannot hold (the patterns in a
        product; a product's object, probe modes, or metadata it does not record in a
        container).

    Returns
    -------
    pathlib.Path
        ``dst``.

    Raises
    ------
    ValueError
        On an unknown input or output format, an output suffix that does not match the output
        kind, a ``dst`` that is a directory, one of the inputs, or (without ``overwrite``) an
        existing file, a product -> container conversion without ``diffraction``, an option
        that does not apply to the conversion, or missing, conflicting or non-positive
        geometry (each message says which option to pass). All are raised before anything is
        written.
    """
    src, dst = Path(src), Path(dst)
    src_kind = detect_format(src)
    check_destination(dst, inputs=[src] if diffraction is None else [src, Path(diffraction)],
                      overwrite=overwrite)
    if src_kind.startswith("diffraction-"):
        raise ValueError(f"{src} holds diffraction patterns only; convert its product instead and "
                         f"give this file as the patterns: --diffraction {src} (CLI) / "
                         f"diffraction={str(src)!r} (Python)")
    out = output_format(src_kind, dst, to, diffraction is not None)
    check_suffix(dst, out)
    _check_applicable(src_kind, out, {
        "diffraction": diffraction, "nphotons": nphotons, "object_as_truth": object_as_truth,
        "pixel_size_m": pixel_size_m, "detector_distance_m": detector_distance_m,
        "photon_energy_eV": photon_energy_eV})
    lost = not_carried if not_carried is not None else []
    if src_kind == "container-npz":
        container = read_npz(src)
        if out == "container-npz":
            return write_npz(container, dst)
        product = container_to_product(container, pixel_size_m=pixel_size_m,
                                       detector_distance_m=detector_distance_m,
                                       photon_energy_eV=photon_energy_eV)
        lost += [f"diffraction (a product holds no patterns; to convert back, give {src} as "
                 "--diffraction)", *read_record(product)["left_out"]]
        return write_product(product, dst)
    product = read_product(src)
    if out != "container-npz":
        return write_product(product, dst)
    if diffraction is None:
        raise ValueError(f"{src} is a product and holds no diffraction patterns; give a container "
                         "NPZ or ptychodus diffraction file with the patterns: --diffraction "
                         "(CLI) / diffraction= (Python)")
    patterns, kind, indexes, note, source_metadata = _patterns_for_product(
        Path(diffraction), fill=bad_pixel_fill)
    try:
        container: Container = container_from_product(
            product, patterns, nphotons=nphotons, diffraction_kind=kind,
            diffraction_indexes=indexes, object_as_truth=object_as_truth,
            source_metadata=source_metadata,
            provenance={"diffraction_source": note, "converted_from": str(src)})
    except ValueError as err:
        raise ValueError(f"{src} with the patterns of {diffraction}: {err}") from err
    lost += container.metadata.provenance.get("not_carried", [])
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


def check_suffix(dst: Path, out: str) -> None:
    """Raise ``ValueError`` when ``dst``'s suffix does not match the output kind ``out`` (the
    writers pick HDF5 or NPZ by suffix, and an explicit ``to=`` may disagree with it)."""
    suffix = dst.suffix.lower()
    if out.endswith("npz") and suffix != ".npz":
        raise ValueError(f"output kind {out!r} (--to / to=) needs a '.npz' file name; got "
                         f"{dst.name!r}")
    if out == "product-h5" and suffix not in HDF5_SUFFIXES:
        raise ValueError(f"output kind {out!r} (--to / to=) needs a file name ending in one of "
                         f"{HDF5_SUFFIXES}; got {dst.name!r}")
