"""The float64 NumPy oracle seen through the adapter contract (entry point ``oracle``).

It proves the contract without any framework: the engine can run the L0-L2 hooks and stitching on
it exactly as on a real backend, and the judge uses its outputs as the reference of L1/L2.

Output dtypes: the oracle is the reference, so its arrays stay float64 / complex128 instead of the
exchange dtypes float32 / complex64 that the real backends return; comparators must check shape
first and treat this adapter's dtype as "reference precision", not as a dtype mismatch.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy

from parity.config import ModelConfig, TrainConfig
from parity.contract import PHYSICS_INPUT_KEYS, Adapter, check_keys
from parity.effective import effective_config_dict
from parity.oracle.network import forward_outputs
from parity.oracle.physics import (
    exit_wave,
    extract_group,
    farfield_amplitude,
    mae_loss,
    merge_group,
    normalise_probe,
    poisson_nll,
    translate,
)
from parity.oracle.stitch import stitch_patches

__all__ = ["OracleAdapter"]


def _check_physics_inputs(config: ModelConfig, inputs: Mapping[str, np.ndarray]) -> None:
    check_keys("forward_physics inputs", inputs, PHYSICS_INPUT_KEYS)
    N = config.N
    probe_shape = np.shape(inputs["probe"])
    if probe_shape != (N, N):
        raise ValueError(f"probe has shape {probe_shape}; expected {(N, N)} for N={N}")
    patches_shape = np.shape(inputs["patches"])
    if len(patches_shape) != 4 or patches_shape[2:] != (N, N):
        raise ValueError(f"patches have shape {patches_shape}; expected (B, C, {N}, {N})")
    offsets_shape = (*patches_shape[:2], 2)
    for key in ("relative_px", "translations_px"):
        shape = np.shape(inputs[key])
        if shape != offsets_shape:
            raise ValueError(f"{key} has shape {shape}; expected {offsets_shape} to "
                             f"match patches {patches_shape}")
    pred_shape = np.shape(inputs["pred_amplitude"])
    if pred_shape != np.shape(inputs["obs_amplitude"]):
        raise ValueError(f"pred_amplitude has shape {pred_shape}; obs_amplitude has "
                         f"{np.shape(inputs['obs_amplitude'])}")


class OracleAdapter(Adapter):
    """Float64 NumPy reference adapter.

    Implements ``effective_config``, ``forward_physics``, ``network_forward`` and ``stitch``; it
    does not train. ``device`` is accepted for interface symmetry and ignored (always the CPU).
    """

    name: ClassVar[str] = "oracle"
    framework: ClassVar[str] = "numpy"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"effective_config", "forward_physics", "network_forward", "stitch"}
    )

    def environment(self) -> dict[str, Any]:
        """NumPy/SciPy versions, Python, platform and the compute precision (JSON-able)."""
        return {
            "adapter": self.name,
            "framework": self.framework,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "device": "cpu",
            "compute_dtype": "float64",
            "deterministic": True,
        }

    def effective_config(self, model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
        """:func:`parity.effective.effective_config_dict` plus the oracle's framework facts."""
        return effective_config_dict(model, train, backend=self.name, compute_dtype="float64",
                                     conv_layout="NHWC", output_dtypes="float64/complex128")

    def forward_physics(self, config: ModelConfig,
                        inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every physics stage of :data:`parity.contract.PHYSICS_OUTPUT_KEYS` in float64.

        ``exit_wave`` uses the normalised probe (times the probe mask when
        ``config.probe_mask``); ``translated`` moves ``patches`` by ``translations_px``;
        ``merged_canvas`` merges ``patches`` with ``relative_px`` on ``config.canvas_px`` and
        ``extracted`` re-extracts from it; ``stitched`` stitches ``stitch_patches`` at
        ``stitch_centres_px`` with ``config.stitch_crop_px``; the losses compare
        ``pred_amplitude`` with ``obs_amplitude`` (Poisson NLL on their squares).

        Raises
        ------
        KeyError
            Naming missing input keys.
        ValueError
            On shapes that do not fit ``config`` or each other.
        """
        _check_physics_inputs(config, inputs)
        probe = normalise_probe(inputs["probe"], config.probe_scale)
        patches = inputs["patches"]
        psi = exit_wave(probe, patches, mask=config.probe_mask)
        canvas = merge_group(patches, inputs["relative_px"], config.canvas_px)
        stitched = stitch_patches(inputs["stitch_patches"], inputs["stitch_centres_px"],
                                  crop_px=config.stitch_crop_px)
        pred = np.asarray(inputs["pred_amplitude"], dtype=np.float64)
        obs = np.asarray(inputs["obs_amplitude"], dtype=np.float64)
        return {
            "probe_normalised": probe,
            "exit_wave": psi,
            "farfield_amplitude": farfield_amplitude(psi),
            "translated": translate(patches, inputs["translations_px"]),
            "merged_canvas": canvas,
            "extracted": extract_group(canvas, inputs["relative_px"], config.N),
            "stitched": stitched.reconstructed_obj,
            "stitched_origin_px": np.asarray(stitched.origin_px, dtype=np.int64),
            "poisson_nll": np.asarray(poisson_nll(pred**2, obs**2), dtype=np.float64),
            "mae": np.asarray(mae_loss(pred, obs), dtype=np.float64),
        }

    def network_forward(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                        batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:func:`parity.oracle.network.forward_outputs` (float64 / complex128 outputs)."""
        return forward_outputs(config, weights, batch)

    def stitch(self, patches: np.ndarray, centres_px: np.ndarray, *,
               crop_px: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Oracle stitching (``stitch_patches``): complex128 object and its origin ``(x0, y0)``."""
        stitched = stitch_patches(patches, centres_px, crop_px=crop_px)
        return stitched.reconstructed_obj, stitched.origin_px
