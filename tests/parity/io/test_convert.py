"""Tests of parity/io/convert.py: format detection by content and conversions between container
NPZ and ptychodus product files, with the errors for unknown formats and missing inputs."""

from __future__ import annotations

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
    with pytest.raises(ValueError, match=r"--pixel-size-m \(CLI\) / pixel_size_m= \(Python\)"):
        convert(bare, tmp_path / "bare.h5")
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
