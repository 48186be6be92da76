"""``parity bench``: its options, checked before any work, and the bench bundle it writes.

The measuring is :mod:`parity.bench`; the report (markdown, JSON, targets) is
:mod:`parity.bench_report`.
"""

from __future__ import annotations

import argparse
from typing import Any

from parity import bench
from parity.cli_options import DEFAULT_REPORTS

__all__ = ["add_bench_command"]


def add_bench_command(sub: Any) -> None:
    """Register ``parity bench``."""
    parser = sub.add_parser("bench", help="throughput and memory of each backend, side by side")
    parser.add_argument("--case", default="default",
                        help="built-in case (see `parity cases`) whose geometry and model are "
                             "measured; default: 'default'")
    parser.add_argument("--backends", default="tensorflow,torch",
                        help="comma list of adapters (default: tensorflow,torch); the ratios "
                             "are torch / tensorflow when both run")
    parser.add_argument("--device", default=None,
                        help="device request (cpu, cuda); two, e.g. cpu,cuda, to get their ratios")
    parser.add_argument("--repeats", type=int, default=3,
                        help="at least this many timed training epochs (after a warm-up one) "
                             "and inference calls per sweep point; medians are reported "
                             "(default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="one sweep point (128 groups at the case's N, batch 16), no ladder "
                             "timing")
    parser.add_argument("--out", default=str(DEFAULT_REPORTS),
                        help="reports root; the bundle is named by case and start time "
                             "(default: reports)")
    parser.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    """``parity bench``; exit 0, or 3 when a backend failed on a device (its row says why).

    Every option is checked before any work (a typo in ``--out`` must not cost a finished
    benchmark).
    """
    from parity.bench_report import render_markdown, with_stitch_targets, write_bench_bundle
    from parity.cli_options import check_device, parse_names, reports_dir
    from parity.report.bundle_names import stamp_now

    backends = parse_names(args.backends)
    bench.check_bench_settings(backends=backends, case=args.case, repeats=args.repeats, sweep=None)
    devices = [check_device(d) for d in parse_names(args.device)]
    if len(devices) > 2:
        raise ValueError(f"--device {args.device!r}: give one device, or two to compare "
                         "(e.g. cpu,cuda)")
    if len(devices) == 2 and devices[0].lower() == devices[1].lower():
        raise ValueError(f"--device {args.device!r}: the same device twice; give two different "
                         "devices to compare (e.g. cpu,cuda)")
    root = reports_dir(args.out)
    stamp = stamp_now()  # the bundle is named by when the benchmark started
    if len(devices) < 2:
        figures = bench.run_bench(backends=backends, case=args.case, quick=args.quick,
                            device=devices[0] if devices else None, repeats=args.repeats,
                            ladder=not args.quick)
        records = [figures]
    else:
        by_device = {d: bench.run_bench(backends=backends, case=args.case, quick=args.quick, device=d,
                                  repeats=args.repeats, ladder=not args.quick) for d in devices}
        figures = {"case": args.case, "by_device": by_device,
                   "device_ratios": bench.device_ratios(by_device[devices[0]], by_device[devices[1]])}
        records = list(by_device.values())
    figures = with_stitch_targets(figures)
    text = render_markdown(figures)
    print(text)
    options = {"case": args.case, "backends": list(backends), "devices": devices,
               "repeats": args.repeats, "quick": args.quick, "ladder": not args.quick}
    print(f"bench bundle: {write_bench_bundle(root, stamp, figures, text, options=options)}")
    failed = [f"{name} on {record.get('device') or 'auto'}" for record in records
              for name, result in record["backends"].items() if result.get("status") != "ok"]
    if failed:
        print(f"backend(s) failed: {', '.join(failed)} (see bench.json for their errors)")
        return 3
    return 0
