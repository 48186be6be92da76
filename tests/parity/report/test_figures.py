"""Tests of parity.report.figures: review PNGs from evidence, tolerant of missing inputs."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from parity.report import figures
from parity.report.figures import render_figures, write_figures
from parity.results import BackendRun, RunResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _result(histories: dict | None = None) -> RunResult:
    return RunResult("lines64", "20240131T235959Z", ("L5",), ("tensorflow", "torch"), (),
                     (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok")),
                     histories=histories or {})


def _truth(height: int = 40, width: int = 48) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    amplitude = 0.5 + 0.4 * np.sin(x / 5.0) * np.cos(y / 7.0)
    return (amplitude * np.exp(1j * (x - y) / 20.0)).astype(np.complex64)


def _evidence() -> dict[str, np.ndarray]:
    truth = _truth()
    freq = np.linspace(0.0, 0.5, 20)
    return {
        "truth/object": truth,
        # asymmetric origins and sizes: each backend covers a different part of the truth
        "tensorflow/reconstructed_obj": truth[3:35, 5:41] * np.exp(0.1j),
        "tensorflow/origin_px": np.array([5, 3]),
        "torch/reconstructed_obj": truth[6:38, 2:40] * 1.01,
        "torch/origin_px": np.array([2, 6]),
        "tensorflow/frc/frequency": freq,
        "tensorflow/frc/curve": np.exp(-4 * freq),
        "tensorflow/frc/half_bit": 0.2 + 0.3 * freq,
        "torch/frc/frequency": freq,
        "torch/frc/curve": np.exp(-5 * freq),
        "torch/frc/half_bit": np.array(0.31),  # a scalar crossing: drawn as a vertical line
        "tensorflow/history/loss": np.array([3.0, 2.0, 1.5]),
        "tensorflow/history/val_loss": np.array([3.2, 2.2, 1.7]),
        "torch/history/loss": np.array([3.1, 2.1, 1.4]),
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_all_figures_from_full_evidence(tmp_path: Path) -> None:
    result = render_figures(_result(), _evidence(), tmp_path / "figures")
    assert [p.name for p in result.written] == ["objects.png", "differences.png", "frc.png",
                                                "loss.png"]
    assert result.skipped == ()
    for path in result.written:
        width, height = _png_size(path)
        # dpi 100 and a few inches per panel: a bundle stays small
        assert width <= 1400 and height <= 1400, (path.name, width, height)


def test_common_region_puts_arrays_on_one_grid() -> None:
    evidence = _evidence()
    placed = figures._placed_objects(_result(), evidence, [])
    assert [p.label for p in placed] == ["tensorflow", "torch", "truth"]
    crops = figures._common(placed)
    # common region x in [5, 40), y in [6, 35): each crop is that window of the truth
    window = evidence["truth/object"][6:35, 5:40]
    # tolerance 1e-6: values are copies of complex64 data times exact constants, promoted to f64
    np.testing.assert_allclose(crops[2], window, atol=1e-6)
    np.testing.assert_allclose(crops[0], window * np.exp(0.1j), atol=1e-6)
    np.testing.assert_allclose(crops[1], window * 1.01, atol=1e-6)


def test_disjoint_objects_skip_the_object_figures(tmp_path: Path) -> None:
    evidence = {"tensorflow/reconstructed_obj": np.ones((4, 4), np.complex64),
                "tensorflow/origin_px": np.array([0, 0]),
                "torch/reconstructed_obj": np.ones((4, 4), np.complex64),
                "torch/origin_px": np.array([10, 0])}
    result = render_figures(_result(), evidence, tmp_path)
    assert result.written == ()
    assert any(n.startswith("objects: no common region (tensorflow x[0,4)") for n in result.skipped)
    assert any(n.startswith("differences: no pair of objects overlaps") for n in result.skipped)


def test_missing_evidence_draws_nothing_and_says_why(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="parity.report.figures"):
        written = write_figures(_result(), {}, tmp_path / "figures")
    assert written == []
    assert list((tmp_path / "figures").iterdir()) == []
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 4
    assert any("loss: no loss history" in m for m in logged)


def test_partial_and_malformed_evidence_is_noted(tmp_path: Path) -> None:
    evidence = {
        "tensorflow/reconstructed_obj": _truth(),  # no origin: placed at (0, 0), noted
        "torch/reconstructed_obj": np.ones(5, np.complex64),  # 1-D: left out, noted
        "torch/frc/frequency": np.linspace(0, 0.5, 5),  # curve missing
    }
    histories = {"tensorflow": {"loss": [1.0, -0.5, -1.0]}}  # Poisson NLL can go negative
    result = render_figures(_result(histories), evidence, tmp_path)
    assert [p.name for p in result.written] == ["objects.png", "loss.png"]
    notes = "\n".join(result.skipped)
    assert "tensorflow/origin_px missing; tensorflow placed at (0, 0)" in notes
    assert "torch/reconstructed_obj has shape (5,)" in notes
    assert "differences: needs two objects; have ['tensorflow']" in notes
    assert "frc: torch lacks ['torch/frc/curve']" in notes
    assert "loss: drawn with a linear y axis (non-positive values rule out log)" in notes


def test_unexpected_error_in_one_figure_is_reported_not_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> Path:
        raise RuntimeError("boom")

    monkeypatch.setattr(figures, "_FIGURES", (("objects", broken), *figures._FIGURES[1:]))
    result = render_figures(_result(), _evidence(), tmp_path)
    assert "objects: failed (RuntimeError: boom)" in result.skipped
    assert [p.name for p in result.written] == ["differences.png", "frc.png", "loss.png"]


def test_the_truth_alone_draws_no_object_figure(tmp_path: Path) -> None:
    """An L0-only bundle holds the truth but no reconstruction: objects.png showed the truth
    alone, which reviews nothing."""
    result = render_figures(_result(), {"truth/object": _truth()}, tmp_path)
    assert "objects.png" not in [p.name for p in result.written]
    assert any(n.startswith("objects: no <backend>/reconstructed_obj in the evidence")
               and "the truth alone is not drawn" in n for n in result.skipped)
