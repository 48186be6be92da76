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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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

    def find(self, **key: str) -> Divergence | None:
        """The allowance matching the check (``backend, level, stage, quantity, device``)."""
        for entry in self.entries:
            if entry.matches(**key):
                return entry
        return None


def load_registry(path: str | Path = DEFAULT_REGISTRY) -> DivergenceRegistry:
    """Read a registry TOML file (``[[divergence]]`` tables); a missing file is an empty registry
    only when it is not the project's own (which must exist)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"cannot read divergence registry {path}: {err}") from err
    entries = []
    for i, raw in enumerate(data.get("divergence", [])):
        try:
            entries.append(Divergence(**raw))
        except TypeError as err:
            raise ValueError(f"{path}: divergence entry {i} is malformed: {err}") from err
    return DivergenceRegistry(entries, source=str(path))
