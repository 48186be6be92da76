"""Tests of parity/io/convert.py: format detection by content and conversions between container
NPZ and ptychodus product files, with the errors for unknown formats and missing inputs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from parity.container import Container, ContainerMetadata
from parity.io.container_npz import read_npz, write_npz
from parity.io.convert import FORMATS, convert, detect_format, read_diffraction
from parity.io.ptychodus import read_product

N = 16
RNG = np.random.default_rng(11)


def _container(n: int = 6) -> Container:
    return Container(
        diffraction=RNG.uniform(0, 3, size=(n, N, N)).astype(np.float32),
        positions_px=RNG.uniform(10, 30, size=(n, 2)),
        probe=(RNG.normal(size=(N, N)) + 1j * RNG.normal(size=(N, N))).astype(np.complex64),
        metadata=ContainerMetadata(
            name="tiny", nphotons=2e4,
            provenance={"frame_m": {"pixel_width_m": 1e-8, "pixel_height_m": 1e-8,
                                    "origin_x_m": 5e-7, "origin_y_m": -5e-7},
                        "geometry": {"detector_distance_m": 2.0, "photon_energy_eV": 9e3}}),
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    container = _container()
    paths = {"container": write_npz(container, tmp_path / "container.npz")}
    paths["product_h5"] = convert(paths["container"], tmp_path / "product.h5")
    paths["product_npz"] = convert(paths["product_h5"], tmp_path / "product.npz")
    return paths


def test_detect_format_by_content(files: dict[str, Path], tmp_path: Path):
    assert detect_format(files["container"]) == "container-npz"
    assert detect_format(files["product_h5"]) == "product-h5"
    assert detect_format(files["product_npz"]) == "product-npz"
    renamed = tmp_path / "product_without_suffix"
    renamed.write_bytes(files["product_h5"].read_bytes())
    assert detect_format(renamed) == "product-h5"


def test_unknown_formats_are_named(tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("not data")
    with pytest.raises(ValueError, match="unknown file format") as info:
        detect_format(text)
    assert all(kind in str(info.value) for kind in FORMATS)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["something"] = [1, 2]
    with pytest.raises(ValueError, match=r"unknown H5 content.*\['something'\]"):
        detect_format(foreign)
    cxi = tmp_path / "scan.cxi"
    with h5py.File(cxi, "w") as handle:
        handle.create_group("entry_1")
    with pytest.raises(ValueError, match="read_cxi"):
        detect_format(cxi)
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "absent.npz")


def test_container_to_product_and_back(files: dict[str, Path], tmp_path: Path):
    original = read_npz(files["container"])
    product = read_product(files["product_h5"])
    # The container's provenance frame gives the metres: x_m = origin + x_px * pixel.
    np.testing.assert_allclose(product.positions_x_m,
                               5e-7 + original.positions_px[:, 0] * 1e-8, rtol=0, atol=1e-18)
    assert read_product(files["product_npz"]).same_as(product) == []
    back = read_npz(convert(files["product_npz"], tmp_path / "back.npz",
                            diffraction=files["container"]))
    # Pixels -> metres -> pixels in float64: 1e-6 px.
    np.testing.assert_allclose(back.positions_px, original.positions_px, atol=1e-6)
    np.testing.assert_array_equal(back.diffraction, original.diffraction)
    np.testing.assert_array_equal(back.probe, original.probe)
    assert back.metadata.nphotons == original.metadata.nphotons
    copied = read_npz(convert(files["container"], tmp_path / "copy.npz", to="container-npz"))
    assert copied.content_hash() != "" and np.array_equal(copied.positions_px,
                                                          original.positions_px)


def test_product_with_ptychodus_diffraction_file(files: dict[str, Path], tmp_path: Path):
    original = read_npz(files["container"])
    counts = original.diffraction.astype(np.float64) ** 2
    order = np.array([3, 0, 5, 1])
    bad = np.zeros((N, N), dtype=bool)
    bad[4, 7] = True
    diffraction = tmp_path / "diffraction.h5"
    with h5py.File(diffraction, "w") as handle:
        handle["patterns"] = counts[order]
        handle["indexes"] = order
        handle["bad_pixels"] = bad
    patterns, indexes, bad_read = read_diffraction(diffraction)
    assert np.array_equal(patterns, counts[order]) and np.array_equal(indexes, order)
    assert np.array_equal(bad_read, bad)
    back = read_npz(convert(files["product_h5"], tmp_path / "paired.npz",
                            diffraction=diffraction, bad_pixel_fill="zero"))
    # Paired by scan index, not by order (float64 metres round trip: 1e-6 px).
    np.testing.assert_allclose(back.positions_px, original.positions_px[order], atol=1e-6)
    expected = np.sqrt(counts[order])
    expected[:, 4, 7] = 0.0
    # float32 amplitudes squared and rooted again: 1e-6 relative.
    np.testing.assert_allclose(back.diffraction, expected, rtol=1e-6)
    assert "1 bad pixels filled (zero)" in back.metadata.provenance["diffraction_source"]


def test_conversion_errors(files: dict[str, Path], tmp_path: Path):
    with pytest.raises(ValueError, match="holds no diffraction patterns"):
        convert(files["product_h5"], tmp_path / "c.npz", to="container-npz")
    with pytest.raises(ValueError, match="cannot tell the output format"):
        convert(files["container"], tmp_path / "out.bin")
    with pytest.raises(ValueError, match=r"unknown output kind 'elsewhere' \(--to / to=\)"):
        convert(files["container"], tmp_path / "out.h5", to="elsewhere")
    with pytest.raises(ValueError, match=r"needs a '\.npz' file name"):
        convert(files["container"], tmp_path / "out.h5", to="product-npz")
    with pytest.raises(ValueError, match="is a product-h5 file"):
        convert(files["product_h5"], tmp_path / "c.npz", diffraction=files["product_h5"])
    bare = write_npz(Container(diffraction=np.ones((2, N, N), dtype=np.float32),
                               positions_px=[[10.0, 10.0], [12.0, 11.0]],
                               probe=np.ones((N, N), dtype=np.complex64)),
                     tmp_path / "bare.npz")
    # Every missing geometry value in one message, not one per attempt.
    with pytest.raises(ValueError, match=r"give --pixel-size-m, --detector-distance-m and "
                                         r"--photon-energy-ev \(CLI\) / pixel_size_m=, "
                                         r"detector_distance_m=, photon_energy_eV= \(Python\)"):
        convert(bare, tmp_path / "bare.h5")
    with pytest.raises(ValueError, match=r"requires \['detector_distance_m'\].*give "
                                         r"--detector-distance-m \(CLI\)"):
        convert(bare, tmp_path / "bare.h5", pixel_size_m=1e-8, photon_energy_eV=9e3)
    diffraction = tmp_path / "diffraction.npz"
    np.savez(diffraction, patterns=np.ones((2, N, N)), indexes=[0, 1])
    with pytest.raises(ValueError, match="holds diffraction patterns only"):
        convert(diffraction, tmp_path / "out.h5")


def test_detect_format_names_what_is_wrong_with_the_file(tmp_path: Path, monkeypatch):
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(ValueError, match=r"folder\.npz is a directory"):
        detect_format(tmp_path / "folder.npz")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.h5 is empty \(0 bytes\)"):
        detect_format(empty)
    single = tmp_path / "single.npy"
    np.save(single, np.ones(4))
    with pytest.raises(ValueError, match=r"single\.npy holds a single NumPy array"):
        detect_format(single)
    locked = tmp_path / "locked.npz"
    locked.write_bytes(b"PK\x03\x04")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(locked))

    # the head of every file is read by parity.io._files (patched: root ignores permissions)
    monkeypatch.setattr(sys.modules["parity.io._files"], "open", denied, raising=False)
    with pytest.raises(ValueError, match=r"locked\.npz: cannot be read \(Permission denied\)"):
        detect_format(locked)


def test_a_product_missing_a_dataset_is_named(files: dict[str, Path], tmp_path: Path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(files["product_h5"].read_bytes())
    with h5py.File(broken, "a") as handle:
        del handle["probe_position_x_m"]
    with pytest.raises(ValueError, match=r"broken\.h5: a ptychodus product without the "
                                         r"required dataset\(s\) \['probe_position_x_m'\]"):
        detect_format(broken)


def test_destination_checks(files: dict[str, Path], tmp_path: Path):
    container = files["container"]
    before = container.read_bytes()
    for overwrite in (False, True):  # the input is never the output, not even when forced
        with pytest.raises(ValueError, match="is the input"):
            convert(container, container, to="container-npz", overwrite=overwrite)
    link = tmp_path / "link.npz"
    link.symlink_to(container)
    with pytest.raises(ValueError, match="is the input"):
        convert(container, link, to="container-npz", overwrite=True)
    with pytest.raises(ValueError, match="is the input"):
        convert(files["product_h5"], container, diffraction=container, overwrite=True)
    assert container.read_bytes() == before
    with pytest.raises(ValueError, match=r"already exists; .* overwrite=True"):
        convert(container, files["product_h5"])
    assert detect_format(convert(container, files["product_h5"], overwrite=True)) == "product-h5"
    (tmp_path / "folder.h5").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        convert(container, tmp_path / "folder.h5")
    with pytest.raises(ValueError, match=r"'container-npz' \(--to / to=\) needs a '\.npz' file name"):
        convert(container, tmp_path / "copy.h5", to="container-npz")
    with pytest.raises(ValueError, match=r"'container-npz' \(--to / to=\) needs a '\.npz' file name"):
        convert(files["product_h5"], tmp_path / "back.h5", to="container-npz",
                diffraction=container)
    assert not list(tmp_path.glob("copy*")) and not list(tmp_path.glob("back*"))


def test_product_to_npz_without_patterns_is_a_product(files: dict[str, Path], tmp_path: Path):
    out = convert(files["product_h5"], tmp_path / "back.npz")
    assert detect_format(out) == "product-npz"
    with_patterns = convert(files["product_h5"], tmp_path / "paired.npz",
                            diffraction=files["container"])
    assert detect_format(with_patterns) == "container-npz"


def test_repeated_scan_indexes_paired_by_order_are_explained(files: dict[str, Path],
                                                              tmp_path: Path):
    product = tmp_path / "repeated.h5"
    product.write_bytes(files["product_h5"].read_bytes())
    with h5py.File(product, "a") as handle:
        indexes = handle["probe_position_indexes"][()]
        indexes[1] = indexes[0]
        del handle["probe_position_indexes"]
        handle["probe_position_indexes"] = indexes
    with pytest.raises(ValueError, match=r"repeated\.h5 with the patterns of .*container\.npz: "
                                         r"the product repeats scan index"):
        convert(product, tmp_path / "c.npz", diffraction=files["container"])


def _with_truth(tmp_path: Path) -> Path:
    original = _container()
    return write_npz(Container(
        diffraction=original.diffraction, positions_px=original.positions_px,
        probe=original.probe, object_truth=np.ones((48, 48), np.complex64),
        metadata=ContainerMetadata(name="tiny", nphotons=2e4, gridsize=2, K=5, seed=3,
                                   provenance=original.metadata.provenance)),
        tmp_path / "truth.npz")


def test_round_trip_keeps_metadata_and_says_what_it_drops(tmp_path: Path):
    source = _with_truth(tmp_path)
    lost: list[str] = []
    product = convert(source, tmp_path / "truth.h5", not_carried=lost)
    assert len(lost) == 1 and lost[0].startswith("diffraction (a product holds no patterns")
    lost.clear()
    back = read_npz(convert(product, tmp_path / "back.npz", diffraction=source,
                            not_carried=lost))
    assert lost == [back.metadata.provenance["not_carried"][0]]
    assert lost[0].startswith("objectGuess") and "--object-as-truth" in lost[0]
    assert back.object_truth is None
    meta = back.metadata
    assert (meta.nphotons, meta.gridsize, meta.K, meta.seed) == (2e4, 2, 5, 3)
    kept = read_npz(convert(product, tmp_path / "kept.npz", diffraction=source,
                            object_as_truth=True))
    np.testing.assert_array_equal(kept.object_truth, read_npz(source).object_truth)
    # Counts from a diffraction file: the metadata still come from the product's record.
    counts = tmp_path / "counts.h5"
    with h5py.File(counts, "w") as handle:
        handle["patterns"] = read_npz(source).diffraction.astype(np.float64) ** 2
    paired = read_npz(convert(product, tmp_path / "paired.npz", diffraction=counts))
    assert (paired.metadata.nphotons, paired.metadata.seed) == (2e4, 3)


@pytest.mark.parametrize(("dst", "options", "match"), [
    ("p.h5", {"nphotons": 5.0}, r"--nphotons / nphotons= does not apply to container-npz -> "
                                r"product-h5"),
    ("p.h5", {"object_as_truth": True}, r"--object-as-truth / object_as_truth= does not apply"),
    ("c.npz", {"pixel_size_m": 1e-8, "photon_energy_eV": 9e3},
     r"--pixel-size-m / pixel_size_m=, --photon-energy-ev / photon_energy_eV= does not apply to "
     r"container-npz -> container-npz"),
])
def test_options_that_do_not_apply_to_a_container_source(files: dict[str, Path], tmp_path: Path,
                                                          dst, options, match):
    with pytest.raises(ValueError, match=match):
        convert(files["container"], tmp_path / dst, to="container-npz" if dst == "c.npz" else None,
                **options)
    assert not (tmp_path / dst).exists()


@pytest.mark.parametrize(("dst", "options", "match"), [
    ("c.npz", {"pixel_size_m": 1e-8}, r"--pixel-size-m / pixel_size_m= does not apply to "
                                      r"product-h5 -> container-npz \(the product records"),
    ("c.npz", {"detector_distance_m": 2.0}, r"--detector-distance-m .* product-h5 -> "
                                            r"container-npz"),
    ("p.h5", {"pixel_size_m": 1e-8}, r"--pixel-size-m .* product-h5 -> product-h5"),
    ("p.h5", {}, r"--diffraction / diffraction= does not apply to product-h5 -> product-h5"),
])
def test_options_that_do_not_apply_to_a_product_source(files: dict[str, Path], tmp_path: Path,
                                                        dst, options, match):
    # Every call passes the patterns, which a container output needs and a product ignores.
    with pytest.raises(ValueError, match=match):
        convert(files["product_h5"], tmp_path / dst, diffraction=files["container"], **options)
    assert not (tmp_path / dst).exists()


def test_a_pixel_size_conflicting_with_the_recorded_one_is_refused(files: dict[str, Path],
                                                                   tmp_path: Path):
    with pytest.raises(ValueError, match=r"pixel size 3e-08 x 3e-08 m \(--pixel-size-m / "
                                         r"pixel_size_m=\) conflicts with the pixel size 1e-08 x "
                                         r"1e-08 m that container 'tiny' records"):
        convert(files["container"], tmp_path / "p.h5", pixel_size_m=3e-8)
    with pytest.raises(ValueError, match=r"photon_energy_eV=8000 .* conflicts with "
                                         r"photon_energy_eV=9000"):
        convert(files["container"], tmp_path / "p.h5", photon_energy_eV=8e3)
    same = read_product(convert(files["container"], tmp_path / "p.h5", pixel_size_m=1e-8,
                                photon_energy_eV=9e3))
    assert same.same_as(read_product(files["product_h5"])) == []


def _diffraction_file(path: Path, patterns: np.ndarray, bad: np.ndarray | None = None) -> Path:
    with h5py.File(path, "w") as handle:
        handle["patterns"] = patterns
        if bad is not None:
            handle["bad_pixels"] = bad
    return path


@pytest.mark.parametrize(("value", "match"), [
    (np.nan, r"patterns have 1 non-finite values \(first at index \(2, 3, 4\)\)"),
    (-1.0, r"patterns are counts and must be >= 0; negative at index \(2, 3, 4\)"),
])
def test_bad_counts_are_named_before_nphotons_is_estimated(files: dict[str, Path],
                                                           tmp_path: Path, value, match):
    counts = np.ones((6, N, N))
    counts[2, 3, 4] = value
    source = _diffraction_file(tmp_path / "bad.h5", counts)
    with pytest.raises(ValueError, match=r"bad\.h5: " + match):
        convert(files["product_h5"], tmp_path / "c.npz", diffraction=source)


@pytest.mark.parametrize("any_bad", [False, True])
def test_a_bad_pixel_mask_of_another_shape_is_refused(files: dict[str, Path], tmp_path: Path,
                                                      any_bad: bool):
    mask = np.zeros((N - 2, N - 2), dtype=bool)
    mask[1, 1] = any_bad
    source = _diffraction_file(tmp_path / "masked.h5", np.ones((6, N, N)), mask)
    with pytest.raises(ValueError, match=r"masked\.h5: bad_pixels has shape \(14, 14\); expected "
                                         r"\(16, 16\), the \(H, W\) of its patterns "
                                         r"\(6, 16, 16\)"):
        convert(files["product_h5"], tmp_path / "c.npz", diffraction=source)


def test_an_incomplete_container_names_its_missing_keys(tmp_path: Path):
    arrays = {"diffraction": np.ones((2, N, N), np.float32), "xcoords": np.zeros(2),
              "ycoords": np.zeros(2), "probeGuess": np.ones((N, N), np.complex64)}
    for key in ("xcoords", "diffraction"):
        path = tmp_path / f"no_{key}.npz"
        np.savez(path, **{k: v for k, v in arrays.items() if k != key})
        missing = "diff3d|diffraction" if key == "diffraction" else key
        with pytest.raises(ValueError, match=rf"lacks key\(s\) \['{re.escape(missing)}'\]"):
            convert(path, tmp_path / "out.h5", pixel_size_m=1e-8)
    cxi = tmp_path / "scan.cxi"
    with h5py.File(cxi, "w") as handle:
        handle.create_group("entry_1")
    with pytest.raises(ValueError, match=r"fixtures\.real\.cxi_to_container\(fixtures\.real\."
                                         r"read_cxi\(path\)\)"):
        detect_format(cxi)
