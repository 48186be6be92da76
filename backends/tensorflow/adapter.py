"""The TensorFlow adapter: the ``parity.contract.Adapter`` hooks on top of this backend's modules.

Importing this module does not import TensorFlow: every hook imports the backend module it needs
when called. Each hook runs inside ``_device_scope(self.device_request)``, so a ``device`` given to
the constructor (``"cpu"``, ``"gpu"``, ``"/GPU:1"``) pins TensorFlow's placement; without one,
TensorFlow places ops itself (see :mod:`backends.tensorflow`). Tensors become NumPy at this
boundary.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backends.tensorflow import _device_name, _device_scope
from parity.config import ModelConfig, TrainConfig
from parity.contract import (
    HOOKS,
    PHYSICS_INPUT_KEYS,
    Adapter,
    PreparedData,
    TrainResult,
    check_keys,
)
from parity.effective import effective_config_dict

__all__ = ["TensorFlowAdapter"]


def _backend(name: str) -> Any:
    return importlib.import_module(f"backends.tensorflow.{name}")


class TensorFlowAdapter(Adapter):
    """TensorFlow 2 / Keras 3 implementation of every hook (:data:`parity.contract.HOOKS`).

    Parameters
    ----------
    device : str, optional
        Keyword-only TensorFlow device (``"cpu"``, ``"gpu"``, ``"/GPU:0"``, ...); default:
        TensorFlow's own placement (a visible GPU, else the CPU).
    """

    name: ClassVar[str] = "tensorflow"
    framework: ClassVar[str] = "tensorflow"
    capabilities: ClassVar[frozenset[str]] = frozenset(HOOKS)

    def _run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with _device_scope(self.device_request):
            return function(*args, **kwargs)

    # -- environment --------------------------------------------------------------------------
    def environment(self) -> dict[str, Any]:
        """Versions, device, TF32 / determinism flags, thread counts, oneDNN setting (JSON-able).

        ``tf_enable_onednn_opts`` is the environment variable as set (None: TensorFlow's default,
        oneDNN on for x86 Linux CPU builds); oneDNN kernels round differently from Eigen's.
        """
        tf = _backend("physics").tf
        import keras

        train = _backend("train")
        gpus = tf.config.list_logical_devices("GPU")
        build = tf.sysconfig.get_build_info()
        device = self.device_request or ("/GPU:0" if gpus else "/CPU:0")
        return {
            "framework": "tensorflow",
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "python_version": platform.python_version(),
            "device": device,
            "device_name": (str(gpus[0].name) if gpus and "GPU" in device.upper()
                            else platform.processor() or platform.machine()),
            "gpu_devices": [d.name for d in gpus],
            "cuda_build": bool(build.get("is_cuda_build", False)),
            "cuda_version": build.get("cuda_version"),
            "cudnn_version": build.get("cudnn_version"),
            "tensor_float_32_execution": bool(
                tf.config.experimental.tensor_float_32_execution_enabled()),
            "op_determinism": train.op_determinism_enabled(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "cpu_count": os.cpu_count(),
        }

    def configure_numerics(self, *, seed: int, deterministic: bool) -> dict[str, Any]:
        """:func:`backends.tensorflow.train.configure_numerics`; returns the flags set."""
        return self._run(_backend("train").configure_numerics, seed=seed,
                         deterministic=deterministic)

    def device_memory_peak(self, *, reset: bool = False) -> int | None:
        """``tf.config.experimental.get_memory_info(gpu)["peak"]`` of the GPU this adapter computes
        on (``reset_memory_stats`` with ``reset``); None on a CPU."""
        tf = _backend("physics").tf
        name = _device_name(self.device_request)
        if name is None:  # TensorFlow's own placement: the first GPU when one is visible
            name = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
        found = re.search(r"GPU(?::(\d+))?", name.upper())
        if found is None:
            return None
        gpu = f"GPU:{found.group(1) or 0}"
        peak = int(tf.config.experimental.get_memory_info(gpu)["peak"])
        if reset:
            tf.config.experimental.reset_memory_stats(gpu)
        return peak

    # -- L0 -----------------------------------------------------------------------------------
    def effective_config(self, model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
        """:func:`parity.effective.effective_config_dict` plus what the built network has.

        The ``framework`` section states the conv layout, compute dtype, the Keras optimiser
        class and the weight shapes of the model actually built (which must match ``derived``).
        """
        net = self._run(_backend("model").build_model, model, seed=train.seed)
        shapes = {k: list(v.shape) for k, v in _backend("weights").export_weights(net).items()}
        return effective_config_dict(
            model, train, backend=self.name, compute_dtype="float32", conv_layout="NHWC",
            output_dtypes="float32/complex64", optimizer_class="keras.optimizers.Adam",
            built_weight_shapes=shapes)

    # -- L1 -----------------------------------------------------------------------------------
    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every physics stage on fixed inputs (``PHYSICS_INPUT_KEYS`` -> ``OUTPUT_KEYS``).

        Raises
        ------
        KeyError
            Naming missing input keys.
        ValueError
            On a probe that does not match ``config.N`` or misshaped inputs.
        """
        check_keys("physics inputs", inputs, PHYSICS_INPUT_KEYS)
        return self._run(_forward_physics, config, inputs)

    # -- L2 -----------------------------------------------------------------------------------
    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Forward pass of ``batch`` with the given neutral weights."""

        def run() -> dict[str, np.ndarray]:
            model_module = _backend("model")
            model = model_module.build_model(config, seed=0)
            _backend("weights").import_weights(model, weights)
            return model_module.forward_outputs(model, batch)

        return self._run(run)

    # -- L3 / L4 ------------------------------------------------------------------------------
    def loss_and_grads(self, config: ModelConfig, train: TrainConfig,
                       weights: Mapping[str, np.ndarray],
                       batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:func:`backends.tensorflow.steps.loss_and_grads`."""
        return self._run(_backend("steps").loss_and_grads, config, train, weights, batch)

    def train_steps(self, config: ModelConfig, train: TrainConfig,
                    weights: Mapping[str, np.ndarray],
                    batches: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """:func:`backends.tensorflow.steps.train_steps`."""
        return self._run(_backend("steps").train_steps, config, train, weights, batches)

    # -- L5 -----------------------------------------------------------------------------------
    def train(self, config: ModelConfig, train: TrainConfig, data: PreparedData, workdir: Path,
              *, initial_weights: Mapping[str, np.ndarray] | None = None,
              progress: Any = None) -> TrainResult:
        """:func:`backends.tensorflow.train.fit` (parity path: ``fast=False``)."""
        return self._run(_backend("train").fit, config, train, data, workdir,
                         initial_weights=initial_weights, progress=progress)

    def infer(self, bundle_dir: Path, data: PreparedData) -> np.ndarray:
        """:func:`backends.tensorflow.infer.infer`: ``trimmed_obj`` ``(B, N, N)`` complex64."""
        return self._run(_backend("infer").infer, bundle_dir, data)

    def predict_with_weights(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                             data: PreparedData, *, batch_size: int = 64) -> np.ndarray:
        """:func:`backends.tensorflow.infer.predict_patches` on one network built from ``weights`` (probe and
        ``s`` from ``data``): the inference pipeline, as for a bundle holding these weights."""

        def run() -> np.ndarray:
            model_module = _backend("model")
            net = model_module.build_model(config, seed=0)
            _backend("weights").import_weights(net, weights)
            net.set_physics(data.probe, data.intensity_scale)
            return _backend("infer").predict_patches(net, data, batch_size=batch_size)

        return self._run(run)

    def stitch(self, patches: np.ndarray, centres_px: np.ndarray, *,
               crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
        """:func:`backends.tensorflow.stitch.stitch_patches`."""
        return self._run(_backend("stitch").stitch_patches, patches, centres_px, crop_px=crop_px)

    # -- weights ------------------------------------------------------------------------------
    def build_model(self, config: ModelConfig, *, seed: int) -> Any:
        """:func:`backends.tensorflow.model.build_model`, variables placed under the device."""
        return self._run(_backend("model").build_model, config, seed=seed)

    def export_weights(self, model: Any) -> dict[str, np.ndarray]:
        """:func:`backends.tensorflow.weights.export_weights`."""
        return _backend("weights").export_weights(model)

    def import_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        """:func:`backends.tensorflow.weights.import_weights`."""
        _backend("weights").import_weights(model, weights)


def _forward_physics(config: ModelConfig,
                     inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    physics = _backend("physics")
    geometry = _backend("geometry")
    tf = physics.tf

    def tensor(key: str, dtype: Any) -> Any:
        return tf.constant(np.asarray(inputs[key], dtype=dtype))

    probe = tensor("probe", np.complex64)
    patches = tensor("patches", np.complex64)
    relative = tensor("relative_px", np.float32)
    pred = tensor("pred_amplitude", np.float32)
    obs = tensor("obs_amplitude", np.float32)
    if tuple(probe.shape) != (config.N, config.N):
        raise ValueError(f"probe has shape {tuple(probe.shape)}; expected ({config.N}, "
                         f"{config.N}) for N={config.N}")
    probe_n = physics.normalise_probe(probe, config.probe_scale)
    psi = physics.exit_wave(probe_n, patches, mask=config.probe_mask)
    merged = geometry.merge_group(patches, relative, config.canvas_px)
    stitched, origin = _backend("stitch").stitch_patches(
        tensor("stitch_patches", np.complex64), np.asarray(inputs["stitch_centres_px"]),
        crop_px=config.stitch_crop_px)
    return {
        "probe_normalised": probe_n.numpy(),
        "exit_wave": psi.numpy(),
        "farfield_amplitude": physics.farfield_amplitude(psi).numpy(),
        "translated": geometry.translate(patches, tensor("translations_px", np.float32)).numpy(),
        "merged_canvas": merged.numpy(),
        "extracted": geometry.extract_group(merged, relative, config.N).numpy(),
        "stitched": stitched,
        "stitched_origin_px": np.asarray(origin, dtype=np.int64),
        "poisson_nll": np.asarray(float(physics.poisson_nll(pred**2, obs**2)), dtype=np.float64),
        "mae": np.asarray(float(physics.mae_loss(pred, obs)), dtype=np.float64),
    }
