"""The torch adapter: the ``parity.contract.Adapter`` hooks on top of this backend's modules.

Importing this module does not import torch or Lightning: every hook imports the backend module
it needs when called. Each hook runs inside ``_device_scope(self.device_request)``, so a
``device`` given to the constructor (``"cpu"``, ``"cuda"``, ``"cuda:1"``) wins over the automatic
choice (CUDA when available), see :mod:`backends.torch`. Tensors become NumPy at this boundary.
"""

from __future__ import annotations

import importlib
import os
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backends.torch import _device_scope, _select_device
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

__all__ = ["TorchAdapter"]


def _backend(name: str) -> Any:
    return importlib.import_module(f"backends.torch.{name}")


class TorchAdapter(Adapter):
    """PyTorch + Lightning implementation of every hook (:data:`parity.contract.HOOKS`).

    Parameters
    ----------
    device : str, optional
        Keyword-only torch device; default: CUDA when available, else CPU.
    """

    name: ClassVar[str] = "torch"
    framework: ClassVar[str] = "torch"
    capabilities: ClassVar[frozenset[str]] = frozenset(HOOKS)

    def _run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with _device_scope(self.device_request):
            return function(*args, **kwargs)

    # -- environment --------------------------------------------------------------------------
    def environment(self) -> dict[str, Any]:
        """Versions, device, TF32 / determinism flags and thread counts (JSON-able)."""
        import lightning
        import torch

        with _device_scope(self.device_request):
            device = _select_device()
        cuda = torch.cuda.is_available()
        gpu_memory = ({"cuda_max_memory_allocated": int(torch.cuda.max_memory_allocated(device))}
                      if device.type == "cuda" else {})
        return {
            **gpu_memory,
            "framework": "torch",
            "torch_version": torch.__version__,
            "lightning_version": lightning.__version__,
            "python_version": platform.python_version(),
            "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine()),
            "cuda_available": cuda,
            "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version() if cuda else None,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "deterministic_algorithms": _backend("train").op_determinism_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
            "mkldnn_enabled": torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }

    def configure_numerics(self, *, seed: int, deterministic: bool) -> dict[str, Any]:
        """:func:`backends.torch.train.configure_numerics`; returns the flags set."""
        return self._run(_backend("train").configure_numerics, seed=seed,
                         deterministic=deterministic)

    def device_memory_peak(self, *, reset: bool = False) -> int | None:
        """``torch.cuda.max_memory_allocated`` of the CUDA device (``reset_peak_memory_stats``
        with ``reset``); None on a CPU."""
        import torch

        with _device_scope(self.device_request):
            device = _select_device()
        if device.type != "cuda":
            return None
        peak = int(torch.cuda.max_memory_allocated(device))
        if reset:
            torch.cuda.reset_peak_memory_stats(device)
        return peak

    # -- L0 -----------------------------------------------------------------------------------
    def effective_config(self, model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
        """:func:`parity.effective.effective_config_dict` plus what the built network has.

        The ``framework`` section states the conv layout, compute dtype, the optimiser and plateau
        implementations and the weight shapes of the model actually built (which must match
        ``derived``).
        """
        net = self._run(_backend("model").build_model, model, seed=train.seed)
        shapes = {k: list(v.shape) for k, v in _backend("weights").export_weights(net).items()}
        return effective_config_dict(
            model, train, backend=self.name, compute_dtype="float32",
            conv_layout="NCHW", fast_path="off (parity)",
            output_dtypes="float32/complex64",
            optimizer_class="backends.torch.optim.KerasAdam",
            plateau_class=(f"torch ReduceLROnPlateau(patience={max(train.plateau_patience - 1, 0)}"
                           ", threshold_mode='abs', eps=0)"),
            early_stopping_class="lightning EarlyStopping(check_on_train_epoch_end=True)",
            built_weight_shapes=shapes)

    # -- L1 -----------------------------------------------------------------------------------
    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every physics stage on fixed inputs (``PHYSICS_INPUT_KEYS`` -> ``OUTPUT_KEYS``)."""
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
            model.to(_select_device())
            return model_module.forward_outputs(model, batch)

        return self._run(run)

    # -- L3 / L4 ------------------------------------------------------------------------------
    def loss_and_grads(self, config: ModelConfig, train: TrainConfig,
                       weights: Mapping[str, np.ndarray],
                       batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:func:`backends.torch.steps.loss_and_grads`."""
        return self._run(_backend("steps").loss_and_grads, config, train, weights, batch)

    def train_steps(self, config: ModelConfig, train: TrainConfig,
                    weights: Mapping[str, np.ndarray],
                    batches: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """:func:`backends.torch.steps.train_steps`."""
        return self._run(_backend("steps").train_steps, config, train, weights, batches)

    # -- L5 -----------------------------------------------------------------------------------
    def train(self, config: ModelConfig, train: TrainConfig, data: PreparedData, workdir: Path,
              *, initial_weights: Mapping[str, np.ndarray] | None = None,
              progress: Any = None) -> TrainResult:
        """:func:`backends.torch.train.fit` (parity path: ``fast=False``)."""
        return self._run(_backend("train").fit, config, train, data, workdir,
                         initial_weights=initial_weights, progress=progress)

    def infer(self, bundle_dir: Path, data: PreparedData) -> np.ndarray:
        """:func:`backends.torch.infer.infer`: ``trimmed_obj`` ``(B, N, N)`` complex64."""
        return self._run(_backend("infer").infer, bundle_dir, data)

    def predict_with_weights(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                             data: PreparedData, *, batch_size: int = 64) -> np.ndarray:
        """:func:`backends.torch.infer.predict_patches` on one network built from ``weights`` (probe and
        ``s`` from ``data``): the inference pipeline, as for a bundle holding these weights."""

        def run() -> np.ndarray:
            model_module = _backend("model")
            net = model_module.build_model(config, seed=0)
            _backend("weights").import_weights(net, weights)
            net.to(_select_device())
            net.set_physics(data.probe, data.intensity_scale)
            return _backend("infer").predict_patches(net, data, batch_size=batch_size)

        return self._run(run)

    def stitch(self, patches: np.ndarray, centres_px: np.ndarray, *,
               crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
        """:func:`backends.torch.stitch.stitch_patches`."""
        return self._run(_backend("stitch").stitch_patches, patches, centres_px, crop_px=crop_px)

    # -- weights ------------------------------------------------------------------------------
    def build_model(self, config: ModelConfig, *, seed: int) -> Any:
        """:func:`backends.torch.model.build_model`, moved to the adapter's device."""
        return self._run(lambda: _backend("model").build_model(config, seed=seed)
                         .to(_select_device()))

    def export_weights(self, model: Any) -> dict[str, np.ndarray]:
        """:func:`backends.torch.weights.export_weights`."""
        return _backend("weights").export_weights(model)

    def import_weights(self, model: Any, weights: Mapping[str, np.ndarray]) -> None:
        """:func:`backends.torch.weights.import_weights`."""
        _backend("weights").import_weights(model, weights)


def _forward_physics(config: ModelConfig,
                     inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    physics = _backend("physics")
    geometry = _backend("geometry")
    device = _select_device()

    def tensor(key: str, dtype: Any) -> Any:
        return torch.as_tensor(np.asarray(inputs[key], dtype=dtype)).to(device)

    def numpy(value: Any) -> np.ndarray:
        return value.detach().cpu().numpy()

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
        "probe_normalised": numpy(probe_n),
        "exit_wave": numpy(psi),
        "farfield_amplitude": numpy(physics.farfield_amplitude(psi)),
        "translated": numpy(geometry.translate(patches, tensor("translations_px", np.float32))),
        "merged_canvas": numpy(merged),
        "extracted": numpy(geometry.extract_group(merged, relative, config.N)),
        "stitched": stitched,
        "stitched_origin_px": np.asarray(origin, dtype=np.int64),
        "poisson_nll": np.asarray(float(physics.poisson_nll(pred**2, obs**2)), dtype=np.float64),
        "mae": np.asarray(float(physics.mae_loss(pred, obs)), dtype=np.float64),
    }
