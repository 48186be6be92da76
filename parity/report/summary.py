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

from parity.report.figures import DRAWN_NOTE
from parity.report.formatting import (
    BOOKKEEPING_MEASURED,
    element_text,
    flatten,
    format_measured,
    format_tolerance,
    format_value,
    is_scalar,
    markdown_table,
    plain,
)
from parity.report.summary_metrics import equivalence_section, metrics_sections
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
    row += [", ".join(extras), format_tolerance(check.tolerance, measured=check.measured),
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
        f"[{first.backend} vs {first.reference}]"
        + (" (ERROR: could not be evaluated, so it cannot show parity)"
           if first.verdict == "error" else ""),
        "",
        f"- measured: {format_measured(applicable)}",
        f"- tolerance: {format_tolerance(first.tolerance, measured=first.measured)}",
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


def _is_drawn_note(note: str) -> bool:
    """A figure note about a figure that WAS drawn (``loss: drawn with ...``)."""
    return note.partition(": ")[2].startswith(DRAWN_NOTE)


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
            lines += markdown_table(header, (_check_row(c) for c in shown))
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
    return lines + markdown_table(["backend", "status", "seconds", "message", "log"], rows)


def _config_section(result: RunResult) -> list[str]:
    config = flatten(result.config)
    sizing = next((config[k] for k in config if k.split(".")[-1] in ("sizing", "size_preset")),
                  None)
    lines = ["", "## Config", "",
             f"Sizing: **{format_value(sizing) if sizing is not None else 'not recorded'}**", ""]
    if config:
        lines += markdown_table(["key", "value"], ([k, format_value(v)] for k, v in config.items()))
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
        lines += markdown_table(["key", "value"], ([k, format_value(v)] for k, v in prov.items()))
    if envs:
        keys = list(dict.fromkeys(k for env in envs.values() for k in env))
        lines += ["", "Backend environments:", ""]
        lines += markdown_table(["key", *envs], ([k, *[env.get(k, "") for env in envs.values()]]
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
        *([f"> **{result.self_test_banner}**", ""] if result.self_test_banner else []),
        f"Run `{result.stamp}`; backends: {backends or 'none'}; "
        f"levels: {', '.join(result.levels) or 'none'}; checks: "
        + ", ".join(f"{n} {VERDICT_LABELS[v]}" for v, n in counts.items()),
        "",
        *_first_divergence(result, figures, figure_notes),
        "",
        "## Checks by level",
        *_level_sections(result, include_passes=include_passes),
        *_backend_section(result),
        *metrics_sections(result),
        *equivalence_section(result),
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
        *[f"- {'note' if _is_drawn_note(note) else 'not drawn'}: {note}"
          for note in figure_notes],
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
