"""Tests of parity.evaluation: data consistency with its pattern count, the L5 ``independent``
checks when a metric cannot be computed, and the warnings on failed reconstructions."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from fixtures.objects import make_object
from fixtures.probes import make_probe
from fixtures.scans import make_scan
from fixtures.simulate import simulate_container
from parity.config import ModelConfig
from parity.divergences import load_registry
from parity.evaluation import data_consistency, independent_checks, reconstruction_warnings
from parity.judge import Judge
from parity.report.summary import render_summary
from parity.results import BackendRun, RunResult
from parity.tolerances import load_table

MODEL = ModelConfig(N=32, gridsize=1, n_filters_scale=1, stitch_crop_px=10)
DATA = SimpleNamespace(normalisation=1.0)  # data_consistency reads only the normalisation


@pytest.fixture(scope="module")
def container():
    """A 60 px GRF object scanned in a raster: 16 patterns, every one 8+ px from the edge."""
    obj = make_object("grf", 60, seed=0, background=0.5)
    positions = make_scan("raster", obj.shape, step_px=8, margin_px=16, jitter_px=0.5, seed=1)
    return simulate_container(obj, make_probe("default", 32), positions, name="grid",
                              nphotons=1e6, seed=2, gridsize=1, K=4)


def test_data_consistency_counts_the_patterns_inside_of_the_total(container) -> None:
    whole = data_consistency(container.object_truth, (0, 0), container, DATA, MODEL)
    assert whole["patterns"] == whole["patterns_total"] == container.n_patterns
    assert np.isfinite(whole["r_factor"]) and "undefined" not in whole
    strip = data_consistency(container.object_truth[:20], (0, 0), container, DATA, MODEL)
    assert (strip["patterns"], strip["patterns_total"]) == (0, container.n_patterns)
    assert np.isnan(strip["r_factor"])
    assert strip["undefined"].startswith("no pattern lies inside the stitched region: a whole "
                                         "32 x 32 patch must fit in the 20 x 60 px")
    assert "N - stitch_crop_px + 1 = 23 px" in strip["undefined"]


def test_an_l5_with_nothing_comparable_is_not_parity(container) -> None:
    """``parity run --container strip.npz --levels L5``: r_factor NaN on both sides, patterns 0,
    and ``independent / r_factor | PASS`` with the verdict PARITY."""
    no_truth = dataclasses.replace(container, object_truth=None)
    outputs = {b: {"train": {"reconstructed_obj": container.object_truth[:20],
                             "origin_px": np.array([0, 0])}} for b in ("tensorflow", "torch")}
    judge = Judge(load_table(), load_registry(), device="cpu")
    checks, metrics, _ = independent_checks(judge, ("tensorflow", "torch"), no_truth, DATA,
                                            MODEL, {}, outputs)
    (r_factor,) = checks
    assert (r_factor.quantity, r_factor.verdict) == ("r_factor", "error")
    assert "no pattern lies inside the stitched region" in r_factor.message
    runs = (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok"))
    result = RunResult("strip", "20261129T210733Z", ("L5",), ("tensorflow", "torch"),
                       tuple(checks), runs, metrics=metrics)
    assert result.verdict != "parity" and result.first_divergence is r_factor
    text = render_summary(result)
    assert "/ r_factor [torch vs tensorflow] (ERROR: could not be evaluated" in text
    assert "| data_consistency.patterns | 0 of 16 | 0 of 16 |" in text


def _truth_record(registration_error: float, amplitude_correlation: float) -> dict:
    return {"alignment": {"registration_error": registration_error, "shift_px": [15.28, -0.44]},
            "amplitude": {"correlation": amplitude_correlation},
            "phase": {"correlation": 0.9}}


def test_reconstruction_warnings_name_the_backend_and_leave_good_ones_alone() -> None:
    metrics = {"tensorflow": {"truth": _truth_record(0.93, -0.12)},
               "torch": {"truth": _truth_record(0.1, 0.95)},
               "delta": {"torch": {"ssim_amp": 0.0}}}
    warnings = reconstruction_warnings(metrics)
    assert len(warnings) == 2 and all(w.startswith("L5 tensorflow: ") for w in warnings)
    assert "registration to the truth failed: error 0.93" in warnings[0]
    assert "amplitude is no better than a constant" in warnings[1]
    runs = (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok"))
    result = RunResult("small", "20261129T205138Z", ("L5",), ("tensorflow", "torch"), (), runs,
                       metrics=metrics)
    assert list(result.warnings) == warnings  # and so in report.json and summary.md
    assert result.to_dict()["warnings"] == warnings


def test_scored_region_trims_half_a_crop_inside_the_covered_box() -> None:
    """The region L5 scores (and the figures draw): an object placed 2 px into a 12x12 truth,
    covering 8x8 px, loses stitch_crop_px // 2 = 1 px on each side."""
    from parity.evaluation import scored_region

    truth = np.arange(144, dtype=np.complex128).reshape(12, 12)
    obj = np.ones((8, 8), dtype=np.complex64)
    crop_truth, crop_obj, box = scored_region(truth, obj, (2, 2), stitch_crop_px=2)
    assert crop_truth.shape == crop_obj.shape == (8, 8)
    assert box == (slice(1, 7), slice(1, 7))
    np.testing.assert_array_equal(crop_truth[box], truth[3:9, 3:9])  # exact: a crop, no arithmetic
