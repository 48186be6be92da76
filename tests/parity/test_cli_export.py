"""Tests of parity/cli_export.py: ``parity export RUN DST`` names runs like ``parity show``,
prints what it wrote and what it left out, and exits 2 on bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from parity.cli import EXIT_USAGE, main
from parity.io.container_npz import read_npz, write_npz
from parity.io.ptychodus import read_product

# export_bundles: a plain module under tests/parity/support
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from export_bundles import tiny_container, write_bundle


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A reports root with one run that read a container NPZ recording its geometry."""
    container = read_npz(write_npz(tiny_container(), tmp_path / "tiny.npz"))
    write_bundle(tmp_path / "reports", container)
    return tmp_path / "reports"


def test_export_latest_prints_path_backend_shape_and_not_carried(reports: Path, tmp_path: Path,
                                                                  capsys) -> None:
    code, out, err = _run(capsys, "export", "latest", str(tmp_path / "r.npz"),
                          "--out", str(reports))
    assert (code, err) == (0, "")
    assert f"wrote {tmp_path / 'r.npz'} (product-npz): torch reconstruction of " \
           "20240101T000000Z_tiny, object 40 x 44 px" in out
    assert "not carried: diffraction patterns" in out and "tensorflow" in out
    assert read_product(tmp_path / "r.npz").object.shape[-2:] == (40, 44)


def test_export_by_path_and_prefix_with_backend(reports: Path, tmp_path: Path, capsys) -> None:
    bundle = reports / "20240101T000000Z_tiny"
    code, out, _ = _run(capsys, "export", str(bundle), str(tmp_path / "a.h5"),
                        "--backend", "tensorflow")
    assert code == 0 and "tensorflow reconstruction" in out
    code, out, _ = _run(capsys, "export", "20240101", str(tmp_path / "b.h5"), "--out",
                        str(reports))
    assert code == 0 and "torch reconstruction" in out


def test_existing_dst_needs_force(reports: Path, tmp_path: Path, capsys) -> None:
    dst = tmp_path / "r.h5"
    dst.write_bytes(b"keep")
    code, _, err = _run(capsys, "export", "latest", str(dst), "--out", str(reports))
    assert code == EXIT_USAGE and "already exists" in err and "--force" in err
    assert dst.read_bytes() == b"keep"
    code, _, _ = _run(capsys, "export", "latest", str(dst), "--out", str(reports), "--force")
    assert code == 0 and dst.read_bytes()[:4] == b"\x89HDF"


@pytest.mark.parametrize(("extra", "message"), [
    (("--backend", "jax"), "backend 'jax' (--backend / backend=) is not a backend of run"),
    (("--pixel-size-m", "-1"), "--pixel-size-m -1: expected a finite number > 0"),
    (("--photon-energy-ev", "nan"), "--photon-energy-ev nan: expected a finite number > 0"),
])
def test_bad_options_exit_2(reports: Path, tmp_path: Path, capsys, extra, message) -> None:
    code, out, err = _run(capsys, "export", "latest", str(tmp_path / "r.h5"), "--out",
                          str(reports), *extra)
    assert code == EXIT_USAGE and message in err and out == ""
    assert not (tmp_path / "r.h5").exists()


def test_unknown_and_damaged_runs_exit_2(reports: Path, tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "export", "nope", str(tmp_path / "r.h5"), "--out", str(reports))
    assert code == EXIT_USAGE and "no run 'nope'" in err
    evidence = reports / "20240101T000000Z_tiny" / "evidence.npz"
    data = dict(np.load(evidence))
    data["torch/reconstructed_obj"] = data["torch/reconstructed_obj"] * 2
    np.savez_compressed(evidence, **data)
    code, _, err = _run(capsys, "export", "20240101T000000Z_tiny", str(tmp_path / "r.h5"),
                        "--out", str(reports))
    assert code == EXIT_USAGE and "is damaged: evidence.npz" in err
    assert not (tmp_path / "r.h5").exists()


def test_missing_geometry_is_one_message_naming_every_option(tmp_path: Path, capsys) -> None:
    container = read_npz(write_npz(tiny_container(geometry=False), tmp_path / "bare.npz"))
    write_bundle(tmp_path / "reports", container)
    code, _, err = _run(capsys, "export", "latest", str(tmp_path / "r.h5"), "--out",
                        str(tmp_path / "reports"))
    assert code == EXIT_USAGE
    assert "--pixel-size-m, --detector-distance-m and --photon-energy-ev" in err
    code, out, _ = _run(capsys, "export", "latest", str(tmp_path / "r.h5"), "--out",
                        str(tmp_path / "reports"), "--pixel-size-m", "1e-8",
                        "--detector-distance-m", "2", "--photon-energy-ev", "9000")
    assert code == 0 and "wrote" in out


def test_help_lists_export(capsys) -> None:
    code, out, _ = _run(capsys, "export", "--help")
    assert code == 0 and "--container" in out and "--backend" in out
