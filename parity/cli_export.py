"""``parity export RUN DST``: a run's reconstruction as a ptychodus product.

RUN is named as ``parity show`` and ``parity diff`` name runs
(:func:`parity.report.runs.resolve_run`); the work is :func:`parity.io.export.export_reconstruction`.
"""

from __future__ import annotations

import argparse
from typing import Any

from parity.cli_exit_codes import EXIT_OK
from parity.cli_options import DEFAULT_REPORTS, check_positive, output_file

__all__ = ["add_export_command"]

#: The geometry options, as (flag, ``argparse`` destination).
_GEOMETRY_OPTIONS = (("--pixel-size-m", "pixel_size_m"),
                     ("--detector-distance-m", "detector_distance_m"),
                     ("--photon-energy-ev", "photon_energy_ev"))


def add_export_command(sub: Any) -> None:
    """Register ``parity export``."""
    parser = sub.add_parser(
        "export", help="write a run's reconstruction as a ptychodus product",
        description="Write one backend's stitched reconstruction of a run (evidence.npz, from "
                    "L5) as a ptychodus product, with the probe and scan positions of the "
                    "run's container (rebuilt from its built-in case or read from the file it "
                    "read, and checked against the run's data hash) in the product's metres "
                    "frame. Exit 0; 2 for an unknown, ambiguous or damaged run, a run without "
                    "reconstructions, an unknown backend, a bad DST, or missing geometry.")
    parser.add_argument("run", help="a bundle path; a bundle name under --out; a unique prefix "
                                    "of one (e.g. its stamp); 'latest' or -N")
    parser.add_argument("dst", help="file to write (in an existing directory): .h5/.hdf5/.hdf "
                                    "-> product HDF5; .npz -> product NPZ")
    parser.add_argument("--backend", default=None,
                        help="whose reconstruction (default: the run's last backend, the port)")
    parser.add_argument("--out", default=str(DEFAULT_REPORTS),
                        help=f"reports root holding the run bundles (default: {DEFAULT_REPORTS})")
    parser.add_argument("--to", choices=("product-h5", "product-npz"), default=None,
                        help="output kind when the suffix is ambiguous (it must still match)")
    parser.add_argument("--container", default=None,
                        help="the container NPZ the run read, when it is neither a built-in "
                             "case nor at the path the run recorded (checked by content hash)")
    parser.add_argument("--pixel-size-m", type=float, default=None,
                        help="object pixel size in metres (> 0), if the run's container lacks it")
    parser.add_argument("--detector-distance-m", type=float, default=None,
                        help="sample-detector distance in metres (> 0), if the container lacks it")
    parser.add_argument("--photon-energy-ev", type=float, default=None,
                        help="photon energy in eV (> 0), if the container lacks it")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing DST (default: refuse)")
    parser.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    """``parity export RUN DST``: prints the path, backend and shape written, then what the
    product does not carry. Every option is checked before the run's container is rebuilt."""
    from pathlib import Path

    from parity.io.export import export_reconstruction
    from parity.report.runs import resolve_run

    check_positive((option, getattr(args, dest)) for option, dest in _GEOMETRY_OPTIONS)
    dst = output_file(args.dst, option="DST")
    bundle = resolve_run(Path(args.out), args.run)
    done = export_reconstruction(
        bundle, dst, backend=args.backend, to=args.to, container_path=args.container,
        pixel_size_m=args.pixel_size_m, detector_distance_m=args.detector_distance_m,
        photon_energy_eV=args.photon_energy_ev, overwrite=args.force, force_option="--force")
    height, width = done.shape
    print(f"wrote {done.path} ({done.kind}): {done.backend} reconstruction of {bundle.name}, "
          f"object {height} x {width} px; probe and positions from {done.container_source}")
    if done.not_carried:
        print(f"not carried: {'; '.join(done.not_carried)}")
    return EXIT_OK
