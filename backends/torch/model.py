"""The PtychoPINN network as plain ``torch.nn.Module``s (no Lightning here; see :mod:`.train`).

Twin of ``backends/tensorflow/model.py``. The layer ladder, names and shapes come from
:func:`parity.architecture.conv_layers`; a neutral name ``encoder.block0.conv0`` is the torch
module path (:func:`_conv_modules`). Export and import of the neutral weights are
:mod:`backends.torch.weights`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual torch idiom

from backends.torch import geometry, physics
from parity.architecture import (
    BORDER_CHANNELS,
    PHASE_SCALE_RAD,
    conv_layers,
    decoder_widths,
    encoder_widths,
)
from parity.config import ModelConfig
from parity.contract import NETWORK_OUTPUT_KEYS, check_keys, pool_input_keys
from parity.conventions import centre_mask, support_margin_px

__all__ = ["PtychoPINN", "build_model", "forward_outputs"]


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding="same")


class _ConvPair(nn.Module):
    """conv3x3 + ReLU, conv3x3 + ReLU (submodules ``conv0``, ``conv1``)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv0 = _conv(in_channels, width)
        self.conv1 = _conv(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv1(F.relu(self.conv0(x))))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    # Nearest x2 (Keras UpSampling2D default): each pixel repeated on a 2x2 block.
    return F.interpolate(x, scale_factor=2, mode="nearest")


class _Encoder(nn.Module):
    """``log2(N/8)`` blocks ``block<i>`` of [conv-ReLU, conv-ReLU, max-pool 2]."""

    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        self.depth = len(widths)
        for i, width in enumerate(widths):
            self.add_module(f"block{i}", _ConvPair(in_channels, width))
            in_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.depth):
            x = F.max_pool2d(getattr(self, f"block{i}")(x), 2)
        return x


class _Decoder(nn.Module):
    """Decoder base ``block<i>`` [conv-ReLU, conv-ReLU, upsample 2], ``head`` and border branch."""

    def __init__(self, config: ModelConfig, bottleneck: int, activation: str) -> None:
        super().__init__()
        widths = decoder_widths(config)
        self.depth = len(widths)
        channels = bottleneck
        for i, width in enumerate(widths):
            self.add_module(f"block{i}", _ConvPair(channels, width))
            channels = width
        self.head = _conv(channels - BORDER_CHANNELS, config.output_channels)
        self.activation = activation
        self.probe_big = config.probe_big
        self.pad = support_margin_px(config.N)
        if config.probe_big:
            border = config.n_filters_scale * 2048 // config.N
            self.border = _ConvPair(BORDER_CHANNELS, border)
            self.border_head = _conv(border, config.output_channels)
            self.register_buffer(
                "border_mask", torch.as_tensor(1.0 - centre_mask(config.N), dtype=torch.float32),
                persistent=False)

    def base(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder-base features ``(B, F', N/2, N/2)``."""
        for i in range(self.depth):
            x = _upsample(getattr(self, f"block{i}")(x))
        return x

    def head_output(self, features: torch.Tensor) -> torch.Tensor:
        """Activated head ``(B, C_out, N, N)``: N/4 zero border, plus the border branch."""
        x = _activate(self.head(features[:, :-BORDER_CHANNELS]), self.activation)
        x = F.pad(x, (self.pad,) * 4)
        if self.probe_big:
            border = self.border_head(_upsample(self.border(features[:, -BORDER_CHANNELS:])))
            x = x + F.silu(border) * self.border_mask
        return x


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "swish":
        return F.silu(x)
    if name == "softplus":
        return F.softplus(x)
    if name == "relu":
        return F.relu(x)
    if name == "pi_tanh":
        # Module global read at call time (parity.architecture.PHASE_SCALE_RAD, pi), so the
        # harness self-test can rebind it here to reproduce an activation-scale port bug.
        return PHASE_SCALE_RAD * torch.tanh(x)
    raise ValueError(f"unknown activation {name!r}")


class PtychoPINN(nn.Module):
    """The PtychoPINN autoencoder plus its physics (forward steps 1-8 of ``docs/backends.md``).

    Submodules ``encoder``, ``decoder_amp``, ``decoder_phase`` carry the trainable weights under
    their neutral names. The normalised probe and the intensity scale are non-persistent buffers
    set by :meth:`set_physics` (once per data set: the probe is normalised and checked there, not
    per step), so the state dict holds exactly the trainable weights.

    Parameters
    ----------
    config : ModelConfig
        Network and physics options.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = _Encoder(config.channels, encoder_widths(config))
        bottleneck = encoder_widths(config)[-1]
        self.decoder_amp = _Decoder(config, bottleneck, config.amp_activation)
        self.decoder_phase = _Decoder(config, bottleneck, "pi_tanh")
        N = config.N
        self.register_buffer("probe", torch.zeros((N, N), dtype=torch.complex64),
                             persistent=False)
        self.register_buffer("intensity_scale", torch.ones((), dtype=torch.float32),
                             persistent=False)
        self.physics_ready = False
        self.channels_last = False
        #: Optional replacement of :meth:`network` (the ``fast`` path installs a compiled one).
        self.network_impl: Any = None

    def use_channels_last(self, enabled: bool = True) -> PtychoPINN:
        """Keep conv weights and activations channels-last (NHWC in memory), or not.

        A memory layout only (the ``fast`` path uses it): the same formulas run, with NHWC
        kernels whose float rounding may differ from NCHW at the ulp level. Returns self.
        """
        self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
        self.channels_last = enabled
        return self

    def set_physics(self, probe: np.ndarray | torch.Tensor, intensity_scale: float) -> None:
        """Store the normalised probe and the intensity scale ``s`` (on the model's device).

        Raises
        ------
        ValueError
            If the probe is not ``(N, N)`` for the configured ``N``, not finite, or zero inside
            the normalisation disk; if ``s`` is not positive and finite.
        """
        N = self.config.N
        probe_t = probe if torch.is_tensor(probe) else torch.from_numpy(np.array(probe))
        if tuple(probe_t.shape) != (N, N):
            raise ValueError(f"probe has shape {tuple(probe_t.shape)}; expected ({N}, {N}) to "
                             f"match N={N}")
        if not bool(torch.isfinite(torch.view_as_real(probe_t.to(torch.complex64))).all()):
            raise ValueError("probe has non-finite values")
        s = float(intensity_scale)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"intensity_scale={s}; expected a positive finite number")
        device = self.probe.device
        probe_t = probe_t.to(device=device, dtype=torch.complex64)
        self.probe = physics.normalise_probe(probe_t, self.config.probe_scale)
        self.intensity_scale = torch.tensor(s, dtype=torch.float32, device=device)
        self.physics_ready = True

    def network(self, diffraction_scaled: torch.Tensor) -> dict[str, torch.Tensor]:
        """Real-valued network: ``s X`` ``(B, C, N, N)`` -> encoded, decoded, amplitude, phase."""
        x = diffraction_scaled / self.intensity_scale  # IntensityScaler: first op divides by s
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        encoded = self.encoder(x)
        decoded_amp = self.decoder_amp.base(encoded)
        decoded_phase = self.decoder_phase.base(encoded)
        return {
            "encoded": encoded,
            "decoded_amp": decoded_amp,
            "decoded_phase": decoded_phase,
            "amplitude": self.decoder_amp.head_output(decoded_amp),
            "phase": self.decoder_phase.head_output(decoded_phase),
        }

    def _object(self, diffraction_scaled: torch.Tensor, relative_px: torch.Tensor,
                ) -> dict[str, torch.Tensor]:
        if not self.physics_ready:
            raise RuntimeError("call set_physics(probe, intensity_scale) before the forward pass")
        net = self.network_impl or self.network
        out = dict(net(diffraction_scaled))
        # The fast path may return bf16 heads (autocast); the physics always runs in float32+.
        amplitude, phase = (out[k].float() if out[k].dtype in (torch.bfloat16, torch.float16)
                            else out[k] for k in ("amplitude", "phase"))
        patches = torch.complex(amplitude * torch.cos(phase), amplitude * torch.sin(phase))
        cfg = self.config
        if cfg.object_big:
            canvas = geometry.merge_group(patches, relative_px, cfg.canvas_px)
        else:
            canvas = geometry.pad_to_canvas(patches, cfg.canvas_px)[:, 0]
        out["object_patches"] = patches
        out["canvas"] = canvas
        out["trimmed_obj"] = geometry.trim_canvas(canvas, cfg.N)
        return out

    def predict_object(self, diffraction_scaled: torch.Tensor,
                       relative_px: torch.Tensor) -> torch.Tensor:
        """``trimmed_obj`` ``(B, N, N)`` complex64 only (inference: no far-field physics)."""
        return self._object(diffraction_scaled, relative_px)["trimmed_obj"]

    def forward(self, diffraction_scaled: torch.Tensor,
                relative_px: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward steps 1-8: every output of ``NETWORK_OUTPUT_KEYS`` plus ``canvas``.

        Parameters
        ----------
        diffraction_scaled : torch.Tensor
            ``(B, C, N, N)`` float32 ``s * X`` (the reference's model input).
        relative_px : torch.Tensor
            ``(B, C, 2)`` float32 relative offsets (x, y).

        Returns
        -------
        dict[str, torch.Tensor]
            Channel-first tensors; ``pred_amplitude`` ``(B, C, N, N)`` is ``s`` times the
            far-field amplitude of the re-extracted, illuminated patches.
        """
        out = self._object(diffraction_scaled, relative_px)
        patches = geometry.extract_group(out["canvas"], relative_px, self.config.N)
        psi = physics.exit_wave(self.probe, patches, mask=self.config.probe_mask)
        out["pred_amplitude"] = self.intensity_scale * physics.farfield_amplitude(psi)
        return out


def _conv_modules(model: PtychoPINN) -> dict[str, nn.Conv2d]:
    """Neutral layer name -> conv module, in :func:`parity.architecture.conv_layers` order."""
    return {layer.name: model.get_submodule(layer.name)
            for layer in conv_layers(model.config)}


def build_model(config: ModelConfig, *, seed: int) -> PtychoPINN:
    """Build the network with native initialisation.

    Kernels get ``torch.nn.init.xavier_uniform_`` (Glorot uniform: ``fan_in = in*kh*kw``,
    ``fan_out = out*kh*kw``, as Keras) drawn from one ``torch.Generator`` seeded with ``seed``, in
    the layer order of :func:`parity.architecture.conv_layers`; biases are zero.

    Returns
    -------
    PtychoPINN
        On the CPU, in training mode; move it with ``.to(device)``.
    """
    model = PtychoPINN(config)
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for conv in _conv_modules(model).values():
            nn.init.xavier_uniform_(conv.weight, generator=generator)
            nn.init.zeros_(conv.bias)
    return model


def _batch_tensors(model: PtychoPINN, batch: Mapping[str, np.ndarray],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a NumPy batch (``BATCH_KEYS``), set the model's probe and ``s`` from it, and move
    diffraction ``X`` (not times ``s``) and the relative offsets to ``device``."""
    check_keys("batch", batch, ("diffraction", "relative_px", "probe", "intensity_scale"))
    cfg = model.config
    diffraction = np.asarray(batch["diffraction"])
    relative = np.asarray(batch["relative_px"])
    expected = (cfg.channels, cfg.N, cfg.N)
    if diffraction.ndim != 4 or diffraction.shape[1:] != expected:
        raise ValueError(f"diffraction has shape {diffraction.shape}; expected (B, *{expected}) "
                         f"for N={cfg.N}, gridsize={cfg.gridsize}")
    if relative.shape != (diffraction.shape[0], cfg.channels, 2):
        raise ValueError(f"relative_px has shape {relative.shape}; expected "
                         f"{(diffraction.shape[0], cfg.channels, 2)}")
    if not np.isfinite(diffraction).all():
        bad = int(np.size(diffraction) - np.count_nonzero(np.isfinite(diffraction)))
        raise ValueError(f"diffraction has {bad} non-finite value(s) (NaN or inf)")
    if not np.isfinite(relative).all():
        raise ValueError("relative_px has non-finite values")
    s = float(np.asarray(batch["intensity_scale"]))
    model.set_physics(np.asarray(batch["probe"]), s)
    x = torch.tensor(diffraction, dtype=torch.float32, device=device)  # copies: inputs may be
    rel = torch.tensor(relative, dtype=torch.float32, device=device)  # read-only NumPy views
    return x, rel


def forward_outputs(model: PtychoPINN, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Forward pass of one batch; every key of ``parity.contract.NETWORK_OUTPUT_KEYS`` as NumPy,
    then the encoder's pool inputs (``parity.contract.pool_input_keys``).

    Parameters
    ----------
    model : PtychoPINN
        The network (its probe and intensity scale are set from ``batch``).
    batch : Mapping[str, numpy.ndarray]
        ``diffraction`` ``(B, C, N, N)`` float32 normalised (NOT times ``s``), ``relative_px``
        ``(B, C, 2)``, ``probe`` ``(N, N)`` complex64 raw, ``intensity_scale`` scalar.

    Returns
    -------
    dict[str, numpy.ndarray]
        Exchange (channel-first) layout: ``encoded`` ``(B, F, 8, 8)``, ``decoded_*``
        ``(B, F', N/2, N/2)``, ``amplitude``/``phase`` ``(B, C_out, N, N)`` float32,
        ``object_patches`` ``(B, C_out, N, N)`` and ``trimmed_obj`` ``(B, N, N)`` complex64,
        ``pred_amplitude`` ``(B, C, N, N)`` float32 (times ``s``).

    Raises
    ------
    ValueError
        On a wrong ``N``/``C``, a probe of the wrong size, non-finite diffraction or offsets.
    """
    device = next(model.parameters()).device
    diffraction, relative = _batch_tensors(model, batch, device)
    x_scaled = diffraction * model.intensity_scale
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x_scaled, relative)
            out.update(_pool_inputs(model, x_scaled))
    finally:
        model.train(was_training)
    keys = (*NETWORK_OUTPUT_KEYS, *pool_input_keys(model.config))
    return {key: out[key].detach().to("cpu").contiguous().numpy() for key in keys}


def _pool_inputs(model: PtychoPINN, diffraction_scaled: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each encoder block's activation before its max-pool (``parity.contract.pool_input_keys``):
    the same modules on the same input as :meth:`PtychoPINN.network`."""
    h = diffraction_scaled / model.intensity_scale
    if model.channels_last:
        h = h.contiguous(memory_format=torch.channels_last)
    outputs = {}
    for i, key in enumerate(pool_input_keys(model.config)):
        h = getattr(model.encoder, f"block{i}")(h)
        outputs[key] = h
        h = F.max_pool2d(h, 2)
    return outputs

