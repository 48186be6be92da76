"""Tests of parity.report.figures: review PNGs from evidence, tolerant of missing inputs."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from parity.config import ModelConfig
from parity.evaluation import score_against_truth
from parity.report import figures
from parity.report._truth_view import common, truth_views
from parity.report.figures import render_figures, write_figures
from parity.results import BackendRun, RunResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


#: A small stitching crop: the L5 trusted box is the covered box trimmed by 2 px.
MODEL = ModelConfig(N=32, gridsize=1, n_filters_scale=1, stitch_crop_px=4)


def _result(histories: dict | None = None, evidence: dict | None = None) -> RunResult:
    """A run; with ``evidence``, its L5 metrics against the truth as the run records them."""
    metrics = {}
    if evidence is not None:
        metrics = {b: {"truth": score_against_truth(evidence["truth/object"],
                                                    evidence[f"{b}/reconstructed_obj"],
                                                    evidence[f"{b}/origin_px"].tolist(), MODEL)}
                   for b in ("tensorflow", "torch")}
    return RunResult("lines64", "20240131T235959Z", ("L5",), ("tensorflow", "torch"), (),
                     (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok")),
                     histories=histories or {}, metrics=metrics,
                     config={"model": {"stitch_crop_px": MODEL.stitch_crop_px}})


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
    result = render_figures(_result(evidence=_evidence()), _evidence(), tmp_path / "figures")
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
    crops = common(placed)
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


def _scanned(truth: np.ndarray, origin: tuple[int, int], shape: tuple[int, int],
             shift: tuple[int, int], border: int) -> np.ndarray:
    """A stitched canvas at ``origin`` (x0, y0): the truth displaced by ``shift`` (dy, dx)
    whole pixels, a global phase and scale, and an uncovered zero border (as stitching leaves)."""
    x0, y0 = origin
    moved = np.roll(truth, shift, axis=(0, 1))[y0:y0 + shape[0], x0:x0 + shape[1]]
    canvas = np.zeros(shape, np.complex64)
    inner = (slice(border, -border), slice(border, -border))
    canvas[inner] = 0.9 * np.exp(0.4j) * moved[inner]
    return canvas


def _textured_truth(height: int, width: int) -> np.ndarray:
    """A structured object (smoothed noise in amplitude and phase) that registers unambiguously,
    unlike the near-periodic :func:`_truth`."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(7)
    amplitude, phase = (gaussian_filter(rng.standard_normal((height, width)), 1.5)
                        for _ in range(2))
    amplitude = 0.5 + 0.4 * amplitude / np.abs(amplitude).max()
    return (amplitude * np.exp(1j * phase / np.abs(phase).max())).astype(np.complex64)


def _shifted_evidence() -> dict[str, np.ndarray]:
    truth = _textured_truth(48, 56)
    return {"truth/object": truth,
            "tensorflow/reconstructed_obj": _scanned(truth, (4, 3), (40, 46), (2, -1), 3),
            "tensorflow/origin_px": np.array([4, 3]),
            "torch/reconstructed_obj": _scanned(truth, (4, 3), (40, 46), (0, 0), 3),
            "torch/origin_px": np.array([4, 3])}


def _captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Figures as drawn, by file name (``save`` replaced; nothing written)."""
    drawn: dict[str, object] = {}

    def keep(figure: object, path: Path) -> Path:
        drawn[path.name] = figure
        return path

    monkeypatch.setattr(figures, "save", keep)
    return drawn


def _titles(figure: object) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.images]  # type: ignore[attr-defined]


def test_the_truth_comparison_is_drawn_on_the_aligned_region_l5_scored(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """differences.png compared the truth with the unaligned canvas: the uncovered zero border
    read as max |d| = 1 and a shifted reconstruction as a large error the metrics never saw."""
    evidence = _shifted_evidence()
    result = _result(evidence=evidence)
    alignment = result.metrics["tensorflow"]["truth"]["alignment"]
    # tolerance 0.25 px: registration of these cut, non-periodic canvases is ~0.1 px off
    assert alignment["shift_px"] == pytest.approx([2.0, -1.0], abs=0.25)
    drawn = _captured(monkeypatch)
    rendered = render_figures(result, evidence, tmp_path)
    assert not [n for n in rendered.skipped if n.startswith(("objects", "differences"))]
    titles = _titles(drawn["differences.png"])
    truth_titles = [t for t in titles if " - truth: " in t]
    assert len(truth_titles) == 4
    dy, dx = alignment["shift_px"]
    assert f"aligned as L5: shift (dy, dx) = ({dy:.3g}, {dx:.3g}) px" in truth_titles[0]
    assert all("aligned as L5: shift (dy, dx) = (" in t for t in truth_titles)
    peaks = [_peak(t) for t in truth_titles]
    # tolerances: torch is the truth up to complex64 rounding (1e-5); tensorflow up to its
    # ~0.1 px registration residual (0.15). Unaligned, the zero border alone read ~0.9.
    assert max(peaks[2:]) < 1e-5 and max(peaks[:2]) < 0.15, truth_titles
    assert all("same canvas, unaligned" in t for t in titles if "tensorflow - torch" in t)
    assert "aligned to the truth as the L5 metrics" in drawn["objects.png"]._suptitle.get_text()
    # the views sit on the truth's grid: each is that window of the truth
    views = truth_views(result.metrics, result.config, figures._placed_objects(result, evidence,
                                                                               []))
    placed = views["torch"].placed  # type: ignore[union-attr]
    window = evidence["truth/object"][placed.y0:placed.y1, placed.x0:placed.x1]
    np.testing.assert_allclose(placed.values, window, atol=1e-5)  # complex64 rounding


def _peak(title: str) -> float:
    """The ``max |d|`` a difference panel's title reports."""
    return float(title.split("max |d| = ")[1].split(";")[0])


def test_without_a_recorded_alignment_the_figures_say_they_are_unaligned(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    evidence = _shifted_evidence()
    drawn = _captured(monkeypatch)
    rendered = render_figures(_result(), evidence, tmp_path)
    notes = "\n".join(rendered.skipped)
    assert ("objects: drawn with no alignment to the truth (tensorflow: "
            "metrics.tensorflow.truth.alignment missing") in notes
    assert "differences: drawn with no alignment for torch - truth (" in notes
    truth_titles = [t for t in _titles(drawn["differences.png"]) if " - truth: " in t]
    assert len(truth_titles) == 4 and all("NOT aligned" in t for t in truth_titles)
    assert min(_peak(t) for t in truth_titles[::2]) > 0.5  # the uncovered border, as before
    assert "unaligned (uncovered border included)\ncommon region" in \
        drawn["objects.png"]._suptitle.get_text()


def test_an_alignment_of_another_object_is_not_applied(tmp_path: Path) -> None:
    evidence = _shifted_evidence()
    result = _result(evidence=evidence)
    other = dict(evidence, **{"torch/reconstructed_obj": evidence["torch/reconstructed_obj"][:30]})
    notes = "\n".join(render_figures(result, other, tmp_path).skipped)
    assert "torch: the region rebuilt is" in notes and "the alignment is not this object's" in notes
