"""The known-divergence registry (``parity/divergences.toml``).

An entry allows one backend a larger error on one check, with a reason and a reference (a finding,
an upstream issue). Semantics (jax2tf's limitation table, in our words):

* a check that fails its tolerance but stays within a matching allowance is ``known`` (reported,
  not gating);
* a check that fails the allowance too is a divergence (``fail``);
* an allowance whose check now passes the ordinary tolerance produces a WARNING that it is no
  longer needed, so the registry shrinks instead of rotting.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from parity.results import LEVELS
from parity.tolerances import DEVICES, check_choice, check_number, check_strings

__all__ = ["DEFAULT_REGISTRY", "Divergence", "DivergenceRegistry", "load_registry"]

#: The project's registry file.
DEFAULT_REGISTRY = Path(__file__).with_name("divergences.toml")

@dataclass(frozen=True)
class Divergence:
    """One allowance: ``backend`` may exceed the tolerance of ``level/stage/quantity`` up to
    ``rtol``/``atol`` (same semantics as :class:`parity.tolerances.Tolerance`)."""

    id: str
    backend: str
    level: str
    stage: str
    quantity: str
    rtol: float
    atol: float
    reason: str
    reference: str = ""
    device: str = "*"

    def __post_init__(self) -> None:
        where = f"divergence {self.id!r}"
        check_strings(self, ("id", "backend", "level", "stage", "quantity", "reason",
                             "reference", "device"), where=where)
        check_choice(self, "level", LEVELS, where=where)
        check_choice(self, "device", DEVICES, where=where)
        check_number(self, "rtol", where=where, low=0.0)
        check_number(self, "atol", where=where, low=0.0)
        if not self.reason.strip():
            raise ValueError(f"divergence {self.id!r} has no reason (it is shown with every "
                             "check it turns into 'known')")

    def matches(self, *, backend: str, level: str, stage: str, quantity: str,
                device: str) -> bool:
        """True when this allowance covers the check."""
        return (fnmatch.fnmatchcase(backend, self.backend) and self.level == level
                and self.stage == stage and fnmatch.fnmatchcase(quantity, self.quantity)
                and self.device in (device, "*"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class DivergenceRegistry:
    """All allowances of one file."""

    def __init__(self, entries: list[Divergence], *, source: str = "") -> None:
        ids = [e.id for e in entries]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"{source}: duplicated divergence ids {duplicated}")
        self.entries = entries
        self.source = source
        #: Ids of the entries :meth:`find` returned (which allowances this run looked at).
        self.matched: set[str] = set()

    def find(self, **key: str) -> Divergence | None:
        """The allowance matching the check (``backend, level, stage, quantity, device``): the
        first in the file when several match."""
        for entry in self.entries:
            if entry.matches(**key):
                self.matched.add(entry.id)
                return entry
        return None

    def unmatched(self, *, levels: Sequence[str], backends: Sequence[str],
                  device: str) -> list[Divergence]:
        """Entries for a level, backend and device of this run that matched no check: a key
        with a typo, or an allowance for a check that no longer exists (or an L0 check, which
        is exact and never looks at the registry)."""
        return [e for e in self.entries if e.id not in self.matched and e.level in levels
                and any(fnmatch.fnmatchcase(b, e.backend) for b in backends)
                and e.device in (device, "*")]


def load_registry(path: str | Path = DEFAULT_REGISTRY) -> DivergenceRegistry:
    """Read a registry TOML file (``[[divergence]]`` tables); a missing file is an empty registry
    only when it is not the project's own (which must exist)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"cannot read divergence registry {path}: {err}") from err
    unknown = sorted(set(data) - {"divergence"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected [[divergence]]")
    entries = []
    for i, raw in enumerate(data.get("divergence", []), start=1):
        try:
            entries.append(Divergence(**raw))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: [[divergence]] entry {i} (counting from 1) is malformed: "
                             f"{err}") from err
    return DivergenceRegistry(entries, source=str(path))
