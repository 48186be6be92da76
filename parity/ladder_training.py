"""The checks of the training ladder stages, L3-L5, from the backends' outputs (framework-free).

:mod:`parity.run_checks` calls these for each backend against the baseline: ``level3_checks``
(loss, gradients per layer), ``level4_checks`` (k training steps, against the baseline's own
noise floor, :func:`within_noise_floor`) and ``level5_same_weights`` (the baseline's trained
weights through the other pipeline); and for every backend, the baseline included,
``adam_step_check`` (its one Adam step against Keras's rule applied to its own gradients,
:mod:`parity.oracle.optim`). ``pooled_weights`` judges weights as one check over the network
(L3 and L4). A stage a backend did not produce becomes an ``error`` check
(:func:`parity.ladder.missing_check`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.config import TrainConfig
from parity.jobs import l4_noise_reruns
from parity.judge import Judge
from parity.ladder import PoolRouting, missing_check
from parity.oracle.optim import adam_first_step
from parity.results import Check
from parity.runner import BackendOutcome

__all__ = ["adam_step_check", "level3_checks", "level4_checks", "level5_same_weights",
           "pooled_weights", "within_noise_floor"]


def _paired(level: str, task: str, backend: str, baseline: str,
            outcomes: Mapping[str, BackendOutcome], outputs: Mapping[str, Any]
            ) -> tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray], list[Check]]:
    """Both backends' outputs of ``task``, or an error check naming the one that has none."""
    ours = outputs[backend].get(task, {})
    base = outputs[baseline].get(task, {})
    if ours and base:
        return ours, base, []
    failed = backend if not ours else baseline
    return ours, base, [missing_check(level, task, backend, baseline, outcomes[failed], task)]


_ENCODER_BLOCK = re.compile(r"^encoder\.block(\d+)\.")


def level3_checks(judge: Judge, backend: str, baseline: str,
                  outcomes: Mapping[str, BackendOutcome], outputs: Mapping[str, Any], *,
                  routing: PoolRouting | None = None) -> list[Check]:
    """L3: loss and gradients (per layer scale), against the baseline.

    The weights after the one Adam step are not compared between the backends: Adam turns
    float32 noise in a gradient near zero into a step of up to +-lr, so they differ wherever the
    gradients do by rounding. Each backend's step is judged instead against Keras's rule applied
    to its own gradients (:func:`adam_step_check`); the gradients are compared here.

    A gradient that fails its bound passes when the backends differ by at most the tolerance's
    ``noise_factor`` times the baseline's own spread from jittered weights
    (:func:`within_noise_floor`, RMS over the array; the ratio is recorded).
    ``routing`` (:func:`parity.ladder.pool_routing`): when max-pool winners differ between the backends only
    where float64 has a tie within L2's tolerance, the gradients of the encoder layers that feed
    the deepest such pool (blocks ``0..i``: backpropagation reaches them through the flipped
    window) are judged as ``grad_tie_routed``; any other routing difference is named in the
    messages of failing gradient checks.
    """
    ours, base, missing = _paired("L3", "loss_and_grads", backend, baseline, outcomes, outputs)
    if missing:
        return missing
    checks = [judge.compare(level="L3", stage="loss", quantity="loss", backend=backend,
                            reference=baseline, expected=base["loss"], actual=ours["loss"])]
    # The baseline's own gradients from weights jittered by 1e-7: how far float32 rounding alone
    # moves them on this batch (large where the loss gradient cancels, e.g. at high photon
    # counts, where 1 - k/lambda is a small difference of numbers near 1).
    noise = outputs[baseline].get("loss_and_grads_noise", {})
    grads = sorted(k for k in base if k.startswith("grad/"))
    # A bias gradient sums over every pixel and cancels down far below its terms, so float32
    # rounding is judged against the largest gradient of its layer, kernel and bias together
    # (``group_max_abs``; the decoder head's bias gradient is ~1e-3 of its kernel's).
    layer_max: dict[str, float] = {}
    for key in grads:
        layer = key.rsplit(".", 1)[0]
        values = np.asarray(base[key], dtype=np.float64)
        top = float(np.max(np.abs(values), initial=0.0)) if np.isfinite(values).all() \
            else float("nan")
        layer_max[layer] = max(layer_max.get(layer, 0.0), top)
    for key in grads:
        group = layer_max[key.rsplit(".", 1)[0]]
        name = key.split("/", 1)[1]
        if key not in ours:
            checks.append(Check("L3", "grad", name, backend, baseline, "fail",
                                message=f"{backend} did not return {key}"))
            continue
        block = _ENCODER_BLOCK.match(name)
        tie_routed = (routing is not None and routing.rounding_only and block is not None
                      and int(block.group(1)) <= (routing.deepest or 0))
        check = judge.compare(level="L3", stage="grad_tie_routed" if tie_routed else "grad",
                              quantity=name, backend=backend, reference=baseline,
                              expected=base[key], actual=ours[key],
                              group_max_abs=group if np.isfinite(group) else None)
        if key in noise and np.shape(noise[key]) == np.shape(base[key]) == np.shape(ours[key]):
            check = within_noise_floor(
                judge, check, np.array([_rms(_deviation(ours[key], base[key]))]),
                np.array([_rms(_deviation(noise[key], base[key]))]))
        if routing is not None and routing.deepest is not None and (
                tie_routed or check.verdict == "fail"):
            note = routing.describe() + (
                ": within L2's tolerance of a float64 tie, so float32 rounding routes this "
                "layer's gradient through other pixels" if routing.rounding_only else "")
            check = dataclasses.replace(
                check, message=f"{check.message}; {note}" if check.message else note)
        checks.append(check)
    return checks


def adam_step_check(judge: Judge, backend: str, outcome: BackendOutcome,
                    outputs: Mapping[str, Any], initial_weights: Mapping[str, np.ndarray],
                    train: TrainConfig) -> list[Check]:
    """L3: ``backend``'s weights after its one Adam step (``stepped/<name>``) against Keras's
    Adam rule applied in float64 to the same starting weights and the backend's OWN gradients
    (``grad/<name>``, :func:`parity.oracle.optim.adam_first_step`), all arrays pooled.

    Exact up to float32 arithmetic whatever the gradients are, so a wrong epsilon (or its
    placement), learning rate, beta or update rule shows on any backend, the baseline included,
    while the gradients themselves are compared between the backends (:func:`level3_checks`).
    The atol scales with the largest update of the network (``group_max_abs``: ~lr).
    """
    ours = outputs[backend].get("loss_and_grads", {})
    if not ours:
        return [missing_check("L3", "adam_step", backend, "oracle", outcome, "loss_and_grads")]
    names = sorted(initial_weights)
    misshapen = [f"grad/{n}" for n in names
                 if np.shape(ours.get(f"grad/{n}")) != np.shape(initial_weights[n])]
    if misshapen:
        return [Check("L3", "adam_step", key.split("/", 1)[1], backend, "oracle", "fail",
                      message=f"{backend} returned {key} with shape "
                              f"{np.shape(ours[key]) if key in ours else None}; expected "
                              f"{np.shape(initial_weights[key.split('/', 1)[1]])}")
                for key in misshapen]
    stepped = adam_first_step(initial_weights, {n: ours[f"grad/{n}"] for n in names}, train)
    updates = np.concatenate([np.ravel(stepped[n] - np.asarray(initial_weights[n], np.float64))
                              for n in names])
    largest = float(np.max(np.abs(updates[np.isfinite(updates)]), initial=0.0))
    return pooled_weights(judge, "L3", "adam_step", backend, "oracle",
                          {f"stepped/{n}": stepped[n] for n in names}, ours,
                          prefix="stepped/", group_max_abs=largest)


def _locate_pooled(measured: Mapping[str, Any], keys: list[str],
                   arrays: Mapping[str, np.ndarray]) -> str:
    """``"pooled element [i] is <key>[j, k, ...]"`` for the judge's first listed worst element
    (an index into the concatenation of the flattened ``arrays[keys]``), or ``""``."""
    try:
        flat = int(measured["worst"][0]["index"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return ""
    ends = np.cumsum([np.size(arrays[k]) for k in keys])
    slot = int(np.searchsorted(ends, flat, side="right"))
    if not 0 <= flat < int(ends[-1]):
        return ""
    start = int(ends[slot - 1]) if slot else 0
    local = np.unravel_index(flat - start, np.shape(arrays[keys[slot]]))
    return (f"pooled element [{flat}] is {keys[slot]}"
            f"[{', '.join(str(int(i)) for i in local)}]")


def pooled_weights(judge: Judge, level: str, stage: str, backend: str, baseline: str,
                   base: Mapping[str, np.ndarray], ours: Mapping[str, np.ndarray], *,
                   prefix: str | None = None,
                   group_max_abs: float | None = None) -> list[Check]:
    """Weights after Adam steps (``<prefix><name>`` arrays, ``prefix`` ``<stage>/`` unless given)
    as ONE check over the network; ``group_max_abs``: the scale of a ``group_max_abs`` tolerance.

    Adam turns float noise in a ~0 gradient into a full step of +-lr, so a handful of elements of
    the whole network may differ (the tolerance's ``max_fraction``); judged per array, one such
    element of a 32-element bias would already be 3 %. A missing or reshaped array fails on its
    own; the message of the pooled check names the worst array.
    """
    prefix = prefix or f"{stage}/"
    keys = sorted(k for k in base if k.startswith(prefix))
    missing = [k for k in keys if k not in ours or np.shape(ours[k]) != np.shape(base[k])]
    checks = [Check(level, stage, key.split("/", 1)[1], backend, baseline, "fail",
                    message=f"{backend} returned {key} with shape "
                            f"{np.shape(ours[key]) if key in ours else None}; expected "
                            f"{np.shape(base[key])}")
              for key in missing]
    if missing or not keys:
        return checks
    expected = np.concatenate([np.ravel(base[k]) for k in keys])
    actual = np.concatenate([np.ravel(ours[k]) for k in keys])
    check = judge.compare(level=level, stage=stage, quantity="all", backend=backend,
                          reference=baseline, expected=expected, actual=actual,
                          group_max_abs=group_max_abs)
    worst = max(keys, key=lambda k: float(np.max(np.abs(
        np.asarray(ours[k], np.float64) - np.asarray(base[k], np.float64)), initial=0.0)))
    note = f"all {len(keys)} arrays pooled ({expected.size} elements); worst array {worst}"
    located = _locate_pooled(check.measured, keys, base)
    if located:
        note += f"; {located}"
    checks.append(dataclasses.replace(
        check, message=f"{check.message}; {note}" if check.message else note))
    return checks


def level4_checks(judge: Judge, backend: str, baseline: str,
                  outcomes: Mapping[str, BackendOutcome],
                  outputs: Mapping[str, Any]) -> list[Check]:
    """L4: loss curve and weights after k steps, each against the baseline's own noise floor
    (the largest spread of its reruns from jittered weights, :data:`parity.inputs.L4_NOISE_RERUNS`)."""
    ours, base, missing = _paired("L4", "train_steps", backend, baseline, outcomes, outputs)
    if missing:
        return missing
    reruns = [outputs[baseline][name] for name, _ in l4_noise_reruns()
              if name in outputs[baseline]]
    losses = judge.compare(level="L4", stage="loss_curve", quantity="losses", backend=backend,
                           reference=baseline, expected=base["losses"], actual=ours["losses"])
    spreads = [_deviation(r["losses"], base["losses"]) for r in reruns
               if np.shape(r.get("losses")) == np.shape(base["losses"])]
    if spreads:  # the floor: the largest spread of any rerun, at least one float32 ulp
        ulp = np.spacing(np.abs(np.asarray(base["losses"], np.float32))).astype(np.float64)
        losses = within_noise_floor(judge, losses, _deviation(ours["losses"], base["losses"]),
                                    np.maximum(np.max(spreads, axis=0), ulp))
    checks = [losses]
    keys = sorted(k for k in base if k.startswith("weights/"))
    for check in pooled_weights(judge, "L4", "weights", backend, baseline, base, ours):
        usable = [r for r in reruns if keys and all(k in r for k in keys)]
        if check.quantity == "all" and usable:
            flat_base = _flat(base, keys)
            check = within_noise_floor(
                judge, check, np.array([_rms(_flat(ours, keys) - flat_base)]),
                np.array([max(_rms(_flat(r, keys) - flat_base) for r in usable)]))
        checks.append(check)
    return checks


def _flat(source: Mapping[str, Any], keys: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(source[k], np.float64)) for k in keys])


def _deviation(a: Any, b: Any) -> np.ndarray:
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values.astype(np.float64))))) if values.size else 0.0


def within_noise_floor(judge: Judge, check: Check, cross: np.ndarray,
                       floor: np.ndarray) -> Check:
    """Turn a failed chaotic-stage check into a pass when the backends differ by at most the
    tolerance's ``noise_factor`` times the baseline's own noise floor (same run, weights jittered
    by one part in 1e7); the measured ratio is recorded either way."""
    try:
        factor = judge.table.lookup(level=check.level, stage=check.stage, quantity=check.quantity,
                                    dtype=judge.dtype, device=judge.device).noise_factor
    except KeyError:
        return check
    if factor is None or check.verdict != "fail":
        return check
    # A huge spread over a zero floor overflows to inf: that is the ratio (a fail), not a
    # warning for the console.
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = float(np.max(cross / np.maximum(floor, np.finfo(np.float64).tiny)))
    measured = {**check.measured, "noise_floor_ratio": ratio, "noise_factor": factor}
    if np.all(np.isfinite(cross)) and ratio <= factor:
        return dataclasses.replace(check, verdict="pass", measured=measured, message=(
            f"within the noise floor: {ratio:.2g}x the baseline's own spread from weights "
            f"jittered by 1e-7 (limit {factor:g}x); the elementwise bound alone failed: "
            f"{check.message}"))
    return dataclasses.replace(check, measured=measured, message=(
        f"{check.message}; {ratio:.2g}x the baseline's own noise floor (limit {factor:g}x)"))


def level5_same_weights(judge: Judge, backend: str, baseline: str,
                        outcomes: Mapping[str, BackendOutcome], outputs: Mapping[str, Any],
                        evidence: dict[str, np.ndarray]) -> list[Check]:
    """L5 same weights: the baseline's trained weights through ``backend``'s inference and
    stitching give the baseline's ``reconstructed_obj``, ``recon_amp`` and ``recon_phase``."""
    ours = outputs[backend].get("baseline_weights", {})
    base = outputs[baseline].get("train", {})
    if not base:
        return [missing_check("L5", "same_weights", backend, baseline, outcomes[baseline], "train")]
    if not ours:
        return [missing_check("L5", "same_weights", backend, baseline, outcomes[backend],
                              "baseline_weights")]
    checks = [judge.exact(level="L5", stage="same_weights", quantity="origin_px",
                          backend=backend, reference=baseline,
                          expected=np.asarray(base["origin_px"]).tolist(),
                          actual=np.asarray(ours["origin_px"]).tolist())]
    expected_obj, actual_obj = base["reconstructed_obj"], ours["reconstructed_obj"]
    evidence[f"{backend}/same_weights/reconstructed_obj"] = actual_obj
    for key, exp, act in (
        ("reconstructed_obj", expected_obj, actual_obj),
        ("recon_amp", np.abs(expected_obj), np.abs(actual_obj)),
        ("recon_phase", _masked_phase(expected_obj), _masked_phase(actual_obj, expected_obj)),
    ):
        checks.append(judge.compare(level="L5", stage="same_weights", quantity=key,
                                    backend=backend, reference=baseline, expected=exp,
                                    actual=act))
    return checks


def _masked_phase(obj: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Phase where the amplitude is meaningful (>= 5 % of max), 0 elsewhere; wrap-aligned to
    ``reference`` so that a +-pi wrap does not count as an error."""
    ref = obj if reference is None else reference
    mask = np.abs(ref) >= 0.05 * np.abs(ref).max()
    phase = np.angle(obj)
    if reference is not None:
        phase = np.angle(reference) + np.angle(obj * np.conj(reference))
    return np.where(mask, phase, 0.0)
