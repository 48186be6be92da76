"""Bench records as a backend worker returns them, for the tests of bench, its report and
its command."""

from __future__ import annotations

from typing import Any


def backend_record(speedup: float) -> dict[str, Any]:
    row = {"n_groups": 8, "N": 32, "batch_size": 4, "train_groups_per_s": 10.0,
           "infer_groups_per_s": 20.0, "stitch_pixels_per_s": 1e6 * speedup,
           "stitch_loop_pixels_per_s": 1e6, "stitch_speedup": speedup, "peak_rss_mb": 500.0}
    case = {"patches": 361, "canvas_px": [115, 115], "crop_px": 20, "stitch_ms": 100 / speedup,
            "loop_ms": 100.0, "stitch_pixels_per_s": 1.0, "stitch_loop_pixels_per_s": 1.0,
            "stitch_speedup": speedup}
    return {"status": "ok", "message": "", "rows": [row], "case_stitch": case}
