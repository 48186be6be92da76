"""The one place that finds backend adapters: the ``ptycho_parity.adapters`` entry-point group.

Nothing else in the project branches on a framework's name.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from parity.contract import Adapter

__all__ = ["ENTRY_POINT_GROUP", "available_adapters", "load_adapter"]

#: Entry-point group third parties register their adapters under.
ENTRY_POINT_GROUP = "ptycho_parity.adapters"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_adapters() -> list[str]:
    """Names of the installed adapters, sorted. Importing none of them."""
    return sorted(_entry_points())


def load_adapter(name: str, *, device: str | None = None) -> Adapter:
    """Instantiate the adapter registered as ``name``.

    Raises
    ------
    ValueError
        If no adapter of that name is installed (the message lists the installed ones), or the
        entry point does not name an :class:`~parity.contract.Adapter` subclass.
    """
    eps = _entry_points()
    if name not in eps:
        raise ValueError(
            f"unknown backend {name!r}; installed adapters: {', '.join(sorted(eps)) or 'none'} "
            f"(entry-point group {ENTRY_POINT_GROUP!r})"
        )
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ValueError(f"entry point {name!r} -> {eps[name].value} is not an Adapter subclass")
    return cls(device=device)
