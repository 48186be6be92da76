"""The one place that finds backend adapters: the ``ptycho_parity.adapters`` entry-point group.

Nothing else in the project branches on a framework's name.

Development and tests may add adapters that are not installed, through one environment variable,
:data:`ADAPTERS_ENV`::

    PTYCHO_PARITY_ADAPTERS="faulty=faulty_adapters:RaisingAdapter,twin=mypkg.twin:TwinAdapter"

Each entry is ``name=module:Class``; the module must be importable (e.g. through ``PYTHONPATH``)
and the class must be an :class:`~parity.contract.Adapter` subclass, exactly as for an installed
entry point. The variable is read every time the registry is asked, so both
:func:`available_adapters` and :func:`load_adapter` see it, and so does a backend's worker
subprocess, which inherits the environment.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

from parity.contract import Adapter

__all__ = ["ADAPTERS_ENV", "ENTRY_POINT_GROUP", "adapter_module_problem", "adapter_table",
           "available_adapters", "check_backend_names", "load_adapter"]

#: Entry-point group third parties register their adapters under.
ENTRY_POINT_GROUP = "ptycho_parity.adapters"

#: Environment variable that adds adapters on top of the entry-point group (development, tests):
#: ``name=module:Class[,name2=module2:Class2]``.
ADAPTERS_ENV = "PTYCHO_PARITY_ADAPTERS"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _env_entry_points() -> dict[str, EntryPoint]:
    """Entry points named by :data:`ADAPTERS_ENV` (empty when it is unset or blank).

    Raises
    ------
    ValueError
        If the value is malformed (an entry without ``=``, a bad name or ``module:Class``
        target, a name given twice); the message quotes the variable and the bad entry.
    """
    text = os.environ.get(ADAPTERS_ENV, "")
    if not text.strip():
        return {}
    found: dict[str, EntryPoint] = {}
    for item in text.split(","):
        entry = item.strip()
        name, sep, target = (part.strip() for part in entry.partition("="))
        problem = ""
        if not sep:
            problem = "expected name=module:Class"
        elif not _NAME.fullmatch(name):
            problem = f"adapter name {name!r} must be letters, digits and ._+-"
        elif not _TARGET.fullmatch(target):
            problem = f"target {target!r} must be module:Class (dotted Python names)"
        elif name in found:
            problem = f"adapter {name!r} is named twice"
        if problem:
            raise ValueError(f"{ADAPTERS_ENV}={text!r}: entry {entry!r}: {problem}; expected "
                             f"'name=module:Class[,name2=module2:Class2]'")
        found[name] = EntryPoint(name=name, value=target, group=ENTRY_POINT_GROUP)
    return found


def _entry_points() -> dict[str, EntryPoint]:
    installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    extra = _env_entry_points()
    # An extra adapter must not silently replace an installed one: a report would then say
    # "torch" about code that is not the torch backend.
    clash = sorted(set(extra) & set(installed))
    if clash:
        raise ValueError(f"{ADAPTERS_ENV} names {clash}, already installed through the entry-point "
                         f"group {ENTRY_POINT_GROUP!r}; choose another name")
    return {**installed, **extra}


def available_adapters() -> list[str]:
    """Names of the installed adapters plus those of :data:`ADAPTERS_ENV`, sorted.

    Imports none of them.

    Raises
    ------
    ValueError
        If :data:`ADAPTERS_ENV` is malformed or reuses an installed name.
    """
    return sorted(_entry_points())


def check_backend_names(backends: Sequence[str], *, what: str = "backends") -> tuple[str, ...]:
    """``backends`` as a tuple, checked before any work: at least one, no repeats, all installed.

    Raises
    ------
    ValueError
        Naming ``what`` (e.g. ``--backends``) and the problem; an unknown name gets the list of
        installed adapters.
    """
    names = tuple(backends)
    if not names:
        raise ValueError(f"{what}: no backend named; installed adapters: "
                         f"{', '.join(available_adapters())}")
    repeated = sorted({b for b in names if names.count(b) > 1})
    if repeated:
        raise ValueError(f"{what} {list(names)}: {repeated} named more than once")
    unknown = [b for b in names if b not in available_adapters()]
    if unknown:
        raise ValueError(f"{what}: unknown backend(s) {unknown}; installed adapters: "
                         f"{', '.join(available_adapters())}")
    eps = _entry_points()
    for name in names:
        problem = adapter_module_problem(eps[name])
        if problem:
            raise ValueError(f"{what}: adapter {name!r} -> {eps[name].value}: {problem}")
    return names


def adapter_module_problem(entry: EntryPoint) -> str | None:
    """Why ``entry``'s module cannot be imported by a worker, or None.

    Only the top-level package is looked up (``importlib.util.find_spec``, which imports
    nothing), so the harness never imports an adapter's framework; a worker inherits this
    process's environment (``PYTHONPATH`` included), so what is not found here is not found
    there either.
    """
    top = entry.value.split(":", 1)[0].split(".", 1)[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError) as err:
        return f"module {top!r} cannot be looked up ({err})"
    if found:
        return None
    return (f"no module named {top!r} on this Python's path (set PYTHONPATH to the directory "
            "that holds it, or install its package)")


def adapter_table() -> list[tuple[str, str, str]]:
    """``(name, module:Class, where it comes from)`` of every adapter, sorted by name."""
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    rows = []
    for name, ep in sorted(_entry_points().items()):
        source = f"entry point ({ENTRY_POINT_GROUP})" if name in installed else ADAPTERS_ENV
        problem = adapter_module_problem(ep)
        rows.append((name, ep.value, source + (f"; NOT IMPORTABLE: {problem}" if problem else "")))
    return rows


def load_adapter(name: str, *, device: str | None = None) -> Adapter:
    """Instantiate the adapter registered as ``name``.

    Parameters
    ----------
    name : str
        Entry-point name (or a name from :data:`ADAPTERS_ENV`).
    device : str, optional
        Device request handed to the adapter's constructor.

    Returns
    -------
    Adapter
        A new instance.

    Raises
    ------
    ValueError
        If no adapter of that name is installed (the message lists the installed ones), the entry
        point cannot be imported, or it does not name an :class:`~parity.contract.Adapter`
        subclass; also if :data:`ADAPTERS_ENV` is malformed.
    """
    eps = _entry_points()
    if name not in eps:
        raise ValueError(
            f"unknown backend {name!r}; installed adapters: {', '.join(sorted(eps)) or 'none'} "
            f"(entry-point group {ENTRY_POINT_GROUP!r}, plus {ADAPTERS_ENV})"
        )
    try:
        cls = eps[name].load()
    except (ImportError, AttributeError) as err:
        raise ValueError(f"adapter {name!r} -> {eps[name].value} cannot be loaded: "
                         f"{type(err).__name__}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ValueError(f"entry point {name!r} -> {eps[name].value} is not an Adapter subclass")
    if cls.name and cls.name != name:
        raise ValueError(f"adapter registered as {name!r} -> {eps[name].value} says its name is "
                         f"{cls.name!r}; Adapter.name and the registered name must agree (reports "
                         "use both)")
    return cls(device=device)
