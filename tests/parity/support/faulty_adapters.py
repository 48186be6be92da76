"""Adapters that misbehave on purpose, for the reliability tests of the runner and the engine.

A plain module (not a package, not installed): put ``tests/parity/support`` on ``PYTHONPATH`` and
name the classes in ``PTYCHO_PARITY_ADAPTERS`` (see :data:`FAULTY_ADAPTERS` and
:func:`adapters_env`); worker subprocesses inherit both variables.

Every class is the float64 NumPy oracle (:class:`parity.oracle.adapter.OracleAdapter`, no
framework, cheap) with ONE hook that misbehaves; the class chooses the failure:

========================  ===================  ===========================================
name (registry)           hook                 failure
========================  ===================  ===========================================
``faulty-raise``          ``network_forward``  raises ``RuntimeError``
``faulty-segv``           ``forward_physics``  the process kills itself with ``SIGSEGV``
``faulty-hang``           ``forward_physics``  sleeps :data:`HANG_S` (far past any timeout)
``faulty-exit``           ``forward_physics``  ``sys.exit(0)``: the process ends, status 0
``faulty-oom``            ``network_forward``  raises ``MemoryError``
``faulty-nan``            ``network_forward``  NaN in ``amplitude`` (everything else intact)
``faulty-shape``          ``network_forward``  ``trimmed_obj`` one row short
``faulty-doctored``       ``forward_physics``  ``farfield_amplitude`` scaled by
                                               :data:`DOCTOR_FACTOR` (finite, plausible)
``faulty-tensor``         ``network_forward``  ``amplitude`` is not a NumPy array (stands in
                                               for a framework tensor)
``faulty-none``           ``forward_physics``  returns ``None`` (a forgotten ``return``)
``faulty-chatty``         ``forward_physics``  prints protocol look-alikes and a line with no
                                               newline; ``environment()`` is not JSON-able
``faulty-nocap``          ``network_forward``  not in ``capabilities`` (raises if called)
========================  ===================  ===========================================

Hooks other than the faulty one behave exactly as the oracle, so the tests can check that what the
backend did before failing is kept.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from parity.config import ModelConfig
from parity.oracle.adapter import OracleAdapter

__all__ = [
    "DOCTOR_FACTOR",
    "FAULTY_ADAPTERS",
    "HANG_S",
    "MARKER",
    "MODULE",
    "ChattyAdapter",
    "DoctoredAdapter",
    "ExitingAdapter",
    "HangingAdapter",
    "MemoryErrorAdapter",
    "NaNAdapter",
    "NoCapabilityAdapter",
    "NoneAdapter",
    "RaisingAdapter",
    "SegfaultAdapter",
    "TensorAdapter",
    "WrongShapeAdapter",
    "adapters_env",
]

#: How long the hanging adapter sleeps, s: far past the few-second timeouts the tests use, short
#: enough that a leaked process goes away by itself within minutes.
HANG_S: float = 300.0

#: Factor applied to the far-field amplitude by :class:`DoctoredAdapter`: 5 %, far outside any
#: L1 tolerance (float32-level, ~1e-5) yet a finite, plausible-looking value.
DOCTOR_FACTOR: float = 1.05

#: Text every injected failure carries, so a test can find it in logs and reports.
MARKER: str = "injected fault"


class _Faulty(OracleAdapter):
    """The oracle under another name; subclasses override the one hook that fails."""

    framework: ClassVar[str] = "numpy"


class RaisingAdapter(_Faulty):
    """``network_forward`` raises ``RuntimeError`` (the worker records it; the task is ``error``)."""

    name: ClassVar[str] = "faulty-raise"

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raise instead of computing."""
        raise RuntimeError(f"{MARKER}: {self.name} network_forward raised")


class SegfaultAdapter(_Faulty):
    """``forward_physics`` kills its own process with ``SIGSEGV`` (a hard native crash)."""

    name: ClassVar[str] = "faulty-segv"

    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Print a marker line, then die from SIGSEGV (no Python cleanup runs)."""
        print(f"{MARKER}: {self.name} about to segfault", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(HANG_S)  # not reached: the signal's default action ends the process
        raise RuntimeError("SIGSEGV did not end the process")


class HangingAdapter(_Faulty):
    """``forward_physics`` sleeps :data:`HANG_S` seconds, far past the runner's timeout."""

    name: ClassVar[str] = "faulty-hang"

    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Print a marker line, then block."""
        print(f"{MARKER}: {self.name} hanging in forward_physics", flush=True)
        time.sleep(HANG_S)
        raise RuntimeError(f"{self.name} woke up after {HANG_S} s; the timeout never fired")


class ExitingAdapter(_Faulty):
    """``forward_physics`` ends the worker with ``sys.exit(0)`` halfway through its job."""

    name: ClassVar[str] = "faulty-exit"

    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Print a marker line, then exit with status 0 (what a stray ``exit()`` does)."""
        print(f"{MARKER}: {self.name} calling sys.exit(0)", flush=True)
        sys.exit(0)


class MemoryErrorAdapter(_Faulty):
    """``network_forward`` raises ``MemoryError`` (what an allocation failure raises)."""

    name: ClassVar[str] = "faulty-oom"

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Raise ``MemoryError`` instead of computing."""
        raise MemoryError(f"{MARKER}: {self.name} could not allocate 1 TiB")


class NaNAdapter(_Faulty):
    """``network_forward`` returns a NaN in one element of ``amplitude``."""

    name: ClassVar[str] = "faulty-nan"

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The oracle's outputs with ``amplitude[0, 0, 1, 2] = NaN``."""
        outputs = super().network_forward(config, weights, batch)
        amplitude = np.array(outputs["amplitude"], copy=True)
        amplitude[0, 0, 1, 2] = np.nan
        return {**outputs, "amplitude": amplitude}


class WrongShapeAdapter(_Faulty):
    """``network_forward`` returns ``trimmed_obj`` with its last row cut off."""

    name: ClassVar[str] = "faulty-shape"

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The oracle's outputs with ``trimmed_obj`` shaped ``(B, N - 1, N)``."""
        outputs = super().network_forward(config, weights, batch)
        return {**outputs, "trimmed_obj": np.asarray(outputs["trimmed_obj"])[:, :-1, :]}


class DoctoredAdapter(_Faulty):
    """``forward_physics`` returns ``farfield_amplitude`` times :data:`DOCTOR_FACTOR`."""

    name: ClassVar[str] = "faulty-doctored"

    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The oracle's physics with a wrong (finite) far-field amplitude."""
        outputs = super().forward_physics(config, inputs)
        return {**outputs,
                "farfield_amplitude": np.asarray(outputs["farfield_amplitude"]) * DOCTOR_FACTOR}


class _NotAnArray:
    """What a framework tensor looks like to NumPy here: an object without ``__array__``."""

    def __repr__(self) -> str:
        return "tensor([...], device='cuda:0')"


class TensorAdapter(_Faulty):
    """``network_forward`` returns a non-array object as ``amplitude``."""

    name: ClassVar[str] = "faulty-tensor"

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The oracle's outputs with ``amplitude`` replaced by a non-array object."""
        return {**super().network_forward(config, weights, batch), "amplitude": _NotAnArray()}


class NoneAdapter(_Faulty):
    """``forward_physics`` returns ``None``."""

    name: ClassVar[str] = "faulty-none"

    def forward_physics(self, config: ModelConfig, inputs: Mapping[str, np.ndarray]) -> Any:
        """Compute, then forget to return."""
        super().forward_physics(config, inputs)


class ChattyAdapter(_Faulty):
    """``forward_physics`` prints what could confuse the progress reader; the result is right."""

    name: ClassVar[str] = "faulty-chatty"

    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Protocol look-alikes (a JSON list, a null event), then text with no newline."""
        print("PARITY-PROGRESS [1, 2, 3]")
        print('PARITY-PROGRESS {"event": null, "seconds": null}')
        print("x" * 100_000)  # more than a pipe buffer
        sys.stdout.write(f"{MARKER}: no newline at the end")
        sys.stdout.flush()
        return super().forward_physics(config, inputs)

    def environment(self) -> dict[str, Any]:
        """Not JSON-able (an object value)."""
        return {**super().environment(), "device_handle": object()}


class NoCapabilityAdapter(_Faulty):
    """Does not list ``network_forward`` in ``capabilities``; calling it anyway raises."""

    name: ClassVar[str] = "faulty-nocap"
    capabilities: ClassVar[frozenset[str]] = OracleAdapter.capabilities - {"network_forward"}

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Must never be called: the adapter does not declare it."""
        raise AssertionError(f"{MARKER}: undeclared network_forward was called")


#: Module name under which workers import this file (``tests/parity/support`` on ``PYTHONPATH``).
MODULE: str = "faulty_adapters"

#: Registry name -> ``module:Class`` of every faulty adapter.
FAULTY_ADAPTERS: dict[str, str] = {
    cls.name: f"{MODULE}:{cls.__name__}"
    for cls in (RaisingAdapter, SegfaultAdapter, HangingAdapter, ExitingAdapter,
                MemoryErrorAdapter, NaNAdapter, WrongShapeAdapter, DoctoredAdapter,
                TensorAdapter, NoneAdapter, ChattyAdapter, NoCapabilityAdapter)
}


def adapters_env(names: Any = None) -> str:
    """The ``PTYCHO_PARITY_ADAPTERS`` value registering ``names`` (default: all of them).

    Raises
    ------
    KeyError
        A name that is not in :data:`FAULTY_ADAPTERS` (the message lists them).
    """
    chosen = list(FAULTY_ADAPTERS) if names is None else list(names)
    unknown = [n for n in chosen if n not in FAULTY_ADAPTERS]
    if unknown:
        raise KeyError(f"no faulty adapter named {unknown}; known: {sorted(FAULTY_ADAPTERS)}")
    return ",".join(f"{name}={FAULTY_ADAPTERS[name]}" for name in chosen)
