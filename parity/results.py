"""Result records of a parity run: checks, backend runs, the run itself. Frozen, JSON-able."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "FIRST_DIVERGENCE_EVIDENCE",
    "INPUT_NOTE_SUFFIXES",
    "LEVELS",
    "VERDICTS",
    "BackendRun",
    "Check",
    "RunResult",
    "default_timeout_s",
    "injection_notice",
    "jsonable",
]

#: Ladder levels, in order.
LEVELS: tuple[str, ...] = ("L0", "L1", "L2", "L3", "L4", "L5")

#: Default wall-clock limit of one backend job, s: ample for a whole ladder with one L5 training
#: on the CPU cases (the default case's jobs take ~150 s side by side). Here, not in the engine,
#: so the command line states it without importing the engine's dependencies.
DEFAULT_TIMEOUT_S = 900.0


def default_timeout_s(seeds: tuple[int, ...] = ()) -> float:
    """:data:`DEFAULT_TIMEOUT_S` once per L5 training a job runs: a multi-seed run (``seeds``)
    trains once per seed in the same job."""
    return DEFAULT_TIMEOUT_S * max(1, len(seeds))

#: Verdicts a check can have. ``known``: failed its tolerance but within a registered divergence
#: allowance; ``skipped``: not run (reason in ``message``); ``error``: could not be evaluated
#: (a backend failed to produce the input).
VERDICTS: tuple[str, ...] = ("pass", "fail", "known", "skipped", "error")

#: Evidence keys (``evidence.npz``) of the arrays behind the run's first divergence, when it is an
#: array comparison: ``(expected, actual)`` exactly as the judge compared them.
FIRST_DIVERGENCE_EVIDENCE: tuple[str, str] = ("first_divergence/expected",
                                              "first_divergence/actual")


def jsonable(value: Any) -> Any:
    """Convert NumPy scalars/arrays, tuples and non-finite floats into JSON-safe values."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: A provenance key naming a note of the input reader (an assumed default, a legacy layout, a
#: converted probe) ends in one of these, or starts with ``legacy_``: each becomes a warning.
INPUT_NOTE_SUFFIXES: tuple[str, ...] = ("_note", "_dropped")


def _is_input_note(key: str) -> bool:
    name = key.rsplit(".", 1)[-1]
    return name.startswith("legacy_") or name.endswith(INPUT_NOTE_SUFFIXES)


def _leaves(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``("a.b", leaf)`` pairs of a nested mapping."""
    found: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        found += _leaves(value, name) if isinstance(value, Mapping) else [(name, value)]
    return found


def _note_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def injection_notice(injections: Mapping[str, str]) -> str | None:
    """The one line that marks a run with injected bugs (backend -> injection name), on the
    console, under the summary's verdict and among its warnings; None when nothing is injected:
    ``SELF-TEST: bug 'x' injected into torch -- not a port result``."""
    if not injections:
        return None
    bugs = ", ".join(f"bug {name!r} injected into {backend}"
                     for backend, name in injections.items())
    return f"SELF-TEST: {bugs} -- not a port result"


@dataclass(frozen=True)
class Check:
    """One comparison on the ladder.

    Attributes
    ----------
    level : str
        One of :data:`LEVELS`.
    stage : str
        Stage name (e.g. ``farfield_amplitude``, ``network.trimmed_obj``, ``grad``).
    quantity : str
        What was compared (e.g. ``amplitude``, ``decoder_amp.head.kernel``).
    backend : str
        The backend under test (``tensorflow``, ``torch``, or ``pair`` for backend vs backend).
    reference : str
        What it was compared against (``oracle``, another backend, ``truth``).
    verdict : str
        One of :data:`VERDICTS`.
    measured : dict
        The numbers (max abs/rel error, fraction out, worst indices, cosine, ...).
    tolerance : dict
        The tolerance entry used (values and its reason), empty when none applies.
    message : str
        One line a reviewer reads.
    """

    level: str
    stage: str
    quantity: str
    backend: str
    reference: str
    verdict: str
    measured: Mapping[str, Any] = field(default_factory=dict)
    tolerance: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"check level {self.level!r}; expected one of {LEVELS}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"check verdict {self.verdict!r}; expected one of {VERDICTS}")

    @property
    def failed(self) -> bool:
        """True when the check is a divergence (``fail``)."""
        return self.verdict == "fail"

    @property
    def name(self) -> str:
        """``level/stage/quantity[backend vs reference]`` - unique within a run."""
        return f"{self.level}/{self.stage}/{self.quantity}[{self.backend} vs {self.reference}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return jsonable({**asdict(self), "name": self.name})


@dataclass(frozen=True)
class BackendRun:
    """How one backend's subprocess went.

    Attributes
    ----------
    backend : str
        Adapter name.
    status : str
        ``ok``, ``partial`` (some tasks failed), ``crashed``, ``timeout``, ``nan``, ``error``.
    seconds : float
        Wall time of the subprocess.
    tasks : dict
        Task name -> ``{"status": "ok"|"error"|"missing", "error": str, "seconds": float}``.
    environment : dict
        What the adapter reported (versions, device, numeric flags).
    log_path : str
        Path of the captured stdout/stderr, relative to the bundle.
    message : str
        One line on what went wrong (empty when ok).
    """

    backend: str
    status: str
    seconds: float = 0.0
    tasks: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)
    log_path: str = ""
    message: str = ""

    @property
    def failed(self) -> bool:
        """True unless the backend ran every task."""
        return self.status != "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return jsonable(asdict(self))


@dataclass(frozen=True)
class RunResult:
    """Everything a parity run concluded (the content of ``report.json``).

    Attributes
    ----------
    case : str
        Case name.
    stamp : str
        UTC start time ``YYYYmmddTHHMMSSZ``.
    levels : tuple[str, ...]
        Levels that were requested.
    backends : tuple[str, ...]
        Adapters compared (first is the baseline).
    checks : tuple[Check, ...]
        Every check, in ladder order.
    backend_runs : tuple[BackendRun, ...]
        One per backend.
    histories : dict
        Backend -> training history (``loss``, ``val_loss``, ``lr`` per epoch).
    metrics : dict
        Backend -> metrics against the truth / data consistency; ``delta`` -> differences.
    config : dict
        Model and training configuration, seeds, device, sizing note.
    provenance : dict
        Versions, git revision, data hash, host, flags.
    warnings : tuple[str, ...]
        E.g. divergence allowances that are no longer needed. Completed on construction with
        what the record itself shows (:meth:`derived_warnings`): injected bugs, notes of the
        input reader, reconstructions that failed against the truth.
    equivalence : dict
        L5 multi-seed mode only (empty otherwise): ``seeds``, the pre-registered ``margins``
        (metric -> margin, alpha, reason) and their ``source``, ``per_seed`` (seed -> the
        metrics record of that seed's trainings, as ``metrics``) and ``tests`` (backend ->
        metric -> TOST result). ``metrics`` then holds the first seed's record.
    """

    case: str
    stamp: str
    levels: tuple[str, ...]
    backends: tuple[str, ...]
    checks: tuple[Check, ...]
    backend_runs: tuple[BackendRun, ...]
    histories: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    equivalence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # every text (summary, report.json, console) lists the same warnings; dict.fromkeys
        # keeps the first of repeats, so a record rebuilt from report.json gains nothing twice
        merged = dict.fromkeys((*self.derived_warnings(), *self.warnings))
        object.__setattr__(self, "warnings", tuple(merged))

    @property
    def self_test_banner(self) -> str | None:
        """``SELF-TEST: bug 'x' injected into torch -- not a port result``; None when the run
        injected no bug (``config["injections"]``: backend -> injection name)."""
        injections = self.config.get("injections") if isinstance(self.config, Mapping) else None
        return injection_notice(injections or {})

    def derived_warnings(self) -> list[str]:
        """Warnings the record itself shows: the self-test banner first, then each note of the
        input reader (:data:`INPUT_NOTE_SUFFIXES`) and the reconstructions that failed against
        the truth (:func:`parity.evaluation.reconstruction_warnings`)."""
        from parity.evaluation import reconstruction_warnings

        banner = self.self_test_banner
        notes = [f"input: {key} = {_note_text(value)}"
                 for key, value in _leaves(self.provenance) if _is_input_note(key)]
        return [*([banner] if banner else []), *notes, *reconstruction_warnings(self.metrics)]

    @property
    def first_divergence(self) -> Check | None:
        """The first failed check in ladder order, or None.

        Without a failed check, the first ``error`` check (a comparison that could not be made:
        no tolerance entry, a metric missing, a reconstruction that cannot be evaluated) takes
        its place: an unevaluated stage proves nothing, so it never lets a run pass. When a
        backend failed to run, its missing outputs are the failure itself (exit 3), not errors
        of their own.
        """
        for wanted in ("fail", "error"):
            if wanted == "error" and self.backend_failed:
                break
            for level in LEVELS:
                for check in self.checks:
                    if check.level == level and check.verdict == wanted:
                        return check
        return None

    @property
    def backend_failed(self) -> bool:
        """True when any backend did not run all its tasks."""
        return any(run.failed for run in self.backend_runs)

    @property
    def exit_code(self) -> int:
        """0 parity holds, 1 divergence beyond tolerance, 3 a backend failed to run.

        A backend failure takes precedence: its missing stages cannot prove parity.
        """
        if self.backend_failed:
            return 3
        if self.first_divergence is not None:
            return 1
        return 0

    @property
    def verdict(self) -> str:
        """``parity``, ``divergence`` or ``backend-failure``."""
        return {0: "parity", 1: "divergence", 3: "backend-failure"}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``report.json``)."""
        first = self.first_divergence
        counts = {v: sum(1 for c in self.checks if c.verdict == v) for v in VERDICTS}
        return jsonable({
            "schema": "ptycho-parity/report/1",
            "case": self.case,
            "stamp": self.stamp,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "first_divergence": first.to_dict() if first else None,
            "levels": list(self.levels),
            "backends": list(self.backends),
            "counts": counts,
            "checks": [c.to_dict() for c in self.checks],
            "backend_runs": [r.to_dict() for r in self.backend_runs],
            "histories": self.histories,
            "metrics": self.metrics,
            "config": self.config,
            "provenance": self.provenance,
            "warnings": list(self.warnings),
            "equivalence": self.equivalence,
        })
