"""The fields of ``report.json`` that listing, showing and diffing read, and their JSON types.

Checked once per bundle (:func:`validate_report`, called by
:func:`parity.report.runs.load_report`), so that a damaged report is named by its field instead
of failing deep inside a listing or a diff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["validate_report"]

_NULL = type(None)

#: The report.json fields read here: name -> (accepted JSON types, required). Others are ignored.
_REPORT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "case": ((str,), True), "stamp": ((str,), True), "verdict": ((str,), True),
    "exit_code": ((int,), True), "first_divergence": ((dict, _NULL), False),
    "backends": ((list,), False), "counts": ((dict,), False), "checks": ((list,), False),
    "backend_runs": ((list,), False), "metrics": ((dict,), False), "config": ((dict,), False),
    "provenance": ((dict,), False),
}
_CHECK_FIELDS = {"name": ((str,), True), "verdict": ((str,), True),
                 "measured": ((dict, _NULL), False)}
_BACKEND_RUN_FIELDS = {"backend": ((str,), True), "status": ((str,), False),
                       "environment": ((dict,), False)}
_DIVERGENCE_FIELDS = {"name": ((str,), True)}


_TYPE_NAMES = {_NULL: "null", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "an object"}


def _json_kind(value: Any) -> str:
    """``exit_code is null``, ``backends is an integer``: a JSON value's kind, for messages."""
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _check_fields(obj: Mapping[str, Any], spec: Mapping[str, tuple[tuple[type, ...], bool]],
                  where: str = "") -> None:
    """ValueError naming the first field of ``obj`` that is missing or of the wrong JSON type."""
    for key, (kinds, required) in spec.items():
        expected = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
        if key not in obj:
            if required:
                raise ValueError(f"{where}{key} is missing, expected {expected}")
            continue
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, kinds):  # JSON true is not an int
            raise ValueError(f"{where}{key} is {_json_kind(value)}, expected {expected}")


def _check_items(report: Mapping[str, Any], key: str,
                 spec: Mapping[str, tuple[tuple[type, ...], bool]]) -> None:
    for index, item in enumerate(report.get(key, [])):
        if not isinstance(item, dict):
            raise ValueError(f"{key}[{index}] is {_json_kind(item)}, expected an object")
        _check_fields(item, spec, f"{key}[{index}].")


def validate_report(report: Any) -> None:
    """Raise ValueError naming the first field of a parsed ``report.json`` that is missing or of
    the wrong JSON type (JSON ``true`` is not an integer); fields not in the schema are ignored."""
    if not isinstance(report, dict):
        raise ValueError(f"holds {_json_kind(report)}, expected a JSON object")
    _check_fields(report, _REPORT_FIELDS)
    if isinstance(report.get("first_divergence"), dict):
        _check_fields(report["first_divergence"], _DIVERGENCE_FIELDS, "first_divergence.")
    for index, backend in enumerate(report.get("backends", [])):
        if not isinstance(backend, str):
            raise ValueError(f"backends[{index}] is {_json_kind(backend)}, expected a string")
    for verdict, count in report.get("counts", {}).items():
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(f"counts.{verdict} is {_json_kind(count)}, expected an integer")
    _check_items(report, "checks", _CHECK_FIELDS)
    _check_items(report, "backend_runs", _BACKEND_RUN_FIELDS)
