"""Tests of parity/container.py: validation (each bad input named), immutability, hashing,
subsets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fixtures.tiny import TINY_N, TINY_PATTERNS, tiny_container_kwargs
from parity.container import (
    Container,
    ContainerError,
    ContainerMetadata,
    ContainerTypeError,
)

N = TINY_N
n = TINY_PATTERNS


_valid = tiny_container_kwargs


def _with(**changes: Any) -> dict[str, Any]:
    kwargs = _valid()
    kwargs.update(changes)
    return kwargs


def _set(array: np.ndarray, index: tuple, value: float) -> np.ndarray:
    array = array.copy()
    array[index] = value
    return array


def test_valid_container_properties():
    container = Container(**_valid())
    assert (container.n_patterns, container.N) == (n, N)
    assert container.diffraction.dtype == np.float32
    assert container.positions_px.dtype == np.float64
    assert container.probe.dtype == np.complex64
    assert container.object_truth.dtype == np.complex64


_D = _valid()["diffraction"]
_P = _valid()["positions_px"]

BAD_INPUTS = [
    ("diffraction 2-D", {"diffraction": _D[0]}, ValueError, r"diffraction has shape \(8, 8\)"),
    ("non-square", {"diffraction": _D[:, :, :6]}, ValueError, "8x6; expected square"),
    ("integer counts", {"diffraction": _D.astype(np.int32)}, TypeError, "integer dtype int32"),
    ("complex diffraction", {"diffraction": _D.astype(np.complex64)}, TypeError, "complex64"),
    ("NaN", {"diffraction": _set(_D, (2, 3, 4), np.nan)}, ValueError, r"index \(2, 3, 4\)"),
    ("inf", {"diffraction": _set(_D, (0, 7, 1), np.inf)}, ValueError, r"index \(0, 7, 1\)"),
    ("negative", {"diffraction": _set(_D, (1, 0, 5), -0.5)}, ValueError,
     r"negative at index \(1, 0, 5\)"),
    ("all zero", {"diffraction": np.zeros_like(_D)}, ValueError, "every diffraction pattern"),
    ("empty scan", {"diffraction": _D[:0], "positions_px": _P[:0]}, ValueError, "empty"),
    ("positions shape", {"positions_px": _P[:4]}, ValueError, r"positions_px has shape \(4, 2\)"),
    ("positions string", {"positions_px": _P.astype(str)}, TypeError, "positions_px has dtype"),
    ("positions NaN", {"positions_px": _set(_P, (2, 1), np.nan)}, ValueError,
     r"positions_px\[2\] = \[18\.75, nan\] \(x, y\) is not finite"),  # no padded NumPy repr
    ("positions inf", {"positions_px": _set(_P, (4, 0), np.inf)}, ValueError,
     r"positions_px\[4\] = \[inf, 21\] \(x, y\) is not finite"),
    ("duplicate", {"positions_px": _set(_P, 3, _P[1])}, ValueError,
     r"duplicated.*indices \[1, 3\]"),
    ("probe size", {"probe": np.ones((6, 6), np.complex64)}, ValueError,
     r"probe has shape \(6, 6\); expected \(8, 8\)"),
    ("real probe", {"probe": np.ones((N, N), np.float32)}, TypeError, "probe has dtype float32"),
    ("zero probe", {"probe": np.zeros((N, N), np.complex64)}, ValueError, "zero everywhere"),
    ("NaN probe", {"probe": np.full((N, N), np.nan, np.complex64)}, ValueError, "probe has non"),
    ("outside object", {"positions_px": _set(_P, (4, 0), 31.5)}, ValueError,
     r"1 positions lie outside the 40x32 object.*positions_px\[4\] = \[31.5, 21.0\]"),
    ("negative position", {"positions_px": _set(_P, (0, 1), -0.25)}, ValueError,
     r"positions_px\[0\]"),
    ("real truth", {"object_truth": np.ones((40, 32))}, TypeError, "object_truth has dtype"),
    ("truth 3-D", {"object_truth": np.ones((1, 40, 32), np.complex64)}, ValueError,
     "object_truth has shape"),
    ("metadata dict", {"metadata": {"name": "x"}}, TypeError, "metadata is dict"),
]


@pytest.mark.parametrize(("what", "changes", "error", "match"), BAD_INPUTS,
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named(what, changes, error, match):
    with pytest.raises(error, match=match):
        Container(**_with(**changes))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "has space"}, "case name"),
        ({"name": ""}, "case name"),
        ({"nphotons": -1.0}, "nphotons=-1.0"),
        ({"nphotons": float("nan")}, "nphotons=nan"),
        ({"nphotons": "1e9"}, "nphotons='1e9'"),
        ({"gridsize": 5}, "gridsize=5"),
        ({"gridsize": 2, "K": 3}, "K=3 < C=4"),
        ({"provenance": {"when": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_metadata_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ContainerMetadata(**kwargs)


def test_arrays_are_read_only_copies():
    kwargs = _valid()
    container = Container(**kwargs)
    for name in ("diffraction", "positions_px", "probe", "object_truth"):
        array = getattr(container, name)
        assert not array.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            array[(0,) * array.ndim] = 0
    kwargs["diffraction"][0, 0, 0] = 99.0  # the caller's array stays theirs
    assert container.diffraction[0, 0, 0] != 99.0
    with pytest.raises(TypeError):
        container.metadata.provenance["kind"] = "changed"  # type: ignore[index]


def test_content_hash_tracks_content():
    container = Container(**_valid())
    changed = Container(**_with(diffraction=_set(_D, (0, 0, 0), 1.5)))
    assert changed.content_hash() != container.content_hash()
    reseeded = Container(**_with(metadata=ContainerMetadata(name="tiny", nphotons=1e6,
                                                            gridsize=2, K=4, seed=4)))
    assert reseeded.content_hash() != container.content_hash()


def test_subset_records_provenance():
    container = Container(**_valid())
    sub = container.subset(np.array([4, 0]), name="sub")
    np.testing.assert_array_equal(sub.positions_px, container.positions_px[[4, 0]])
    assert sub.metadata.provenance["subset_of"] == container.content_hash()[:16]
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        container.subset(np.array([5]))


# -- bad content is a ValueError (exit 2), never a bare TypeError (exit 4) ---------------------


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex64])
def test_diffraction_dtype_errors_are_value_errors(dtype):
    with pytest.raises(ContainerTypeError, match="diffraction has") as info:
        Container(**_with(diffraction=(_D > 1).astype(dtype)))
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert isinstance(info.value, ContainerError)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gridsize": "2"}, r"gridsize='2' is str; expected an integer"),
        ({"gridsize": 2.0}, r"gridsize=2.0 is float; expected an integer"),
        ({"K": True}, r"K=True is bool; expected an integer"),
        ({"name": 5}, r"name=5 is int; expected a string"),
        ({"provenance": [1, 2]}, r"provenance is list; expected a mapping"),
        ({"provenance": "x"}, r"provenance is str; expected a mapping"),
        ({"nphotons": True}, r"nphotons=True is bool; expected a finite number"),
        ({"nphotons": None}, r"nphotons=None"),
        ({"K": -3}, r"K=-3; expected an integer >= 1"),
        ({"K": 0, "gridsize": 1}, r"K=0; expected an integer >= 1"),
        ({"seed": -1}, r"seed=-1; expected an integer >= 0"),
    ],
)
def test_bad_metadata_types_are_value_errors_naming_the_field(kwargs, match):
    with pytest.raises(ContainerError, match=match):
        ContainerMetadata(**kwargs)


def test_numpy_scalars_are_accepted_as_metadata():
    meta = ContainerMetadata(nphotons=np.float32(1e4), gridsize=np.int64(2), K=np.int32(4))
    assert meta.to_dict()["nphotons"] == 1e4


def test_duplicate_positions_message_is_capped():
    positions = np.tile([[12.0, 14.0]], (n, 1))
    many = np.concatenate([positions] * 5)
    with pytest.raises(ContainerError, match=r"at 25 indices \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, "
                                             r"\.\.\.\]$"):
        Container(**_with(diffraction=np.concatenate([_D] * 5), positions_px=many))


def test_a_scan_too_large_for_object_pixels_is_refused():
    # Positions in nm instead of px: every stitcher would allocate a canvas of tens of GB.
    with pytest.raises(ContainerError, match=r"positions_px: the scan \(bounding box plus N=8\) "
                                             r"spans 16508 x 17508 px \(limit 16384 px a side\): "
                                             r"positions must be in object pixels"):
        Container(**_with(positions_px=_P * 2000, object_truth=None))
    wide = _P * [1900.0, 1.0]  # 15675 px along x: large, but within the limit
    assert Container(**_with(positions_px=wide, object_truth=None)).n_patterns == n


def test_a_scan_under_one_pixel_names_the_unit():
    metres = _P * 1e-7  # px taken for metres: the scan spans under a micrometre
    with pytest.raises(ContainerError, match=r"positions_px: the scan spans 8\.25e-07 x 8\.75e-07 "
                                             r"px \(x, y\), less than one pixel on both axes: "
                                             r"positions must be in object pixels, not metres"):
        Container(**_with(positions_px=metres, object_truth=None))
    one = Container(**_with(diffraction=_D[:1], positions_px=_P[:1] * 1e-7, object_truth=None))
    assert one.n_patterns == 1  # a single position spans nothing and is legitimate


def test_tiny_duplicated_positions_hint_at_units():
    tiny = np.full((n, 2), 2e-6)
    with pytest.raises(ContainerError, match=r"duplicated.*every \|position\| is below 0\.001 "
                                             r"\(largest 2e-06\): they look like metres or "
                                             r"micrometres"):
        Container(**_with(positions_px=tiny, object_truth=None))
    with pytest.raises(ContainerError, match=r"indices \[1, 3\]$"):  # pixels: no hint
        Container(**_with(positions_px=_set(_P, 3, _P[1])))
