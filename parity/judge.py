"""Turns backend outputs into :class:`~parity.results.Check` records: tolerance lookup, comparison,
known-divergence allowances. NumPy only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.compare import compare_arrays
from parity.divergences import DivergenceRegistry
from parity.results import FIRST_DIVERGENCE_EVIDENCE, Check, jsonable
from parity.tolerances import Tolerance, ToleranceTable

__all__ = ["Judge", "fraction_rule_applies", "norm_rule_applies"]


def fraction_rule_applies(measured: Mapping[str, Any], max_fraction: float) -> bool:
    """Whether a tolerance's allowed fraction of elements out (``max_fraction``) can decide a
    comparison (``measured``: :meth:`ArrayComparison.to_dict`): it allows some, the comparison
    counted its elements out, the kinds match, and no NaN/inf is unmatched (never forgiven)."""
    return max_fraction > 0 and measured.get("fraction_out") is not None and _forgivable(measured)


def norm_rule_applies(measured: Mapping[str, Any], max_relative_rmse: float | None) -> bool:
    """Whether a tolerance's norm-wise bound (``max_relative_rmse``) can decide a comparison
    (``measured``: :meth:`ArrayComparison.to_dict`): it has one, the comparison measured the
    relative RMS error, the kinds match, and no NaN/inf is unmatched (never forgiven)."""
    return (max_relative_rmse is not None and measured.get("relative_rmse") is not None
            and _forgivable(measured))


def _forgivable(measured: Mapping[str, Any]) -> bool:
    """A comparison a lenient rule may pass: the kinds match and no NaN/inf is unmatched."""
    return bool(measured.get("kind_ok", True)) and measured.get("nonfinite_mismatch") in (0, None)


class Judge:
    """Compares arrays under the tolerance table and the divergence registry.

    Parameters
    ----------
    table : ToleranceTable
        Where every tolerance comes from.
    registry : DivergenceRegistry
        Known divergences.
    device : str
        ``cpu`` or ``cuda`` (tolerance key).
    dtype : str
        Working precision of the backends (tolerance key), ``float32``.
    """

    def __init__(self, table: ToleranceTable, registry: DivergenceRegistry, *, device: str,
                 dtype: str = "float32") -> None:
        self.table = table
        self.registry = registry
        self.device = device
        self.dtype = dtype
        self.warnings: list[str] = []
        #: ``Check.name`` -> ``(expected, actual)`` of every array comparison that failed (by
        #: reference, no copy): the run keeps those of its first divergence as evidence.
        self.diverged_arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _evaluate(self, expected: np.ndarray, actual: np.ndarray, *, name: str, rtol: float,
                  atol: float, atol_scale: str, max_fraction: float,
                  min_cosine: float | None, max_relative_rmse: float | None = None,
                  group_max_abs: float | None = None) -> tuple[bool, dict[str, Any]]:
        expected = np.asarray(expected)
        actual = np.asarray(actual)
        if atol_scale == "group_max_abs":
            scale = float(group_max_abs)  # type: ignore[arg-type]  # checked by compare
        else:
            # the largest finite magnitude: a NaN/inf the two sides share (judged apart, by the
            # non-finite masks) must not drop the scale of every other element to 1
            finite = np.abs(expected[np.isfinite(expected)]) if expected.size else expected
            scale = float(np.max(finite)) if finite.size else 1.0
        atol_abs = atol if atol_scale == "absolute" else atol * scale
        comparison = compare_arrays(name, expected, actual, rtol=rtol, atol=atol_abs)
        measured = comparison.to_dict()
        passed = bool(comparison.passed)
        if (not passed and fraction_rule_applies(measured, max_fraction)
                and measured["fraction_out"] <= max_fraction):
            passed = True
        if (not passed and norm_rule_applies(measured, max_relative_rmse)
                and measured["relative_rmse"] <= max_relative_rmse):
            passed = True
            measured["norm_rule"] = True  # the message says which rule decided
        if min_cosine is not None:
            cosine = measured.get("cosine_similarity")
            if cosine is None or cosine < min_cosine:
                passed = False
        measured["atol_effective"] = atol_abs
        return passed, measured

    def compare(self, *, level: str, stage: str, quantity: str, backend: str, reference: str,
                expected: np.ndarray, actual: np.ndarray,
                group_max_abs: float | None = None, undefined_reason: str = "") -> Check:
        """One check of ``actual`` (from ``backend``) against ``expected`` (from ``reference``).

        ``group_max_abs``: the largest magnitude over the group ``expected`` belongs to, the
        scale of a ``group_max_abs`` tolerance (required by such an entry, else an ``error``).
        ``undefined_reason``: why the quantity may be undefined (NaN), added to the message when
        nothing could be compared.

        Notes
        -----
        When neither side holds a single finite element (NaN vs NaN: a metric that could not be
        computed on either side), nothing was compared, so the check is an ``error``, never a
        pass: matching NaN/inf are forgiven only next to finite elements that were compared.
        """
        try:
            tol: Tolerance = self.table.lookup(level=level, stage=stage, quantity=quantity,
                                               dtype=self.dtype, device=self.device)
        except KeyError as err:
            return Check(level, stage, quantity, backend, reference, "error",
                         message=str(err).strip("'\""))
        if _nothing_finite(expected, actual):
            why = f": {undefined_reason}" if undefined_reason else ""
            return Check(level, stage, quantity, backend, reference, "error",
                         {"size": int(np.asarray(expected).size), "finite_elements": 0},
                         jsonable(tol.to_dict()),
                         f"ERROR: nothing compared: no element is finite on either side "
                         f"(both NaN/inf){why}")
        if tol.atol_scale == "group_max_abs" and (
                group_max_abs is None or not np.isfinite(group_max_abs)):
            return Check(level, stage, quantity, backend, reference, "error",
                         message=f"tolerance {tol.key} scales atol by its group's max magnitude, "
                                 f"but the caller gave {group_max_abs}")
        passed, measured = self._evaluate(
            expected, actual, name=f"{stage}.{quantity}", rtol=tol.rtol, atol=tol.atol,
            atol_scale=tol.atol_scale, max_fraction=tol.max_fraction, min_cosine=tol.min_cosine,
            max_relative_rmse=tol.max_relative_rmse, group_max_abs=group_max_abs)
        allowance = self.registry.find(backend=backend, level=level, stage=stage,
                                       quantity=quantity, device=self.device)
        verdict = "pass" if passed else "fail"
        tolerance = tol.to_dict()
        if allowance is not None:
            tolerance["allowance"] = allowance.to_dict()
            if passed:
                self.warnings.append(
                    f"divergence allowance {allowance.id} is no longer needed: {level}/{stage}/"
                    f"{quantity} for {backend} passes its ordinary tolerance")
            else:
                ok, allowed = self._evaluate(
                    expected, actual, name=f"{stage}.{quantity}", rtol=allowance.rtol,
                    atol=allowance.atol, atol_scale=tol.atol_scale, max_fraction=0.0,
                    min_cosine=None)
                verdict = "known" if ok else "fail"
                # the allowance's atol is scaled like the tolerance it extends (atol_scale)
                tolerance["allowance"]["atol_effective"] = allowed["atol_effective"]
        message = self._message(verdict, measured, tolerance)
        if allowance is not None and not passed:
            message += (f"; {'within' if verdict == 'known' else 'beyond'} allowance "
                        f"{allowance.id} (rtol={allowance.rtol:g}, atol="
                        f"{tolerance['allowance']['atol_effective']:.3g}): {allowance.reason}")
        check = Check(level, stage, quantity, backend, reference, verdict, jsonable(measured),
                      jsonable(tolerance), message)
        if check.failed:
            self.diverged_arrays[check.name] = (np.asarray(expected), np.asarray(actual))
        return check

    def evidence_of(self, check: Check | None) -> dict[str, np.ndarray]:
        """The arrays behind ``check`` under :data:`~parity.results.FIRST_DIVERGENCE_EVIDENCE`
        (empty unless it is a failed array comparison of this judge)."""
        if check is None or check.name not in self.diverged_arrays:
            return {}
        return dict(zip(FIRST_DIVERGENCE_EVIDENCE, self.diverged_arrays[check.name], strict=True))

    @staticmethod
    def _message(verdict: str, measured: Mapping[str, Any], tol: Mapping[str, Any]) -> str:
        if measured.get("kind_ok") is False:
            return str(measured.get("message", "dtype or shape mismatch"))
        parts = []
        if measured.get("nonfinite_mismatch"):
            parts.append(f"nonfinite_mismatch={measured['nonfinite_mismatch']} (NaN/inf on one side)")
        for key in ("max_abs_error", "max_rel_error", "fraction_out", "cosine_similarity"):
            value = measured.get(key)
            if value is not None:
                parts.append(f"{key}={value:.3g}")
        bound = f"rtol={tol.get('rtol')}, atol={measured.get('atol_effective', tol.get('atol')):.3g}"
        if verdict == "pass" and measured.get("norm_rule"):
            return (f"PASS norm-wise: relative RMS error {measured['relative_rmse']:.3g} <= "
                    f"{tol.get('max_relative_rmse'):g}; {measured.get('count_out')} of "
                    f"{measured.get('size')} elements beyond the elementwise bound: "
                    f"{', '.join(parts)} (tolerance {bound})")
        return f"{verdict.upper()}: {', '.join(parts)} (tolerance {bound})"

    def exact(self, *, level: str, stage: str, quantity: str, backend: str, reference: str,
              expected: Any, actual: Any) -> Check:
        """Exact equality of JSON-able values (configs, shapes, indices); lists what differs."""
        differences = _diff(expected, actual)
        verdict = "fail" if differences else "pass"
        message = ("identical" if not differences
                   else f"{len(differences)} difference(s): " + "; ".join(differences[:8]))
        return Check(level, stage, quantity, backend, reference, verdict,
                     {"differences": differences[:50]},
                     {"rule": "exact", "reason": "configuration, layout and indices must agree "
                      "exactly; any difference is a port decision to make explicit"}, message)


def _nothing_finite(expected: Any, actual: Any) -> bool:
    """True when two same-shaped, non-empty arrays hold no finite element on either side."""
    exp, act = np.asarray(expected), np.asarray(actual)
    if (exp.shape != act.shape or exp.size == 0
            or not {exp.dtype.kind, act.dtype.kind} <= set("biufc")):
        return False  # a shape mismatch or a non-numeric dtype is the comparator's to report
    return not (np.isfinite(exp).any() or np.isfinite(act).any())


def _diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: missing in actual")
            elif key not in expected:
                out.append(f"{where}: unexpected in actual ({actual[key]!r})")
            else:
                out.extend(_diff(expected[key], actual[key], where))
        return out
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        if len(expected) != len(actual):
            return [f"{path}: length {len(expected)} vs {len(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(_diff(e, a, f"{path}[{i}]"))
        return out
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []
