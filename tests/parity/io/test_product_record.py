"""Tests of parity/io/_product_record.py and parity/io/_product_to_container.py: what a product
written from a container remembers of it (metadata, nphotons note, frame, what the object is),
and that container -> product -> container keeps it, positions included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.container import Container, ContainerMetadata
from parity.io._product_record import RECORD_KEY, read_record
from parity.io.ptychodus import (
    container_from_product,
    container_to_product,
    read_product,
    write_product,
)

N = 16
RNG = np.random.default_rng(5)
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)
#: Pixels -> metres -> pixels in float64, positions of |x| < 100 px at 1e-8 m: ~1e-13 px.
POSITION_ATOL_PX = 1e-9
GEOMETRY = {"detector_distance_m": 2.0, "photon_energy_eV": 9e3}


def _container(positions: Any, *, truth: bool = False, **metadata: Any) -> Container:
    positions = np.asarray(positions, dtype=np.float64)
    fields = {"name": "tiny", "nphotons": 2e4, "gridsize": 2, "K": 6, "seed": 5,
              "provenance": {"frame_m": {"pixel_width_m": 1e-8, "pixel_height_m": 2e-8,
                                         "origin_x_m": 3e-7, "origin_y_m": -4e-7},
                             "geometry": GEOMETRY, "kind": "simulated"}}
    fields.update(metadata)
    side = int(np.ceil(positions.max() + N)) + 1
    return Container(
        diffraction=RNG.uniform(0, 3, size=(len(positions), N, N)).astype(np.float32),
        positions_px=positions,
        probe=(RNG.normal(size=(N, N)) + 1j * RNG.normal(size=(N, N))).astype(np.complex64),
        object_truth=np.ones((side, side), np.complex64) if truth else None,
        metadata=ContainerMetadata(**fields),
    )


def _round_trip(container: Container, tmp_path: Path, **options: Any) -> Container:
    product = read_product(write_product(container_to_product(container), tmp_path / "p.h5"))
    return container_from_product(product, container.diffraction, **options)


@SETTINGS
@given(low=st.floats(-40.0, 12.0), step=st.floats(2.0, 7.0),
       jitter=st.lists(st.floats(-0.45, 0.45), min_size=16, max_size=16))
def test_positions_survive_a_round_trip_near_and_below_pixel_0(tmp_path_factory, low, step,
                                                                jitter):
    # A container without an object gets a flat guess starting at min(p) - N/2 when that is
    # left of pixel 0; the positions must still come back in the container's own pixels.
    grid = np.array([(i % 4, i // 4) for i in range(8)], dtype=np.float64)
    positions = low + step * grid + np.reshape(jitter, (8, 2))
    container = _container(positions)
    back = _round_trip(container, tmp_path_factory.mktemp("trip"))
    np.testing.assert_allclose(back.positions_px, container.positions_px, rtol=0,
                               atol=POSITION_ATOL_PX)
    assert back.metadata.provenance["frame_m"] == container.metadata.provenance["frame_m"]


def test_the_flat_guess_hugs_a_scan_far_from_pixel_0(tmp_path: Path):
    # The record keeps the frame, so the flat guess need not reach back to container pixel 0.
    container = _container([[9000.0, 7000.0], [9010.5, 7003.0], [9004.0, 7012.5]])
    product = container_to_product(container)
    # Scan span (12.5 x 10.5 px) + N, plus the canvas' spare pixel and rounding on each side.
    assert max(product.object.shape[-2:]) <= 12.5 + N + 4
    back = _round_trip(container, tmp_path)
    np.testing.assert_allclose(back.positions_px, container.positions_px, rtol=0,
                               atol=POSITION_ATOL_PX)


def test_metadata_and_provenance_survive_a_round_trip(tmp_path: Path):
    container = _container([[20.0, 21.0], [25.5, 22.0], [23.0, 27.5]])
    back = _round_trip(container, tmp_path)
    meta = back.metadata
    assert (meta.name, meta.nphotons, meta.gridsize, meta.K, meta.seed) == \
        ("tiny", 2e4, 2, 6, 5)
    assert meta.provenance["container_provenance"]["kind"] == "simulated"
    assert "not_carried" not in meta.provenance  # a flat guess holds no data to lose


def test_an_assumed_photon_count_stays_marked_as_assumed(tmp_path: Path):
    note = "not in file; assumed PtychoPINN default 1e+09"
    container = _container([[20.0, 21.0], [25.5, 22.0]], nphotons=1e9, provenance={
        "frame_m": {"pixel_width_m": 1e-8, "pixel_height_m": 1e-8, "origin_x_m": 0.0,
                    "origin_y_m": 0.0}, "geometry": GEOMETRY, "nphotons_note": note})
    product = container_to_product(container)
    assert note in product.comments
    back = _round_trip(container, tmp_path)
    assert back.metadata.nphotons == 1e9 and back.metadata.provenance["nphotons_note"] == note
    given_count = _round_trip(container, tmp_path, nphotons=5e3)
    assert given_count.metadata.nphotons == 5e3
    assert "nphotons_note" not in given_count.metadata.provenance


def test_the_ground_truth_comes_back_only_when_asked(tmp_path: Path):
    container = _container([[20.0, 21.0], [25.5, 22.0]], truth=True)
    plain = _round_trip(container, tmp_path)
    assert plain.object_truth is None
    assert "objectGuess" in plain.metadata.provenance["not_carried"][0]
    assert "--object-as-truth" in plain.metadata.provenance["not_carried"][0]
    kept = _round_trip(container, tmp_path, object_as_truth=True)
    np.testing.assert_array_equal(kept.object_truth, container.object_truth)
    np.testing.assert_allclose(kept.positions_px, container.positions_px, rtol=0,
                               atol=POSITION_ATOL_PX)
    flat = _container([[20.0, 21.0], [25.5, 22.0]])
    with pytest.raises(ValueError, match=r"flat 1\+0j guess .* not a ground truth; drop "
                                         r"--object-as-truth"):
        _round_trip(flat, tmp_path, object_as_truth=True)


def test_a_product_without_a_record_says_what_it_cannot_give(tmp_path: Path):
    product = container_to_product(_container([[20.0, 21.0], [25.5, 22.0]], truth=True))
    extras = {k: v for k, v in product.extra_attributes.items() if k != RECORD_KEY}
    foreign = type(product)(**{**{f: getattr(product, f) for f in product.__dataclass_fields__},
                               "extra_attributes": extras})
    back = container_from_product(foreign, np.ones((2, N, N), np.float32))
    lost = back.metadata.provenance["not_carried"]
    assert lost[0].startswith("object (a product's object is taken for an estimate")
    assert lost[1].startswith("gridsize, K, seed")
    assert (back.metadata.gridsize, back.metadata.seed) == (1, 0)
    source = ContainerMetadata(name="src", nphotons=7e3, gridsize=2, K=5, seed=9)
    paired = container_from_product(foreign, np.ones((2, N, N), np.float32),
                                    source_metadata=source)
    assert (paired.metadata.nphotons, paired.metadata.gridsize, paired.metadata.seed) == \
        (7e3, 2, 9)


def test_a_provenance_too_large_for_hdf5_is_left_out_and_said(tmp_path: Path):
    container = _container([[20.0, 21.0], [25.5, 22.0]], provenance={
        "frame_m": {"pixel_width_m": 1e-8, "pixel_height_m": 1e-8, "origin_x_m": 0.0,
                    "origin_y_m": 0.0}, "geometry": GEOMETRY, "log": "x" * 70_000})
    product = container_to_product(container)
    assert read_record(product)["left_out"][0].startswith("provenance (")
    back = _round_trip(container, tmp_path)
    assert any(item.startswith("provenance (") for item in back.metadata.provenance["not_carried"])


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is list; expected a JSON object"),
    (json.dumps({"object": "painting"}), r"object='painting'; expected one of"),
    (json.dumps({"object": "truth", "gridsize": 9, "frame_m": {}}), "gridsize=9"),
    (json.dumps({"object": "truth", "frame_m": {"pixel_width_m": 1}}), "frame_m .* malformed"),
])
def test_a_malformed_record_is_named(text: str, match: str):
    product = container_to_product(_container([[20.0, 21.0], [25.5, 22.0]]))
    broken = type(product)(**{**{f: getattr(product, f) for f in product.__dataclass_fields__},
                              "extra_attributes": {RECORD_KEY: text}})
    with pytest.raises(ValueError, match=f"product attribute '{RECORD_KEY}'.*{match}"):
        read_record(broken)
