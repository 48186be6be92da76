"""Tests of parity/io/export.py: a run bundle's reconstruction written as a ptychodus product,
with the run's container found again by content hash, and the errors before anything is written."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from parity.container import Container
from parity.io.container_npz import read_npz, write_npz
from parity.io.export import export_reconstruction, run_container
from parity.io.ptychodus import read_product

# export_bundles: a plain module under tests/parity/support
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from export_bundles import FRAME, N, reconstruction, tiny_container, write_bundle

#: Exact positions come back through metres and back: float64 rounding only.
POSITION_ATOL_PX = 1e-9


@pytest.fixture
def file_run(tmp_path: Path) -> tuple[Path, Container, Path]:
    """A run that read a container NPZ (which records its geometry): (bundle, container, file)."""
    source = write_npz(tiny_container(), tmp_path / "tiny.npz")
    container = read_npz(source)
    return write_bundle(tmp_path / "reports", container), container, source


def test_export_writes_the_last_backend_in_the_metres_frame(file_run, tmp_path: Path) -> None:
    bundle, container, source = file_run
    done = export_reconstruction(bundle, tmp_path / "out.h5")
    assert (done.backend, done.kind, done.shape) == ("torch", "product-h5", (40, 44))
    assert done.container_source == f"container file {source}"
    product = read_product(done.path)
    np.testing.assert_array_equal(product.object.reshape(40, 44), reconstruction(1))
    np.testing.assert_array_equal(product.probe.reshape(N, N), container.probe)
    # the product's own mapping puts every scan position at x_px - x0 in the reconstruction
    np.testing.assert_allclose(product.positions_px(), container.positions_px - [3, 5],
                               rtol=0, atol=POSITION_ATOL_PX)
    np.testing.assert_allclose(product.positions_x_m,
                               FRAME["origin_x_m"] + container.positions_px[:, 0] * 1e-8,
                               rtol=1e-12, atol=0)
    assert product.object_pixel_height_m == pytest.approx(2e-8, rel=1e-12, abs=0)
    assert product.detector_object_distance_m == pytest.approx(2.0, rel=1e-12, abs=0)
    np.testing.assert_allclose(product.loss_values, [2.0, 1.0], rtol=0, atol=0)
    assert any("tensorflow" in item for item in done.not_carried)
    assert any("lr" in item for item in done.not_carried)


def test_export_of_another_backend_to_product_npz(file_run, tmp_path: Path) -> None:
    bundle, _, _ = file_run
    done = export_reconstruction(bundle, tmp_path / "tf.npz", backend="tensorflow")
    assert (done.backend, done.kind) == ("tensorflow", "product-npz")
    np.testing.assert_array_equal(read_product(done.path).object.reshape(40, 44),
                                  reconstruction(0))


def test_unknown_backend_and_backend_without_reconstruction(tmp_path: Path) -> None:
    container = tiny_container()
    bundle = write_bundle(tmp_path, container, trained=("tensorflow",))
    with pytest.raises(ValueError, match=r"backend 'jax' .* is not a backend of run .*holds "
                                         r"the reconstructions of \['tensorflow'\]"):
        export_reconstruction(bundle, tmp_path / "a.h5", backend="jax")
    with pytest.raises(ValueError, match=r"backend 'torch' .* has no reconstruction"):
        export_reconstruction(bundle, tmp_path / "a.h5")  # the default: the port
    assert not (tmp_path / "a.h5").exists()


def test_run_without_reconstructions_names_what_it_holds(tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path, tiny_container(), trained=())
    with pytest.raises(ValueError, match=r"holds no reconstruction \(levels L1.*'truth/object'"):
        export_reconstruction(bundle, tmp_path / "a.h5")


def test_builtin_case_is_rebuilt_and_missing_geometry_named_at_once(tmp_path: Path) -> None:
    from fixtures.cases import get_case

    container = get_case("small").build(2)
    bundle = write_bundle(tmp_path, container)
    with pytest.raises(ValueError, match=r"--pixel-size-m, --detector-distance-m and "
                                         r"--photon-energy-ev"):
        export_reconstruction(bundle, tmp_path / "a.h5")
    done = export_reconstruction(bundle, tmp_path / "a.h5", pixel_size_m=1e-8,
                                 detector_distance_m=1.5, photon_energy_eV=8e3)
    assert done.container_source == "built-in case 'small' (seed 2)"
    product = read_product(done.path)
    np.testing.assert_allclose(product.positions_px(), container.positions_px - [3, 5],
                               rtol=0, atol=POSITION_ATOL_PX)


def test_moved_container_needs_container_path(file_run, tmp_path: Path) -> None:
    bundle, container, source = file_run
    moved = source.rename(tmp_path / "moved.npz")
    with pytest.raises(ValueError, match=r"cannot find the container .*tiny\.npz.*--container"):
        export_reconstruction(bundle, tmp_path / "a.h5")
    found, where = run_container(bundle, {"provenance": {"data_hash": container.content_hash(),
                                                         "container": {}}},
                                 container_path=moved)
    assert found.content_hash() == container.content_hash() and where == f"--container {moved}"
    other = write_npz(tiny_container(seed=4), tmp_path / "other.npz")
    with pytest.raises(ValueError, match=r"--container .*other\.npz: other data"):
        export_reconstruction(bundle, tmp_path / "a.h5", container_path=other)
    assert export_reconstruction(bundle, tmp_path / "a.h5", container_path=moved).path.exists()


def test_destination_checks_come_first(file_run, tmp_path: Path) -> None:
    bundle, _, _ = file_run
    existing = tmp_path / "old.h5"
    existing.write_bytes(b"keep")
    with pytest.raises(ValueError, match=r"old\.h5 already exists.*--force"):
        export_reconstruction(bundle, existing, force_option="--force")
    assert existing.read_bytes() == b"keep"
    assert export_reconstruction(bundle, existing, overwrite=True).kind == "product-h5"
    with pytest.raises(ValueError, match="is a directory"):
        export_reconstruction(bundle, tmp_path)
    with pytest.raises(ValueError, match=r"needs a file name ending in .*got 'a\.npz'"):
        export_reconstruction(bundle, tmp_path / "a.npz", to="product-h5")
    with pytest.raises(ValueError, match=r"export writes a product"):
        export_reconstruction(bundle, tmp_path / "a.npz", to="container-npz")
    with pytest.raises(ValueError, match=r"cannot tell the output format from 'a\.txt'"):
        export_reconstruction(bundle, tmp_path / "a.txt")
