"""The sub-commands about what a run takes: ``cases``, ``adapters``, ``fixtures``, ``convert``.

``cases`` and ``adapters`` list the names ``parity run --case`` / ``--backends`` accept;
``fixtures`` writes a built-in case as a container NPZ file (``parity run --container``), and
``convert`` turns a container NPZ into a ptychodus product or back. Both writers check every
option and the output path before building or converting anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from parity.cli_exit_codes import EXIT_OK, UsageError
from parity.cli_options import check_positive, output_file

__all__ = ["cmd_adapters", "cmd_cases", "cmd_convert", "cmd_fixtures"]


def cmd_cases(args: argparse.Namespace) -> int:
    """``parity cases``: list the built-in cases."""
    from fixtures.cases import case_names, get_case

    for name in case_names():
        case = get_case(name)
        print(f"{name:14s} {case.description}")
    return EXIT_OK


def cmd_adapters(args: argparse.Namespace) -> int:
    """``parity adapters``: every registered backend adapter and where it comes from."""
    from parity.registry import adapter_table

    for name, target, source in adapter_table():
        print(f"{name:14s} {target:45s} {source}")
    return EXIT_OK


def cmd_fixtures(args: argparse.Namespace) -> int:
    """``parity fixtures``: list the cases, or write one to an NPZ container file.

    The case name, the seed and the output file are checked before the case is built: the output
    must be a ``.npz`` file name in an existing, writable directory, and an existing file is
    replaced only with ``--force``. ``--output``, ``--seed`` and ``--force`` without ``--write``
    are usage errors (they would be ignored). The file records the seed as given.
    """
    from fixtures.cases import build_case, get_case
    from parity.io.container_npz import write_npz

    if args.write is None:
        given = [option for option, used in (("--output", args.output is not None),
                                             ("--seed", args.seed is not None),
                                             ("--force", args.force)) if used]
        if given:
            verb = "needs" if len(given) == 1 else "need"
            raise UsageError(f"{' and '.join(given)} {verb} --write CASE (without it, fixtures "
                             "only lists the cases)")
        return cmd_cases(args)
    get_case(args.write)  # an unknown case is named before anything else
    seed = 0 if args.seed is None else args.seed
    if seed < 0:
        raise UsageError(f"--seed {seed}: expected an integer >= 0")
    target = output_file(args.output or f"{args.write}.npz", option="--output")
    if target.suffix.lower() != ".npz":
        raise UsageError(f"--output {str(target)!r}: fixtures writes a container NPZ; give a file "
                         "name ending in .npz")
    if target.exists() and not args.force:
        raise UsageError(f"--output {str(target)!r} already exists; choose another name, or pass "
                         "--force to replace it")
    container = build_case(args.write, seed=seed)
    path = write_npz(container, target)
    print(f"wrote {path} ({container.n_patterns} patterns, N={container.N}, "
          f"hash {container.content_hash()[:12]})")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    """``parity convert SRC DST``: container NPZ <-> ptychodus product (HDF5/NPZ).

    The source, the numeric options and the destination are checked before any conversion:
    DST may not be a directory, one of the inputs, or (without ``--force``) an existing file;
    an option the conversion would ignore is refused. Prints the path and the kind of file
    written, and one ``not carried:`` line naming what DST cannot hold.
    """
    from parity.io.convert import check_destination, convert, detect_format

    src = Path(args.src)
    src_kind = detect_format(src)  # a missing, unreadable or unknown source is named first
    check_positive((("--nphotons", args.nphotons), ("--pixel-size-m", args.pixel_size_m),
                    ("--detector-distance-m", args.detector_distance_m),
                    ("--photon-energy-ev", args.photon_energy_ev)))
    dst = output_file(args.dst, option="DST")
    inputs = [src] if args.diffraction is None else [src, Path(args.diffraction)]
    check_destination(dst, inputs=inputs, overwrite=args.force, force_option="--force")
    not_carried: list[str] = []
    out = convert(src, dst, to=args.to, diffraction=args.diffraction,
                  nphotons=args.nphotons, object_as_truth=args.object_as_truth,
                  pixel_size_m=args.pixel_size_m,
                  detector_distance_m=args.detector_distance_m,
                  photon_energy_eV=args.photon_energy_ev, overwrite=args.force,
                  not_carried=not_carried)
    kind = detect_format(out)
    print(f"wrote {out} ({kind})")
    if not_carried:
        print(f"not carried: {', '.join(not_carried)}")
    if src_kind.startswith("product-") and kind == "product-npz" and args.to is None:
        print("note: a ptychodus product holds no diffraction patterns, so this is a product NPZ; "
              "for a container NPZ pass --diffraction <container NPZ or ptychodus diffraction "
              "file>")
    return EXIT_OK
