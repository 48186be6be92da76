"""Tests of parity/io/container_npz.py: NPZ round trip, PtychoPINN keys and layouts, JSON
metadata, and each kind of bad file named with its key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures.tiny import TINY_N, TINY_PATTERNS, tiny_container_kwargs
from parity.container import (
    Container,
    ContainerError,
    ContainerTypeError,
)
from parity.io.container_npz import read_npz, write_npz
from parity.truth_coverage import check_truth_coverage

N = TINY_N
n = TINY_PATTERNS


_valid = tiny_container_kwargs


_D = _valid()["diffraction"]
_P = _valid()["positions_px"]


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
    assert again.metadata.provenance["source_file"] == str(path.resolve())
    assert again.content_hash() == container.content_hash()


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


def test_missing_nphotons_is_estimated_from_the_data_and_says_so(tmp_path):
    # Not PtychoPINN's default 1e9: that was 31x off for the small fixture (1e6 counts/pattern).
    path = _save(tmp_path / "raw.npz", **_ptychopinn_arrays())
    container = read_npz(path)
    expected = float(np.mean(np.sum(_D.astype(np.float64) ** 2, axis=(1, 2))))
    assert container.metadata.nphotons == pytest.approx(expected, rel=1e-12)
    note = container.metadata.provenance["nphotons_note"]
    assert "not in the file's _metadata" in note
    assert "estimated: mean sum(amplitude**2) per pattern" in note
    assert "sqrt(photon counts)" in note


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
    with pytest.raises(ValueError, match=r"truncated\.npz is not a readable NPZ file: .*"
                                         r"\(truncated, or not an NPZ archive\?\)"):
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
    expected = float(np.mean(np.sum(_D.astype(np.float64) ** 2, axis=(1, 2))))
    assert container.metadata.nphotons == pytest.approx(expected, rel=1e-12)  # not the pickled 5.0
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


def _write_with(path, **changes):
    arrays = _ptychopinn_arrays()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


def _meta(**fields) -> np.ndarray:
    return np.array(json.dumps({"name": "case", "nphotons": 1e6, **fields}))


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        (np.array("[1, 2, 3]"), r"_metadata is a JSON array; expected a JSON object"),
        (np.array('"hello"'), r"_metadata is a JSON string; expected a JSON object"),
        (np.array("nphotons=5"), r"_metadata is not valid JSON .*'nphotons=5'"),
        (np.array(['{"nphotons": 5}'] * 2), r"_metadata has shape \(2,\).*one JSON string"),
        (np.array(b"\xff\xfe"), r"_metadata is bytes that are not UTF-8"),
        (_meta(nphoton=5, grid_size=2), r"unknown key\(s\) \['grid_size', 'nphoton'\]; known "
                                        r"keys: \['name', 'nphotons', 'gridsize'"),
        (_meta(provenance=[1, 2]), r"_metadata provenance is a JSON array"),
        (_meta(provenance="x"), r"_metadata provenance is a JSON string"),
        (_meta(gridsize="2"), r"metadata: gridsize='2' is str; expected an integer"),
        (_meta(gridsize=2.0), r"metadata: gridsize=2.0 is float"),
        (_meta(name=5), r"metadata: name=5 is int"),
        (_meta(nphotons=True), r"metadata: nphotons=True is bool"),
        (_meta(K=-3), r"metadata: K=-3; expected an integer >= 1"),
        (_meta(seed=-1), r"metadata: seed=-1; expected an integer >= 0"),
    ],
)
def test_bad_metadata_in_a_file_names_the_file_and_the_key(tmp_path, metadata, match):
    path = _write_with(tmp_path / "meta.npz", _metadata=metadata)
    with pytest.raises(ContainerError, match=match) as info:
        read_npz(path)
    assert "meta.npz" in str(info.value)


def test_bytes_json_metadata_is_parsed(tmp_path):
    raw = json.dumps({"nphotons": 123.0, "gridsize": 2, "K": 5}).encode()
    container = read_npz(_write_with(tmp_path / "b.npz", _metadata=np.array(raw)))
    assert (container.metadata.nphotons, container.metadata.gridsize) == (123.0, 2)
    assert "metadata_note" not in container.metadata.provenance


def test_a_plain_npy_file_is_named_as_a_single_array(tmp_path):
    path = tmp_path / "patterns.npy"
    np.save(path, _D)
    with pytest.raises(ContainerError, match=r"patterns\.npy holds a single NumPy array"):
        read_npz(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"hello world\n", r"is not an NPZ \(zip\) file: it starts with b'hello wo'"),
        (b"", r"is empty \(0 bytes\)"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 8, r"is an HDF5 file, not an NPZ container"),
    ],
)
def test_files_that_are_not_npz_say_what_they_are(tmp_path, content, match):
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    with pytest.raises(ContainerError, match=match):
        read_npz(path)


@pytest.mark.parametrize(("entries", "match"), [
    (("entry_1",), r"does not read CXI; make a container NPZ in Python"),
    (("probe", "object", "probe_position_x_m"),
     r"a ptychodus product; make a container with `parity convert PRODUCT\.h5"),
])
def test_an_hdf5_file_gets_the_route_for_its_kind(tmp_path, entries, match):
    """A CXI file and a ptychodus product given as a container each get their own way in."""
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as handle:
        for name in entries:
            handle.create_dataset(name, data=np.zeros(2))
    with pytest.raises(ContainerError, match=match):
        read_npz(path)


def test_a_directory_is_named_as_a_directory(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ContainerError, match=r"dir\.npz is a directory"):
        read_npz(tmp_path / "dir.npz")


@pytest.mark.parametrize("key", ["diffraction", "xcoords"])
def test_object_dtype_arrays_are_refused_as_pickles(tmp_path, key):
    value = _ptychopinn_arrays()[key].astype(object)
    path = _write_with(tmp_path / "obj.npz", **{key: value})
    with pytest.raises(ContainerError, match=rf"array '{key}' has object dtype \(pickled"):
        read_npz(path)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (_P[:, 0] + 5j, r"xcoords has complex dtype complex128; expected real"),
        (_P[:, 0].astype(str), r"xcoords has dtype <U.*; expected real numbers"),
        (_P[:, 0] > 12, r"xcoords has dtype bool"),
    ],
)
def test_coordinates_must_be_real_numbers(tmp_path, value, match):
    path = _write_with(tmp_path / "coords.npz", xcoords=value)
    with pytest.raises(ContainerTypeError, match=match):
        read_npz(path)


def test_diff3d_and_diffraction_together(tmp_path):
    same = _write_with(tmp_path / "same.npz", diff3d=np.moveaxis(_D, 0, -1))  # legacy layout
    container = read_npz(same)
    np.testing.assert_array_equal(container.diffraction, _D)
    assert "identical" in container.metadata.provenance["diffraction_note"]
    other = _write_with(tmp_path / "other.npz", diff3d=_D[::-1].copy())
    with pytest.raises(ContainerError, match=r"both 'diff3d' and 'diffraction' .* differ"):
        read_npz(other)


def _cube_case(tmp_path, name, *, legacy):
    """``size`` patterns of ``size x size`` pixels peaking at the centre, saved (k, k, k)."""
    size = N
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:size, :size] - size // 2
    patterns = (np.exp(-(xx**2 + yy**2) / 4.0)[None] * rng.uniform(0.5, 2, (size, 1, 1))
                + rng.uniform(0, 0.01, (size, size, size))).astype(np.float32)
    positions = np.stack([np.arange(size) * 1.5 + 6.0, np.full(size, 12.0)], axis=1)
    stored = np.moveaxis(patterns, 0, -1).copy() if legacy else patterns
    path = tmp_path / name
    np.savez(path, diffraction=stored, xcoords=positions[:, 0], ycoords=positions[:, 1],
             probeGuess=_valid()["probe"])
    return path, patterns


@pytest.mark.parametrize("legacy", [False, True])
def test_cube_layout_is_told_from_the_data(tmp_path, legacy):
    path, patterns = _cube_case(tmp_path, "cube.npz", legacy=legacy)
    container = read_npz(path)
    np.testing.assert_array_equal(container.diffraction, patterns)
    provenance = container.metadata.provenance
    assert ("legacy_layout" in provenance) == legacy
    note = provenance["legacy_layout" if legacy else "layout_note"]
    assert "told from the data" in note if legacy else "peaks at the centre" in note


def test_ambiguous_cube_layout_asks_for_the_n_first_order(tmp_path):
    path = tmp_path / "flat.npz"
    arrays = _ptychopinn_arrays()
    n8 = np.stack([arrays["xcoords"]] * 2).ravel()[:N]
    flat = np.ones((N, N, N), np.float32)  # no peak anywhere: the order cannot be told
    np.savez(path, diffraction=flat, xcoords=n8 + np.arange(N) * 0.01, ycoords=np.full(N, 14.0),
             probeGuess=arrays["probeGuess"])
    with pytest.raises(ContainerError, match=r"flat\.npz: diffraction has shape \(8, 8, 8\).*"
                                             r"save diffraction in \(n, N, N\) order"):
        read_npz(path)


def test_patches_that_leave_no_region_of_the_truth_are_refused(tmp_path):
    # Every centre within 2 px of the left edge: with N=8 the scored box (centres at least
    # N/2 = 4 px inside the edge) is empty along x.
    x = 1.0 + 0.2 * np.arange(n)
    path = _write_with(tmp_path / "edge.npz", xcoords=x)
    with pytest.raises(ContainerError, match=r"edge\.npz: objectGuess: .*along x the patch "
                                             r"centres span 1\.\.1\.8 px, but only centres in "
                                             r"\[4, 27\]"):
        read_npz(path)
    no_truth = _write_with(tmp_path / "edge_no_truth.npz", xcoords=x, objectGuess=None)
    assert read_npz(no_truth).object_truth is None  # nothing to evaluate: nothing to refuse


def test_edge_patches_partly_outside_the_object_are_accepted(tmp_path):
    # A scan from edge to edge: the edge patches stick out, the middle ones are scored.
    x = np.array([0.0, 8.0, 16.0, 24.0, 31.0])
    container = read_npz(_write_with(tmp_path / "wide.npz", xcoords=x))
    check_truth_coverage(container, crop_px=8)
    with pytest.raises(ContainerError, match=r"too small for the 40-px stitching crop"):
        check_truth_coverage(container, crop_px=40)


def test_write_npz_refuses_a_directory(tmp_path):
    (tmp_path / "out.npz").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        write_npz(Container(**_valid()), tmp_path / "out.npz")


def _peaked(shift: bool) -> np.ndarray:
    """The tiny patterns plus a bright zero order at the centre (or, ifftshifted, the corner)."""
    patterns = _D.copy()
    patterns[:, N // 2, N // 2] += 50.0
    return np.fft.ifftshift(patterns, axes=(-2, -1)) if shift else patterns


def test_ifftshifted_patterns_are_refused(tmp_path):
    centred = read_npz(_write_with(tmp_path / "centred.npz", diffraction=_peaked(False)))
    assert centred.n_patterns == n
    path = _write_with(tmp_path / "shifted.npz", diffraction=_peaked(True))
    with pytest.raises(ContainerError, match=r"shifted\.npz: diffraction: patterns look "
                                             r"ifftshifted \(the mean pattern peaks at the corner "
                                             r"\(0, 0\), not at the centre \(4, 4\)\); the "
                                             r"container stores them centred"):
        read_npz(path)


def test_counts_stored_as_amplitudes_are_refused_when_nphotons_is_recorded(tmp_path):
    amplitudes = 30.0 * _D
    photons = float(np.mean(np.sum(amplitudes.astype(np.float64) ** 2, axis=(1, 2))))
    good = _write_with(tmp_path / "amplitudes.npz", diffraction=amplitudes,
                       _metadata=_meta(nphotons=photons))
    assert read_npz(good).metadata.nphotons == pytest.approx(photons, rel=1e-12)
    counts = _write_with(tmp_path / "counts.npz", diffraction=amplitudes**2,
                         _metadata=_meta(nphotons=photons))
    with pytest.raises(ContainerError, match=r"counts\.npz: diffraction: mean sum\(d\*\*2\) per "
                                             r"pattern is [0-9.e+]+, [0-9.e+]+ times the recorded "
                                             r"nphotons=7\.\d+e\+04 .*look like counts, not "
                                             r"amplitudes; store np\.sqrt\(counts\)"):
        read_npz(counts)
    # Without a recorded count there is nothing to compare with: it is estimated from the data.
    unrecorded = _write_with(tmp_path / "unrecorded.npz", diffraction=amplitudes**2)
    assert "estimated" in read_npz(unrecorded).metadata.provenance["nphotons_note"]


def test_source_file_is_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    """A relative path (``bad/x.npz``) was stored as given, useless once read from elsewhere."""
    (tmp_path / "bad").mkdir()
    _save(tmp_path / "bad" / "x.npz", **_ptychopinn_arrays())
    monkeypatch.chdir(tmp_path)
    container = read_npz("bad/x.npz", nphotons=1e5)
    assert container.metadata.provenance["source_file"] == str((tmp_path / "bad" / "x.npz")
                                                               .resolve())


def test_a_real_object_is_promoted_with_a_note_like_a_real_probe(tmp_path):
    """A real probe got a provenance note, a real objectGuess was promoted silently."""
    arrays = _ptychopinn_arrays()
    arrays["probeGuess"] = np.abs(arrays["probeGuess"]).astype(np.float32)
    arrays["objectGuess"] = np.abs(arrays["objectGuess"]).astype(np.float64)
    provenance = read_npz(_save(tmp_path / "real.npz", **arrays), nphotons=1e5).metadata.provenance
    assert provenance["probe_note"] == "real probe promoted to complex64"
    assert provenance["object_note"] == "real object promoted to complex64"
    complex_object = read_npz(_save(tmp_path / "complex.npz", **_ptychopinn_arrays()),
                              nphotons=1e5)
    assert complex_object.object_truth.dtype == np.complex64
    assert "object_note" not in complex_object.metadata.provenance
