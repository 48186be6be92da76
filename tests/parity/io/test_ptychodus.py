"""Tests of parity/io/ptychodus.py (and the Product value and file readers behind it): round
trips, legacy key names, errors naming the missing key, and the metres <-> pixels bridge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from parity.container import Container, ContainerMetadata
from parity.io.ptychodus import (
    HC_EV_M,
    Product,
    container_from_product,
    container_to_product,
    product_from_reconstruction,
    read_product,
    write_product,
)

RNG = np.random.default_rng(7)
N = 16


def _complex(*shape: int, dtype: Any = np.complex64) -> np.ndarray:
    return (RNG.normal(size=shape) + 1j * RNG.normal(size=shape)).astype(dtype)


def _full_product() -> Product:
    """Every optional field set, OPR modes, two layers, losses and an extra attribute."""
    n = 7
    return Product(
        positions_x_m=RNG.normal(size=n) * 1e-6,
        positions_y_m=RNG.normal(size=n) * 1e-6,
        probe=_complex(2, 3, N, N),
        probe_pixel_width_m=1.5e-8,
        probe_pixel_height_m=1.5e-8,
        object=_complex(2, 40, 48, dtype=np.complex128),
        object_center_x_m=3.1e-7,
        object_center_y_m=-2.2e-7,
        object_pixel_width_m=1.5e-8,
        object_pixel_height_m=1.5e-8,
        detector_object_distance_m=2.5,
        photon_energy_eV=8800.0,
        name="full product",
        comments="round trip",
        probe_photon_count=1.2e9,
        exposure_time_s=0.01,
        mass_attenuation_m2_per_kg=0.5,
        tomography_angle_deg=12.0,
        tilt_angle_deg=1.5,
        focus_object_distance_m=1e-3,
        far_field=False,
        polarization="CIRCULAR_LEFT",
        position_indexes=np.arange(10, 10 + n),
        probe_photon_counts=RNG.uniform(1, 2, size=n),
        opr_weights=RNG.normal(size=(n, 2)),
        object_layer_spacing_m=[2e-6],
        loss_epochs=[0, 1, 2],
        loss_values=[3.0, 2.0, 1.5],
        extra_attributes={"beamline": "2-ID-D"},
    )


def _minimal_product(**changes: Any) -> Product:
    fields: dict[str, Any] = {
        "positions_x_m": [0.0, 1e-7, 2.5e-7],
        "positions_y_m": [0.0, -1e-7, 0.5e-7],
        "probe": _complex(N, N),
        "probe_pixel_width_m": 1e-8,
        "probe_pixel_height_m": 2e-8,
        "object": _complex(60, 50),
        "object_center_x_m": 1e-7,
        "object_center_y_m": 0.0,
        "object_pixel_width_m": 1e-8,
        "object_pixel_height_m": 2e-8,
        "detector_object_distance_m": 2.0,
        "photon_energy_eV": 10000.0,
    }
    fields.update(changes)
    return Product(**fields)


def _container(n: int = 9, **metadata: Any) -> Container:
    return Container(
        diffraction=RNG.uniform(0, 3, size=(n, N, N)).astype(np.float32),
        positions_px=RNG.uniform(12, 40, size=(n, 2)),
        probe=_complex(N, N),
        metadata=ContainerMetadata(name="tiny", nphotons=1e5, **metadata),
    )


@pytest.mark.parametrize("suffix", [".h5", ".hdf5", ".npz"])
def test_round_trip_is_identical(tmp_path: Path, suffix: str):
    product = _full_product()
    path = write_product(product, tmp_path / f"product{suffix}")
    assert not list(tmp_path.glob("*.partial"))
    again = read_product(path)
    assert again.same_as(product) == []
    assert again.probe.dtype == np.complex64 and again.object.dtype == np.complex128
    # Overwriting in place is atomic and gives the same content.
    write_product(again, path)
    assert read_product(path).same_as(product) == []


def test_promotion_and_derived_values():
    product = _minimal_product()
    assert product.probe.shape == (1, 1, N, N) and product.object.shape == (1, 60, 50)
    assert product.probe_modes.shape == (1, N, N)
    assert np.array_equal(product.position_indexes, [0, 1, 2])
    # lambda = hc / E: 10 keV -> 1.2398 Angstrom (exact SI constants, so 1e-12 relative).
    assert abs(product.probe_wavelength_m / (HC_EV_M / 1e4) - 1) < 1e-12
    assert abs(product.probe_wavelength_m - 1.2398419843e-10) < 1e-19
    expected = np.stack([(np.array([0.0, 1e-7, 2.5e-7]) - 1e-7) / 1e-8 + 24.5,
                         np.array([0.0, -1e-7, 0.5e-7]) / 2e-8 + 29.5], axis=1)
    np.testing.assert_allclose(product.positions_px(), expected, atol=1e-9)


@pytest.mark.parametrize(("changes", "error", "match"), [
    ({"probe": np.ones((N, N))}, TypeError, "probe has dtype"),
    ({"object": np.ones((4, 4))}, TypeError, "object has dtype"),
    ({"positions_y_m": [0.0, 1.0]}, ValueError, "positions_x_m"),
    ({"positions_x_m": [0.0, np.nan, 1.0]}, ValueError, "not finite"),
    ({"object_pixel_width_m": 0.0}, ValueError, "object_pixel_width_m=0.0"),
    ({"opr_weights": np.ones((3, 2))}, ValueError, r"expected \(3, 1\)"),
    ({"probe_photon_counts": [1.0]}, ValueError, "all positions or none"),
    ({"loss_epochs": [0, 1], "loss_values": [1.0]}, ValueError, "same length"),
])
def test_product_validation(changes, error, match):
    with pytest.raises(error, match=match):
        _minimal_product(**changes)


def _legacy_h5(path: Path, *, opr_in_probe: bool = True) -> None:
    """A file in the 2024/2025 schema: old energy, attenuation, costs, layer-distance names."""
    with h5py.File(path, "w") as handle:
        handle.attrs["name"] = "legacy"
        handle.attrs["comments"] = ""
        handle.attrs["detector_object_distance_m"] = 1.5
        handle.attrs["probe_energy_eV"] = 7000.0
        handle.attrs["probe_photon_count"] = 5
        handle.attrs["exposure_time_s"] = 0.1
        handle.attrs["mass_attenuation_m2_kg"] = 0.25
        handle["probe_position_indexes"] = [0, 1]
        handle["probe_position_x_m"] = [0.0, 1e-7]
        handle["probe_position_y_m"] = [0.0, 2e-7]
        probe = handle.create_dataset("probe", data=_complex(2, 1, N, N))
        probe.attrs["pixel_width_m"] = 1e-8
        probe.attrs["pixel_height_m"] = 1e-8
        if opr_in_probe:
            probe.attrs["opr_weights"] = np.ones((2, 2))
        obj = handle.create_dataset("object", data=_complex(1, 30, 30))
        for key, value in (("center_x_m", 0.0), ("center_y_m", 0.0), ("pixel_width_m", 1e-8),
                           ("pixel_height_m", 1e-8)):
            obj.attrs[key] = value
        handle["object_layer_distance_m"] = np.zeros(0)
        handle["costs"] = [4.0, 3.0, 2.5]


def test_legacy_hdf5_keys_are_accepted(tmp_path: Path):
    path = tmp_path / "legacy.h5"
    _legacy_h5(path)
    product = read_product(path)
    assert product.photon_energy_eV == 7000.0 and product.mass_attenuation_m2_per_kg == 0.25
    assert np.array_equal(product.loss_values, [4.0, 3.0, 2.5])
    assert np.array_equal(product.loss_epochs, [0, 1, 2])  # costs had no epochs
    assert product.opr_weights.shape == (2, 2)
    assert set(product.legacy_keys_read) == {"probe_energy_eV", "mass_attenuation_m2_kg",
                                              "costs", "object_layer_distance_m",
                                              "probe.attrs['opr_weights']"}
    # Written back with the 1.7.0 names, it reads without legacy names and the same values.
    again = read_product(write_product(product, tmp_path / "new.h5"))
    assert again.legacy_keys_read == ()
    assert set(product.same_as(again)) == {"legacy_keys_read"}


def test_legacy_npz_keys_are_accepted(tmp_path: Path):
    path = tmp_path / "legacy.npz"
    np.savez(path, name="old", comments="", detector_object_distance_m=1.0,
             probe_energy_eV=9000.0, probe_position_indexes=[0], probe_position_x_m=[0.0],
             probe_position_y_m=[0.0], probe=_complex(N, N), object=_complex(20, 20),
             object_center_x_m=0.0, object_center_y_m=0.0, object_pixel_width_m=1e-8,
             object_pixel_height_m=1e-8, object_layer_spacing_m=np.zeros(0), costs=[1.0, 0.5],
             unknown_array=np.ones(3))
    product = read_product(path)
    assert product.photon_energy_eV == 9000.0
    assert product.probe_pixel_width_m == 1e-8  # absent probe geometry -> the object's
    assert np.array_equal(product.loss_values, [1.0, 0.5])
    assert product.ignored_keys == ("unknown_array",)
    assert set(product.legacy_keys_read) == {"probe_energy_eV", "costs"}


def test_missing_required_key_is_named(tmp_path: Path):
    path = tmp_path / "legacy.h5"
    _legacy_h5(path)
    with h5py.File(path, "a") as handle:
        del handle.attrs["detector_object_distance_m"]
    with pytest.raises(ValueError, match="missing required root attribute "
                                         "'detector_object_distance_m'"):
        read_product(path)
    with h5py.File(path, "a") as handle:
        handle.attrs["detector_object_distance_m"] = 1.0
        del handle.attrs["probe_energy_eV"]
    with pytest.raises(ValueError, match=r"'photon_energy_eV' \(or legacy 'probe_energy_eV'\)"):
        read_product(path)
    npz = tmp_path / "product.npz"
    write_product(_minimal_product(), npz)
    with np.load(npz) as archive:
        entries = {k: archive[k] for k in archive.files if k != "object_pixel_width_m"}
    np.savez(npz, **entries)
    with pytest.raises(ValueError, match="missing required key 'object_pixel_width_m'"):
        read_product(npz)


def test_truncated_and_foreign_files(tmp_path: Path):
    for suffix in (".h5", ".npz"):
        path = write_product(_full_product(), tmp_path / f"whole{suffix}")
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        with pytest.raises(ValueError, match=f"cut\\{suffix}"):
            read_product(cut)
    with pytest.raises(ValueError, match="cannot tell the product format"):
        write_product(_full_product(), tmp_path / "product.txt")
    with pytest.raises(FileNotFoundError):
        read_product(tmp_path / "absent.h5")


def test_container_from_product_maps_metres_to_pixels():
    product = _minimal_product()
    counts = RNG.poisson(50.0, size=(3, N, N)).astype(np.float64)
    container = container_from_product(product, counts, diffraction_kind="counts", nphotons=1e3)
    np.testing.assert_allclose(container.positions_px, product.positions_px(), atol=0)
    np.testing.assert_array_equal(container.diffraction, np.sqrt(counts).astype(np.float32))
    np.testing.assert_array_equal(container.probe, product.probe[0, 0])
    frame = container.metadata.provenance["frame_m"]
    # Pixel (0, 0) of the object sits (W-1)/2 pixels left of the centre: 1e-7 - 24.5e-8 m.
    assert abs(frame["origin_x_m"] - (1e-7 - 24.5e-8)) < 1e-20
    assert container.object_truth is None
    truth = container_from_product(product, np.sqrt(counts), object_as_truth=True)
    np.testing.assert_array_equal(truth.object_truth, product.object[0])
    # Default nphotons: the measured mean counts per pattern (float32 sums: 1e-5 relative).
    assert abs(truth.metadata.nphotons / counts.sum(axis=(1, 2)).mean() - 1) < 1e-5


def test_container_from_product_pairs_by_scan_index():
    product = _minimal_product(position_indexes=[5, 6, 7])
    patterns = RNG.uniform(size=(2, N, N)).astype(np.float32)
    container = container_from_product(product, patterns, diffraction_indexes=[7, 5])
    np.testing.assert_allclose(container.positions_px, product.positions_px()[[2, 0]], atol=0)
    with pytest.raises(ValueError, match=r"no probe position .*\[9\]"):
        container_from_product(product, patterns, diffraction_indexes=[7, 9])


@pytest.mark.parametrize(("changes", "patterns", "match"), [
    ({"probe_pixel_width_m": 1.1e-8}, (3, N, N), "probe pixel width"),
    ({}, (2, N, N), "3 positions but there are 2"),
    ({}, (3, 8, 8), r"expected \(8, 8\)"),
])
def test_container_from_product_errors(changes, patterns, match):
    with pytest.raises(ValueError, match=match):
        container_from_product(_minimal_product(**changes), np.ones(patterns, dtype=np.float32))


def test_product_from_reconstruction_is_consistent_with_origin():
    container = _container()
    reconstruction = _complex(35, 41)
    origin = (5.0, -3.0)
    product = product_from_reconstruction(
        reconstruction, origin, container=container, pixel_size_m=(2e-8, 3e-8),
        losses=[1.0, 0.5], detector_distance_m=1.0, photon_energy_eV=9000.0)
    # ptychodus' mapping puts each position at (x_px - x0, y_px - y0) in the reconstruction;
    # float64 metres round trip: 1e-6 px.
    np.testing.assert_allclose(product.positions_px(), container.positions_px - origin, atol=1e-6)
    np.testing.assert_array_equal(product.object[0], reconstruction)
    assert np.array_equal(product.loss_epochs, [0, 1])
    assert product.probe_pixel_width_m == product.object_pixel_width_m == 2e-8
    with pytest.raises(ValueError, match=r"--pixel-size-m \(CLI\) / pixel_size_m= \(Python\)"):
        product_from_reconstruction(reconstruction, origin, container=container,
                                    detector_distance_m=1.0, photon_energy_eV=9000.0)
    with pytest.raises(ValueError, match=r"\['detector_distance_m', 'photon_energy_eV'\].*; give "
                       r"--detector-distance-m and --photon-energy-ev \(CLI\) / "
                       r"detector_distance_m=, photon_energy_eV= \(Python\)"):
        product_from_reconstruction(reconstruction, origin, container=container,
                                    pixel_size_m=1e-8)


def test_container_product_container_round_trip(tmp_path: Path):
    container = _container()
    product = container_to_product(container, pixel_size_m=1e-8, detector_distance_m=1.5,
                                   photon_energy_eV=8000.0)
    height, width = product.object.shape[-2:]
    positions = product.positions_px()
    # The flat object guess covers every N x N patch.
    assert (positions - N / 2 >= 0).all()
    assert (positions[:, 0] + N / 2 <= width - 1).all()
    assert (positions[:, 1] + N / 2 <= height - 1).all()
    path = write_product(product, tmp_path / "exported.h5")
    back = container_from_product(read_product(path), container.diffraction, nphotons=1e5)
    # Pixels -> metres -> pixels in float64: 1e-6 px.
    np.testing.assert_allclose(back.positions_px - back.positions_px[0],
                               container.positions_px - container.positions_px[0], atol=1e-6)
    np.testing.assert_array_equal(back.probe, container.probe)
    # The lab frame survives a second export: same metres (positions ~1e-7 m, float64 round
    # trip through pixels ~1e-22 m; 1e-18 m is far below any physical meaning).
    again = container_to_product(back)
    np.testing.assert_allclose(again.positions_x_m, product.positions_x_m, atol=1e-18)
    np.testing.assert_allclose(again.positions_y_m, product.positions_y_m, atol=1e-18)
    with_truth = Container(diffraction=container.diffraction, positions_px=container.positions_px,
                           probe=container.probe, object_truth=_complex(60, 60),
                           metadata=container.metadata)
    exported = container_to_product(with_truth, pixel_size_m=1e-8, detector_distance_m=1.5,
                                    photon_energy_eV=8000.0)
    np.testing.assert_array_equal(exported.object[0], with_truth.object_truth)
    np.testing.assert_allclose(exported.positions_px(), container.positions_px, atol=1e-6)


def test_repeated_scan_indexes_are_averaged_when_paired_by_index():
    # Repeated position indexes are legitimate in ptychodus, which averages the positions that
    # share an index when it pairs them with patterns (prepare_reconstruct_input).
    product = _minimal_product(position_indexes=[4, 4, 6])
    patterns = RNG.uniform(size=(2, N, N)).astype(np.float32)
    container = container_from_product(product, patterns, diffraction_indexes=[6, 4])
    pixels = product.positions_px()
    np.testing.assert_allclose(container.positions_px, [pixels[2], pixels[:2].mean(axis=0)],
                               atol=1e-12)
    assert any("averaged" in c for c in container.metadata.provenance["conversions"])
    with pytest.raises(ValueError, match=r"repeats scan index\(es\) \[4\] in "
                                         r"probe_position_indexes.*averages"):
        container_from_product(product, np.ones((3, N, N), np.float32))


@pytest.mark.parametrize(("geometry", "match"), [
    ({"detector_distance_m": -2.0}, r"detector_distance_m=-2.0; expected a finite number > 0"),
    ({"photon_energy_eV": 0.0}, r"photon_energy_eV=0.0; expected a finite number > 0"),
    ({"photon_energy_eV": float("nan")}, r"photon_energy_eV=nan"),
    ({"detector_distance_m": float("inf")}, r"detector_distance_m=inf"),
])
def test_non_positive_geometry_is_refused(geometry, match):
    values = {"detector_distance_m": 1.0, "photon_energy_eV": 8000.0, **geometry}
    with pytest.raises(ValueError, match=match):
        container_to_product(_container(), pixel_size_m=1e-8, **values)


def test_non_positive_stored_geometry_is_refused():
    stored = _container(provenance={"geometry": {"detector_distance_m": 0.0,
                                                 "photon_energy_eV": 8000.0}})
    with pytest.raises(ValueError, match=r"detector_distance_m=0.0 \(from the container's "
                                         r"provenance 'geometry'\)"):
        container_to_product(stored, pixel_size_m=1e-8)


def test_hdf5_group_and_doubled_path_messages(tmp_path: Path):
    path = write_product(_minimal_product(), tmp_path / "p.h5")
    with h5py.File(path, "a") as handle:
        probe = handle["probe"][()]
        del handle["probe"]
        handle.create_group("probe")["data"] = probe
    with pytest.raises(ValueError, match=r"p\.h5: 'probe' is a group, not a dataset"):
        read_product(path)
    path = write_product(_minimal_product(), tmp_path / "q.h5")
    with h5py.File(path, "a") as handle:
        del handle.attrs["photon_energy_eV"]
    with pytest.raises(ValueError) as info:
        read_product(path)
    assert str(info.value).count("q.h5") == 1, str(info.value)
    assert "not a valid product: missing required root attribute" in str(info.value)


def test_directories_and_npy_files_are_named(tmp_path: Path):
    (tmp_path / "dir.h5").mkdir()
    with pytest.raises(ValueError, match=r"dir\.h5 is a directory"):
        read_product(tmp_path / "dir.h5")
    with pytest.raises(ValueError, match=r"dir\.h5 is a directory"):
        write_product(_minimal_product(), tmp_path / "dir.h5")
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"one\.npy holds a single NumPy array"):
        read_product(tmp_path / "one.npy")
