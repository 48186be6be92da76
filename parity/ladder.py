"""The checks of the exact and forward ladder stages, L0-L2, from the backends' outputs
(framework-free), and the helpers every stage shares.

:func:`parity.engine.run_parity` runs the jobs and :mod:`parity.run_checks` calls these:
``level0_checks`` (effective config and output layouts, exact), ``compare_stage`` (L1 physics
and L2 network against the oracle or the baseline), ``pool_input_checks`` (L2 encoder pool
inputs) and ``pool_routing`` (where two backends' max-pools chose different winners, which the
L3 gradient checks of :mod:`parity.ladder_training` read). A stage a backend did not produce
becomes an ``error`` check naming the task and its reason (``missing_check``), or ``skipped``
when the adapter declares it unsupported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig
from parity.contract import (
    NETWORK_OUTPUT_KEYS,
    PHYSICS_OUTPUT_KEYS,
    POOL_INPUT_PREFIX,
    pool_input_keys,
)
from parity.judge import Judge
from parity.oracle.network import pool_windows_2x2
from parity.results import Check
from parity.runner import BackendOutcome

__all__ = ["PoolRouting", "compare_stage", "level0_checks", "missing_check", "pool_input_checks",
           "pool_routing"]


def missing_check(level: str, stage: str, backend: str, reference: str,
                  outcome: BackendOutcome, task: str) -> Check:
    """The check for a stage ``task`` produced nothing for: ``error`` with the task's reason, or
    ``skipped`` when the task was not run because the adapter does not list its hook in
    ``Adapter.capabilities`` (task status ``unsupported``; the backend's run is still
    incomplete, so the run cannot pass)."""
    record = outcome.manifest.get("tasks", {}).get(task, {})
    reason = record.get("error") or outcome.message or f"task {task} produced no output"
    unsupported = record.get("status") == "unsupported"
    # Name the backend whose task failed (it may be the reference, not the one under test).
    return Check(level, stage, "*", backend, reference, "skipped" if unsupported else "error",
                 message=f"{outcome.backend} {task}: {reason}"[:500])


def compare_stage(judge: Judge, level: str, backend: str, outcome: BackendOutcome, task: str,
                  actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
                  keys: tuple[str, ...], reference: str, *,
                  stage_prefix: str = "",
                  reference_outcome: BackendOutcome | None = None) -> list[Check]:
    """One check per output ``key`` of ``task`` (L1 physics, L2 network), ``actual`` against
    ``expected`` with the tolerance of its stage; a missing output fails naming it."""
    if not actual:
        return [missing_check(level, f"{stage_prefix}{task}", backend, reference, outcome, task)]
    if not expected and reference_outcome is not None:
        # The reference backend produced nothing: say so, rather than silently emit no check.
        return [missing_check(level, f"{stage_prefix}{task}", backend, reference,
                              reference_outcome, task)]
    checks = []
    for key in keys:
        if key not in expected:
            continue
        if key not in actual:
            checks.append(Check(level, f"{stage_prefix}{key}", key, backend, reference, "fail",
                                message=f"{backend} did not return {key!r}"))
            continue
        checks.append(judge.compare(level=level, stage=f"{stage_prefix}{key}", quantity=key,
                                    backend=backend, reference=reference,
                                    expected=expected[key], actual=actual[key]))
    return checks


def level0_checks(judge: Judge, oracle: Any, model: ModelConfig, train: TrainConfig, backend: str,
                  baseline: str, record: Mapping[str, Any], manifests: Mapping[str, Any],
                  outputs: Mapping[str, Any], expected: Mapping[str, Any]) -> list[Check]:
    """L0: the backend's effective config equals the oracle's; its output layouts (shape, dtype
    kind, no key outside the contract) equal the oracle's, and its output dtypes equal the
    baseline's (``pair.dtype``), exactly. The forward outputs it reads are computed whenever L0
    runs, even without L1 or L2 (:func:`parity.jobs.forward_tasks`)."""
    checks = []
    config = record.get("config")
    if config is None:
        return [Check("L0", "effective_config", "config", backend, "oracle", "error",
                      message=f"{backend} reported no effective config: "
                              f"{record.get('error', 'task missing')}")]
    reference = oracle.effective_config(model, train)
    shared = {k: v for k, v in config.items() if k != "framework"}
    checks.append(judge.exact(level="L0", stage="effective_config", quantity="config",
                              backend=backend, reference="oracle",
                              expected={k: v for k, v in reference.items() if k != "framework"},
                              actual=shared))
    pool_keys = pool_input_keys(model)  # optional outputs: judged when returned
    for task, keys, optional in (("physics", PHYSICS_OUTPUT_KEYS, ()),
                                 ("network", NETWORK_OUTPUT_KEYS, pool_keys)):
        ours = outputs.get(backend, {}).get(task, {})
        ref = expected.get(task, {})
        if not ours or not ref:
            continue
        # Every key the backend returned is listed: one outside the contract (a typo such as
        # "pool_inputs.", a debug array) is "unexpected", not silently ignored.
        wanted = [k for k in (*keys, *(k for k in optional if k in ours)) if k in ref]
        layout_expected = {k: [list(np.shape(ref[k])), np.asarray(ref[k]).dtype.kind]
                           for k in wanted}
        layout_actual = {k: [list(np.shape(v)), np.asarray(v).dtype.kind] for k, v in ours.items()
                         if k in layout_expected or k not in (*keys, *optional)}
        checks.append(judge.exact(level="L0", stage="layout", quantity=task, backend=backend,
                                  reference="oracle", expected=layout_expected,
                                  actual=layout_actual))
        base = outputs.get(baseline, {}).get(task, {})
        if backend != baseline and baseline != oracle.name and base:
            # The oracle computes in float64; the backends exchange float32/complex64. A port
            # that returns another precision than its baseline has changed something: a finding.
            checks.append(judge.exact(
                level="L0", stage="pair.dtype", quantity=task, backend=backend,
                reference=baseline,
                expected={k: str(np.asarray(base[k]).dtype) for k in layout_expected if k in base},
                actual={k: str(np.asarray(ours[k]).dtype) for k in layout_expected if k in ours}))
    return checks


def pool_input_checks(judge: Judge, level: str, backend: str, reference: str,
                      actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], *,
                      stage_prefix: str = "") -> list[Check]:
    """L2: each encoder block's pool input (``parity.contract.pool_input_keys``) against the
    reference, as stage ``<prefix>pool_input`` with the block as quantity. These outputs are
    optional: a key the backend did not return is not judged."""
    checks = []
    for key in sorted(k for k in expected if k.startswith(POOL_INPUT_PREFIX)):
        if key in actual:
            checks.append(judge.compare(level=level, stage=f"{stage_prefix}pool_input",
                                        quantity=key[len(POOL_INPUT_PREFIX):], backend=backend,
                                        reference=reference, expected=expected[key],
                                        actual=actual[key]))
    return checks


@dataclass(frozen=True)
class PoolRouting:
    """Where two backends' encoder max-pools chose different winners on the L2/L3 batch.

    ``flipped`` and ``unexplained`` count, per block (``encoder.block<i>``), the 2x2 windows
    (positive float64 maximum) won by different pixels, and those of them whose two pixels'
    float64 values differ by more than L2's ``pair.pool_input`` tolerance (so rounding cannot
    explain the flip). ``deepest`` is the deepest block index with a flip.
    """

    flipped: dict[str, int]
    unexplained: dict[str, int]

    @property
    def deepest(self) -> int | None:
        """Index of the deepest block with a flipped window, None when no window flipped."""
        blocks = [int(k.rsplit("block", 1)[1]) for k, n in self.flipped.items() if n]
        return max(blocks) if blocks else None

    @property
    def rounding_only(self) -> bool:
        """Some window flipped, and every flip is within L2's tolerance of a float64 tie."""
        return self.deepest is not None and not any(self.unexplained.values())

    def describe(self) -> str:
        """One line for check messages."""
        parts = [f"{block}: {n} window(s)" + (f", {self.unexplained[block]} not a float64 tie"
                                                if self.unexplained[block] else "")
                 for block, n in self.flipped.items() if n]
        return "max-pool winners differ between the backends (" + "; ".join(parts) + ")"


def pool_routing(judge: Judge, ours: Mapping[str, np.ndarray], base: Mapping[str, np.ndarray],
                 oracle: Mapping[str, np.ndarray]) -> PoolRouting | None:
    """Compare the max-pool winners of two backends' pool inputs (L2 outputs, same batch and
    weights as L3), and test each differing window against the float64 oracle's values.

    Returns None when the pool inputs are missing or misshapen (no diagnosis) or when L2's
    ``pair.pool_input`` tolerance is absent.
    """
    keys = sorted(k for k in oracle if k.startswith(POOL_INPUT_PREFIX) and k in ours and k in base)
    try:
        tol = judge.table.lookup(level="L2", stage="pair.pool_input", quantity="*",
                                 dtype=judge.dtype, device=judge.device)
    except KeyError:
        return None
    flipped: dict[str, int] = {}
    unexplained: dict[str, int] = {}
    for key in keys:
        reference = np.asarray(oracle[key], dtype=np.float64)
        if not (np.shape(ours[key]) == np.shape(base[key]) == reference.shape
                and reference.ndim == 4 and reference.shape[2] % 2 == 0
                and reference.shape[3] % 2 == 0):
            return None
        windows = pool_windows_2x2(reference, height_axis=2)
        winner_ours = np.argmax(pool_windows_2x2(np.asarray(ours[key]), height_axis=2), axis=-1)
        winner_base = np.argmax(pool_windows_2x2(np.asarray(base[key]), height_axis=2), axis=-1)
        differ = (winner_ours != winner_base) & (windows.max(axis=-1) > 0)
        value_ours = np.take_along_axis(windows, winner_ours[..., None], axis=-1)[..., 0]
        value_base = np.take_along_axis(windows, winner_base[..., None], axis=-1)[..., 0]
        allowed = (tol.atol * float(np.max(np.abs(reference), initial=0.0))
                   + tol.rtol * np.maximum(np.abs(value_ours), np.abs(value_base)))
        block = key[len(POOL_INPUT_PREFIX):]
        flipped[block] = int(differ.sum())
        unexplained[block] = int((differ & (np.abs(value_ours - value_base) > allowed)).sum())
    return PoolRouting(flipped, unexplained) if keys else None
