"""Tests of the file-writing commands ``parity convert`` and ``parity fixtures``: every bad
destination or input exits 2 with one named line, before any work, and nothing written is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parity.cli import EXIT_USAGE, main
from parity.container import Container, ContainerMetadata
from parity.io.container_npz import write_npz

N = 16


@pytest.fixture
def container(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    return write_npz(Container(
        diffraction=rng.uniform(0, 3, size=(4, N, N)).astype(np.float32),
        positions_px=rng.uniform(10, 30, size=(4, 2)),
        probe=np.ones((N, N), np.complex64),
        metadata=ContainerMetadata(name="tiny", provenance={
            "frame_m": {"pixel_width_m": 1e-8, "pixel_height_m": 1e-8, "origin_x_m": 0.0,
                        "origin_y_m": 0.0},
            "geometry": {"detector_distance_m": 2.0, "photon_energy_eV": 9e3}}),
    ), tmp_path / "tiny.npz")


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "internal error" not in err and err.startswith("parity: error:"), err
    return err


def test_convert_never_overwrites_its_input(container: Path, capsys):
    before = container.read_bytes()
    for extra in ([], ["--force"]):
        code = main(["convert", str(container), str(container), "--to", "container-npz", *extra])
        assert code == EXIT_USAGE
        assert "is the input" in _error(capsys)
    assert container.read_bytes() == before


def test_convert_refuses_an_existing_destination_unless_forced(container: Path, tmp_path: Path,
                                                               capsys):
    target = tmp_path / "product.h5"
    target.write_bytes(b"precious")
    assert main(["convert", str(container), str(target)]) == EXIT_USAGE
    assert "already exists" in _error(capsys) and target.read_bytes() == b"precious"
    assert main(["convert", str(container), str(target), "--force"]) == 0
    assert "wrote" in capsys.readouterr().out and target.read_bytes() != b"precious"


@pytest.mark.parametrize(("dst", "extra", "needle"), [
    ("folder", [], "is a directory"),
    ("missing/out.h5", [], "does not exist"),
    ("copy.h5", ["--to", "container-npz"], "needs a '.npz' file name"),
    ("p.h5", ["--detector-distance-m", "-2"], "--detector-distance-m -2: expected a finite"),
    ("p.h5", ["--photon-energy-ev", "0"], "--photon-energy-ev 0: expected a finite number > 0"),
])
def test_convert_bad_destinations_and_options_exit_2(container: Path, tmp_path: Path, capsys,
                                                     dst, extra, needle):
    (tmp_path / "folder").mkdir()
    assert main(["convert", str(container), str(tmp_path / dst), *extra]) == EXIT_USAGE
    assert needle in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "tiny.npz"]


def test_convert_names_a_directory_source(tmp_path: Path, capsys):
    assert main(["convert", str(tmp_path), str(tmp_path / "out.npz")]) == EXIT_USAGE
    assert "is a directory" in _error(capsys)


def test_convert_says_what_it_wrote(container: Path, tmp_path: Path, capsys):
    product = tmp_path / "p.h5"
    assert main(["convert", str(container), str(product)]) == 0
    assert "(product-h5)" in capsys.readouterr().out
    assert main(["convert", str(product), str(tmp_path / "back.npz")]) == 0
    out = capsys.readouterr().out
    assert "(product-npz)" in out and "--diffraction" in out
    assert main(["convert", str(product), str(tmp_path / "c.npz"), "--diffraction",
                 str(container)]) == 0
    assert "(container-npz)" in capsys.readouterr().out


def test_convert_prints_what_is_not_carried_and_keeps_the_truth_on_request(tmp_path: Path,
                                                                           capsys):
    from parity.io.container_npz import read_npz

    source = write_npz(Container(
        diffraction=np.full((3, N, N), 0.5, np.float32), positions_px=[[12, 12], [14, 13], [13, 15]],
        probe=np.ones((N, N), np.complex64), object_truth=np.ones((32, 32), np.complex64),
        metadata=ContainerMetadata(name="truth", nphotons=64.0, gridsize=1, seed=2)),
        tmp_path / "truth.npz")
    product = tmp_path / "truth.h5"
    assert main(["convert", str(source), str(product), "--pixel-size-m", "1e-8",
                 "--detector-distance-m", "2", "--photon-energy-ev", "9000"]) == 0
    assert "not carried: diffraction" in capsys.readouterr().out
    assert main(["convert", str(product), str(tmp_path / "a.npz"), "--diffraction",
                 str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("not carried: objectGuess") and "--object-as-truth" in lines[1]
    assert main(["convert", str(product), str(tmp_path / "b.npz"), "--diffraction", str(source),
                 "--object-as-truth"]) == 0
    assert "not carried" not in capsys.readouterr().out
    back = read_npz(tmp_path / "b.npz")
    assert back.object_truth is not None and back.metadata.seed == 2


@pytest.mark.parametrize(("argv", "needle"), [
    (["{container}", "{tmp}/p.h5", "--nphotons", "5"],
     "--nphotons / nphotons= does not apply to container-npz -> product-h5"),
    (["{container}", "{tmp}/p.h5", "--object-as-truth"],
     "--object-as-truth / object_as_truth= does not apply to container-npz -> product-h5"),
    (["{container}", "{tmp}/p.h5", "--pixel-size-m", "2e-8"],
     "conflicts with the pixel size 1e-08 x 1e-08 m that container 'tiny' records"),
])
def test_convert_refuses_options_it_would_ignore(container: Path, tmp_path: Path, capsys, argv,
                                                 needle):
    argv = [a.format(container=container, tmp=tmp_path) for a in argv]
    assert main(["convert", *argv]) == EXIT_USAGE
    assert needle in _error(capsys)
    assert not (tmp_path / "p.h5").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["-o", "{tmp}/x.h5"], "give a file name ending in .npz"),
    (["-o", "{tmp}"], "is a directory"),
    (["-o", "{tmp}/x.npz", "--seed", "-1"], "--seed -1: expected an integer >= 0"),
])
def test_fixtures_bad_output_exits_2_before_building(tmp_path: Path, capsys, argv, needle):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["fixtures", "--write", "small", *argv]) == EXIT_USAGE
    assert needle in _error(capsys)
    assert not any(tmp_path.iterdir())


def test_fixtures_refuses_an_existing_output_unless_forced(tmp_path: Path, capsys):
    target = tmp_path / "small.npz"
    target.write_bytes(b"precious")
    assert main(["fixtures", "--write", "small", "-o", str(target)]) == EXIT_USAGE
    assert "--force" in _error(capsys) and target.read_bytes() == b"precious"
    assert main(["fixtures", "--write", "small", "-o", str(target), "--force"]) == 0
    assert target.read_bytes() != b"precious"


@pytest.mark.parametrize("arrays", [
    {"diffraction": np.ones((3, N, N), np.int32)},
    {"diffraction": np.ones((3, N, N), np.complex64)},
    {"_metadata": np.array('{"gridsize": "2"}')},
    {"_metadata": np.array("[1, 2, 3]")},
    {"_metadata": np.array('{"provenance": [1, 2]}')},
])
def test_bad_container_content_exits_2_not_4(tmp_path: Path, capsys, arrays):
    base = {"diffraction": np.ones((3, N, N), np.float32), "xcoords": [10.0, 12.0, 14.0],
            "ycoords": [10.0, 11.0, 12.0], "probeGuess": np.ones((N, N), np.complex64)}
    path = tmp_path / "bad.npz"
    np.savez(path, **{**base, **arrays})
    assert main(["run", "--container", str(path), "--levels", "L0",
                 "--out", str(tmp_path / "reports"), "--quiet"]) == EXIT_USAGE
    assert "bad.npz" in _error(capsys)
