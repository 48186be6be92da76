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

The container record (what a product has no field for)
    :func:`container_to_product` also stores the container's metadata, its frame and what the
    object is (truth or a flat guess) as one JSON root attribute
    (:mod:`parity.io._product_record`); :func:`container_from_product` reads it back, so that
    container -> product -> container keeps ``gridsize``, ``K``, ``seed``, ``nphotons`` (with
    its note), the provenance, and the positions in the container's own pixels (the flat guess
    of a container without an object starts wherever its scan starts, not at container pixel 0).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from parity.container import Container
from parity.io._product import HC_EV_M, Product
from parity.io._product_files import HDF5_SUFFIXES, LEGACY_KEYS, read_product, write_product
from parity.io._product_record import (
    FRAME_KEY,
    GEOMETRY_KEY,
    RECORD_KEY,
    SAME_VALUE_RTOL,
    frame_dict,
    frame_from,
    record_json,
)
from parity.io._product_to_container import container_from_product
from parity.oracle.stitch import canvas_geometry

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

#: How each geometry value is spelled on the command line.
_CLI_OPTIONS = {"pixel_size_m": "--pixel-size-m", "detector_distance_m": "--detector-distance-m",
                "photon_energy_eV": "--photon-energy-ev"}


def _stored_frame(container: Container) -> dict[str, float] | None:
    stored = container.metadata.provenance.get(FRAME_KEY)
    if stored is None:
        return None
    return frame_from(stored, f"container {container.metadata.name!r} provenance {FRAME_KEY!r}")


def _stored_geometry(container: Container) -> Mapping[str, Any]:
    stored = container.metadata.provenance.get(GEOMETRY_KEY) or {}
    if not isinstance(stored, Mapping):
        raise ValueError(f"container {container.metadata.name!r} has a malformed provenance "
                         f"{GEOMETRY_KEY!r} = {stored!r}; expected an object")
    return stored


def _spelled(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _require_geometry(container: Container, given: Mapping[str, Any]) -> None:
    """One error naming every geometry value neither given nor recorded by the container."""
    geometry = _stored_geometry(container)
    missing = [k for k in _CLI_OPTIONS if given[k] is None and (
        _stored_frame(container) is None if k == "pixel_size_m" else geometry.get(k) is None)]
    if missing:
        raise ValueError(
            f"a ptychodus product requires {missing} and container {container.metadata.name!r} "
            f"does not record them (provenance {FRAME_KEY!r} / {GEOMETRY_KEY!r}); give "
            f"{_spelled([_CLI_OPTIONS[k] for k in missing])} (CLI) / "
            f"{', '.join(f'{k}=' for k in missing)} (Python)"
        )


def _resolve_frame(container: Container, pixel_size_m: float | tuple[float, float] | None
                   ) -> dict[str, float]:
    """The container's metres frame: recorded, or built from ``pixel_size_m`` (container pixel
    ``(0, 0)`` at 0 m). A given pixel size must agree with a recorded one."""
    stored = _stored_frame(container)
    if pixel_size_m is None and stored is not None:
        return stored
    width, height = ((pixel_size_m, pixel_size_m) if np.ndim(pixel_size_m) == 0
                     else tuple(pixel_size_m))
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"pixel_size_m={pixel_size_m!r}; expected positive finite metres")
    if stored is None:
        return frame_dict(width, height, 0.0, 0.0)
    if math.isclose(stored["pixel_width_m"], width, rel_tol=SAME_VALUE_RTOL) and \
            math.isclose(stored["pixel_height_m"], height, rel_tol=SAME_VALUE_RTOL):
        return stored
    raise ValueError(
        f"pixel size {width:g} x {height:g} m (--pixel-size-m / pixel_size_m=) conflicts with "
        f"the pixel size {stored['pixel_width_m']:g} x {stored['pixel_height_m']:g} m that "
        f"container {container.metadata.name!r} records (provenance {FRAME_KEY!r}); omit it, or "
        "give the recorded value"
    )


def _resolve_geometry(container: Container, detector_distance_m: float | None,
                      photon_energy_eV: float | None) -> tuple[float, float]:
    stored = _stored_geometry(container)
    values = []
    for name, given in (("detector_distance_m", detector_distance_m),
                        ("photon_energy_eV", photon_energy_eV)):
        value = stored.get(name) if given is None else given
        where = "" if given is not None else f" (from the container's provenance {GEOMETRY_KEY!r})"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}={value!r}{where}; expected a finite number > 0")
        recorded = stored.get(name)
        if given is not None and isinstance(recorded, numbers.Real) and \
                not math.isclose(recorded, given, rel_tol=SAME_VALUE_RTOL):
            raise ValueError(
                f"{name}={given:g} ({_CLI_OPTIONS[name]} / {name}=) conflicts with "
                f"{name}={recorded:g} that container {container.metadata.name!r} records "
                f"(provenance {GEOMETRY_KEY!r}); omit it, or give the recorded value")
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
    _require_geometry(container, {"pixel_size_m": pixel_size_m,
                                  "detector_distance_m": detector_distance_m,
                                  "photon_energy_eV": photon_energy_eV})
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
    ``(0, 0)``); otherwise a flat ``1 + 0j`` initial guess on the scan's stitching canvas
    (:func:`parity.oracle.stitch.canvas_geometry`: every patch, wherever pixel 0 is), because
    the format requires an object. Pixel size and geometry come from the arguments or the
    container's provenance (see :func:`product_from_reconstruction`, which does the mapping).

    The container's metadata (``gridsize``, ``K``, ``seed``, ``nphotons`` with its note,
    provenance), its metres frame and what the object is go into the product root attribute
    :data:`~parity.io._product_record.RECORD_KEY`, which :func:`container_from_product` reads, so
    that a container -> product -> container round trip keeps them and the positions exactly.

    Raises
    ------
    ValueError
        If the pixel size or geometry is unknown (one message names every missing value), not
        finite and > 0, or a given value conflicts with the one the container records, or the
        flat guess would exceed :data:`parity.conventions.MAX_CANVAS_SIDE_PX`.
    """
    frame = _resolve_frame(container, pixel_size_m) if _stored_frame(container) is not None \
        or pixel_size_m is not None else None  # None: _require_geometry names what is missing
    if container.object_truth is not None:
        obj, origin = container.object_truth, (0.0, 0.0)
    else:  # the stitching canvas of the scan: every patch, a pixel to spare, size-checked
        corner, shape = canvas_geometry(container.positions_px, container.N)
        obj, origin = np.ones(shape, dtype=np.complex64), (float(corner[0]), float(corner[1]))
    kind = "truth" if container.object_truth is not None else "flat-guess"
    note = ("object = ground truth" if kind == "truth"
            else "object = flat 1+0j initial guess (the container has no object)")
    nphotons_note = container.metadata.provenance.get("nphotons_note")
    product = product_from_reconstruction(
        obj, origin, container=container,
        pixel_size_m=None if frame is None else (frame["pixel_width_m"], frame["pixel_height_m"]),
        detector_distance_m=detector_distance_m, photon_energy_eV=photon_energy_eV,
        name=name, comments=f"ptycho-parity container {container.metadata.name}; {note}; "
                            f"nphotons={container.metadata.nphotons:g}"
                            + ("" if nphotons_note is None else f" ({nphotons_note})"),
    )
    record = record_json(container.metadata, frame, object_kind=kind)
    return dataclasses.replace(product, extra_attributes={**product.extra_attributes,
                                                          RECORD_KEY: record})
