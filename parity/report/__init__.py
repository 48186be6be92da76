"""Review bundles of parity runs: writing them atomically, rendering, listing and diffing.

A bundle ``reports/<YYYYmmddTHHMMSSZ>_<case>/`` holds ``report.json`` (the gate),
``summary.md`` (review and CI step summary), ``junit.xml`` (CI test view), ``figures/*.png``,
``evidence.npz``, ``provenance.json`` and a ``COMPLETE`` marker written last. Imports the
standard library, NumPy and (inside the figure functions only) matplotlib.
"""

from parity.report.bundle import BundleWriter, new_bundle_dir
from parity.report.bundle_names import (
    BUNDLE_FILES,
    COMPLETE_MARKER,
    STAGING_PREFIX,
    bundle_name,
    stamp_now,
)
from parity.report.diff import diff_runs
from parity.report.figures import FigureSet, render_figures, write_figures
from parity.report.junit import render_junit
from parity.report.runs import (
    BundleError,
    RunScan,
    RunSummary,
    format_run_list,
    format_scan,
    list_runs,
    load_report,
    resolve_run,
    scan_runs,
    show_run,
)
from parity.report.summary import render_summary

__all__ = [
    "BUNDLE_FILES",
    "COMPLETE_MARKER",
    "STAGING_PREFIX",
    "BundleError",
    "BundleWriter",
    "FigureSet",
    "RunScan",
    "RunSummary",
    "bundle_name",
    "diff_runs",
    "format_run_list",
    "format_scan",
    "list_runs",
    "load_report",
    "new_bundle_dir",
    "render_figures",
    "render_junit",
    "render_summary",
    "resolve_run",
    "scan_runs",
    "show_run",
    "stamp_now",
    "write_figures",
]
