"""The tolerance table: one version-controlled file (``parity/tolerances.toml``), one entry per
(level, stage, quantity, dtype, device), each with its reason. No comparator has a default.

Lookup matches ``level`` and ``stage`` exactly, ``quantity`` as a glob (``*``, ``?``, ``[...]``),
``dtype`` and ``device`` exactly or ``*``; the most specific entry wins (fewest wildcard characters
in ``quantity``, then an exact dtype, then an exact device). Two equally specific entries that match
the same check are an error naming both (a loose pattern must never silently shadow the entry
meant for a check). A comparison with no entry is an error, never a silent default.

The same file holds the pre-registered margins of the L5 multi-seed equivalence test
(``[[equivalence]]`` entries: ``metric``, ``margin``, ``alpha``, ``reason``), one per metric of
:data:`parity.equivalence.EQUIVALENCE_METRICS`; they are read before any backend runs, so that
they are fixed before the result is known.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from parity.results import LEVELS

__all__ = ["ATOL_SCALES", "DEFAULT_TABLE", "DEVICES", "DTYPES", "AmbiguousToleranceError",
           "EquivalenceMargin", "Tolerance", "ToleranceTable", "check_choice", "check_number",
           "check_strings", "load_table"]

#: The project's tolerance file.
DEFAULT_TABLE = Path(__file__).with_name("tolerances.toml")

#: How a tolerance's ``atol`` is scaled (see :class:`Tolerance`).
ATOL_SCALES: tuple[str, ...] = ("absolute", "max_abs", "group_max_abs")


class AmbiguousToleranceError(KeyError):
    """Two equally specific tolerance entries match one check (see the module docstring)."""


@dataclass(frozen=True)
class Tolerance:
    """One tolerance entry.

    Attributes
    ----------
    level, stage, quantity, dtype, device : str
        Key (``quantity``, ``dtype`` and ``device`` may be ``*``).
    rtol, atol : float
        ``|actual - expected| <= atol_eff + rtol * |expected|`` elementwise.
    atol_scale : str
        ``absolute`` (atol as is), ``max_abs`` (atol times ``max|expected|``) or
        ``group_max_abs`` (atol times the largest magnitude over a group of arrays the caller
        names, e.g. every gradient of the network: a bias gradient is a sum over all pixels whose
        cancellation leaves it far smaller than its terms, so its own magnitude is no scale for
        float32 rounding).
    min_cosine : float or None
        Also require cosine similarity >= this (gradients).
    max_fraction : float
        Fraction of elements allowed outside the elementwise bound (0: none).
    max_relative_rmse : float or None
        A norm-wise bound (gradients): a check that fails the elementwise bound still passes when
        the whole array agrees, ``||actual - expected|| / ||expected|| <=`` this (and the cosine
        bound holds). A ReLU whose input float32 rounding puts on the other side of zero moves
        single elements of a gradient, and most of all a bias gradient, a sum that cancels far
        below its terms; a port bug moves the array as a whole.
    noise_factor : float or None
        Chaotic stages (L4): a check that fails the bound above still passes when the backends
        differ by at most this many times the baseline's own noise floor, measured in the same
        run (the baseline rerun from weights perturbed by one part in 1e7).
    reason : str
        Why this value.
    calibration : str
        How it was measured.
    """

    level: str
    stage: str
    quantity: str
    dtype: str
    device: str
    rtol: float
    atol: float
    reason: str
    atol_scale: str = "absolute"
    min_cosine: float | None = None
    max_fraction: float = 0.0
    calibration: str = ""
    noise_factor: float | None = None
    max_relative_rmse: float | None = None

    def __post_init__(self) -> None:
        where = f"tolerance {self.key}"
        check_strings(self, ("level", "stage", "quantity", "dtype", "device", "reason",
                             "atol_scale", "calibration"), where=where)
        check_choice(self, "level", LEVELS, where=where)
        check_choice(self, "dtype", DTYPES, where=where)
        check_choice(self, "device", DEVICES, where=where)
        check_number(self, "rtol", where=where, low=0.0)
        check_number(self, "atol", where=where, low=0.0)
        check_number(self, "max_fraction", where=where, low=0.0, high=1.0, high_open=True)
        if self.min_cosine is not None:
            check_number(self, "min_cosine", where=where, low=-1.0, high=1.0)
        if self.noise_factor is not None:
            check_number(self, "noise_factor", where=where, low=1.0)
        if self.max_relative_rmse is not None:
            check_number(self, "max_relative_rmse", where=where, low=0.0, high=1.0,
                         high_open=True)
        if self.atol_scale not in ATOL_SCALES:
            raise ValueError(f"tolerance {self.key}: atol_scale {self.atol_scale!r}; expected "
                             f"one of {', '.join(ATOL_SCALES)}")
        if not self.reason.strip():
            raise ValueError(f"tolerance {self.key} has no reason")

    @property
    def key(self) -> str:
        """``level/stage/quantity/dtype/device``."""
        return f"{self.level}/{self.stage}/{self.quantity}/{self.dtype}/{self.device}"

    def effective_atol(self, max_abs_expected: float) -> float:
        """``atol`` in absolute units for this max magnitude (of the array or of its group)."""
        return self.atol if self.atol_scale == "absolute" else self.atol * max_abs_expected

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (printed next to each measured value in reports)."""
        return asdict(self)


#: Device kinds a tolerance entry or divergence allowance may name (``*``: any); the judge
#: compares on ``cpu`` or ``cuda``.
DEVICES: tuple[str, ...] = ("*", "cpu", "cuda")

#: Working precisions a tolerance entry may name (``*``: any); the judge keys its lookups by the
#: backends' precision (``float32``), so a misspelt ``flaot32`` would match no check.
DTYPES: tuple[str, ...] = ("*", "float16", "bfloat16", "float32", "float64")


def check_choice(entry: Any, name: str, choices: tuple[str, ...], *, where: str) -> None:
    """ValueError naming ``where``, the field and the choices unless ``entry.<name>`` is one of
    ``choices``: an entry keyed by a misspelt level or device would silently match nothing."""
    value = getattr(entry, name)
    if value not in choices:
        raise ValueError(f"{where}: {name}={value!r}; expected one of {', '.join(choices)}")


def check_strings(entry: Any, names: tuple[str, ...], *, where: str) -> None:
    """ValueError naming ``where`` and the field unless every ``entry.<name>`` is a string."""
    for name in names:
        if not isinstance(getattr(entry, name), str):
            raise ValueError(f"{where}: {name}={getattr(entry, name)!r}; expected a string")


def check_number(entry: Any, name: str, *, where: str, low: float, high: float = math.inf,
                 high_open: bool = False) -> None:
    """ValueError naming ``where`` and the field unless ``entry.<name>`` is a finite real number
    in ``[low, high]`` (or ``[low, high)``); TOML ``true`` is not a number. Shared by the
    tolerance entries and the divergence allowances."""
    value = getattr(entry, name)
    ok = (not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
          and low <= value and (value < high if high_open else value <= high))
    if not ok:
        upper = "" if high == math.inf else f", {'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{where}: {name}={value!r}; expected a finite number >= {low:g}{upper}")


@dataclass(frozen=True)
class EquivalenceMargin:
    """The pre-registered margin of one metric's L5 equivalence test (TOST).

    Attributes
    ----------
    metric : str
        Metric name (``ssim_amp``, ``mae_phase``, ``r_factor``, ...).
    margin : float
        Equivalence margin ``delta`` in the metric's units (> 0): backends are equivalent on
        this metric when the ``1 - 2 alpha`` interval of the mean paired difference lies
        inside ``(-delta, +delta)``.
    alpha : float
        Level of each one-sided test, in ``(0, 0.5)``.
    reason : str
        Why this margin.
    calibration : str
        How it was measured (or that it was not yet).
    """

    metric: str
    margin: float
    alpha: float
    reason: str
    calibration: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.margin, bool) or not isinstance(self.margin, int | float) \
                or not (math.isfinite(self.margin) and self.margin > 0):
            raise ValueError(f"equivalence margin of {self.metric}: {self.margin!r}; expected "
                             "a finite number > 0")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) \
                or not 0 < self.alpha < 0.5:
            raise ValueError(f"equivalence alpha of {self.metric}: {self.alpha!r}; expected a "
                             "number in (0, 0.5)")
        if not self.reason.strip():
            raise ValueError(f"equivalence margin of {self.metric} has no reason")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded in reports next to each test)."""
        return asdict(self)


class ToleranceTable:
    """Entries of one tolerance file, with lookup.

    Parameters
    ----------
    entries : list of Tolerance
        Elementwise tolerance entries.
    source : str
        Where they came from (named in errors and reports).
    margins : mapping, optional
        Metric -> :class:`EquivalenceMargin` (the L5 multi-seed equivalence margins).
    """

    def __init__(self, entries: list[Tolerance], *, source: str = "",
                 margins: Mapping[str, EquivalenceMargin] | None = None) -> None:
        self.entries = entries
        self.source = source
        self.margins: dict[str, EquivalenceMargin] = dict(margins or {})

    def margin(self, metric: str) -> EquivalenceMargin:
        """The pre-registered equivalence margin of ``metric``.

        Raises
        ------
        KeyError
            If the file has no ``[[equivalence]]`` entry for it (the message names the file).
        """
        if metric not in self.margins:
            raise KeyError(f"no equivalence margin for {metric!r} in {self.source}; add an "
                           "[[equivalence]] entry with a reason")
        return self.margins[metric]

    def lookup(self, *, level: str, stage: str, quantity: str, dtype: str,
               device: str) -> Tolerance:
        """The most specific entry for this key.

        Raises
        ------
        KeyError
            If no entry matches (the message names the key and the file);
            :class:`AmbiguousToleranceError` (a ``KeyError``) if the two most specific entries
            are equally specific (the message names both). Either way the check is an ``error``.
        """
        matches = [
            t for t in self.entries
            if t.level == level and t.stage == stage
            and fnmatch.fnmatchcase(quantity, t.quantity)
            and t.dtype in (dtype, "*") and t.device in (device, "*")
        ]
        if not matches:
            raise KeyError(f"no tolerance for {level}/{stage}/{quantity}/{dtype}/{device} in "
                           f"{self.source}; add an entry with a reason")
        ranked = sorted(matches, key=_specificity)  # stable: the file's order breaks no tie
        if len(ranked) > 1 and _specificity(ranked[0]) == _specificity(ranked[1]):
            raise AmbiguousToleranceError(f"{self.source}: tolerance entries {ranked[0].key} and "
                             f"{ranked[1].key} both match {level}/{stage}/{quantity}/{dtype}/"
                             f"{device} and are equally specific; make one more specific")
        return ranked[0]


def _specificity(entry: Tolerance) -> tuple[int, bool, bool]:
    """Lower is more specific: wildcard characters in ``quantity`` (``*``, ``?``, ``[``), then a
    ``*`` dtype, then a ``*`` device."""
    wildcards = sum(entry.quantity.count(c) for c in "*?[")
    return wildcards, entry.dtype == "*", entry.device == "*"


#: Top-level tables a tolerance file may hold.
TABLE_SECTIONS: tuple[str, ...] = ("tolerance", "equivalence")


def load_table(path: str | Path = DEFAULT_TABLE) -> ToleranceTable:
    """Read a tolerance TOML file (``[[tolerance]]`` and ``[[equivalence]]`` tables).

    Raises
    ------
    ValueError
        If the file is not valid TOML, an entry lacks a field (named) or has a bad value, or
        two ``[[equivalence]]`` entries name the same metric.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"cannot read tolerance file {path}: {err}") from err
    unknown = sorted(set(data) - set(TABLE_SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected "
                         f"{', '.join(f'[[{t}]]' for t in TABLE_SECTIONS)}")
    entries = []
    for i, raw in enumerate(data.get("tolerance", []), start=1):
        try:
            entries.append(Tolerance(**raw))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: [[tolerance]] entry {i} (counting from 1) is malformed: "
                             f"{err}") from err
    margins: dict[str, EquivalenceMargin] = {}
    for i, raw in enumerate(data.get("equivalence", []), start=1):
        try:
            margin = EquivalenceMargin(**raw)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: equivalence entry {i} is malformed: {err}") from err
        if margin.metric in margins:
            raise ValueError(f"{path}: equivalence entry {i} repeats metric {margin.metric!r}")
        margins[margin.metric] = margin
    return ToleranceTable(entries, source=str(path), margins=margins)
