"""What a product written from a container remembers of it, so that a round trip keeps it.

A ptychodus product has no field for a container's ``gridsize``, ``K``, ``seed``, its photon
count (with the note that says whether it was measured or assumed), its provenance, or the pixel
frame its positions were counted in. :func:`record_json` writes them as one JSON string, stored
as the product root attribute :data:`RECORD_KEY` (``read_product`` keeps unknown scalar
attributes in ``Product.extra_attributes`` and ``write_product`` writes them back; ptychodus
ignores them). :func:`read_record` reads it back for ``container_from_product``.

Record keys: ``name``, ``nphotons``, ``gridsize``, ``K``, ``seed``, ``provenance`` (the
container's metadata), ``frame_m`` (the container's metres frame, see
:data:`parity.io.ptychodus.FRAME_KEY`: ``x_m = origin_x_m + x_px * pixel_width_m``) and
``object`` (one of :data:`OBJECT_KINDS`: what the product's object array is), and ``left_out``
(what did not fit, one line each; absent when empty).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.container import ContainerMetadata
from parity.io._product import Product

__all__ = [
    "FRAME_FIELDS",
    "FRAME_KEY",
    "GEOMETRY_KEY",
    "OBJECT_KINDS",
    "RECORD_KEY",
    "SAME_VALUE_RTOL",
    "frame_dict",
    "frame_from",
    "read_record",
    "record_json",
    "record_positions_px",
]

#: Provenance key of the metres frame of a container (see :mod:`parity.io.ptychodus`).
FRAME_KEY = "frame_m"
#: Provenance key of the detector distance and photon energy of a container.
GEOMETRY_KEY = "geometry"

#: Product root attribute holding the record (a JSON object as a string).
RECORD_KEY = "parity_container"
#: What the object array of a product written from a container is: the container's
#: ``object_truth``, or the flat ``1 + 0j`` guess written for a container without one.
OBJECT_KINDS: tuple[str, ...] = ("truth", "flat-guess")
#: Keys of a metres frame.
FRAME_FIELDS: tuple[str, ...] = ("pixel_width_m", "pixel_height_m", "origin_x_m", "origin_y_m")
#: Provenance larger than this (JSON bytes) is not put in the record: HDF5 refuses attributes
#: over 64 KiB in its default (compact) layout.
_MAX_PROVENANCE_BYTES = 48 * 1024
#: Relative tolerance when two values should be the same number written twice (probe and object
#: pixel size, record and product, a given and a recorded geometry value): anything beyond float
#: rounding is a genuine mismatch.
SAME_VALUE_RTOL = 1e-6


def frame_dict(width_m: float, height_m: float, origin_x_m: float, origin_y_m: float
               ) -> dict[str, float]:
    """A metres frame (keys :data:`FRAME_FIELDS`) as plain floats."""
    return {"pixel_width_m": float(width_m), "pixel_height_m": float(height_m),
            "origin_x_m": float(origin_x_m), "origin_y_m": float(origin_y_m)}


def frame_from(stored: Any, where: str) -> dict[str, float]:
    """Validate a stored metres frame (a mapping with :data:`FRAME_FIELDS`).

    Raises
    ------
    ValueError
        If ``stored`` is not a mapping of the four keys, or a value is not finite (pixel sizes
        also > 0); the message starts with ``where``.
    """
    if not isinstance(stored, Mapping) or any(k not in stored for k in FRAME_FIELDS):
        raise ValueError(f"{where} = {stored!r} is malformed; expected the keys {FRAME_FIELDS}")
    try:
        frame = frame_dict(*(float(stored[k]) for k in FRAME_FIELDS))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where} = {stored!r} holds a value that is not a number") from err
    if not all(math.isfinite(v) for v in frame.values()) or \
            min(frame["pixel_width_m"], frame["pixel_height_m"]) <= 0:
        raise ValueError(f"{where} = {stored!r}; expected finite values and pixel sizes > 0")
    return frame


def record_json(metadata: ContainerMetadata, frame: Mapping[str, float], *, object_kind: str
                ) -> str:
    """The record of a container as a JSON string (see the module docstring).

    A provenance too large for an HDF5 attribute is left out, and the record's ``left_out``
    list says so.
    """
    if object_kind not in OBJECT_KINDS:
        raise ValueError(f"object_kind={object_kind!r}; expected one of {OBJECT_KINDS}")
    record: dict[str, Any] = {
        "name": metadata.name, "nphotons": float(metadata.nphotons),
        "gridsize": int(metadata.gridsize), "K": int(metadata.K), "seed": int(metadata.seed),
        "frame_m": dict(frame), "object": object_kind}
    size = len(json.dumps(dict(metadata.provenance)).encode())
    if size <= _MAX_PROVENANCE_BYTES:
        record["provenance"] = dict(metadata.provenance)
    else:
        record["left_out"] = [f"provenance ({size} bytes of JSON, too large for an HDF5 "
                              "attribute)"]
    return json.dumps(record)


def read_record(product: Product) -> dict[str, Any] | None:
    """The record a product carries (``None`` when it has none: not written from a container).

    Returns
    -------
    dict or None
        ``metadata`` (a :class:`ContainerMetadata`), ``frame_m`` (validated frame),
        ``object`` (one of :data:`OBJECT_KINDS`) and ``left_out`` (what the product could not
        hold, one line each).

    Raises
    ------
    ValueError
        If the attribute is not a JSON object with valid metadata, frame and object kind (the
        message names :data:`RECORD_KEY`).
    """
    text = product.extra_attributes.get(RECORD_KEY)
    if text is None:
        return None
    where = f"product attribute {RECORD_KEY!r}"
    try:
        record = json.loads(str(text))
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"{where} is {type(record).__name__}; expected a JSON object")
    if record.get("object") not in OBJECT_KINDS:
        raise ValueError(f"{where}: object={record.get('object')!r}; expected one of "
                         f"{OBJECT_KINDS}")
    fields = {k: record[k] for k in ("name", "nphotons", "gridsize", "K", "seed", "provenance")
              if k in record}
    try:
        metadata = ContainerMetadata(**fields)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err
    left_out = record.get("left_out", [])
    if not isinstance(left_out, list) or not all(isinstance(x, str) for x in left_out):
        raise ValueError(f"{where}: left_out={left_out!r}; expected a list of strings")
    return {"metadata": metadata, "object": record["object"], "left_out": left_out,
            "frame_m": frame_from(record.get("frame_m"), f"{where} frame_m")}


def record_positions_px(product: Product, record: Mapping[str, Any] | None) -> np.ndarray | None:
    """Positions ``(n, 2)`` ``(x, y)`` in the pixels of the container the product was written
    from, or ``None`` when the product has no record or was resampled since (its object pixel
    size is no longer the record's).

    Notes
    -----
    ``x_px = (x_m - origin_x_m) / pixel_width_m``, y alike: the container's own frame, not the
    product's object array (whose pixel 0 is elsewhere when the container has no object).
    """
    if record is None:
        return None
    frame = record["frame_m"]
    if not (math.isclose(frame["pixel_width_m"], product.object_pixel_width_m, rel_tol=SAME_VALUE_RTOL)
            and math.isclose(frame["pixel_height_m"], product.object_pixel_height_m,
                             rel_tol=SAME_VALUE_RTOL)):
        return None
    return np.stack([(product.positions_x_m - frame["origin_x_m"]) / frame["pixel_width_m"],
                     (product.positions_y_m - frame["origin_y_m"]) / frame["pixel_height_m"]],
                    axis=1)
