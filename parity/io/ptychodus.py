"""ptychodus products: read, write, and convert to and from a :class:`~parity.container.Container`.

A product holds positions in **metres** and an object with a centre and a pixel size; a
container holds positions in **object pixels**. The bridge between them is the ptychodus 1.7.0
mapping (``api/object.py``)::

    x_px = (x_m - object_center_x_m) / object_pixel_width_m + (W - 1) / 2

(the same for y with ``H`` and the pixel height): a position is the probe **centre**, and pixel
``(W-1)/2`` of the object array sits on the object centre. PtychoPINN's ``xcoords``/``ycoords``
and our ``positions_px`` are exactly these object pixels.

Provenance keys (the metres frame of a container)
    A container that knows its physical scale carries, in ``metadata.provenance``:

    ``"frame_m"``: ``{"pixel_width_m", "pixel_height_m", "origin_x_m", "origin_y_m"}`` with
    ``x_m = origin_x_m + x_px * pixel_width_m`` (and y alike), i.e. the lab position of
    container pixel ``(0, 0)``; and ``"geometry"``: ``{"detector_distance_m",
    "photon_energy_eV"}``. :func:`container_from_product` and the real-data loaders write them;
    :func:`container_to_product` and :func:`product_from_reconstruction` read them when the
    caller does not pass the values, so a round trip keeps the lab frame.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parity.container import Container, ContainerMetadata
from parity.io._product import HC_EV_M, Product
from parity.io._product_files import HDF5_SUFFIXES, LEGACY_KEYS, read_product, write_product

__all__ = [
    "FRAME_KEY",
    "GEOMETRY_KEY",
    "HC_EV_M",
    "HDF5_SUFFIXES",
    "LEGACY_KEYS",
    "Product",
    "container_from_product",
    "container_to_product",
    "product_from_reconstruction",
    "read_product",
    "write_product",
]

#: Provenance key of the metres frame of a container (see the module docstring).
FRAME_KEY = "frame_m"
#: Provenance key of the detector distance and photon energy of a container.
GEOMETRY_KEY = "geometry"

#: Relative tolerance when checking that the probe and object pixel sizes agree: they are the
#: same number written twice, so anything beyond float rounding is a genuine mismatch.
_PIXEL_RTOL = 1e-6


def _case_name(text: str) -> str:
    cleaned = "".join("_" if c in "/\\ \n\t" else c for c in text).strip("_")
    return cleaned or "product"


def container_from_product(product: Product, diffraction: np.ndarray, *,
                           nphotons: float | None = None, diffraction_kind: str = "amplitude",
                           diffraction_indexes: np.ndarray | None = None,
                           object_as_truth: bool = False, name: str | None = None,
                           provenance: Mapping[str, Any] | None = None) -> Container:
    """Build a container from a product and its diffraction patterns.

    A product file holds no diffraction data, so the patterns come separately.

    Parameters
    ----------
    product : Product
        Positions (metres), probe, object geometry.
    diffraction : numpy.ndarray
        ``(n, N, N)`` patterns, zero frequency at index ``N // 2`` (ptychodus keeps patterns
        centred, as recorded).
    nphotons : float, optional
        Photon count per pattern for the container metadata; default: the measured mean of
        ``sum(amplitude**2)`` over patterns (recorded as estimated).
    diffraction_kind : {"amplitude", "counts"}
        ``"counts"`` takes the square root (ptychodus hands reconstructors raw counts; the
        container holds amplitudes).
    diffraction_indexes : numpy.ndarray, optional
        ``(n,)`` scan index of each pattern. Positions are then paired by scan index (as
        ptychodus does) instead of by order; positions that share a scan index (repeated
        ``position_indexes``, legitimate in the format) are averaged first, as ptychodus's
        ``prepare_reconstruct_input`` does.
    object_as_truth : bool
        Put object layer 0 into ``object_truth`` (for a simulated product whose object is the
        truth). By default a product's object is an estimate and is not carried; its frame is.
    name : str, optional
        Case name; default: the product name with spaces and slashes replaced.
    provenance : Mapping, optional
        Extra provenance merged into the container's.

    Returns
    -------
    Container
        Positions ``(n, 2)`` as ``(x, y)`` object pixels of the product's object array; probe =
        OPR mode 0, incoherent mode 0 (the others are dropped and the provenance says so).

    Raises
    ------
    ValueError
        If the counts of patterns and positions differ, a scan index has no position, the
        product repeats a scan index and the patterns are paired by order (without
        ``diffraction_indexes``), the probe is not ``(N, N)``, the probe and object pixel sizes
        differ (PtychoPINN needs the probe on the object grid), or the diffraction kind is
        unknown.
    """
    diffraction = np.asarray(diffraction)
    if diffraction.ndim != 3:
        raise ValueError(f"diffraction has shape {diffraction.shape}; expected (n, N, N)")
    if diffraction_kind not in ("amplitude", "counts"):
        raise ValueError(f"diffraction_kind={diffraction_kind!r}; expected 'amplitude' or "
                         "'counts'")
    conversions: list[str] = []
    if diffraction_kind == "counts":
        if (diffraction < 0).any():
            raise ValueError("diffraction counts must be >= 0")
        diffraction = np.sqrt(diffraction.astype(np.float64)).astype(np.float32)
        conversions.append("counts -> amplitudes (sqrt)")
    positions = product.positions_px()
    scan_indexes, inverse, counts = np.unique(product.position_indexes, return_inverse=True,
                                              return_counts=True)
    repeated = scan_indexes[counts > 1]
    if diffraction_indexes is not None:
        wanted = np.asarray(diffraction_indexes).reshape(-1)
        if repeated.size:  # ptychodus averages the positions that share a scan index
            sums = np.zeros((scan_indexes.size, 2))
            np.add.at(sums, inverse.reshape(-1), positions)
            positions = sums / counts[:, None]
            conversions.append(f"positions sharing a scan index averaged, as ptychodus does "
                               f"({repeated.size} repeated indexes)")
        lookup = {int(k): i for i, k in enumerate(scan_indexes)}
        missing = [int(k) for k in wanted if int(k) not in lookup]
        if missing:
            raise ValueError(f"{len(missing)} pattern scan indexes have no probe position in "
                             f"the product (first: {missing[:5]})")
        positions = positions[[lookup[int(k)] for k in wanted]]
        conversions.append("positions paired with patterns by scan index")
    elif repeated.size:
        shown = ", ".join(str(int(k)) for k in repeated[:10])
        more = f" and {repeated.size - 10} more" if repeated.size > 10 else ""
        raise ValueError(
            f"the product repeats scan index(es) [{shown}]{more} in probe_position_indexes. "
            "ptychodus averages the positions that share a scan index and pairs them with the "
            "patterns by index, so pairing the patterns by order would be a guess: pair them by "
            "scan index (diffraction_indexes; with `parity convert`, a ptychodus diffraction "
            "file, which has its indexes, as --diffraction)"
        )
    if positions.shape[0] != diffraction.shape[0]:
        raise ValueError(f"the product has {positions.shape[0]} positions but there are "
                         f"{diffraction.shape[0]} diffraction patterns")
    for axis in ("width", "height"):
        probe_px = getattr(product, f"probe_pixel_{axis}_m")
        object_px = getattr(product, f"object_pixel_{axis}_m")
        if not math.isclose(probe_px, object_px, rel_tol=_PIXEL_RTOL):
            raise ValueError(f"probe pixel {axis} {probe_px:g} m differs from object pixel "
                             f"{axis} {object_px:g} m; PtychoPINN needs the probe on the object "
                             "grid - resample the probe first")
    N = diffraction.shape[-1]
    probe = product.probe[0, 0]
    if probe.shape != (N, N):
        raise ValueError(f"product probe is {probe.shape}; expected ({N}, {N}) to match the "
                         "diffraction patterns")
    dropped = product.probe.shape[0] * product.probe.shape[1] - 1
    height, width = product.object.shape[-2:]
    record: dict[str, Any] = {
        "source": "ptychodus product",
        "product_name": product.name,
        FRAME_KEY: _frame_dict(product.object_pixel_width_m, product.object_pixel_height_m,
                               product.object_center_x_m - (width - 1) / 2
                               * product.object_pixel_width_m,
                               product.object_center_y_m - (height - 1) / 2
                               * product.object_pixel_height_m),
        GEOMETRY_KEY: {"detector_distance_m": product.detector_object_distance_m,
                       "photon_energy_eV": product.photon_energy_eV},
        "object_frame_shape": [int(height), int(width)],
        "conversions": [*conversions,
                        "metres -> object pixels: x_px = (x_m - center_x_m)/pixel_width_m "
                        "+ (W-1)/2, y alike with H"],
    }
    if dropped:
        record["probe_modes_dropped"] = int(dropped)
    if product.legacy_keys_read:
        record["legacy_keys_read"] = list(product.legacy_keys_read)
    if nphotons is None:
        nphotons = float(np.mean(np.sum(diffraction.astype(np.float64) ** 2, axis=(1, 2))))
        record["nphotons_note"] = "estimated: mean sum(amplitude**2) per pattern"
    record.update(dict(provenance or {}))
    return Container(
        diffraction=diffraction.astype(np.float32),
        positions_px=positions,
        probe=probe.astype(np.complex64),
        object_truth=product.object[0].astype(np.complex64) if object_as_truth else None,
        metadata=ContainerMetadata(name=name or _case_name(product.name), nphotons=nphotons,
                                   provenance=record),
    )


def _frame_dict(width_m: float, height_m: float, origin_x_m: float, origin_y_m: float
                ) -> dict[str, float]:
    return {"pixel_width_m": float(width_m), "pixel_height_m": float(height_m),
            "origin_x_m": float(origin_x_m), "origin_y_m": float(origin_y_m)}


def _stored_frame(container: Container) -> dict[str, float] | None:
    stored = container.metadata.provenance.get(FRAME_KEY)
    if stored is None:
        return None
    keys = ("pixel_width_m", "pixel_height_m", "origin_x_m", "origin_y_m")
    if not isinstance(stored, Mapping) or any(k not in stored for k in keys):
        raise ValueError(f"container {container.metadata.name!r} has a malformed provenance "
                         f"{FRAME_KEY!r} = {stored!r}; expected the keys {keys}")
    return _frame_dict(*(float(stored[k]) for k in keys))


def _resolve_frame(container: Container, pixel_size_m: float | tuple[float, float] | None
                   ) -> dict[str, float]:
    stored = _stored_frame(container)
    if pixel_size_m is None:
        if not stored:
            raise ValueError(
                f"container {container.metadata.name!r} has no physical scale (no provenance "
                f"{FRAME_KEY!r}); give the object pixel size in metres: --pixel-size-m (CLI) / "
                "pixel_size_m= (Python)"
            )
        return stored
    width, height = ((pixel_size_m, pixel_size_m) if np.ndim(pixel_size_m) == 0
                     else tuple(pixel_size_m))
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"pixel_size_m={pixel_size_m!r}; expected positive finite metres")
    if stored and math.isclose(stored["pixel_width_m"], width, rel_tol=_PIXEL_RTOL) and \
            math.isclose(stored["pixel_height_m"], height, rel_tol=_PIXEL_RTOL):
        return stored
    return _frame_dict(width, height, 0.0, 0.0)  # container pixel (0, 0) at 0 m


def _resolve_geometry(container: Container, detector_distance_m: float | None,
                      photon_energy_eV: float | None) -> tuple[float, float]:
    stored = container.metadata.provenance.get(GEOMETRY_KEY) or {}
    if not isinstance(stored, Mapping):
        raise ValueError(f"container {container.metadata.name!r} has a malformed provenance "
                         f"{GEOMETRY_KEY!r} = {stored!r}; expected an object")
    distance = stored.get("detector_distance_m") if detector_distance_m is None \
        else detector_distance_m
    energy = stored.get("photon_energy_eV") if photon_energy_eV is None else photon_energy_eV
    missing = [k for k, v in (("detector_distance_m", distance), ("photon_energy_eV", energy))
               if v is None]
    if missing:
        options = {"detector_distance_m": "--detector-distance-m",
                   "photon_energy_eV": "--photon-energy-ev"}
        raise ValueError(
            f"a ptychodus product requires {missing} and container {container.metadata.name!r} "
            f"does not record them (provenance {GEOMETRY_KEY!r}); give "
            f"{' and '.join(options[k] for k in missing)} (CLI) / "
            f"{', '.join(f'{k}=' for k in missing)} (Python)"
        )
    values = []
    for name, value, given in (("detector_distance_m", distance, detector_distance_m),
                               ("photon_energy_eV", energy, photon_energy_eV)):
        where = "" if given is not None else f" (from the container's provenance {GEOMETRY_KEY!r})"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}={value!r}{where}; expected a finite number > 0")
        values.append(float(value))
    return values[0], values[1]


def product_from_reconstruction(reconstructed_obj: np.ndarray, origin_px: Sequence[float], *,
                                container: Container,
                                pixel_size_m: float | tuple[float, float] | None = None,
                                losses: Sequence[float] | np.ndarray | None = None,
                                loss_epochs: Sequence[int] | np.ndarray | None = None,
                                probe: np.ndarray | None = None,
                                detector_distance_m: float | None = None,
                                photon_energy_eV: float | None = None,
                                name: str | None = None, comments: str = "") -> Product:
    """Wrap a stitched reconstruction as a product that ptychodus can open.

    Parameters
    ----------
    reconstructed_obj : numpy.ndarray
        ``(H', W')`` complex stitched object (either backend, or the oracle).
    origin_px : sequence of float
        Container object pixel ``(x, y)`` of ``reconstructed_obj[0, 0]``
        (:attr:`parity.oracle.stitch.StitchedObject.origin_px`).
    container : Container
        The input the reconstruction came from (positions, probe, name).
    pixel_size_m : float or (float, float), optional
        Object pixel ``(width, height)`` in metres; default: the container's provenance frame.
    losses, loss_epochs : sequence, optional
        Training history; epochs default to ``0 .. E-1``.
    probe : numpy.ndarray, optional
        Reconstructed probe ``(N, N)`` or ``(I, N, N)``; default: the container's probe.
    detector_distance_m, photon_energy_eV : float, optional
        Default: the container's provenance geometry (required by the product format).
    name, comments : str
        Product name (default: the container's) and free text.

    Returns
    -------
    Product
        Positions in metres (``x_m = origin_x_m + x_px * pixel_width_m``), object centre
        ``center_x_m = origin_x_m + (x0 + (W' - 1) / 2) * pixel_width_m`` (y alike), so that the
        product's own mapping puts every position at ``x_px - x0`` in ``reconstructed_obj``;
        probe pixel size = object pixel size.

    Raises
    ------
    ValueError
        If the object is not 2-D complex, the origin is not two numbers, the pixel size or the
        geometry is unknown, or a pixel size, distance or energy is not finite and > 0.
    """
    obj = np.asarray(reconstructed_obj)
    if obj.ndim != 2 or obj.dtype.kind != "c":
        raise ValueError(f"reconstructed_obj has shape {obj.shape} and dtype {obj.dtype}; "
                         "expected (H, W) complex")
    origin = np.asarray(origin_px, dtype=np.float64)
    if origin.shape != (2,) or not np.isfinite(origin).all():
        raise ValueError(f"origin_px={origin_px!r}; expected two finite numbers (x, y)")
    frame = _resolve_frame(container, pixel_size_m)
    distance, energy = _resolve_geometry(container, detector_distance_m, photon_energy_eV)
    height, width = obj.shape
    pw, ph = frame["pixel_width_m"], frame["pixel_height_m"]
    values = None if losses is None else np.asarray(losses, dtype=np.float64).reshape(-1)
    epochs = loss_epochs if loss_epochs is not None or values is None \
        else np.arange(values.size)
    return Product(
        positions_x_m=frame["origin_x_m"] + container.positions_px[:, 0] * pw,
        positions_y_m=frame["origin_y_m"] + container.positions_px[:, 1] * ph,
        probe=container.probe if probe is None else np.asarray(probe),
        probe_pixel_width_m=pw,
        probe_pixel_height_m=ph,
        object=obj,
        object_center_x_m=frame["origin_x_m"] + (origin[0] + (width - 1) / 2) * pw,
        object_center_y_m=frame["origin_y_m"] + (origin[1] + (height - 1) / 2) * ph,
        object_pixel_width_m=pw,
        object_pixel_height_m=ph,
        detector_object_distance_m=distance,
        photon_energy_eV=energy,
        name=name or container.metadata.name,
        comments=comments,
        loss_epochs=epochs,
        loss_values=values,
    )


def container_to_product(container: Container, *,
                         pixel_size_m: float | tuple[float, float] | None = None,
                         detector_distance_m: float | None = None,
                         photon_energy_eV: float | None = None,
                         name: str | None = None) -> Product:
    """A product holding a container's positions, probe and object.

    The object is ``object_truth`` when present (its pixel ``(0, 0)`` is container pixel
    ``(0, 0)``); otherwise a flat ``1 + 0j`` initial guess covering every patch (container
    pixels from ``floor(min(p) - N/2)`` to ``ceil(max(p) + N/2)``), because the format requires
    an object. Pixel size and geometry come from the arguments or the container's provenance
    (see :func:`product_from_reconstruction`, which does the mapping).

    Raises
    ------
    ValueError
        If the pixel size or geometry is unknown, or not finite and > 0.
    """
    if container.object_truth is not None:
        obj, origin = container.object_truth, (0.0, 0.0)
    else:
        half = container.N / 2
        low = np.floor(container.positions_px.min(axis=0) - half)
        high = np.ceil(container.positions_px.max(axis=0) + half)
        origin = (float(min(low[0], 0.0)), float(min(low[1], 0.0)))
        shape = (int(high[1] - origin[1]) + 1, int(high[0] - origin[0]) + 1)
        obj = np.ones(shape, dtype=np.complex64)
    note = ("object = ground truth" if container.object_truth is not None
            else "object = flat 1+0j initial guess (the container has no object)")
    return product_from_reconstruction(
        obj, origin, container=container, pixel_size_m=pixel_size_m,
        detector_distance_m=detector_distance_m, photon_energy_eV=photon_energy_eV,
        name=name, comments=f"ptycho-parity container {container.metadata.name}; {note}; "
                            f"nphotons={container.metadata.nphotons:g}",
    )
