"""The metrics, alignment and multi-seed equivalence sections of ``summary.md``
(:mod:`parity.report.summary`): each backend's L5 metrics side by side, with the difference to
the baseline, and the paired TOST table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parity.report.formatting import flatten, format_value, markdown_table, plain
from parity.results import RunResult

__all__ = ["equivalence_section", "metrics_sections"]

#: Keys of a backend's metrics that describe the alignment rather than a quality metric.
_ALIGNMENT_KEYS: tuple[str, ...] = ("alignment", "align", "registration", "shift", "phase_offset",
                                    "ramp")


def _is_alignment(key: str) -> bool:
    return any(part.startswith(k) for part in key.split(".") for k in _ALIGNMENT_KEYS)


def _is_curve(value: Any) -> bool:
    """A long sequence (an FRC curve): drawn in a figure, not printed in a table."""
    value = plain(value)
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 4


def _delta_columns(metrics: Mapping[str, Any], flat: Mapping[str, Mapping[str, Any]],
                   baseline: str | None) -> dict[str, dict[str, Any]]:
    """``delta <backend>`` columns: the recorded deltas (the gated metrics), and for every other
    row where both sides are numbers, ``backend - baseline`` (the same definition)."""
    delta = metrics.get("delta", {})
    recorded: dict[str, dict[str, Any]] = {}
    if isinstance(delta, Mapping) and delta:
        if all(isinstance(v, Mapping) for v in delta.values()):
            recorded = {f"delta {k}": flatten(v) for k, v in delta.items()}
        else:  # one unlabelled column (a single backend under test): shown as recorded
            recorded = {"delta": flatten(delta)}
    # A delta named for a metric's last part ("ssim_amp") goes on every backend row whose key
    # ends in it ("truth.ssim_amp", "gated.ssim_amp"); unmatched deltas keep their own row.
    backend_keys = list(dict.fromkeys(k for col in flat.values() for k in col))
    columns: dict[str, dict[str, Any]] = {}
    for name, col in recorded.items():
        spread: dict[str, Any] = {}
        for key, value in col.items():
            rows = [k for k in backend_keys if k == key or k.endswith("." + key)] or [key]
            spread.update(dict.fromkeys(rows, value))
        columns[name] = spread
    base = flat.get(baseline or "", {})
    for backend, col in flat.items():
        if backend == baseline or not base or "delta" in columns:
            continue
        computed = {k: plain(col[k]) - plain(base[k]) for k in col
                    if k in base and _is_number(col[k]) and _is_number(base[k])
                    and _metric_cell(col, k) is col[k] and _metric_cell(base, k) is base[k]}
        columns[f"delta {backend}"] = {**computed, **columns.get(f"delta {backend}", {})}
    return columns


def _is_number(value: Any) -> bool:
    value = plain(value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metric_cell(column: Mapping[str, Any], key: str) -> Any:
    """What a metrics table shows for ``key``: a count with its total (``42 of 144``), and
    ``n/a`` for an FRC crossing frequency whose curve did not cross (``status_<t>``)."""
    value = column.get(key, "")
    head, _, name = key.rpartition(".")
    prefix = f"{head}." if head else ""
    if key in column and f"{prefix}{name}_total" in column:
        return f"{format_value(value)} of {format_value(column[f'{prefix}{name}_total'])}"
    if name.startswith("crossing_") and name.endswith("_cycles_per_px"):
        threshold = name[len("crossing_"):-len("_cycles_per_px")]
        status = column.get(f"{prefix}status_{threshold}")
        if status is not None and status != "crossed":
            return "n/a"
    return value


def _row_label(key: str) -> str:
    """Metric key as shown; a shift says its axis order (:mod:`parity.registration`)."""
    return f"{key} (dy, dx)" if key.endswith("shift_px") else key


def metrics_sections(result: RunResult) -> list[str]:
    metrics = result.metrics
    if not metrics:
        return ["", "## Metrics", "", "No metrics recorded (no ground truth or no L5 run)."]
    backends = [k for k in metrics if k != "delta" and isinstance(metrics[k], Mapping)]
    flat = {b: flatten(metrics[b]) for b in backends}
    baseline = next((b for b in result.backends if b in flat), None)
    columns = {**flat, **_delta_columns(metrics, flat, baseline)}
    keys = list(dict.fromkeys(k for col in columns.values() for k in col
                              if not _is_curve(col[k])))
    # a total is shown with its count ("42 of 144"), not on a row of its own
    keys = [k for k in keys if not (k.endswith("_total") and k[:-len("_total")] in keys)]
    quality = [k for k in keys if not _is_alignment(k)]
    alignment = [k for k in keys if _is_alignment(k)]
    has_truth = any(isinstance(metrics[b].get("truth"), Mapping) for b in backends)
    title = ("Metrics (each backend vs truth after alignment)" if has_truth
             else "Metrics (no ground truth: data consistency only)")
    lines = ["", f"## {title}", ""]
    if baseline is not None and any(c.startswith("delta ") for c in columns):
        gated = ("; the `gated.*` rows are the values the L5 `independent` checks judged"
                 if any(k.startswith("gated.") for k in keys) else "")
        lines += [f"delta <backend> = <backend> - {baseline}{gated}.", ""]
    lines += markdown_table(["metric", *columns],
                    ([_row_label(k), *[_metric_cell(col, k) for col in columns.values()]]
                     for k in quality))
    lines += ["", "## Alignment (reported, applied before the metrics)", ""]
    if alignment:
        lines += markdown_table(["parameter", *columns],
                        ([_row_label(k), *[_metric_cell(col, k) for col in columns.values()]]
                         for k in alignment))
    else:
        lines.append("No alignment parameters recorded." if has_truth
                     else "None: there is no ground truth to align to.")
    return lines


def equivalence_section(result: RunResult) -> list[str]:
    """The multi-seed TOST table (metric, n, mean difference, interval, margin, verdict)."""
    record = result.equivalence
    if not record:
        return []
    seeds = ", ".join(str(s) for s in record.get("seeds", []))
    margins = record.get("margins", {})
    alphas = sorted({m.get("alpha") for m in margins.values() if isinstance(m, Mapping)},
                    key=str)
    lines = ["", "## L5 equivalence over seeds (paired TOST)", "",
             f"Seeds: {seeds or 'none'}. Difference = backend - baseline per seed. Margins "
             f"pre-registered in `{record.get('margins_source', '?')}` "
             f"({record.get('margins_fixed', 'fixed before the run')}); alpha "
             f"{', '.join(format_value(a) for a in alphas) or 'n/a'} per one-sided test, so "
             "the interval shown is the (1 - 2 alpha) CI. Equivalent when it lies inside "
             "+-margin. The Metrics section shows the first seed; report.json has every seed "
             "(`equivalence.per_seed`).", ""]
    rows = []
    for backend, tests in record.get("tests", {}).items():
        for metric, test in tests.items():
            if "error" in test:
                rows.append([f"{metric} [{backend}]", "", "", "", "", "ERROR: " + test["error"]])
                continue
            interval = "n/a" if test.get("ci_low") is None else \
                f"[{format_value(test['ci_low'])}, {format_value(test['ci_high'])}]"
            rows.append([f"{metric} [{backend}]", test.get("n"), test.get("mean_diff"), interval,
                         f"+-{format_value(test.get('margin'))}",
                         str(test.get("verdict", "?")).upper().replace("_", " ")])
    if not rows:
        return [*lines, "No test ran (no metrics for any seed)."]
    return lines + markdown_table(["metric [backend vs baseline]", "n", "mean diff", "CI", "margin",
                           "verdict"], rows)
