"""A run's reconstruction as a ptychodus product (``parity export RUN DST``).

A run bundle keeps each backend's stitched object in ``evidence.npz`` as
``<backend>/reconstructed_obj`` (``(H', W')`` complex) and ``<backend>/origin_px`` (container
object pixel ``(x, y)`` of its pixel ``[0, 0]``), written at L5. It keeps neither the probe nor
the scan positions: those come from the run's container, found again and accepted only when its
:meth:`~parity.container.Container.content_hash` is the run's ``provenance.data_hash``
(``report.json``). Where the container is looked for, in order:

1. ``container=`` (``--container FILE``): a container NPZ, and nowhere else;
2. the built-in case named like the run's container, rebuilt from the seed it records;
3. the container NPZ the run read (the ``source_file`` its provenance records).

The product is built by :func:`parity.io.ptychodus.product_from_reconstruction` (positions in
metres from the container's frame, or from the geometry given) and written by
:func:`parity.io.ptychodus.write_product`; the output kind follows ``parity convert``'s rules
(:mod:`parity.io.convert`).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parity.container import Container
from parity.io.container_npz import read_npz

# convert's own rules for the output kind and its suffix (one source of truth, shared here).
from parity.io.convert import check_destination, check_suffix, output_format
from parity.io.ptychodus import product_from_reconstruction, write_product

__all__ = ["EXPORT_FORMATS", "Exported", "export_reconstruction", "reconstruction_backends",
           "run_container"]

#: Output kinds :func:`export_reconstruction` writes (a reconstruction holds no patterns, so
#: never a container NPZ).
EXPORT_FORMATS: tuple[str, ...] = ("product-h5", "product-npz")
#: The evidence name of a backend's stitched object and of its origin.
_OBJ_KEY, _ORIGIN_KEY = "{}/reconstructed_obj", "{}/origin_px"


@dataclass(frozen=True)
class Exported:
    """What :func:`export_reconstruction` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The product file.
    kind : str
        One of :data:`EXPORT_FORMATS`.
    backend : str
        Whose reconstruction it holds.
    shape : tuple[int, int]
        ``(H', W')`` of the object, pixels.
    container_source : str
        Where the run's probe and positions came from (see the module docstring).
    not_carried : tuple[str, ...]
        What of the run the product does not hold, one item each.
    """

    path: Path
    kind: str
    backend: str
    shape: tuple[int, int]
    container_source: str
    not_carried: tuple[str, ...] = ()


def _evidence(bundle: Path) -> dict[str, np.ndarray]:
    """Every array of the bundle's ``evidence.npz`` (a bundle error names an unreadable one)."""
    from parity.report.runs import BundleError

    try:
        with np.load(bundle / "evidence.npz", allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise BundleError(bundle, "no evidence.npz") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise BundleError(bundle, f"evidence.npz cannot be read: {err}") from None


def reconstruction_backends(report: Mapping[str, Any], evidence: Mapping[str, Any]
                            ) -> tuple[str, ...]:
    """The run's backends (``report.json`` order) whose stitched object ``evidence`` holds."""
    return tuple(b for b in report.get("backends", ())
                 if _OBJ_KEY.format(b) in evidence and _ORIGIN_KEY.format(b) in evidence)


def _choose_backend(bundle: Path, report: Mapping[str, Any], evidence: Mapping[str, Any],
                    backend: str | None) -> str:
    """``backend``, or the run's last (the port); refused unless the bundle holds its object."""
    compared = list(report.get("backends", ()))
    held = reconstruction_backends(report, evidence)
    if not held:
        levels = ", ".join(report.get("levels", ())) or "none"
        raise ValueError(f"run {bundle.name} holds no reconstruction (levels {levels}; one is "
                         f"written at L5, by training): evidence.npz holds "
                         f"{sorted(evidence)[:12] or 'no arrays'}")
    chosen = backend if backend is not None else (compared[-1] if compared else None)
    if chosen not in held:
        what = ("is not a backend of" if chosen not in compared
                else "has no reconstruction (its training failed) in")
        raise ValueError(f"backend {chosen!r} (--backend / backend=) {what} run {bundle.name}: "
                         f"it compared {compared} and holds the reconstructions of {list(held)}")
    return chosen


def _case_builder(name: Any, seed: Any) -> Callable[[], Container] | None:
    from fixtures.cases import case_names, get_case

    if not isinstance(name, str) or name not in case_names():
        return None
    return lambda: get_case(name).build(int(seed))


def _candidates(record: Mapping[str, Any], container_path: str | Path | None
                ) -> list[tuple[str, Callable[[], Container]]]:
    """``(description, loader)`` of every place the run's container may be (module doc)."""
    if container_path is not None:
        return [(f"--container {container_path}", lambda: read_npz(container_path))]
    found: list[tuple[str, Callable[[], Container]]] = []
    # a built-in case records the seed it was built from as provenance.fixture_seed
    seed = (record.get("provenance") or {}).get("fixture_seed", record.get("seed", 0))
    build = _case_builder(record.get("name"), seed)
    if build is not None:
        found.append((f"built-in case {record['name']!r} (seed {seed})", build))
    source = (record.get("provenance") or {}).get("source_file")
    if isinstance(source, str) and source.lower().endswith(".npz"):
        found.append((f"container file {source}", lambda: read_npz(source)))
    return found


def run_container(bundle: Path, report: Mapping[str, Any], *,
                  container_path: str | Path | None = None) -> tuple[Container, str]:
    """The container a run read, found again (module docstring) and checked by content hash.

    Returns
    -------
    (Container, str)
        The container and where it came from.

    Raises
    ------
    ValueError
        ``report.json`` records no ``provenance.data_hash``; ``container_path`` is unreadable or
        holds other data; no other candidate holds the run's data (the message lists each one
        tried and why it failed, and asks for ``--container``).
    """
    provenance = report.get("provenance") or {}
    expected, record = provenance.get("data_hash"), provenance.get("container") or {}
    if not isinstance(expected, str):
        raise ValueError(f"run {bundle.name}: report.json records no provenance.data_hash, so the "
                         "container it read (probe, positions) cannot be recognised")
    problems = []
    for where, load in _candidates(record, container_path):
        try:
            container = load()
        except (OSError, ValueError, zlib.error) as err:
            problems.append(f"{where}: {err}")
            continue
        if container.content_hash() == expected:
            return container, where
        problems.append(f"{where}: other data (content hash {container.content_hash()[:12]}, "
                        f"the run's data_hash {expected[:12]})")
    tried = "; ".join(problems) or "no built-in case or container file is recorded"
    raise ValueError(f"cannot find the container run {bundle.name} read (its probe and scan "
                     f"positions): {tried}; give that container NPZ with --container FILE "
                     "(CLI) / container_path= (Python)")


def _not_carried(report: Mapping[str, Any], evidence: Mapping[str, Any], backend: str,
                 record: Mapping[str, Any]) -> tuple[str, ...]:
    others = [b for b in reconstruction_backends(report, evidence) if b != backend]
    lost = ["diffraction patterns (a product holds none)",
            f"container metadata {record.get('name')!r} (nphotons, gridsize, K, seed: a "
            "product has no field for them; report.json keeps them)"]
    if others:
        lost.append(f"the reconstructions of {', '.join(others)} (export each with --backend)")
    if "truth/object" in evidence:
        lost.append("the ground-truth object (truth/object in evidence.npz)")
    history = (report.get("histories") or {}).get(backend) or {}
    extra = sorted(k for k in history if k != "loss")
    if extra:
        lost.append(f"training history {', '.join(extra)} (the product keeps the loss only)")
    return tuple(lost)


def export_reconstruction(bundle: str | Path, dst: str | Path, *, backend: str | None = None,
                          to: str | None = None, container_path: str | Path | None = None,
                          pixel_size_m: float | None = None,
                          detector_distance_m: float | None = None,
                          photon_energy_eV: float | None = None, overwrite: bool = False,
                          force_option: str = "overwrite=True") -> Exported:
    """Write one backend's stitched reconstruction of a run as a ptychodus product.

    Parameters
    ----------
    bundle : str or pathlib.Path
        A complete run bundle (:func:`parity.report.runs.resolve_run` finds one by name).
    dst : str or pathlib.Path
        The product file: ``.h5``/``.hdf5``/``.hdf`` (HDF5) or ``.npz`` (product NPZ), as
        ``parity convert`` chooses (:func:`parity.io.convert.convert`).
    backend : str, optional
        Whose reconstruction; default: the last of the run's backends (the port).
    to : str, optional
        One of :data:`EXPORT_FORMATS`, when the suffix does not say (it must still match).
    container_path : str or pathlib.Path, optional
        The container NPZ the run read, when it cannot be found again (module docstring).
    pixel_size_m, detector_distance_m, photon_energy_eV : float, optional
        Geometry the container does not record (each finite and > 0; a recorded value may be
        repeated, not changed).
    overwrite : bool
        Replace an existing ``dst``.
    force_option : str
        How the caller spells ``overwrite`` in messages (``--force`` on the command line).

    Returns
    -------
    Exported
        The path, kind, backend, object shape, container source and what was not carried.

    Raises
    ------
    ValueError
        A damaged bundle (:class:`parity.report.runs.BundleError`), a bad destination (a
        directory, an existing file without ``overwrite``, a suffix that does not match), a
        backend that is unknown or has no reconstruction, a run without L5 reconstructions, a
        container that cannot be found, or missing geometry (one message names every value).
        All are raised before anything is written.
    FileNotFoundError
        ``bundle`` does not exist.
    """
    from parity.report.runs import load_report

    bundle, dst = Path(bundle), Path(dst)
    report = load_report(bundle)  # the manifest vouches for evidence.npz (SHA-256)
    inputs = [bundle / "evidence.npz", *([] if container_path is None else [Path(container_path)])]
    check_destination(dst, inputs=inputs, overwrite=overwrite, force_option=force_option)
    kind = output_format("container-npz", dst, to, False)  # a container's rule: .npz = product
    if kind not in EXPORT_FORMATS:
        raise ValueError(f"output kind {kind!r} (--to / to=): export writes a product, one of "
                         f"{EXPORT_FORMATS}")
    check_suffix(dst, kind)
    evidence = _evidence(bundle)
    chosen = _choose_backend(bundle, report, evidence, backend)
    container, source = run_container(bundle, report, container_path=container_path)
    loss = ((report.get("histories") or {}).get(chosen) or {}).get("loss")
    product = product_from_reconstruction(
        evidence[_OBJ_KEY.format(chosen)], evidence[_ORIGIN_KEY.format(chosen)],
        container=container, pixel_size_m=pixel_size_m, losses=loss,
        detector_distance_m=detector_distance_m, photon_energy_eV=photon_energy_eV,
        name=f"{container.metadata.name} {chosen}",
        comments=f"ptycho-parity run {bundle.name}: {chosen} reconstruction (verdict "
                 f"{report.get('verdict')}); probe and positions from {source}")
    path = write_product(product, dst)
    record = (report.get("provenance") or {}).get("container") or {}
    height, width = product.object.shape[-2:]
    return Exported(path=path, kind=kind, backend=chosen, shape=(int(height), int(width)),
                    container_source=source,
                    not_carried=_not_carried(report, evidence, chosen, record))
