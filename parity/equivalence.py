"""L5 multi-seed mode: per-seed metrics of each backend judged by a paired TOST per metric.

Each backend is trained once per seed; for each gated metric the paired differences
``d_i = metric(backend, seed_i) - metric(baseline, seed_i)`` are tested against a margin ``delta``
pre-registered in the tolerance file (``[[equivalence]]`` entries, read by
:mod:`parity.tolerances` before any backend runs) with :func:`parity.tost.paired_tost`, which
declares equivalence only when the ``1 - 2 alpha`` confidence interval of the mean difference
lies inside ``(-delta, +delta)``. This module gathers the per-seed metrics, pairs the seeds and
turns each test into an L5 :class:`parity.results.Check`.

Framework-free: the statistics are in :mod:`parity.tost`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from parity.results import Check, jsonable
from parity.tolerances import EquivalenceMargin, ToleranceTable
from parity.tost import paired_tost

__all__ = [
    "EQUIVALENCE_METRICS",
    "equivalence_checks",
    "equivalence_margins",
    "metric_value",
    "multi_seed_evaluation",
]

#: Metrics tested in multi-seed mode: the gated truth metrics of :mod:`parity.evaluation`
#: (``gated``) and the data-consistency R-factor (``data_consistency``).
EQUIVALENCE_METRICS: tuple[str, ...] = ("ssim_amp", "ssim_phase", "mae_amp", "mae_phase",
                                        "r_factor")


def metric_value(metrics: Mapping[str, Any], backend: str, name: str) -> float | None:
    """One backend's value of an :data:`EQUIVALENCE_METRICS` entry from an
    :func:`parity.evaluation.independent_checks` metrics record (None when absent or undefined).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`EQUIVALENCE_METRICS`.
    """
    if name not in EQUIVALENCE_METRICS:
        raise ValueError(f"metric {name!r}; expected one of {EQUIVALENCE_METRICS}")
    entry = metrics.get(backend)
    if not isinstance(entry, Mapping):
        return None
    where = entry.get("data_consistency" if name == "r_factor" else "gated") or {}
    value = where.get(name)
    return None if value is None else float(value)


def equivalence_checks(per_seed: Mapping[int, Mapping[str, Any]], backends: Sequence[str],
                       margins: Mapping[str, EquivalenceMargin]
                       ) -> tuple[list[Check], dict[str, dict[str, Any]]]:
    """TOST of each backend against the baseline (``backends[0]``), per metric, over seeds.

    Parameters
    ----------
    per_seed : mapping
        Seed -> metrics record of :func:`parity.evaluation.independent_checks` for that seed.
    backends : sequence of str
        Backends; the first is the baseline.
    margins : mapping
        Metric -> :class:`parity.tolerances.EquivalenceMargin` for every metric of
        :data:`EQUIVALENCE_METRICS` (:func:`equivalence_margins`).

    Returns
    -------
    checks : list of Check
        Level ``L5``, stage ``equivalence``, one per (backend, metric): ``pass`` (equivalent),
        ``fail`` (not equivalent), ``error`` (fewer than 2 paired seeds, a non-finite metric,
        or a metric defined for some seeds or one side only).
    tests : dict
        Backend -> metric -> :meth:`parity.tost.TostResult.to_dict` (or ``{"error": ...}``).

    Notes
    -----
    A seed enters a backend's test only when both the baseline and that backend have metrics
    for it (a failed training leaves a seed out; the message says which). A metric undefined
    for every seed on both sides (e.g. phase SSIM of a flat-phase truth) is not tested.
    """
    baseline = backends[0]
    seeds = sorted(per_seed)
    checks: list[Check] = []
    tests: dict[str, dict[str, Any]] = {}
    for backend in backends[1:]:
        tests[backend] = {}
        paired = [s for s in seeds if isinstance(per_seed[s].get(baseline), Mapping)
                  and isinstance(per_seed[s].get(backend), Mapping)]
        dropped = [s for s in seeds if s not in paired]
        note = f"; seed(s) {dropped} left out (no metrics on one side)" if dropped else ""
        for name in EQUIVALENCE_METRICS:
            margin = margins[name]
            tolerance = {"rule": "TOST (paired, two one-sided t-tests)", **margin.to_dict()}
            base = [metric_value(per_seed[s], baseline, name) for s in paired]
            ours = [metric_value(per_seed[s], backend, name) for s in paired]
            undefined = [s for s, b, o in zip(paired, base, ours, strict=True)
                         if b is None or o is None]
            if paired and len(undefined) == len(paired) and all(
                    b is None and o is None for b, o in zip(base, ours, strict=True)):
                continue  # undefined for this truth on every seed: nothing to test
            if undefined:
                message = f"metric {name} missing for seed(s) {undefined}{note}"
                tests[backend][name] = {"error": message}
                checks.append(Check("L5", "equivalence", name, backend, baseline, "error",
                                    tolerance=tolerance, message=message))
                continue
            try:
                result = paired_tost(base, ours, margin=margin.margin, alpha=margin.alpha,
                                     seeds=paired)
            except ValueError as err:
                message = f"{name}: {err}{note}"
                tests[backend][name] = {"error": message}
                checks.append(Check("L5", "equivalence", name, backend, baseline, "error",
                                    tolerance=tolerance, message=message))
                continue
            record = result.to_dict()
            tests[backend][name] = record
            verdict = {"equivalent": "pass", "not_equivalent": "fail",
                       "insufficient": "error"}[result.verdict]
            checks.append(Check("L5", "equivalence", name, backend, baseline, verdict,
                                measured=record, tolerance=jsonable(tolerance),
                                message=result.message + note))
    return checks, tests


def equivalence_margins(table: ToleranceTable) -> dict[str, EquivalenceMargin]:
    """The pre-registered margin of every metric of :data:`EQUIVALENCE_METRICS`.

    Raises
    ------
    ValueError
        If the table has no ``[[equivalence]]`` entry for one of them (named, with the file).
    """
    margins = {}
    for metric in EQUIVALENCE_METRICS:
        try:
            margins[metric] = table.margin(metric)
        except KeyError as err:
            raise ValueError(str(err).strip("'\"")) from err
    return margins


def multi_seed_evaluation(judge: Any, backends: Sequence[str], container: Any, data: Any,
                          model: Any, outcomes: Mapping[str, Any], outputs: Mapping[str, Any], *,
                          seed_tasks: Sequence[tuple[int, str]],
                          first: tuple[list[Check], Mapping[str, Any]],
                          margins: Mapping[str, EquivalenceMargin], margins_source: str
                          ) -> tuple[list[Check], dict[str, Any]]:
    """L5 in multi-seed mode: each seed's trainings through the single-seed evaluation
    (:func:`parity.evaluation.independent_checks`), then one TOST per (backend, metric).

    Parameters
    ----------
    judge, backends, container, data, model, outcomes, outputs
        As for :func:`parity.evaluation.independent_checks`; ``outputs[backend][task]`` holds
        each training task's arrays and ``outcomes[backend].manifest`` its record.
    seed_tasks : sequence of (int, str)
        ``(seed, train task name)`` in seed order; the first is the task named ``train``.
    first : (list of Check, dict)
        The checks and metrics ``independent_checks`` already returned for the first seed.
    margins : mapping
        :func:`equivalence_margins`, read before the backends ran.
    margins_source : str
        The tolerance file they came from.

    Returns
    -------
    checks : list of Check
        Each seed's evaluation ``error`` checks (stage ``independent.seed<s>``), then the TOST
        checks (:func:`equivalence_checks`). A single seed's pass/fail deltas are left out:
        one draw of a random quantity does not gate in this mode.
    record : dict
        ``RunResult.equivalence``: ``seeds``, ``metrics``, ``margins``, ``margins_source``,
        ``per_seed`` (seed -> metrics record), ``training`` (seed -> backend -> task status,
        seed, epochs run, seconds, final loss) and ``tests`` (backend -> metric -> TOST).
    """
    from parity.evaluation import independent_checks

    per_seed: dict[int, Mapping[str, Any]] = {}
    training: dict[str, dict[str, Any]] = {}
    kept: list[Check] = []
    for index, (seed, name) in enumerate(seed_tasks):
        if index == 0:
            seed_checks, seed_metrics = first
        else:
            seed_outputs = {b: {"train": outputs[b].get(name, {})} for b in backends}
            seed_checks, seed_metrics, _ = independent_checks(
                judge, backends, container, data, model, outcomes, seed_outputs)
        per_seed[seed] = seed_metrics
        kept += [replace(c, stage=f"independent.seed{seed}", message=f"seed {seed}: {c.message}")
                 for c in seed_checks if c.verdict == "error"]
        for backend in backends:
            task = outcomes[backend].manifest.get("tasks", {}).get(name, {})
            losses = task.get("history", {}).get("loss") or [None]
            training.setdefault(str(seed), {})[backend] = {
                "task": name, "status": task.get("status", "missing"), "seed": task.get("seed"),
                "epochs_run": task.get("epochs_run"), "train_seconds": task.get("train_seconds"),
                "final_loss": losses[-1]}
    tost_checks, tests = equivalence_checks(per_seed, backends, margins)
    record = {
        "seeds": [seed for seed, _ in seed_tasks],
        "metrics": list(EQUIVALENCE_METRICS),
        "margins": {m: margins[m].to_dict() for m in EQUIVALENCE_METRICS},
        "margins_source": margins_source,
        "margins_fixed": "read from the tolerance file before any backend ran",
        "per_seed": {str(s): m for s, m in per_seed.items()},
        "training": training,
        "tests": tests,
    }
    return [*kept, *tost_checks], jsonable(record)
