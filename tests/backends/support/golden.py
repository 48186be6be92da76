"""Golden baselines of one backend, shared by ``tests/backends/{tensorflow,torch}/test_golden.py``.

The parity ladder compares the backends with each other and with the float64 oracle; goldens
compare a backend with its own past, so a new framework version or a refactor that changes what
it computes fails there, on that backend alone, even while both backends still agree. Each
backend's test file runs the ``check_*`` functions below through its adapter; its goldens live
in ``test_golden/<test name>.npz`` next to it and change only with ``--force-regen`` plus a
reviewed diff (docs/backends.md).

Inputs are built from ``parity`` code only (``parity.inputs``, ``parity.architecture``): N=32,
gridsize 2, asymmetric non-integer offsets, a noise-free simulated scan. Every hook runs on the
CPU through the adapter, as the ladder calls it. To stay a few KB, each array is stored as a
summary: a strided sample of its elements plus float64 reductions over everything (L1 norm per
leading index, and for images the |x|^2 centroid), so a change anywhere shows up.

Tolerances (``np.isclose``: ``|obtained - golden| <= atol + rtol * |golden|``) are explicit per
stored key and explained where they are defined, below: 10-20x the float32 rounding difference
measured between the tensorflow and torch goldens of these same inputs, far below what a real
change in behaviour gives. The goldens are bit-identical across fresh processes on one machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from parity.config import ModelConfig, TrainConfig
from parity.container import Container, ContainerMetadata
from parity.contract import NETWORK_OUTPUT_KEYS, PHYSICS_OUTPUT_KEYS, PreparedData, pool_input_keys
from parity.grouping import make_grouping
from parity.inputs import initial_weights, l4_batches, network_batch, physics_inputs
from parity.oracle import physics as oracle
from parity.prepare import prepare

SEED = 20240611
CONFIG = ModelConfig(N=32, gridsize=2, stitch_crop_px=16)
TRAIN = TrainConfig(batch_size=4, validation_fraction=0.25, learning_rate=1e-3, seed=SEED)
STEPS = 2
#: Layers whose gradients and trained weights are stored: first conv, both heads.
LAYERS = ("encoder.block0.conv0.kernel", "decoder_amp.head.kernel", "decoder_amp.head.bias",
          "decoder_phase.head.kernel")

# -- tolerances (each with its reason) -------------------------------------------------------
# Calibration: the same inputs through tensorflow and torch (two frameworks, two kernel
# libraries: a larger change than a version upgrade of one) differ at most by, as a fraction of
# each array's max: physics 1.1e-7, network 8.8e-7, gradients 1.1e-6; weights after 2 steps
# 7.5e-9 absolute (1 ulp); losses 5.7e-7 relative; L1 norms 1.7e-7 relative; centroids 6e-7 px.
# Each golden file passes against the other backend's outputs. The forward and gradient
# tolerances sit 10-20x above those numbers, the others further; still, each of these changes
# fails: offsets moved by 0.01 px or scaled by 1.001, one head kernel scaled by 1.0001, the
# learning rate changed by 1 %.
#: Physics (FFT, bilinear translation, merge, stitch): float32 is within 2.5e-7 of max of the
#: float64 oracle (conftest), so two correct builds differ by <= 5e-7 of max: atol 2e-6 of max.
PHYSICS_TOL = {"rtol": 1e-5, "atol_of_max": 2e-6}
#: Network forward, up to eleven float32 conv layers (within 2.5e-6 of max of the float64 oracle
#: network, conftest): atol 1e-5 of max.
NETWORK_TOL = {"rtol": 1e-5, "atol_of_max": 1e-5}
#: Gradients: the backward pass adds its own accumulation and sums over the batch: 2e-5 of max.
GRAD_TOL = {"rtol": 1e-5, "atol_of_max": 2e-5}
#: Losses (float32 means returned as float64), before and between steps: rtol 1e-5.
LOSS_RTOL = 1e-5
#: After k Adam steps each weight has moved by about k * learning_rate (Adam normalises the
#: step); looser than the forward stages: rtol 1e-5 of the weight plus atol 1e-3 * k * lr (2e-6,
#: a few hundred ulps of a 0.1 weight). A step that flips direction moves a weight by 2 * lr and
#: fails.
WEIGHTS_TOL = {"rtol": 1e-5, "atol": 1e-3 * STEPS * TRAIN.learning_rate}
#: Float64 reductions over a whole float32 array (L1 norms) average the rounding: rtol 1e-5.
#: |x|^2 centroids in pixels: rounding moves them by < 1e-6 px; 1e-4 px still catches a shift of
#: a hundredth of a pixel.
REDUCTION_RTOL = 1e-5
CENTROID_ATOL_PX = 1e-4
#: The inputs are NumPy/SciPy float64 arithmetic cast to float32; NumPy's SIMD sin/exp may differ
#: by an ulp between CPUs, which can flip a float32 rounding: 1e-6 relative and of max.
INPUTS_TOL = {"rtol": 1e-6, "atol_of_max": 1e-6}
SAMPLES = 96


# -- inputs -----------------------------------------------------------------------------------


def _container() -> Container:
    """A noise-free scan of 24 non-integer positions over a smooth 64x64 analytic object."""
    rng = np.random.default_rng(SEED)
    size, N = 64, CONFIG.N
    yy, xx = np.mgrid[0:size, 0:size] / size
    amplitude = 0.75 + 0.2 * np.sin(2 * np.pi * (1.3 * xx + 0.4 * yy)) * np.cos(2 * np.pi * yy)
    phase = 0.8 * np.sin(2 * np.pi * (0.7 * xx - 1.1 * yy)) + 0.3 * xx
    obj = (amplitude * np.exp(1j * phase)).astype(np.complex64)
    positions = rng.uniform(N / 4 + 0.5, size - 1 - N / 4 - 0.5, size=(24, 2))
    k = np.arange(N) - N // 2 + 0.3  # off-centre and elliptical: an axis swap changes the data
    r2 = k[None, :] ** 2 / 1.2 + k[:, None] ** 2
    probe = (np.exp(-r2 / (2 * (N / 10) ** 2)) * np.exp(1j * 0.004 * r2)).astype(np.complex64)
    psi = oracle.exit_wave(probe, oracle.extract_object_patches(obj, positions, N))
    diffraction = 40.0 * oracle.farfield_amplitude(psi) / np.sqrt(np.mean(np.abs(psi) ** 2))
    return Container(diffraction=diffraction.astype(np.float32), positions_px=positions,
                     probe=probe, object_truth=obj,
                     metadata=ContainerMetadata(name="golden", gridsize=CONFIG.gridsize, K=6,
                                                seed=SEED))


def golden_inputs() -> dict[str, Any]:
    """Physics inputs, NumPy-initialised weights, one network batch and the L4 batches."""
    container = _container()
    grouping = make_grouping(container.positions_px, gridsize=CONFIG.gridsize, K=6, seed=SEED)
    data: PreparedData = prepare(container, grouping, CONFIG)
    stacked = l4_batches(data, TRAIN, steps=STEPS, seed=SEED)
    batches = [{"diffraction": stacked["diffraction"][i], "relative_px": stacked["relative_px"][i],
                "probe": stacked["probe"], "intensity_scale": stacked["intensity_scale"]}
               for i in range(STEPS)]
    return {
        "physics": physics_inputs(container, CONFIG, seed=SEED),
        "weights": initial_weights(CONFIG, seed=SEED),
        "batch": network_batch(data, size=4),
        "batches": batches,
    }


# -- summaries and their tolerances -------------------------------------------------------------


def _summary(name: str, value: np.ndarray, *, spatial: bool,
             samples: int = SAMPLES) -> dict[str, np.ndarray]:
    """``name.sample``: about ``samples`` elements at an odd stride (spread over every axis; the
    dtype kept); ``name.l1``: float64 sum of |x| per leading index; with ``spatial``,
    ``name.centroid_px``: the (x, y) centroid of |x|^2 over the last two axes per leading index."""
    array = np.asarray(value)
    flat = array.reshape(-1)
    stride = (flat.size // samples) | 1
    out = {f"{name}.sample": flat[stride // 2::stride][:samples].copy()}
    magnitude = np.abs(array.astype(np.complex128 if array.dtype.kind == "c" else np.float64))
    lead = magnitude.reshape(array.shape[0], -1) if array.ndim > 1 else magnitude[None]
    out[f"{name}.l1"] = lead.sum(axis=1)
    if spatial:
        power = (magnitude**2).reshape(array.shape[0], -1, *array.shape[-2:]).sum(axis=1)
        total = power.sum(axis=(-2, -1))
        ys, xs = np.arange(array.shape[-2]), np.arange(array.shape[-1])
        out[f"{name}.centroid_px"] = np.stack(
            [(power.sum(axis=-2) * xs).sum(-1) / total, (power.sum(axis=-1) * ys).sum(-1) / total],
            axis=-1)
    return out


def _tolerances(summaries: Mapping[str, np.ndarray], maxima: Mapping[str, float],
                stage: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """One explicit tolerance per stored key (none is left to the plugin's default)."""
    tolerances = {}
    for key in summaries:
        name, kind = key.rsplit(".", 1)
        if kind == "sample":
            atol = stage["atol"] if "atol" in stage else stage["atol_of_max"] * maxima[name]
            tolerances[key] = {"rtol": stage["rtol"], "atol": atol}
        elif kind == "l1":
            tolerances[key] = {"rtol": REDUCTION_RTOL, "atol": 0.0}
        elif kind == "centroid_px":
            tolerances[key] = {"rtol": 0.0, "atol": CENTROID_ATOL_PX}
        else:
            raise ValueError(f"no tolerance rule for {key!r}")
    return tolerances


def _check(ndarrays_regression: Any, arrays: Mapping[str, np.ndarray],
           stage: Mapping[str, float], *, spatial: tuple[str, ...] = (),
           samples: int = SAMPLES, exact: Mapping[str, np.ndarray] | None = None,
           scalars: Mapping[str, tuple[np.ndarray, float]] | None = None) -> None:
    """Summarise ``arrays`` (:func:`_summary`), add ``scalars`` (value, rtol) and ``exact``
    values, and check them all against this test's golden file, each with its tolerance."""
    summaries: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        summaries.update(_summary(name, value, spatial=name in spatial, samples=samples))
    maxima = {name: float(np.abs(value).max()) for name, value in arrays.items()}
    tolerances = _tolerances(summaries, maxima, stage)
    for name, (value, rtol) in (scalars or {}).items():
        summaries[name] = np.asarray(value)
        tolerances[name] = {"rtol": rtol, "atol": 0.0}
    for name, value in (exact or {}).items():
        summaries[name] = np.asarray(value)
        tolerances[name] = {"rtol": 0.0, "atol": 0.0}
    ndarrays_regression.check(summaries, tolerances=tolerances,
                              default_tolerance={"rtol": 0.0, "atol": 0.0})


def _assert_dtypes(outputs: Mapping[str, np.ndarray], expected: Mapping[str, Any]) -> None:
    # the plugin compares any two numeric dtypes; a changed dtype is a finding of its own
    for key, dtype in expected.items():
        assert outputs[key].dtype == dtype, f"{key}: dtype {outputs[key].dtype}, expected {dtype}"


# -- the goldens --------------------------------------------------------------------------------


def check_inputs(ndarrays_regression: Any, golden_inputs: Mapping[str, Any]) -> None:
    """The inputs themselves (framework-free): if this fails in both twins, the input builders
    in ``parity`` changed, not the backends."""
    arrays = {f"physics.{k}": v for k, v in golden_inputs["physics"].items()}
    arrays.update({f"batch.{k}": v for k, v in golden_inputs["batch"].items()
                   if np.ndim(v) > 0})
    arrays.update({f"batches.{i}.diffraction": b["diffraction"]
                   for i, b in enumerate(golden_inputs["batches"])})
    arrays.update({f"weights.{k}": golden_inputs["weights"][k] for k in LAYERS})
    arrays = {k: np.asarray(v).reshape(1, -1) for k, v in arrays.items()}  # one l1 per input
    _check(ndarrays_regression, arrays, INPUTS_TOL, samples=32,
           scalars={"batch.intensity_scale": (golden_inputs["batch"]["intensity_scale"],
                                              INPUTS_TOL["rtol"])})


def check_physics(ndarrays_regression: Any, adapter: Any,
          golden_inputs: Mapping[str, Any]) -> None:
    out = adapter.forward_physics(CONFIG, golden_inputs["physics"])
    assert set(out) == set(PHYSICS_OUTPUT_KEYS)
    _assert_dtypes(out, {"farfield_amplitude": np.float32, "exit_wave": np.complex64,
                         "merged_canvas": np.complex64, "extracted": np.complex64,
                         "translated": np.complex64, "stitched": np.complex64,
                         "probe_normalised": np.complex64, "stitched_origin_px": np.int64})
    images = ("exit_wave", "farfield_amplitude", "translated", "merged_canvas", "extracted")
    arrays = {key: out[key] for key in (*images, "probe_normalised")}
    arrays["stitched"] = out["stitched"][None]  # one image: a leading axis of 1
    _check(ndarrays_regression, arrays, PHYSICS_TOL, spatial=(*images, "stitched"),
           exact={"stitched_origin_px": out["stitched_origin_px"]},
           scalars={"poisson_nll": (out["poisson_nll"], LOSS_RTOL),
                    "mae": (out["mae"], LOSS_RTOL)})


def check_network_forward(ndarrays_regression: Any, adapter: Any,
          golden_inputs: Mapping[str, Any]) -> None:
    full = adapter.network_forward(CONFIG, golden_inputs["weights"], golden_inputs["batch"])
    pool_inputs = pool_input_keys(CONFIG)
    assert set(full) == {*NETWORK_OUTPUT_KEYS, *pool_inputs}
    _assert_dtypes(full, {key: (np.complex64 if key in ("object_patches", "trimmed_obj")
                                else np.float32) for key in full})
    # The pool inputs are diagnostics, judged against the oracle at L2; the golden arrays are
    # the contract's outputs.
    out = {key: full[key] for key in NETWORK_OUTPUT_KEYS}
    images = ("amplitude", "phase", "object_patches", "trimmed_obj", "pred_amplitude")
    _check(ndarrays_regression, out, NETWORK_TOL, spatial=images)


def check_loss_and_grads(ndarrays_regression: Any, adapter: Any,
          golden_inputs: Mapping[str, Any]) -> None:
    out = adapter.loss_and_grads(CONFIG, TRAIN, golden_inputs["weights"], golden_inputs["batch"])
    grads = {f"grad.{layer}": out[f"grad/{layer}"] for layer in LAYERS}
    _assert_dtypes(grads, dict.fromkeys(grads, np.float32))
    _check(ndarrays_regression, grads, GRAD_TOL,
           scalars={"loss": (out["loss"], LOSS_RTOL)})


def check_train_steps(ndarrays_regression: Any, adapter: Any,
          golden_inputs: Mapping[str, Any]) -> None:
    out = adapter.train_steps(CONFIG, TRAIN, golden_inputs["weights"], golden_inputs["batches"])
    assert out["losses"].shape == (STEPS,)
    weights = {f"weights.{layer}": out[f"weights/{layer}"] for layer in LAYERS}
    _assert_dtypes(weights, dict.fromkeys(weights, np.float32))
    # the steps must have moved the weights (else the golden would freeze the initial ones)
    moved = max(float(np.abs(weights[f"weights.{k}"] - golden_inputs["weights"][k]).max())
                for k in LAYERS)
    assert moved > 0.5 * TRAIN.learning_rate, f"weights moved by at most {moved:.3e}"
    _check(ndarrays_regression, weights, WEIGHTS_TOL,
           scalars={"losses": (out["losses"], LOSS_RTOL)})
