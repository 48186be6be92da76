"""``junit.xml``: the run as JUnit XML for CI test-report views.

One ``<testsuite>`` per level (``L0`` ... ``L5``), one ``<testcase>`` per check with
``classname = "<level>.<stage>"`` and ``name = "<quantity>[<backend> vs <reference>]"``:
``fail`` -> ``<failure>`` carrying the measured numbers and the tolerance, ``skipped`` ->
``<skipped>``, ``error`` -> ``<error>``, ``known`` -> a passing case whose ``<system-out>`` says
which divergence allowance covered it. A last suite, ``backends``, has one case per backend run;
a backend that did not run every task is an ``<error>`` with the tail of its log.

Only the xunit2 elements CI parsers agree on are used (no ``<properties>`` inside a testcase).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from parity.report.formatting import format_measured, format_tolerance
from parity.report.summary import report_levels
from parity.results import BackendRun, Check, RunResult

__all__ = ["render_junit"]

#: Characters XML 1.0 forbids even escaped (ANSI colour codes in logs contain ``\x1b``).
_ILLEGAL_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_MESSAGE_CHARS = 500  # attribute text; the full text goes in the element body


def _iso_timestamp(stamp: str) -> str:
    """``20240131T235959Z`` -> ``2024-01-31T23:59:59`` (xs:dateTime, what xunit2 expects)."""
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", stamp)
    if match is None:
        return _clean(stamp)
    y, mo, d, h, mi, s = match.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}"


def _clean(text: str) -> str:
    return _ILLEGAL_XML.sub("\ufffd", text)


def _check_text(check: Check) -> str:
    lines = [f"{check.name}: {check.verdict}",
             f"measured: {format_measured(check.measured)}",
             f"tolerance: {format_tolerance(check.tolerance, measured=check.measured)}"]
    if check.message:
        lines.append(f"message: {check.message}")
    return _clean("\n".join(lines))


def _add_outcome(case: ET.Element, tag: str, message: str, body: str, kind: str) -> None:
    element = ET.SubElement(case, tag, {"message": _clean(message)[:_MESSAGE_CHARS],
                                        "type": kind})
    element.text = body


def _check_case(suite: ET.Element, check: Check, *, first: bool = False) -> None:
    case = ET.SubElement(suite, "testcase", {
        "classname": _clean(f"{check.level}.{check.stage}"),
        "name": _clean(f"{check.quantity}[{check.backend} vs {check.reference}]"),
        "time": "0",
    })
    body = _check_text(check)
    bound = format_tolerance(check.tolerance, with_reason=False, measured=check.measured)
    headline = check.message or f"{format_measured(check.measured)} vs tolerance {bound}"
    if first:  # the one to look at first in a CI view
        headline = "FIRST DIVERGENCE: " + headline
    if check.verdict == "fail":
        _add_outcome(case, "failure", headline, body, "divergence")
    elif check.verdict == "error":
        _add_outcome(case, "error", check.message or "check could not be evaluated", body, "error")
    elif check.verdict == "skipped":
        ET.SubElement(case, "skipped", {"message": _clean(check.message or "not run")})
    elif check.verdict == "known":
        ET.SubElement(case, "system-out").text = "known divergence (allowed): " + body


def _log_tail(run: BackendRun, bundle_dir: Path | None, lines: int) -> str:
    if not run.log_path:
        return "(no log recorded)"
    path = Path(run.log_path)
    if not path.is_absolute():
        if bundle_dir is None:
            return f"(log {run.log_path} not read: relative to a bundle, and none was given)"
        path = bundle_dir / path
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log {run.log_path} unreadable: {exc.strerror or exc})"
    tail = text.splitlines()[-lines:]
    return f"last {len(tail)} lines of {run.log_path}:\n" + "\n".join(tail)


def _backend_case(suite: ET.Element, run: BackendRun, bundle_dir: Path | None,
                  log_lines: int) -> None:
    case = ET.SubElement(suite, "testcase", {
        "classname": "backends", "name": _clean(run.backend), "time": f"{run.seconds:.3f}",
    })
    if not run.failed:
        return
    tasks = [f"{name}: {info.get('status', '?')} {info.get('error', '')}".rstrip()
             for name, info in run.tasks.items()
             if isinstance(info, Mapping) and info.get("status", "ok") != "ok"]
    body = "\n".join([f"backend {run.backend}: {run.status}", run.message,
                      *(["tasks not ok:", *tasks] if tasks else []),
                      _log_tail(run, bundle_dir, log_lines)])
    _add_outcome(case, "error", f"{run.status}: {run.message}".rstrip(": "), _clean(body),
                 run.status)


def _tally(suite: ET.Element) -> dict[str, int]:
    cases = suite.findall("testcase")
    counts = {
        "tests": len(cases),
        "failures": sum(1 for c in cases if c.find("failure") is not None),
        "errors": sum(1 for c in cases if c.find("error") is not None),
        "skipped": sum(1 for c in cases if c.find("skipped") is not None),
    }
    for key, value in counts.items():
        suite.set(key, str(value))
    return counts


def render_junit(result: RunResult, *, bundle_dir: Path | None = None,
                 log_tail_lines: int = 40) -> str:
    """JUnit XML text of a run.

    Parameters
    ----------
    result : RunResult
        The run.
    bundle_dir : pathlib.Path, optional
        Directory that ``BackendRun.log_path`` is relative to; the tail of a failed backend's log
        is read from there. Without it relative log paths are not read (the error says so).
    log_tail_lines : int, optional
        Lines of a failed backend's log to include (default 40).

    Returns
    -------
    str
        ``<?xml ...?>`` + ``<testsuites>``; counts of tests, failures, errors and skipped on
        every suite and on the root.
    """
    if log_tail_lines < 0:
        raise ValueError(f"log_tail_lines is {log_tail_lines}; expected >= 0")
    root = ET.Element("testsuites", {"name": _clean(f"ptycho-parity {result.case}")})
    first = result.first_divergence
    stamp = _iso_timestamp(result.stamp)
    for level in report_levels(result):
        suite = ET.SubElement(root, "testsuite", {"name": level, "timestamp": stamp})
        for check in (c for c in result.checks if c.level == level):
            _check_case(suite, check, first=check is first)
    suite = ET.SubElement(root, "testsuite", {"name": "backends", "timestamp": stamp})
    for run in result.backend_runs:
        _backend_case(suite, run, bundle_dir, log_tail_lines)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.findall("testsuite"):
        for key, value in _tally(suite).items():
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
