"""Benchmarks (parity/bench.py): what is timed, how figures derive from timings, the report.

No test here asserts a speed: timings vary with the machine. They check which calls are timed,
that every figure is consistent with the timings it comes from, and that the report states the
stitching target honestly (met / NOT met).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fixtures.cases import get_case
from parity import bench, bench_report
from parity.oracle.adapter import OracleAdapter
from parity.oracle.stitch import canvas_geometry
from parity.prepare import group_container, prepare


class _CountingLoop:
    """The oracle stitcher standing in for a backend's per-patch loop; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, patches: np.ndarray, centres_px: np.ndarray, *,
                 crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
        self.calls += 1
        return OracleAdapter().stitch(patches, centres_px, crop_px=crop_px)


class _CountingAdapter(OracleAdapter):
    stitch_calls = 0

    def stitch(self, patches: np.ndarray, centres_px: np.ndarray, *,
               crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
        type(self).stitch_calls += 1
        return super().stitch(patches, centres_px, crop_px=crop_px)

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from bench_records import backend_record  # noqa: E402


def test_stitch_figures_time_both_stitchers_on_the_same_inputs() -> None:
    rng = np.random.default_rng(0)
    patches = (rng.standard_normal((12, 16, 16)) + 1j).astype(np.complex64)
    centres = rng.uniform(10.0, 40.0, (12, 2))
    adapter, loop = _CountingAdapter(), _CountingLoop()
    _CountingAdapter.stitch_calls = 0
    figures = bench._stitch_figures(adapter, loop, patches, centres, 8)
    # One call for the output size, the warm-up calls, then the timed ones; the loop is not warmed.
    assert _CountingAdapter.stitch_calls == 1 + bench.STITCH_WARMUP + bench.STITCH_REPEATS
    assert loop.calls == bench.LOOP_REPEATS
    _, (height, width) = canvas_geometry(centres, 8)
    assert figures["canvas_px"] == [height, width] and figures["patches"] == 12
    # Every figure derives from the two medians (exact arithmetic, float64 rounding only).
    assert figures["stitch_speedup"] == pytest.approx(figures["loop_ms"] / figures["stitch_ms"],
                                                      rel=1e-12)
    assert figures["stitch_pixels_per_s"] == pytest.approx(
        height * width / (figures["stitch_ms"] / 1e3), rel=1e-12)
    assert figures["stitch_loop_pixels_per_s"] == pytest.approx(
        height * width / (figures["loop_ms"] / 1e3), rel=1e-12)
    # the spread brackets the medians; the worst-case ratio is the fastest loop over the slowest
    # vectorised call
    for key in ("stitch_ms", "loop_ms"):
        low, high = figures[f"{key}_range"]
        assert low <= figures[key] <= high
    worst, best = figures["stitch_speedup_range"]
    assert worst == pytest.approx(figures["loop_ms_range"][0] / figures["stitch_ms_range"][1],
                                  rel=1e-12)
    assert best == pytest.approx(figures["loop_ms_range"][1] / figures["stitch_ms_range"][0],
                                 rel=1e-12)
    assert worst <= figures["stitch_speedup"] <= best


@pytest.mark.parametrize(("median", "bounds", "verdict"), [
    (70.0, [55.0, 90.0], "met"),
    (52.0, [38.0, 70.0], "met at the median only"),
    (43.0, [30.0, 60.0], "NOT met"),
    (52.0, None, "met"),  # a record from before the spread was kept: by its median
])
def test_the_stitching_target_is_met_only_when_the_worst_case_reaches_it(
        median: float, bounds: list[float] | None, verdict: str) -> None:
    record = {"stitch_speedup": median, **({"stitch_speedup_range": bounds} if bounds else {})}
    assert bench_report.stitch_target_verdict(record) == verdict


def test_case_stitch_uses_the_cases_own_group_centres_and_crop() -> None:
    case = get_case("small")
    container, model = case.build(0), case.model_config()
    centres = prepare(container, group_container(container, model), model).centres_px
    spec = {"centres_px": centres.tolist(), "N": model.N, "crop_px": model.stitch_crop_px}
    figures = bench._case_stitch(OracleAdapter(), _CountingLoop(), spec)
    assert figures["patches"] == centres.shape[0]
    assert figures["crop_px"] == model.stitch_crop_px
    assert figures["canvas_px"] == list(canvas_geometry(centres, model.stitch_crop_px)[1])
def test_report_states_whether_the_stitching_target_is_met() -> None:
    backends = {"tensorflow": backend_record(120.0), "torch": backend_record(30.0)}
    figures = {"case": "default", "sizing": "", "backends": backends,
               "ratios": bench._ratios(backends)}
    text = bench_report.render_markdown(figures)
    assert "| tensorflow | 361 | 115x115 | 20 | 0.833 | 100 | 120 | met |" in text
    assert "| torch | 361 | 115x115 | 20 | 3.33 | 100 | 30 | NOT met |" in text
    assert f"target >= {bench.STITCH_SPEEDUP_TARGET:g}x" in text
    assert "In brackets" not in text  # no spread recorded, none explained
    spread = backend_record(52.0)
    spread["case_stitch"].update(stitch_ms_range=[1.4, 2.6], loop_ms_range=[98.0, 180.0],
                                 stitch_speedup_range=[37.7, 129.0])
    text = bench_report.render_markdown({"case": "default", "sizing": "",
                                         "backends": {"torch": spread}})
    assert ("| torch | 361 | 115x115 | 20 | 1.92 (1.4-2.6) | 100 (98-180) | 52 (37.7-129) | "
            "met at the median only |") in text
    assert "In brackets: the fastest and slowest timed call" in text
    # torch / tensorflow ratios, per sweep point.
    assert figures["ratios"] == [{"n_groups": 8, "N": 32, "batch_size": 4,
                                  "train_groups_per_s": 1.0, "infer_groups_per_s": 1.0,
                                  "stitch_pixels_per_s": 0.25}]


def test_report_names_a_failed_backend_and_keeps_the_other() -> None:
    backends = {"tensorflow": {"status": "crashed", "message": "exit code -11"},
                "torch": backend_record(80.0)}
    text = bench_report.render_markdown({"case": "default", "sizing": "", "backends": backends})
    assert "| tensorflow | failed (crashed): exit code -11 |" in text
    assert "| torch | 361 | 115x115 | 20 | 1.25 | 100 | 80 | met |" in text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backends": ()}, "--backends: no backend named"),
    ({"repeats": 0}, "repeats=0; expected >= 1"),
    ({"sweep": [{"n_groups": 0, "N": 64, "batch_size": 16}]}, "sweep point"),
    ({"sweep": [{"n_groups": 8, "N": 64}]}, "sweep point"),
])
def test_bench_rejects_bad_settings_before_any_work(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bench.run_bench(**kwargs)


def test_two_devices_get_each_backends_throughput_ratios() -> None:
    """``--device cpu,cuda``: every figure of the second device over the first, per backend."""
    cpu = {"case": "default", "device": "cpu", "backends": {"torch": backend_record(40.0)}}
    gpu_record = backend_record(400.0)
    gpu_record["rows"][0].update(train_groups_per_s=80.0, infer_groups_per_s=500.0)
    gpu = {"case": "default", "device": "cuda", "backends": {"torch": gpu_record,
                                           "tensorflow": {"status": "error", "message": "no GPU"}}}
    ratios = bench.device_ratios(cpu, gpu)
    assert ratios["torch"]["rows"] == [{"n_groups": 8, "N": 32, "batch_size": 4,
                                        "train_groups_per_s": 8.0, "infer_groups_per_s": 25.0,
                                        "stitch_pixels_per_s": 10.0}]
    assert ratios["torch"]["case_stitch_speedup"] == pytest.approx(10.0)
    assert ratios["tensorflow"] == {"rows": []}  # failed on the second device: no ratio
    text = bench_report.render_markdown({"case": "default", "by_device": {"cpu": cpu, "cuda": gpu},
                                  "device_ratios": ratios})
    assert "# Benchmark: case default, device cpu" in text
    assert "| tensorflow | failed (error): no GPU |" in text
    assert "# cuda / cpu" in text and "| torch | 8 | 32 | 4 | 8 | 25 | 10 |" in text
    assert "| torch | case stitching | | | | | 10 |" in text


@pytest.mark.parametrize(("case_N", "other_N"), [(64, 128), (128, 64), (32, 128)])
def test_default_sweep_spans_groups_batch_and_both_patch_sizes(case_N: int, other_N: int) -> None:
    points = bench.default_sweep(case_N)
    assert {p["n_groups"] for p in points} == {128, 256, 512}
    assert {p["batch_size"] for p in points} == {16, 32}
    assert {p["N"] for p in points} == {case_N, other_N}
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)  # no point twice
    assert bench.default_sweep(case_N, quick=True) == points[:1]
    bench.check_bench_settings(backends=("torch",), case="default", repeats=1, sweep=points)


def test_device_table_says_when_no_backend_ran_on_both() -> None:
    cpu = {"case": "default", "device": "cpu", "backends": {"torch": backend_record(40.0)}}
    gpu = {"case": "default", "device": "cuda",
           "backends": {"torch": {"status": "error", "message": "no CUDA"}}}
    text = bench_report.render_markdown({"case": "default", "by_device": {"cpu": cpu, "cuda": gpu},
                                  "device_ratios": bench.device_ratios(cpu, gpu)})
    assert "| torch | failed (error): no CUDA |" in text
    assert "No ratio: no backend ran on both devices" in text


def test_peak_rss_window_restarts_at_each_sweep_point() -> None:
    """After a 400 MB array is freed, a new window no longer sees it (Linux; elsewhere the figure
    is the process's peak and the report says so)."""
    big = np.ones(50_000_000)  # 400 MB, touched
    del big
    before = bench._peak_rss_mb()
    if not bench._reset_peak_rss():
        pytest.skip("this OS cannot reset the peak RSS")
    after = bench._peak_rss_mb()
    assert before - after > 300.0, (before, after)  # MiB; 381 MiB were freed


def test_cpu_adapters_have_no_device_memory_peak() -> None:
    assert OracleAdapter().device_memory_peak(reset=True) is None


def test_report_names_the_device_each_backend_used_and_the_epoch_spread() -> None:
    record = backend_record(80.0)
    record["environment"] = {"device": "cuda:0", "device_name": "NVIDIA H200"}
    record["rows"][0]["train_groups_per_s_range"] = [2.5, 12.0]
    text = bench_report.render_markdown({"case": "default", "sizing": "",
                                         "backends": {"torch": record}})
    assert "Devices used: torch cuda:0 (NVIDIA H200)" in text
    assert "| torch | 8 | 32 | 4 | 10 (2.5-12) | 20 |" in text
    assert "in brackets the slowest and the fastest timed epoch's" in text


class _Clock:
    """``time.perf_counter`` that the fake training moves on by each epoch's duration."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1e-6  # every reading moves a little: no zero-length timing
        return self.now


class _TimedAdapter(OracleAdapter):
    """Trains in epochs of known length (warm-up 5 s, then 1, 2, 4 s, ...) on the fake clock."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock = clock

    def train(self, config: Any, train: Any, data: Any, workdir: Any, *, progress: Any) -> Any:
        for epoch, seconds in zip(range(train.epochs), [5.0, 1.0, 2.0, 4.0] * 8, strict=False):
            self.clock.now += seconds
            progress(epoch, {})
        return type("Trained", (), {"bundle_dir": workdir})()

    def infer(self, bundle_dir: Any, data: Any) -> np.ndarray:
        n, _, N, _ = data.diffraction.shape
        return np.ones((n, N, N), dtype=np.complex64)


def test_training_throughput_keeps_the_spread_of_its_epochs(monkeypatch, tmp_path) -> None:
    """Median epoch for the figure; the slowest and fastest epoch for its range."""
    from types import SimpleNamespace

    from parity.config import ModelConfig, TrainConfig

    clock = _Clock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    monkeypatch.setattr(bench, "importlib", SimpleNamespace(
        import_module=lambda name: SimpleNamespace(stitch_patches_loop=_CountingLoop())))
    task = {"sweep": [{"n_groups": 1024, "N": 32, "batch_size": 256}], "repeats": 3}
    figures = bench.bench_backend(_TimedAdapter(clock), ModelConfig(N=32, stitch_crop_px=8),
                                  TrainConfig(), task, tmp_path, emit=lambda event: None)
    (row,) = figures["rows"]
    assert row["epoch_seconds"] == pytest.approx([1.0, 2.0, 4.0], abs=1e-4)
    assert row["train_groups_per_s"] == pytest.approx(1024 / 2.0, rel=1e-4)
    assert row["train_groups_per_s_range"] == pytest.approx([1024 / 4.0, 1024 / 1.0], rel=1e-4)
