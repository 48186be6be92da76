"""``summary.md``: the one-screen review of a parity run (also a CI step summary, < 1 MiB).

Sections, in order: verdict and exit code; the first divergent stage with its numbers against its
tolerance; one table per level (check, measured, tolerance with its reason, verdict); backend runs;
metrics against the truth and their deltas; alignment parameters; the L5 multi-seed equivalence
tests (only in that mode); config (with the sizing used); provenance (with the fields a reviewer
needs that were not recorded); warnings; figure links.

Numbers, tolerances and worst elements are printed by :mod:`parity.report.formatting`, shared
with the other report texts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from parity.report.formatting import (
    BOOKKEEPING_MEASURED,
    element_text,
    flatten,
    format_measured,
    format_tolerance,
    format_value,
    is_scalar,
    plain,
)
from parity.results import LEVELS, VERDICTS, Check, RunResult

__all__ = [
    "MAX_SUMMARY_BYTES",
    "MEASURED_COLUMNS",
    "VERDICT_LABELS",
    "render_summary",
    "report_levels",
]

#: GitHub caps a step summary at 1 MiB (1 048 576 bytes); stay clearly below it.
MAX_SUMMARY_BYTES: int = 1_000_000

#: Text of each verdict in tables (no emoji: logs and terminals show them as they are).
VERDICT_LABELS: Mapping[str, str] = {
    "pass": "PASS", "fail": "FAIL", "known": "KNOWN", "skipped": "SKIP", "error": "ERROR",
}

#: Table column -> keys of ``Check.measured`` that fill it (first present wins). The comparators
#: may name these differently; every alias listed here is looked up.
MEASURED_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("max abs err", ("max_abs_err", "max_abs_error", "max_abs", "abs_err_max")),
    ("max rel err", ("max_rel_err", "max_rel_error", "max_rel", "rel_err_max")),
    ("fraction out", ("fraction_out", "frac_out", "fraction_mismatched", "mismatch_fraction")),
    ("cosine", ("cosine", "cosine_similarity", "cos_sim")),
)

#: Provenance a reviewer needs; each is searched (substring, case-insensitive) in the flattened
#: provenance, config and backend environments, and named in the summary when absent.
_WANTED_PROVENANCE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("versions", ("version", "numpy", "tensorflow", "torch")),
    ("git revision", ("git", "revision", "commit")),
    ("data hash", ("hash", "sha256", "digest")),
    ("device", ("device",)),
    ("TF32 flag", ("tf32",)),
    ("determinism flag", ("determinis",)),
)

#: Keys of a backend's metrics that describe the alignment rather than a quality metric.
_ALIGNMENT_KEYS: tuple[str, ...] = ("alignment", "align", "registration", "shift", "phase_offset",
                                    "ramp")

_EXTRA_MEASURED_SHOWN = 3  # other measured scalars shown in the "other" column
_WORST_SHOWN = 5  # worst elements listed for the first divergence
_DIVERGENCE_NOTE = "divergence: "  # prefix of the divergence figure's note (figures.py)


def report_levels(result: RunResult) -> list[str]:
    """Levels to show, in ladder order: those requested plus any that produced checks."""
    present = {c.level for c in result.checks}
    return [lv for lv in LEVELS if lv in result.levels or lv in present]


def _lookup(measured: Mapping[str, Any], aliases: Iterable[str]) -> tuple[str, Any] | None:
    for key in aliases:
        if key in measured:
            return key, measured[key]
    return None


def _cell(text: Any) -> str:
    """Markdown table cell: pipes escaped, line breaks flattened."""
    value = text if isinstance(text, str) else format_value(text)
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _check_row(check: Check) -> list[str]:
    measured = {k: plain(v) for k, v in flatten(check.measured).items()
                if k not in BOOKKEEPING_MEASURED}
    name = check.stage if check.quantity == check.stage else f"{check.stage} / {check.quantity}"
    row = [name, f"{check.backend} vs {check.reference}"]
    used: set[str] = set()
    for _, aliases in MEASURED_COLUMNS:
        hit = _lookup(measured, aliases)
        if hit is None:
            row.append("")
        else:
            used.add(hit[0])
            row.append(format_value(hit[1]))
    extras = [f"{k}={format_value(v)}" for k, v in measured.items()
              if k not in used and is_scalar(v)]
    if len(extras) > _EXTRA_MEASURED_SHOWN:
        extras = [*extras[:_EXTRA_MEASURED_SHOWN], "..."]
    row += [", ".join(extras), format_tolerance(check.tolerance),
            VERDICT_LABELS[check.verdict], check.message]
    return row


def _first_divergence(result: RunResult, figures: Sequence[str],
                      figure_notes: Sequence[str]) -> list[str]:
    first = result.first_divergence
    if first is None:
        if result.backend_failed:
            failed = ", ".join(f"{r.backend} ({r.status})" for r in result.backend_runs
                               if r.failed)
            return [f"**First divergent stage:** none found, but a backend failed to run "
                    f"({failed}); its missing stages cannot prove parity."]
        return ["**First divergent stage:** none: every check passed or is a known divergence."]
    # fields that do not apply (None, e.g. the phase errors of a real array) are noise here
    applicable = {k: v for k, v in first.measured.items() if v is not None}
    lines = [
        f"**First divergent stage:** `{first.level}` **{first.stage}** / {first.quantity} "
        f"[{first.backend} vs {first.reference}]",
        "",
        f"- measured: {format_measured(applicable)}",
        f"- tolerance: {format_tolerance(first.tolerance)}",
    ]
    if first.message:
        lines.append(f"- message: {first.message}")
    for key, value in ((k, plain(v)) for k, v in first.measured.items()):
        if isinstance(value, Sequence) and not isinstance(value, str) and value:
            if all(isinstance(v, int) for v in value):  # a shape or an index
                lines.append(f"- {key}: {tuple(value)}")
                continue
            shown = [element_text(v) for v in list(value)[:_WORST_SHOWN]]
            lines.append(f"- {key} (first {len(shown)} of {len(value)}): " + "; ".join(shown))
    drawn = [f for f in figures if f.rsplit("/", 1)[-1] == "divergence.png"]
    if drawn:
        lines.append(f"- figure: [{drawn[0]}]({drawn[0]}) (expected, actual and their difference "
                     "where it is worst; the arrays are in evidence.npz under `first_divergence/`)")
    else:  # say here why, not only at the end of the summary
        lines += [f"- figure: not drawn: {note.split(': ', 1)[1]}" for note in figure_notes
                  if note.startswith(_DIVERGENCE_NOTE)]
    return lines


def _level_sections(result: RunResult, *, include_passes: bool) -> list[str]:
    header = ["check", "backend vs reference", *[c for c, _ in MEASURED_COLUMNS], "other",
              "tolerance (reason)", "verdict", "message"]
    lines: list[str] = []
    for level in report_levels(result):
        checks = [c for c in result.checks if c.level == level]
        counts = {v: sum(1 for c in checks if c.verdict == v) for v in VERDICTS}
        tally = ", ".join(f"{n} {VERDICT_LABELS[v]}" for v, n in counts.items() if n)
        lines += ["", f"### {level} ({tally or 'no checks ran'})", ""]
        shown = checks if include_passes else [c for c in checks if c.verdict != "pass"]
        if shown:
            lines += _table(header, (_check_row(c) for c in shown))
        if len(shown) < len(checks):
            lines.append(f"\n{len(checks) - len(shown)} passing checks left out to keep this "
                         "summary under the size cap; see report.json.")
    return lines


def _backend_section(result: RunResult) -> list[str]:
    lines = ["", "## Backend runs", ""]
    if not result.backend_runs:
        return [*lines, "No backend runs recorded."]
    rows = []
    for run in result.backend_runs:
        bad = [f"{name}: {info.get('status', '?')}" for name, info in run.tasks.items()
               if isinstance(info, Mapping) and info.get("status", "ok") != "ok"]
        message = run.message + (f" (tasks not ok: {', '.join(bad)})" if bad else "")
        rows.append([run.backend, run.status.upper(), f"{run.seconds:.1f}", message,
                     run.log_path or "n/a"])
    return lines + _table(["backend", "status", "seconds", "message", "log"], rows)


def _is_alignment(key: str) -> bool:
    return any(part.startswith(k) for part in key.split(".") for k in _ALIGNMENT_KEYS)


def _is_curve(value: Any) -> bool:
    """A long sequence (an FRC curve): drawn in a figure, not printed in a table."""
    value = plain(value)
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 4


def _metrics_sections(result: RunResult) -> list[str]:
    metrics = result.metrics
    if not metrics:
        return ["", "## Metrics", "", "No metrics recorded (no ground truth or no L5 run)."]
    backends = [k for k in metrics if k != "delta" and isinstance(metrics[k], Mapping)]
    flat = {b: flatten(metrics[b]) for b in backends}
    delta = metrics.get("delta", {})
    delta_cols: dict[str, dict[str, Any]] = {}
    if isinstance(delta, Mapping) and delta:
        if all(isinstance(v, Mapping) for v in delta.values()):
            delta_cols = {f"delta {k}": flatten(v) for k, v in delta.items()}
        else:
            delta_cols = {"delta": flatten(delta)}
    # A delta named for a metric's last part ("ssim_amp") goes on every backend row whose key
    # ends in it ("truth.ssim_amp", "gated.ssim_amp"); unmatched deltas keep their own row.
    backend_keys = list(dict.fromkeys(k for col in flat.values() for k in col))
    for name, col in delta_cols.items():
        spread: dict[str, Any] = {}
        for key, value in col.items():
            rows = [k for k in backend_keys if k == key or k.endswith("." + key)] or [key]
            spread.update(dict.fromkeys(rows, value))
        delta_cols[name] = spread
    columns = {**flat, **delta_cols}
    keys = list(dict.fromkeys(k for col in columns.values() for k in col
                              if not _is_curve(col[k])))
    quality = [k for k in keys if not _is_alignment(k)]
    alignment = [k for k in keys if _is_alignment(k)]
    lines = ["", "## Metrics (each backend vs truth after alignment)", ""]
    lines += _table(["metric", *columns], ([k, *[col.get(k, "") for col in columns.values()]]
                                           for k in quality))
    lines += ["", "## Alignment (reported, applied before the metrics)", ""]
    if alignment:
        lines += _table(["parameter", *columns],
                        ([k, *[col.get(k, "") for col in columns.values()]] for k in alignment))
    else:
        lines.append("No alignment parameters recorded.")
    return lines


def _equivalence_section(result: RunResult) -> list[str]:
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
    return lines + _table(["metric [backend vs baseline]", "n", "mean diff", "CI", "margin",
                           "verdict"], rows)


def _config_section(result: RunResult) -> list[str]:
    config = flatten(result.config)
    sizing = next((config[k] for k in config if k.split(".")[-1] in ("sizing", "size_preset")),
                  None)
    lines = ["", "## Config", "",
             f"Sizing: **{format_value(sizing) if sizing is not None else 'not recorded'}**", ""]
    if config:
        lines += _table(["key", "value"], ([k, format_value(v)] for k, v in config.items()))
    return lines


def _provenance_section(result: RunResult) -> list[str]:
    prov = flatten(result.provenance)
    envs = {r.backend: flatten(r.environment) for r in result.backend_runs if r.environment}
    searched = [*prov, *flatten(result.config), *(k for env in envs.values() for k in env)]
    missing = [label for label, needles in _WANTED_PROVENANCE
               if not any(n in key.lower() for key in searched for n in needles)]
    lines = ["", "## Provenance", ""]
    if missing:
        lines += [f"Not recorded: {', '.join(missing)}.", ""]
    if prov:
        lines += _table(["key", "value"], ([k, format_value(v)] for k, v in prov.items()))
    if envs:
        keys = list(dict.fromkeys(k for env in envs.values() for k in env))
        lines += ["", "Backend environments:", ""]
        lines += _table(["key", *envs], ([k, *[env.get(k, "") for env in envs.values()]]
                                         for k in keys))
    return lines


def _render(result: RunResult, figures: Sequence[str], figure_notes: Sequence[str], *,
            include_passes: bool) -> str:
    counts = {v: sum(1 for c in result.checks if c.verdict == v) for v in VERDICTS}
    backends = ", ".join(f"{b} (baseline)" if i == 0 else b for i, b in enumerate(result.backends))
    lines = [
        f"# Parity report: {result.case}",
        "",
        f"**Verdict: {result.verdict.upper()}** (exit code {result.exit_code})",
        "",
        f"Run `{result.stamp}`; backends: {backends or 'none'}; "
        f"levels: {', '.join(result.levels) or 'none'}; checks: "
        + ", ".join(f"{n} {VERDICT_LABELS[v]}" for v, n in counts.items()),
        "",
        *_first_divergence(result, figures, figure_notes),
        "",
        "## Checks by level",
        *_level_sections(result, include_passes=include_passes),
        *_backend_section(result),
        *_metrics_sections(result),
        *_equivalence_section(result),
        *_config_section(result),
        *_provenance_section(result),
        "",
        "## Warnings",
        "",
        *([f"- {w}" for w in result.warnings] or ["None."]),
        "",
        "## Figures",
        "",
        *([f"- [{f}]({f})" for f in figures] or ["No figures written."]),
        *[f"- not drawn: {note}" for note in figure_notes],
    ]
    return "\n".join(lines) + "\n"


def render_summary(result: RunResult, *, figures: Sequence[str] = (),
                   figure_notes: Sequence[str] = ()) -> str:
    """Markdown review of a run (GitHub-flavoured; < :data:`MAX_SUMMARY_BYTES` UTF-8 bytes).

    Parameters
    ----------
    result : RunResult
        The run to describe.
    figures : sequence of str, optional
        Figure paths relative to the bundle (e.g. ``figures/objects.png``), linked at the end.
    figure_notes : sequence of str, optional
        Why a figure was not drawn (missing evidence), listed with the links.

    Returns
    -------
    str
        The Markdown text. When the full text would exceed the cap, passing checks are left out
        of the level tables (failures, known divergences, skips and errors always stay); if it
        is still too long it is cut, with a note saying so.
    """
    text = _render(result, figures, figure_notes, include_passes=True)
    if len(text.encode("utf-8")) <= MAX_SUMMARY_BYTES:
        return text
    text = _render(result, figures, figure_notes, include_passes=False)
    if len(text.encode("utf-8")) <= MAX_SUMMARY_BYTES:
        return text
    note = "\n\n**Summary cut at the size cap; the full record is report.json.**\n"
    budget = MAX_SUMMARY_BYTES - len(note.encode("utf-8"))
    cut = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut[: cut.rfind("\n") + 1] + note
