"""Tests of parity.report.divergence_figure: the arrays of the first divergence, drawn where they
differ."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.report import divergence_figure as divergence_module
from parity.report.divergence_figure import MIN_IMAGE_SIDE, divergence_figure, worst_plane
from parity.report.figures import render_figures
from parity.results import FIRST_DIVERGENCE_EVIDENCE, BackendRun, Check, RunResult

EXPECTED, ACTUAL = FIRST_DIVERGENCE_EVIDENCE


def _result(*checks: Check) -> RunResult:
    return RunResult("default", "20261129T120000Z", ("L1", "L2"), ("tensorflow", "torch"),
                     checks, (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok")))


def _failed(level: str = "L2", stage: str = "decoded_amp", verdict: str = "fail") -> Check:
    return Check(level, stage, "amp", "torch", "tensorflow", verdict,
                 message="FAIL: max_abs_error=0.5 (tolerance rtol=1e-05, atol=1e-06)")


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_a_channels_last_batch_is_drawn_at_the_plane_of_its_worst_element(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected = (rng.standard_normal((4, 16, 16, 2))
                + 1j * rng.standard_normal((4, 16, 16, 2))).astype(np.complex64)
    actual = expected.copy()
    actual[2, 5, 9, 1] += 0.5
    index, worst = worst_plane(expected, actual)
    assert worst == (2, 5, 9, 1)
    assert index == (2, slice(None), slice(None), 1)
    result = render_figures(_result(_failed()), {EXPECTED: expected, ACTUAL: actual}, tmp_path)
    assert [p.name for p in result.written] == ["divergence.png"]
    width, height = _png_size(result.written[0])
    assert width <= 1400 and height <= 1400


def test_curves_for_scalars_and_thin_arrays(tmp_path: Path) -> None:
    for expected, actual in ((np.array(1.0), np.array(1.5)),
                             (np.linspace(3.0, 1.0, 8), np.linspace(3.0, 1.2, 8)),
                             (np.ones((200, 3)), np.full((200, 3), 1.1))):
        assert worst_plane(expected, actual)[0] is None
        result = render_figures(_result(_failed("L4", "loss_curve")),
                                {EXPECTED: expected, ACTUAL: actual}, tmp_path)
        assert [p.name for p in result.written] == ["divergence.png"], result.skipped


def test_nan_on_one_side_is_the_worst_element() -> None:
    expected = np.zeros((8, 8))
    actual = np.zeros((8, 8))
    actual[1, 1] = 1e6
    actual[6, 2] = np.nan
    assert worst_plane(expected, actual)[1] == (6, 2)
    both = expected.copy()
    both[6, 2] = np.nan
    actual_both = actual.copy()
    assert worst_plane(both, actual_both)[1] == (1, 1)  # NaN on both sides agrees


def test_the_judges_worst_element_is_shown_when_it_is_a_valid_index() -> None:
    """The summary lists first the element furthest beyond its bound; the figure shows that one,
    and falls back to the largest error for an index that does not fit the arrays."""
    expected = np.ones((3, 8, 8))
    actual = expected.copy()
    actual[0, 1, 1] = 9.0  # the largest error
    actual[2, 6, 5] = 1.5  # the judge's choice (e.g. a small value far beyond its bound)
    assert worst_plane(expected, actual, worst=(2, 6, 5)) == ((2, slice(None), slice(None)),
                                                               (2, 6, 5))
    for bad in ((3, 0, 0), (0, 1), (-1, 0, 0)):
        assert worst_plane(expected, actual, worst=bad)[1] == (0, 1, 1)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_the_plane_always_holds_the_worst_element(shape: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    expected = rng.standard_normal(shape)
    actual = expected + rng.standard_normal(shape)
    index, worst = worst_plane(expected, actual)
    error = np.abs(actual - expected)
    assert error[worst] == pytest.approx(error.max(), rel=0, abs=0)
    if index is not None:
        sides = [expected.shape[a] for a, i in enumerate(index) if isinstance(i, slice)]
        assert len(sides) == 2 and min(sides) >= MIN_IMAGE_SIDE
        assert all(i == w for i, w in zip(index, worst, strict=True) if not isinstance(i, slice))


def test_a_passing_run_has_no_divergence_figure_and_no_note(tmp_path: Path) -> None:
    passed = Check("L1", "translated", "amp", "torch", "oracle", "pass")
    result = render_figures(_result(passed), {}, tmp_path)
    assert "divergence.png" not in [p.name for p in result.written]
    assert not any(note.startswith("divergence") for note in result.skipped)


@pytest.mark.parametrize(("evidence", "needle"), [
    ({}, "has no arrays in the evidence"),
    ({EXPECTED: np.zeros((4, 4)), ACTUAL: np.zeros((4, 5))}, "expected has shape (4, 4), actual (4, 5)"),
    ({EXPECTED: np.array(["a"]), ACTUAL: np.array(["b"])}, "expected non-empty numbers"),
])
def test_unusable_arrays_are_noted_not_raised(tmp_path: Path, evidence: dict,
                                              needle: str) -> None:
    result = render_figures(_result(_failed()), evidence, tmp_path)
    assert "divergence.png" not in [p.name for p in result.written]
    notes = [n for n in result.skipped if n.startswith("divergence: ")]
    assert len(notes) == 1 and needle in notes[0], result.skipped


# --- what a reviewer sees: each test below failed before the fix it covers -------------------

def _drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, check: Check, expected: np.ndarray,
           actual: np.ndarray) -> Any:
    """The matplotlib figure ``divergence_figure`` draws (captured at ``save``), drawn once."""
    captured: list[Any] = []

    def keep(figure: Any, path: Path) -> Path:
        captured.append(figure)
        return path

    monkeypatch.setattr(divergence_module, "save", keep)
    divergence_figure(_result(check), {EXPECTED: expected, ACTUAL: actual}, tmp_path, [])
    (figure,) = captured
    figure.canvas.draw()
    return figure


def _measured_fail(level: str, stage: str, message: str, *, atol: float = 1e-5,
                   rtol: float = 0.0, max_fraction: float = 0.0) -> Check:
    return Check(level, stage, "all", "torch", "tensorflow", "fail",
                 measured={"atol_effective": atol},
                 tolerance={"rtol": rtol, "atol": atol, "max_fraction": max_fraction,
                            "reason": "r"}, message=message)


def test_a_long_message_is_wrapped_inside_the_figure_not_cut_at_its_edges(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The pooled-weights message (L4, as L3 had) (about 230 characters, naming the worst array at its end)
    ran off both sides of the 700-pixel curve figure."""
    message = ("FAIL: max_abs_error=0.000537, max_rel_error=235, fraction_out=0.0672, "
               "cosine_similarity=1 (tolerance rtol=0.0, atol=1e-05); all 20 arrays pooled "
               "(481530 elements); worst array weights/encoder.block1.conv0.kernel")
    for expected in (np.array(1.0), np.ones((8, 8))):
        figure = _drawn(monkeypatch, tmp_path, _measured_fail("L4", "weights", message),
                        expected, expected + 1.0)
        title = figure._suptitle
        box = title.get_window_extent(figure.canvas.get_renderer())
        assert box.x0 >= 0 and box.x1 <= figure.bbox.width, (box, figure.bbox)
        assert "weights/encoder.block1.conv0.kernel" in title.get_text()


def test_a_long_flattened_vector_is_binned_with_its_bound_and_share_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every weight of the network pooled into one 481530-element check was drawn as two solid
    bands; now the bins show where the share out of tolerance is, against the allowed share."""
    rng = np.random.default_rng(1)
    expected = rng.standard_normal(100_000).astype(np.float32)
    actual = expected.copy()
    actual[60_000:70_000] += 1e-3  # one array of the pool is off
    figure = _drawn(monkeypatch, tmp_path,
                    _measured_fail("L4", "weights", "FAIL", max_fraction=1e-3), expected, actual)
    top, bottom = figure.axes[:2]
    assert top.get_yscale() == "log"
    points = [len(line.get_xdata()) for ax in (top, bottom) for line in ax.get_lines()]
    assert max(points) <= 2  # the worst-element and allowed-share lines, no raw curve
    share = next(p for p in bottom.patches if p.get_label() != "allowed overall (0.001)")
    heights = share.get_path().vertices[:, 1]
    assert heights.max() == pytest.approx(1.0) and 0.0 < np.mean(heights > 0.5) < 0.2
    assert any(t.get_text().startswith("allowed overall") for t in bottom.get_legend().texts)
    assert "in 400 bins" in bottom.get_xlabel()


def test_the_allowed_share_is_visible_next_to_bins_that_are_all_out(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The pooled weights (L4, as L3 had): bins whose share out is near 1 on a linear axis put the allowed
    0.001 on the x axis, where it could not be seen."""
    rng = np.random.default_rng(2)
    expected = rng.standard_normal(50_000)
    actual = expected.copy()
    actual[:20_000] += 1.0  # 40 % of the elements out, whole bins at share 1
    figure = _drawn(monkeypatch, tmp_path,
                    _measured_fail("L4", "weights", "FAIL", max_fraction=1e-3), expected, actual)
    bottom = figure.axes[1]
    assert bottom.get_yscale() == "log"
    low, high = bottom.get_ylim()
    (allowed,) = [line for line in bottom.get_lines()
                  if line.get_label() == "allowed overall (0.001)"]
    height = float(np.log(allowed.get_ydata()[0] / low) / np.log(high / low))
    # the allowed share sits well above the x axis (it sat at 0.001 / 1.1 of the axis height)
    # and well below the bins at share 1; 0.1 of the axis height is tens of pixels
    assert 0.1 < height < 0.9, (low, high, height)
    share = next(p for p in bottom.patches if p.get_label() != "allowed overall (0.001)")
    heights = share.get_path().vertices[:, 1]
    assert heights.max() == pytest.approx(1.0) and heights.min() >= low


def test_a_channels_first_feature_map_is_drawn_as_a_spatial_plane() -> None:
    """(batch, 128, 8, 8) was drawn as a 128 x 8 strip across channels, unreadably thin."""
    expected = np.zeros((4, 128, 8, 8))
    actual = expected.copy()
    actual[3, 114, 4, 3] = 1.0
    assert worst_plane(expected, actual) == ((3, 114, slice(None), slice(None)), (3, 114, 4, 3))
    kernel = np.zeros((3, 3, 32, 64))  # a Keras kernel: the channel plane at the worst tap
    moved = kernel.copy()
    moved[1, 2, 5, 7] = 1.0
    assert worst_plane(kernel, moved)[0] == (1, 2, slice(None), slice(None))


def test_a_thin_plane_is_stretched_to_fill_its_panel(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    expected = np.zeros((128, 6))
    actual = expected.copy()
    actual[100, 2] = 1.0
    figure = _drawn(monkeypatch, tmp_path, _failed(), expected, actual)
    assert {ax.get_aspect() for ax in figure.axes if ax.images} == {"auto"}
    figure = _drawn(monkeypatch, tmp_path, _failed(), np.zeros((8, 8)), np.eye(8))
    assert {ax.get_aspect() for ax in figure.axes if ax.images} == {1.0}


def test_a_scale_bug_gives_each_side_its_own_colour_scale(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """An unnormalised FFT (actual 32x expected) drew expected as a flat field on the shared
    scale; values of similar range keep sharing one."""
    expected = np.outer(np.hanning(16), np.hanning(16)) * 3.0
    figure = _drawn(monkeypatch, tmp_path, _failed(), expected, expected * 32.0)
    panels = [ax for ax in figure.axes if ax.images][:2]
    assert [ax.images[0].get_clim()[1] for ax in panels] == pytest.approx(
        [expected.max(), 32.0 * expected.max()])
    assert all("own colour scale" in ax.get_title() for ax in panels)
    figure = _drawn(monkeypatch, tmp_path, _failed(), expected, expected * 1.5)
    panels = [ax for ax in figure.axes if ax.images][:2]
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim()
    assert not any("own colour scale" in ax.get_title() for ax in panels)


def test_the_phase_of_a_near_zero_value_is_blank(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """Rounding noise around zero (-0.0, 1e-9) showed as +-pi specks in the phase panels."""
    expected = np.zeros((16, 16), np.complex128)
    expected[4:12, 4:12] = np.exp(0.5j)
    actual = expected.copy()
    actual[0, :8] = -1e-9  # phase pi, amplitude noise
    actual[6, 6] *= np.exp(1j)
    figure = _drawn(monkeypatch, tmp_path, _failed(), expected, actual)
    phase_actual = [ax for ax in figure.axes if ax.images][4].images[0].get_array()
    assert np.ma.getmaskarray(phase_actual)[0, :8].all() or np.isnan(
        np.ma.filled(phase_actual, np.nan)[0, :8]).all()


def test_short_curves_and_scalars_show_the_tolerance_and_the_worst_element(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    figure = _drawn(monkeypatch, tmp_path, _measured_fail("L1", "poisson_nll", "FAIL", rtol=1e-5),
                    np.array(-250.0), np.array(-3.2e6))
    top, bottom = figure.axes[:2]
    labels = [t.get_text() for t in top.get_legend().texts]
    assert "tolerance" in labels and "worst element [0]" in labels
    assert bottom.get_xlim() == (-1.0, 1.0)
    assert all(float(t).is_integer() for t in bottom.get_xticks())
