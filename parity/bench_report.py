"""The benchmark's bundle: ``bench.md`` (one table per device with every backend's figures and
the device each one used, the case stitching against its target, the torch / TensorFlow ratios
and, with two devices, the second device's figures over the first's), ``bench.json`` (the
figures, with the stitching target and its verdict) and the provenance. Figures come from
:mod:`parity.bench`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parity.bench import (
    BENCH_DETERMINISTIC,
    LOOP_REPEATS,
    STITCH_REPEATS,
    STITCH_SPEEDUP_TARGET,
    STITCH_WARMUP,
    THROUGHPUTS,
)

__all__ = ["FAILURE_CELL_CHARS", "render_markdown", "stitch_target_verdict",
           "with_stitch_targets", "write_bench_bundle"]


def _with_range(median: float, bounds: Sequence[float] | None) -> str:
    return f"{median:.3g}" if not bounds else f"{median:.3g} ({bounds[0]:.3g}-{bounds[1]:.3g})"


def stitch_target_verdict(case_stitch: Mapping[str, Any]) -> str:
    """``met`` when even the worst-case speed-up of the timed calls reaches
    :data:`~parity.bench.STITCH_SPEEDUP_TARGET`, ``met at the median only`` when the median does
    and the worst case does not, else ``NOT met`` (a record without the spread: by its median)."""
    median = float(case_stitch["stitch_speedup"])
    bounds = case_stitch.get("stitch_speedup_range")
    if median < STITCH_SPEEDUP_TARGET:
        return "NOT met"
    if bounds and float(bounds[0]) < STITCH_SPEEDUP_TARGET:
        return "met at the median only"
    return "met"


def with_stitch_targets(figures: Mapping[str, Any]) -> dict[str, Any]:
    """``figures`` with the stitching target (``stitch_speedup_target``) and, in each backend's
    ``case_stitch``, ``target_speedup`` and ``target_verdict`` (:func:`stitch_target_verdict`),
    so that ``bench.json`` states what ``bench.md`` does. Two-device figures: per device."""
    if "by_device" in figures:
        return {**figures, "by_device": {device: with_stitch_targets(record)
                                         for device, record in figures["by_device"].items()}}
    backends = {}
    for name, record in figures.get("backends", {}).items():
        stitch = record.get("case_stitch")
        backends[name] = record if not stitch else {**record, "case_stitch": {
            **stitch, "target_speedup": STITCH_SPEEDUP_TARGET,
            "target_verdict": stitch_target_verdict(stitch)}}
    return {**figures, "stitch_speedup_target": STITCH_SPEEDUP_TARGET, "backends": backends}


def write_bench_bundle(root: Path, stamp: str, figures: Mapping[str, Any], text: str, *,
                       options: Mapping[str, Any]) -> Path:
    """Publish ``bench.json`` (``figures``) and ``bench.md`` (``text``) as a bundle
    ``<stamp>_bench-<case>`` under ``root``.

    Its ``provenance.json`` records the host as a run bundle does
    (:func:`parity.session.host_provenance`: versions, CPU count, git revision, argv) and, as
    ``config``, the command's ``options`` (case, backends, devices, repeats, ...) with the
    sweep, kernel determinism and the model and training configs of the (first) device's run.
    """
    from parity.report.bundle import new_bundle_dir
    from parity.session import host_provenance

    first = next(iter(figures["by_device"].values())) if "by_device" in figures else figures
    config = {**options, **{key: first.get(key) for key in ("sweep", "deterministic", "model",
                                                            "train")}}
    with new_bundle_dir(root, f"bench-{options['case']}", stamp=stamp) as writer:
        writer.write_json("bench.json", figures)
        writer.write_text("bench.md", text)
        return writer.commit_plain(
            provenance={"case": options["case"], "kind": "bench", **host_provenance()},
            config=config)


def render_markdown(figures: Mapping[str, Any]) -> str:
    """The benchmark as markdown tables (one section per device, then the device ratios)."""
    if "by_device" not in figures:
        return _render_device(figures)
    devices = list(figures["by_device"])
    parts = [_render_device(figures["by_device"][d]) for d in devices]
    lines = [f"# {devices[1]} / {devices[0]}", "", "| backend | groups | N | batch | train | "
             "infer | stitch |", "|---|---|---|---|---|---|---|"]
    for backend, entry in figures["device_ratios"].items():
        lines += [f"| {backend} | {_ratio_cells(r)} |" for r in entry["rows"]]
        if "case_stitch_speedup" in entry:
            lines.append(f"| {backend} | case stitching | | | | | "
                         f"{entry['case_stitch_speedup']:.3g} |")
    if not any(entry["rows"] for entry in figures["device_ratios"].values()):
        lines += ["", "No ratio: no backend ran on both devices (see the failures above)."]
    return "\n".join(parts) + "\n" + "\n".join(lines) + "\n"


def _ratio_cells(ratio: Mapping[str, Any]) -> str:
    """``groups | N | batch | train | infer | stitch`` of one ratio row ('-' where missing)."""
    cells = [str(ratio[k]) for k in ("n_groups", "N", "batch_size")]
    cells += [f"{ratio[k]:.3g}" if k in ratio else "-" for k in THROUGHPUTS]
    return " | ".join(cells)


#: Longest failure message in a markdown table cell (bench.json keeps the whole message).
FAILURE_CELL_CHARS = 160


def _table_cell(message: str) -> str:
    """The first line of ``message``, ``|`` escaped, cut at :data:`FAILURE_CELL_CHARS` with
    a pointer to the full text."""
    first = (message.splitlines() or [""])[0].replace("|", "\\|")
    if len(first) > FAILURE_CELL_CHARS or len(message.splitlines()) > 1:
        first = first[:FAILURE_CELL_CHARS].rstrip() + " ... (full message in bench.json)"
    return first


def _devices_used(backends: Mapping[str, Any]) -> str:
    """``Devices used: tensorflow /CPU:0 (x86_64); torch cpu (x86_64)`` from each backend's
    reported environment ('' when none reported one)."""
    used = []
    for name, record in backends.items():
        environment = record.get("environment") or {}
        if environment.get("device"):
            detail = f" ({environment['device_name']})" if environment.get("device_name") else ""
            used.append(f"{name} {environment['device']}{detail}")
    return f"Devices used: {'; '.join(used)}" if used else ""


def _train_cell(row: Mapping[str, Any]) -> str:
    """Training groups/s: the median epoch's, and the slowest and fastest epoch's in brackets."""
    median = row.get("train_groups_per_s")
    return "-" if median is None else _with_range(median, row.get("train_groups_per_s_range"))


def _render_device(figures: Mapping[str, Any]) -> str:
    device = figures.get("device") or "auto (each backend: its GPU when it sees one, else the CPU)"
    heading = f"# Benchmark: case {figures['case']}, device {device}"
    kernels = ("deterministic kernels" if figures.get("deterministic", BENCH_DETERMINISTIC) else
               "non-deterministic kernels (a parity run uses deterministic ones)")
    sizing = figures.get("sizing", "")
    used = _devices_used(figures["backends"])
    lines = [heading, "", "; ".join(filter(None, [f"case: {sizing}" if sizing else "", kernels])),
             *(["", used] if used else []), "",
             "Sweep rows time seeded synthetic groups with the case's model at the listed N "
             "and batch size (the stitching table below uses the case's own geometry); epoch "
             "times of every row are in bench.json.", ""]
    lines += ["| backend | groups | N | batch | train groups/s | infer groups/s | stitch Mpx/s | "
              "loop Mpx/s | stitch speed-up | peak RSS MB | GPU peak MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(value: Any, scale: float = 1.0) -> str:
        return "-" if value is None else f"{value / scale:.3g}"

    for backend, record in figures["backends"].items():
        if record.get("status") != "ok":
            lines.append(f"| {backend} | failed ({record.get('status')}): "
                         f"{_table_cell(record.get('message', ''))} |")
        for row in record.get("rows", []):
            lines.append(f"| {backend} | {row['n_groups']} | {row['N']} | {row['batch_size']} | "
                         f"{_train_cell(row)} | {fmt(row['infer_groups_per_s'])} | "
                         f"{fmt(row['stitch_pixels_per_s'], 1e6)} | "
                         f"{fmt(row['stitch_loop_pixels_per_s'], 1e6)} | "
                         f"{fmt(row['stitch_speedup'])} | {fmt(row['peak_rss_mb'])} | "
                         f"{fmt(row.get('gpu_peak_mb'))} |")
    rows = [row for record in figures["backends"].values() for row in record.get("rows", [])]
    if any(row.get("train_groups_per_s_range") for row in rows):
        lines += ["", "Train groups/s: the median epoch's; in brackets the slowest and the fastest "
                      "timed epoch's (every epoch time is in bench.json)"]
    scopes = {row.get("peak_rss_scope", "process") for row in rows}
    if scopes:
        lines += ["", "Peak memory is per sweep point (training, inference and stitching of that "
                      "point)" if scopes == {"point"} else
                  "Peak RSS is the process's peak up to each sweep point (this OS cannot reset "
                  "it); GPU peak is per sweep point"]
    stitched = {b: r["case_stitch"] for b, r in figures["backends"].items() if r.get("case_stitch")}
    if stitched:
        lines += ["", f"Stitching on the case's own geometry (median of {STITCH_REPEATS} calls "
                      f"after {STITCH_WARMUP} warm-up; loop: median of {LOOP_REPEATS}); target "
                      f">= {STITCH_SPEEDUP_TARGET:g}x the per-patch loop:", "",
                  "| backend | patches | canvas | crop | vectorised ms | loop ms | speed-up | "
                  "target |", "|---|---|---|---|---|---|---|---|"]
        for backend, c in stitched.items():
            lines.append(f"| {backend} | {c['patches']} | {c['canvas_px'][0]}x{c['canvas_px'][1]} "
                         f"| {c['crop_px']} | {_with_range(c['stitch_ms'], c.get('stitch_ms_range'))}"
                         f" | {_with_range(c['loop_ms'], c.get('loop_ms_range'))} | "
                         f"{_with_range(c['stitch_speedup'], c.get('stitch_speedup_range'))} | "
                         f"{stitch_target_verdict(c)} |")
        if any(c.get("stitch_speedup_range") for c in stitched.values()):
            lines += ["", "In brackets: the fastest and slowest timed call (for the speed-up: the "
                          "worst case, fastest loop over slowest vectorised call, and the best)."]
    if figures.get("ratios"):
        lines += ["", "torch / tensorflow ratios:", "",
                  "| groups | N | batch | train | infer | stitch |", "|---|---|---|---|---|---|"]
        lines += [f"| {_ratio_cells(r)} |" for r in figures["ratios"]]
    if figures.get("ladder"):
        ladder = figures["ladder"]
        lines += ["", f"`parity run` on the case: {ladder['wall_seconds']:.1f} s wall, verdict "
                      f"{ladder['verdict']}", "", "| backend | task | seconds |", "|---|---|---|"]
        for backend, tasks in ladder["tasks"].items():
            for name, seconds in tasks.items():
                lines.append(f"| {backend} | {name} | {fmt(seconds)} |")
    return "\n".join(lines) + "\n"
