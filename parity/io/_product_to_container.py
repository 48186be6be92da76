"""A product and its diffraction patterns as a :class:`~parity.container.Container`.

Public through :mod:`parity.io.ptychodus` (:func:`container_from_product`), which documents the
metres <-> pixels mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.container import Container, ContainerMetadata
from parity.container_checks import NPHOTONS_ESTIMATE_NOTE, estimate_nphotons
from parity.io._product import Product
from parity.io._product_record import (
    FRAME_KEY,
    GEOMETRY_KEY,
    SAME_VALUE_RTOL,
    frame_dict,
    read_record,
    record_positions_px,
)
from parity.io.detector import check_counts

__all__ = ["container_from_product"]

#: How the CLI and the Python API spell "keep the product's object as the ground truth".
_TRUTH_OPTION = "--object-as-truth (CLI) / object_as_truth=True (Python)"


def _case_name(text: str) -> str:
    cleaned = "".join("_" if c in "/\\ \n\t" else c for c in text).strip("_")
    return cleaned or "product"


def _amplitudes(diffraction: np.ndarray, kind: str) -> tuple[np.ndarray, list[str]]:
    diffraction = np.asarray(diffraction)
    if diffraction.ndim != 3:
        raise ValueError(f"diffraction has shape {diffraction.shape}; expected (n, N, N)")
    if kind not in ("amplitude", "counts"):
        raise ValueError(f"diffraction_kind={kind!r}; expected 'amplitude' or 'counts'")
    if kind == "amplitude":
        return diffraction, []
    check_counts(diffraction, where="diffraction")
    return (np.sqrt(diffraction.astype(np.float64)).astype(np.float32),
            ["counts -> amplitudes (sqrt)"])


def _positions(product: Product, record: Mapping[str, Any] | None, object_as_truth: bool
               ) -> tuple[np.ndarray, dict[str, float], str]:
    """Positions in container pixels, the metres frame they are counted in, and how."""
    if object_as_truth and record is not None and record["object"] != "truth":
        raise ValueError(
            "the product's object is the flat 1+0j guess `parity convert` wrote for a container "
            f"without objectGuess, not a ground truth; drop {_TRUTH_OPTION}")
    recorded = record_positions_px(product, record)
    if recorded is not None:
        return (recorded, dict(record["frame_m"]),
                "metres -> the source container's pixels: x_px = (x_m - origin_x_m)/"
                "pixel_width_m, y alike (frame recorded in the product)")
    height, width = product.object.shape[-2:]
    frame = frame_dict(product.object_pixel_width_m, product.object_pixel_height_m,
                       product.object_center_x_m - (width - 1) / 2 * product.object_pixel_width_m,
                       product.object_center_y_m
                       - (height - 1) / 2 * product.object_pixel_height_m)
    return (product.positions_px(), frame,
            "metres -> object pixels: x_px = (x_m - center_x_m)/pixel_width_m + (W-1)/2, y alike "
            "with H")


def _pair(product: Product, positions: np.ndarray, n_patterns: int,
          diffraction_indexes: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    """Positions in pattern order (by scan index when the patterns have indexes)."""
    conversions: list[str] = []
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
    if positions.shape[0] != n_patterns:
        raise ValueError(f"the product has {positions.shape[0]} positions but there are "
                         f"{n_patterns} diffraction patterns")
    return positions, conversions


def _probe(product: Product, N: int) -> np.ndarray:
    for axis in ("width", "height"):
        probe_px = getattr(product, f"probe_pixel_{axis}_m")
        object_px = getattr(product, f"object_pixel_{axis}_m")
        if not math.isclose(probe_px, object_px, rel_tol=SAME_VALUE_RTOL):
            raise ValueError(f"probe pixel {axis} {probe_px:g} m differs from object pixel "
                             f"{axis} {object_px:g} m; PtychoPINN needs the probe on the object "
                             "grid - resample the probe first")
    probe = product.probe[0, 0]
    if probe.shape != (N, N):
        raise ValueError(f"product probe is {probe.shape}; expected ({N}, {N}) to match the "
                         "diffraction patterns")
    return probe.astype(np.complex64)


def _metadata(carried: ContainerMetadata | None, nphotons: float | None,
              diffraction: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Metadata fields, provenance entries and the list of what could not be carried.

    ``nphotons``: the caller's, else the carried one with its note (an assumed count stays
    marked as assumed), else estimated from the patterns.
    """
    fields: dict[str, Any] = {}
    record: dict[str, Any] = {}
    not_carried: list[str] = []
    if carried is not None:
        fields.update(gridsize=carried.gridsize, K=carried.K, seed=carried.seed)
        record["container_provenance"] = dict(carried.provenance)
    else:
        not_carried.append("gridsize, K, seed (not recorded; defaults 1, 4, 0)")
    if nphotons is not None:
        fields["nphotons"] = nphotons
    elif carried is not None:
        fields["nphotons"] = carried.nphotons
        note = carried.provenance.get("nphotons_note")
        if note is not None:
            record["nphotons_note"] = note
    else:
        fields["nphotons"] = estimate_nphotons(diffraction)
        record["nphotons_note"] = NPHOTONS_ESTIMATE_NOTE
    return fields, record, not_carried


def _object_not_carried(record: Mapping[str, Any] | None, object_as_truth: bool) -> list[str]:
    if object_as_truth or (record is not None and record["object"] == "flat-guess"):
        return []  # kept, or a flat guess that holds no data
    if record is not None:
        return [f"objectGuess (the product's object is the source's ground truth: use "
                f"{_TRUTH_OPTION})"]
    return [f"object (a product's object is taken for an estimate; if it is the ground truth, "
            f"use {_TRUTH_OPTION})"]


def container_from_product(product: Product, diffraction: np.ndarray, *,
                           nphotons: float | None = None, diffraction_kind: str = "amplitude",
                           diffraction_indexes: np.ndarray | None = None,
                           object_as_truth: bool = False, name: str | None = None,
                           provenance: Mapping[str, Any] | None = None,
                           source_metadata: ContainerMetadata | None = None) -> Container:
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
        Photon count per pattern for the container metadata; default: ``source_metadata``'s,
        else the one the product records (a product written from a container), each with its
        provenance note; else estimated from the patterns
        (:func:`~parity.container_checks.estimate_nphotons`, recorded as estimated).
    diffraction_kind : {"amplitude", "counts"}
        ``"counts"`` takes the square root (ptychodus hands reconstructors raw counts; the
        container holds amplitudes).
    diffraction_indexes : numpy.ndarray, optional
        ``(n,)`` scan index of each pattern. Positions are then paired by scan index (as
        ptychodus does) instead of by order; positions that share a scan index (repeated
        ``position_indexes``, legitimate in the format) are averaged first, as ptychodus's
        ``prepare_reconstruct_input`` does.
    object_as_truth : bool
        Put object layer 0 into ``object_truth``: for a product whose object is the truth
        (a simulation, or a product `parity convert` wrote from a container with
        ``objectGuess``). By default a product's object is an estimate and is not carried.
    name : str, optional
        Case name; default: the product name with spaces and slashes replaced.
    provenance : Mapping, optional
        Extra provenance merged into the container's.
    source_metadata : ContainerMetadata, optional
        Metadata of the container the patterns come from; its ``gridsize``, ``K``, ``seed``,
        ``nphotons`` and provenance are used in place of the product's record.

    Returns
    -------
    Container
        Positions ``(n, 2)`` as ``(x, y)`` pixels: those of the container the product was
        written from when it records that container's frame (:mod:`parity.io._product_record`),
        else object pixels of the product's object array. Probe = OPR mode 0, incoherent mode 0.
        Provenance ``not_carried`` lists what the container could not keep (object, probe
        modes, metadata the product does not record).

    Raises
    ------
    ValueError
        If the counts of patterns and positions differ, a scan index has no position, the
        product repeats a scan index and the patterns are paired by order (without
        ``diffraction_indexes``), the probe is not ``(N, N)``, the probe and object pixel sizes
        differ (PtychoPINN needs the probe on the object grid), the diffraction kind is
        unknown, the product's record is malformed, or ``object_as_truth`` is asked of a flat
        object guess.
    """
    diffraction, conversions = _amplitudes(diffraction, diffraction_kind)
    record = read_record(product)
    positions, frame, mapping = _positions(product, record, object_as_truth)
    positions, pairing = _pair(product, positions, diffraction.shape[0], diffraction_indexes)
    probe = _probe(product, diffraction.shape[-1])
    carried = source_metadata or (record["metadata"] if record is not None else None)
    fields, notes, not_carried = _metadata(carried, nphotons, diffraction)
    dropped = product.probe.shape[0] * product.probe.shape[1] - 1
    if dropped:
        not_carried.append(f"{dropped} of {dropped + 1} probe modes (a container holds one)")
    not_carried = _object_not_carried(record, object_as_truth) + not_carried
    if record is not None:
        not_carried += record["left_out"]
    height, width = product.object.shape[-2:]
    entries: dict[str, Any] = {
        "source": "ptychodus product",
        "product_name": product.name,
        FRAME_KEY: frame,
        GEOMETRY_KEY: {"detector_distance_m": product.detector_object_distance_m,
                       "photon_energy_eV": product.photon_energy_eV},
        "object_frame_shape": [int(height), int(width)],
        "conversions": [*conversions, *pairing, mapping],
        **notes,
    }
    if dropped:
        entries["probe_modes_dropped"] = int(dropped)
    if product.legacy_keys_read:
        entries["legacy_keys_read"] = list(product.legacy_keys_read)
    if not_carried:
        entries["not_carried"] = not_carried
    entries.update(dict(provenance or {}))
    return Container(
        diffraction=diffraction.astype(np.float32),
        positions_px=positions,
        probe=probe,
        object_truth=product.object[0].astype(np.complex64) if object_as_truth else None,
        metadata=ContainerMetadata(name=name or _case_name(product.name), provenance=entries,
                                   **fields),
    )
