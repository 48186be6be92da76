"""How the report texts print numbers, tolerances and worst elements: one formatter shared by
``summary.md`` (:mod:`parity.report.summary`), ``junit.xml`` (:mod:`parity.report.junit`),
``parity list`` and ``parity diff`` (:mod:`parity.report.runs`, :mod:`parity.report.diff`), so
that every text prints a check's numbers the same way."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "BOOKKEEPING_MEASURED",
    "MAX_SECTION_LINES",
    "capped",
    "element_text",
    "flatten",
    "format_measured",
    "format_tolerance",
    "format_value",
    "is_scalar",
    "markdown_cell",
    "markdown_table",
    "plain",
]

#: Measured fields that are bookkeeping, not measurements (the verdict column says the outcome).
BOOKKEEPING_MEASURED = frozenset({"name", "passed", "kind_ok", "message"})


def format_value(value: Any) -> str:
    """Short text of a scalar, a short sequence or anything else (``n/a`` for None).

    Floats use 4 significant digits between 1e-3 and 1e4 (more when 4 would round a
    non-integer to a whole number, e.g. a cosine of 0.99999) and scientific notation otherwise,
    so that tolerances such as ``1e-06`` stay readable.
    """
    value = plain(value)
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0.0:
            return "0"
        if 1e-3 <= abs(value) < 1e4:
            # 4 digits, more when rounding would make a non-integer look whole (a cosine of
            # 0.99999 must not print as 1)
            for digits in range(4, 18):
                text = f"{value:.{digits}g}"
                if float(text) == value or not float(text).is_integer():
                    return text
            return repr(value)
        return f"{value:.3e}"
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        items = [format_value(v) for v in list(value)[:8]]
        more = ", ..." if len(value) > 8 else ""
        return "[" + ", ".join(items) + more + "]"
    return json.dumps(value, default=str)[:200]


def plain(value: Any) -> Any:
    """NumPy scalars and arrays -> Python scalars and lists (NaN kept, unlike ``jsonable``)."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) and not isinstance(value, str) else value


#: Lines a listing section shows; the rest is counted, not listed.
MAX_SECTION_LINES = 200


def capped(lines: list[str], limit: int = MAX_SECTION_LINES) -> list[str]:
    """``lines``, or its first ``limit`` and a line counting the rest."""
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"  ... and {len(lines) - limit} more"]



def flatten(mapping: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b.c": leaf}`` (sequences are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=name))
        else:
            flat[name] = value
    return flat



def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def format_measured(measured: Mapping[str, Any]) -> str:
    """Every scalar of ``measured`` (flattened) as ``key=value`` in one line; lists and
    bookkeeping fields (name, passed, kind_ok, message) left out."""
    parts = [f"{k}={format_value(v)}" for k, v in flatten(measured).items()
             if is_scalar(plain(v)) and k.split(".")[-1] not in BOOKKEEPING_MEASURED]
    return ", ".join(parts) if parts else "(nothing measured)"


#: Tolerance fields a table cell leaves out: the entry's key (the row names the check), the
#: calibration note (report.json keeps it) and the registry's reference.
_TOLERANCE_KEY_FIELDS = frozenset({"level", "stage", "quantity", "dtype", "device", "calibration",
                                   "reference", "backend"})


def _quiet_field(key: str, value: Any) -> bool:
    """Fields that say nothing in a cell: key fields, and settings at their neutral value."""
    name = key.split(".")[-1]
    return (name in _TOLERANCE_KEY_FIELDS or value is None
            or (name == "max_fraction" and value == 0) or (name == "atol_scale"
                                                          and value == "absolute"))


#: Relative difference below which the atol a check used is the nominal one (not scaled).
_SAME_ATOL_RTOL = 1e-9


def _atol_used(tolerance: Mapping[str, Any], measured: Mapping[str, Any] | None) -> Any:
    """The absolute bound the judge used (``measured["atol_effective"]``) when it differs from
    the nominal ``atol`` (an ``atol_scale`` other than absolute); else None."""
    used, nominal = (measured or {}).get("atol_effective"), tolerance.get("atol")
    if not isinstance(used, int | float) or not isinstance(nominal, int | float):
        return None
    return None if math.isclose(used, nominal, rel_tol=_SAME_ATOL_RTOL) else used


def format_tolerance(tolerance: Mapping[str, Any], *, with_reason: bool = True,
                     measured: Mapping[str, Any] | None = None) -> str:
    """``rtol=1e-05, atol=1e-06 (reason)``; ``none`` when no tolerance applies.

    Nested entries (a divergence allowance) are flattened (``allowance.rtol=...``); every
    ``reason`` goes into the parentheses, prefixed by its entry when nested. The entry's key,
    its calibration note and neutral settings are left out (report.json has everything).
    With the check's ``measured``, a scaled atol also shows the bound used
    (``atol=1.000e-05 -> 0.0025 used``), the one the pass/fail was decided on.
    """
    if not tolerance:
        return "none"
    flat = {k: v for k, v in flatten(tolerance).items() if not _quiet_field(k, v)}
    is_reason = [k for k in flat if k.split(".")[-1] == "reason"]
    used = _atol_used(tolerance, measured)
    parts = [f"{k}={format_value(v)}" + (f" -> {format_value(used)} used"
                                         if k == "atol" and used is not None else "")
             for k, v in flat.items() if k not in is_reason]
    text = ", ".join(parts) if parts else "(no values)"
    reasons = [f"{k[:-len('.reason')]}: {flat[k]}" if "." in k else str(flat[k])
               for k in is_reason if flat[k]]
    if with_reason and reasons:
        text += f" ({'; '.join(reasons)})"
    return text



def element_text(element: Any) -> str:
    """One worst element (:meth:`parity.comparison_results.WorstElement.to_dict`) as ``[i, j]
    expected 0.675, actual 0.681 (error 0.0061 = 12x its bound)``; anything else as short JSON."""
    if not isinstance(element, Mapping) or "index" not in element:
        return json.dumps(element, default=str)[:200]

    def short(value: Any) -> str:
        value = plain(value)
        if isinstance(value, Sequence) and len(value) == 2 and not isinstance(value, str):
            return f"{value[0]:.3g}{value[1]:+.3g}j"  # complex stored as [re, im]
        return f"{value:.3g}" if isinstance(value, float) else format_value(value)

    text = (f"{list(element['index'])} expected {short(element.get('expected'))}, actual "
            f"{short(element.get('actual'))}")
    if isinstance(element.get("diff"), float):
        text += f" (error {element['diff']:.2g}"
        excess = element.get("excess")
        text += f" = {excess:.3g}x its bound)" if isinstance(excess, float) else ")"
    return text


def markdown_cell(text: Any) -> str:
    """Markdown table cell: pipes escaped, line breaks flattened."""
    value = text if isinstance(text, str) else format_value(text)
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Markdown table lines: the header, its rule, then one line per row."""
    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return lines
