"""Tests of parity/container.py: validation (each bad input named), immutability, NPZ I/O."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from parity.container import (
    DEFAULT_NPHOTONS,
    Container,
    ContainerMetadata,
    read_npz,
    write_npz,
)

N = 8
n = 5


def _valid() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    return {
        "diffraction": rng.uniform(0.0, 2.0, size=(n, N, N)).astype(np.float32),
        "positions_px": np.array([[10.5, 12.25], [14.0, 12.5], [18.75, 13.0], [11.0, 20.5],
                                  [17.25, 21.0]]),
        "probe": (rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex64),
        "object_truth": np.exp(1j * rng.uniform(-1, 1, size=(40, 32))).astype(np.complex64),
        "metadata": ContainerMetadata(name="tiny", nphotons=1e6, gridsize=2, K=4, seed=3,
                                      provenance={"kind": "test"}),
    }


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
     r"positions_px\[2\]"),
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


def test_npz_round_trip_is_identical(tmp_path):
    container = Container(**_valid())
    path = write_npz(container, tmp_path / "case.npz")
    assert not list(tmp_path.glob("*.partial"))  # the atomic write left no partial file
    again = read_npz(path)
    for name in ("diffraction", "positions_px", "probe", "object_truth"):
        expected, actual = getattr(container, name), getattr(again, name)
        assert actual.dtype == expected.dtype, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)  # bit-exact storage
    for field in ("name", "nphotons", "gridsize", "K", "seed"):
        assert getattr(again.metadata, field) == getattr(container.metadata, field), field
    # stored provenance survives; the reader adds where it read from
    assert again.metadata.provenance["kind"] == "test"
    assert again.metadata.provenance["source_file"] == str(path)
    assert again.content_hash() == container.content_hash()


def test_content_hash_tracks_content():
    container = Container(**_valid())
    changed = Container(**_with(diffraction=_set(_D, (0, 0, 0), 1.5)))
    assert changed.content_hash() != container.content_hash()
    reseeded = Container(**_with(metadata=ContainerMetadata(name="tiny", nphotons=1e6,
                                                            gridsize=2, K=4, seed=4)))
    assert reseeded.content_hash() != container.content_hash()


def _save(path, **arrays):
    np.savez(path, **arrays)
    return path


def _ptychopinn_arrays(diff_key="diffraction", layout="nNN"):
    kwargs = _valid()
    d = kwargs["diffraction"]
    if layout == "nNN1":
        d = d[..., None]
    elif layout == "NNn":
        d = np.moveaxis(d, 0, -1)
    return {
        diff_key: d,
        "xcoords": kwargs["positions_px"][:, 0],
        "ycoords": kwargs["positions_px"][:, 1],
        "probeGuess": kwargs["probe"],
        "objectGuess": kwargs["object_truth"],
    }


@pytest.mark.parametrize(("key", "layout"), [("diffraction", "nNN"), ("diff3d", "nNN"),
                                             ("diff3d", "nNN1"), ("diffraction", "NNn")])
def test_reads_ptychopinn_keys_and_layouts(tmp_path, key, layout):
    path = _save(tmp_path / "raw.npz", **_ptychopinn_arrays(key, layout))
    container = read_npz(path, nphotons=1e5)
    np.testing.assert_array_equal(container.diffraction, _valid()["diffraction"])
    np.testing.assert_array_equal(container.positions_px, _valid()["positions_px"])
    assert container.metadata.provenance["diffraction_key"] == key
    assert container.metadata.nphotons == 1e5
    assert container.metadata.name == "raw"
    assert ("legacy_layout" in container.metadata.provenance) == (layout == "NNn")


def test_missing_nphotons_falls_back_and_says_so(tmp_path):
    path = _save(tmp_path / "raw.npz", **_ptychopinn_arrays())
    container = read_npz(path)
    assert container.metadata.nphotons == DEFAULT_NPHOTONS
    assert "assumed" in container.metadata.provenance["nphotons_note"]


def test_missing_key_is_named(tmp_path):
    arrays = _ptychopinn_arrays()
    del arrays["probeGuess"]
    path = _save(tmp_path / "raw.npz", **arrays)
    with pytest.raises(ValueError, match=r"raw.npz lacks key\(s\) \['probeGuess'\]"):
        read_npz(path)
    arrays = _ptychopinn_arrays()
    del arrays["diffraction"]
    path = _save(tmp_path / "nodiff.npz", **arrays)
    with pytest.raises(ValueError, match=r"diff3d\|diffraction"):
        read_npz(path)


def test_truncated_and_garbage_files_name_the_file(tmp_path):
    container = Container(**_valid())
    good = write_npz(container, tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.npz"):
        read_npz(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not an npz file at all" * 10)
    with pytest.raises(ValueError, match=r"garbage\.npz"):
        read_npz(garbage)
    with pytest.raises(FileNotFoundError, match=r"absent\.npz"):
        read_npz(tmp_path / "absent.npz")


def test_pickled_metadata_is_not_loaded(tmp_path):
    arrays = _ptychopinn_arrays()
    arrays["_metadata"] = np.array([{"nphotons": 5.0, "name": "evil"}], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # allow_pickle is the default on save
    container = read_npz(path)
    assert container.metadata.nphotons == DEFAULT_NPHOTONS  # not the pickled 5.0
    assert container.metadata.name == "pickled"
    assert "pickled _metadata not loaded" in container.metadata.provenance["metadata_note"]


def test_json_metadata_overrides(tmp_path):
    container = Container(**_valid())
    path = write_npz(container, tmp_path / "case.npz")
    with np.load(path) as archive:
        stored = json.loads(str(archive["_metadata"]))
    assert stored["nphotons"] == 1e6
    again = read_npz(path, name="renamed", gridsize=1, K=6)
    assert (again.metadata.name, again.metadata.gridsize, again.metadata.K) == ("renamed", 1, 6)


def test_subset_records_provenance():
    container = Container(**_valid())
    sub = container.subset(np.array([4, 0]), name="sub")
    np.testing.assert_array_equal(sub.positions_px, container.positions_px[[4, 0]])
    assert sub.metadata.provenance["subset_of"] == container.content_hash()[:16]
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        container.subset(np.array([5]))
