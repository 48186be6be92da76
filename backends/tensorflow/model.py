"""The PtychoPINN network as a Keras 3 model (TensorFlow backend); training lives in :mod:`.train`.

Twin of ``backends/torch/model.py``. The layer ladder, names and shapes come from
:func:`parity.architecture.conv_layers`; each convolution is a ``keras.layers.Conv2D`` named by
its neutral name (``encoder.block0.conv0``), whose kernel already has the neutral layout
``(kh, kw, in, out)`` and whose bias is ``(out,)``: export and import
(:mod:`backends.tensorflow.weights`) are plain copies.

The convolutions run channels-last (NHWC, TensorFlow's native layout); every boundary of this
module speaks the exchange layout ``(B, C, N, N)`` of :mod:`parity.conventions`. The model's dtype
policy stays float32; it returns complex64 tensors from ``call`` (object patches, canvas), which
Keras 3 allows for a float32 layer (declaring the layer complex would cast the real inputs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow, geometry, physics
from parity.architecture import (
    BORDER_CHANNELS,
    PHASE_SCALE_RAD,
    conv_layers,
    decoder_widths,
    encoder_widths,
)
from parity.config import ModelConfig
from parity.contract import BATCH_KEYS, NETWORK_OUTPUT_KEYS, check_keys, pool_input_keys
from parity.conventions import centre_mask, support_margin_px

tf = _import_tensorflow()
import keras  # noqa: E402 - after the TensorFlow import helper has set the environment

__all__ = ["PtychoPINN", "build_model", "forward_outputs"]


def _upsample(x: Any) -> Any:
    """Nearest x2 upsampling of NHWC (Keras ``UpSampling2D`` default): pixel -> 2x2 block."""
    B, H, W, C = tf.unstack(tf.shape(x))
    grown = tf.broadcast_to(x[:, :, None, :, None, :], tf.stack([B, H, 2, W, 2, C]))
    return tf.reshape(grown, tf.stack([B, 2 * H, 2 * W, C]))


def _max_pool(x: Any) -> Any:
    return tf.nn.max_pool2d(x, ksize=2, strides=2, padding="VALID")


def _activate(x: Any, name: str) -> Any:
    if name == "sigmoid":
        return tf.sigmoid(x)
    if name == "swish":
        return x * tf.sigmoid(x)
    if name == "softplus":
        return tf.nn.softplus(x)
    if name == "relu":
        return tf.nn.relu(x)
    if name == "pi_tanh":
        # Module global read at trace time (parity.architecture.PHASE_SCALE_RAD, pi), so the
        # harness self-test can rebind it here to reproduce an activation-scale port bug.
        return PHASE_SCALE_RAD * tf.tanh(x)
    raise ValueError(f"unknown activation {name!r}")


class PtychoPINN(keras.Model):
    """The PtychoPINN autoencoder plus its physics (forward steps 1-8 of ``docs/backends.md``).

    The convolutions are ``keras.layers.Conv2D`` layers named as in
    :func:`parity.architecture.conv_layers`, built in that order (``conv_list``). The normalised
    probe and the intensity scale live in non-trainable ``tf.Variable``s set by
    :meth:`set_physics` (once per data set: the probe is normalised and checked there, not per
    step); they are not Keras weights, so ``trainable_variables`` and the ``.weights.h5``
    checkpoint hold exactly the convolution weights.

    Parameters
    ----------
    config : ModelConfig
        Network and physics options.
    seed : int
        Seeds the Glorot-uniform kernel initialisers (one derived seed per layer, from
        ``numpy.random.SeedSequence(seed)``); biases start at zero.
    """

    def __init__(self, config: ModelConfig, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "ptychopinn"), **kwargs)
        self.config = config
        ladder = conv_layers(config)
        layer_seeds = np.random.SeedSequence(int(seed)).generate_state(len(ladder))
        self.layer_names = tuple(layer.name for layer in ladder)
        self.conv_list = []
        for layer, layer_seed in zip(ladder, layer_seeds, strict=True):
            conv = keras.layers.Conv2D(
                layer.out_channels, layer.kernel_size, padding="same",
                activation=None if layer.activation == "linear" else layer.activation,
                kernel_initializer=keras.initializers.GlorotUniform(seed=int(layer_seed)),
                bias_initializer="zeros", name=layer.name,
            )
            conv.build((None, None, None, layer.in_channels))
            self.conv_list.append(conv)
        N = config.N
        self.probe = tf.Variable(tf.zeros((N, N), tf.complex64), trainable=False,
                                 name="probe_normalised")
        self.intensity_scale = tf.Variable(1.0, dtype=tf.float32, trainable=False,
                                           name="intensity_scale")
        self.physics_ready = False
        self.built = True

    # -- physics state ------------------------------------------------------------------------
    def set_physics(self, probe: Any, intensity_scale: float) -> None:
        """Store the normalised probe and the intensity scale ``s``.

        Raises
        ------
        ValueError
            If the probe is not ``(N, N)`` for the configured ``N``, not finite, or zero inside
            the normalisation disk; if ``s`` is not positive and finite.
        """
        N = self.config.N
        probe_np = np.asarray(probe)
        if probe_np.shape != (N, N):
            raise ValueError(f"probe has shape {probe_np.shape}; expected ({N}, {N}) to match "
                             f"N={N}")
        if not np.isfinite(probe_np).all():
            raise ValueError("probe has non-finite values")
        s = float(intensity_scale)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"intensity_scale={s}; expected a positive finite number")
        normalised = physics.normalise_probe(tf.constant(probe_np.astype(np.complex64)),
                                             self.config.probe_scale)
        self.probe.assign(normalised)
        self.intensity_scale.assign(s)
        self.physics_ready = True

    # -- network ------------------------------------------------------------------------------
    def conv(self, name: str) -> Any:
        """The ``Conv2D`` layer of neutral name ``name``."""
        return self.conv_list[self.layer_names.index(name)]

    def _decoder(self, encoded: Any, branch: str, head_activation: str) -> tuple[Any, Any]:
        """Decoder base ``(B, N/2, N/2, F')`` and head output ``(B, N, N, C_out)``, NHWC."""
        cfg = self.config
        h = encoded
        for i in range(len(decoder_widths(cfg))):
            h = self.conv(f"{branch}.block{i}.conv0")(h)
            h = _upsample(self.conv(f"{branch}.block{i}.conv1")(h))
        base = h
        q = support_margin_px(cfg.N)
        head = _activate(self.conv(f"{branch}.head")(base[..., :-BORDER_CHANNELS]),
                         head_activation)
        out = tf.pad(head, [[0, 0], [q, q], [q, q], [0, 0]])
        if cfg.probe_big:
            b = self.conv(f"{branch}.border.conv0")(base[..., -BORDER_CHANNELS:])
            b = _upsample(self.conv(f"{branch}.border.conv1")(b))
            b = _activate(self.conv(f"{branch}.border_head")(b), "swish")
            border_mask = tf.constant((1.0 - centre_mask(cfg.N)).astype(np.float32))
            out = out + b * border_mask[None, :, :, None]
        return base, out

    def network(self, diffraction_scaled: Any) -> dict[str, Any]:
        """Real-valued network: ``s X`` ``(B, C, N, N)`` -> encoded, decoded, amplitude, phase.

        Every output is channel-first (exchange layout), float32.
        """
        x = diffraction_scaled / self.intensity_scale  # IntensityScaler: first op divides by s
        h = tf.transpose(x, (0, 2, 3, 1))
        for i in range(len(encoder_widths(self.config))):
            h = self.conv(f"encoder.block{i}.conv0")(h)
            h = _max_pool(self.conv(f"encoder.block{i}.conv1")(h))
        encoded = h
        decoded_amp, amplitude = self._decoder(encoded, "decoder_amp", self.config.amp_activation)
        decoded_phase, phase = self._decoder(encoded, "decoder_phase", "pi_tanh")

        def first(t: Any) -> Any:
            return tf.transpose(t, (0, 3, 1, 2))

        return {
            "encoded": first(encoded),
            "decoded_amp": first(decoded_amp),
            "decoded_phase": first(decoded_phase),
            "amplitude": first(amplitude),
            "phase": first(phase),
        }

    def object_outputs(self, diffraction_scaled: Any, relative_px: Any) -> dict[str, Any]:
        """Forward steps 1-6: network outputs plus ``object_patches``, ``canvas``, ``trimmed_obj``.

        Raises
        ------
        RuntimeError
            If :meth:`set_physics` was never called.
        """
        if not self.physics_ready:
            raise RuntimeError("call set_physics(probe, intensity_scale) before the forward pass")
        cfg = self.config
        out = self.network(diffraction_scaled)
        amplitude, phase = out["amplitude"], out["phase"]
        patches = tf.complex(amplitude * tf.cos(phase), amplitude * tf.sin(phase))
        if cfg.object_big:
            canvas = geometry.merge_group(patches, relative_px, cfg.canvas_px)
        else:
            canvas = geometry.pad_to_canvas(patches, cfg.canvas_px)[:, 0]
        out["object_patches"] = patches
        out["canvas"] = canvas
        out["trimmed_obj"] = geometry.trim_canvas(canvas, cfg.N)
        return out

    def predict_object(self, diffraction_scaled: Any, relative_px: Any) -> Any:
        """``trimmed_obj`` ``(B, N, N)`` complex64 only (inference: no far-field physics)."""
        return self.object_outputs(diffraction_scaled, relative_px)["trimmed_obj"]

    def call(self, inputs: Mapping[str, Any], training: bool = False) -> dict[str, Any]:
        """Forward steps 1-8: every output of ``NETWORK_OUTPUT_KEYS`` plus ``canvas``.

        Parameters
        ----------
        inputs : Mapping[str, tf.Tensor]
            ``diffraction_scaled`` ``(B, C, N, N)`` float32 ``s * X`` (the reference's model
            input) and ``relative_px`` ``(B, C, 2)`` float32 relative offsets (x, y).
        training : bool
            Unused (no dropout or batch-norm); kept for the Keras call convention.

        Returns
        -------
        dict[str, tf.Tensor]
            Channel-first tensors; ``pred_amplitude`` ``(B, C, N, N)`` is ``s`` times the
            far-field amplitude of the re-extracted, illuminated patches.
        """
        relative_px = inputs["relative_px"]
        out = self.object_outputs(inputs["diffraction_scaled"], relative_px)
        patches = geometry.extract_group(out["canvas"], relative_px, self.config.N)
        psi = physics.exit_wave(self.probe, patches, mask=self.config.probe_mask)
        out["pred_amplitude"] = self.intensity_scale * physics.farfield_amplitude(psi)
        return out

    def weight_variables(self) -> list[tuple[str, Any]]:
        """``(neutral name, variable)`` of every trainable weight, in build order."""
        pairs = []
        for name, conv in zip(self.layer_names, self.conv_list, strict=True):
            pairs.append((f"{name}.kernel", conv.kernel))
            pairs.append((f"{name}.bias", conv.bias))
        return pairs


def build_model(config: ModelConfig, *, seed: int) -> PtychoPINN:
    """Build the network with native (Keras default) initialisation.

    Kernels: ``keras.initializers.GlorotUniform`` (``limit = sqrt(6 / (fan_in + fan_out))``,
    ``fan = kh*kw*channels``) with one seed per layer derived from ``seed`` by
    ``numpy.random.SeedSequence``, in the layer order of :func:`parity.architecture.conv_layers`;
    biases zero. Every layer is built (weights exist) on return.

    Returns
    -------
    PtychoPINN
        Placed by TensorFlow (GPU when visible, else CPU); physics not yet set.
    """
    return PtychoPINN(config, seed=int(seed))


def _batch_tensors(model: PtychoPINN, batch: Mapping[str, np.ndarray]) -> tuple[Any, Any]:
    """Validate a NumPy batch (``BATCH_KEYS``), set the model's probe and ``s`` from it, and
    return diffraction ``X`` (not times ``s``) and the relative offsets as float32 tensors.

    Raises
    ------
    KeyError
        If a batch key is missing.
    ValueError
        On a wrong ``N`` or ``C`` (patterns vs config), offsets of the wrong shape, non-finite
        diffraction or offsets, a probe of the wrong size or a bad intensity scale.
    """
    check_keys("batch", batch, BATCH_KEYS)
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
    finite = np.isfinite(diffraction)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValueError(f"diffraction has {len(bad)} non-finite value(s) (NaN or inf), first "
                         f"at index {tuple(int(i) for i in bad[0])}")
    if not np.isfinite(relative).all():
        raise ValueError("relative_px has non-finite values")
    model.set_physics(np.asarray(batch["probe"]), float(np.asarray(batch["intensity_scale"])))
    return (tf.constant(diffraction, dtype=tf.float32), tf.constant(relative, dtype=tf.float32))


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
    KeyError, ValueError
        On a missing key, a wrong ``N``/``C``, a probe of the wrong size, non-finite diffraction
        or offsets (see ``_batch_tensors``).

    Notes
    -----
    Runs the model eagerly; the input is ``X * float32(s)``, as in the training step.
    """
    diffraction, relative = _batch_tensors(model, batch)
    x_scaled = diffraction * model.intensity_scale
    out = model({"diffraction_scaled": x_scaled, "relative_px": relative}, training=False)
    outputs = {key: np.asarray(out[key].numpy()) for key in NETWORK_OUTPUT_KEYS}
    outputs.update(_pool_inputs(model, x_scaled))
    return outputs


def _pool_inputs(model: PtychoPINN, diffraction_scaled: Any) -> dict[str, np.ndarray]:
    """Each encoder block's activation before its max-pool (``parity.contract.pool_input_keys``),
    channel-first: the same layers on the same input as :meth:`PtychoPINN.network`."""
    h = tf.transpose(diffraction_scaled / model.intensity_scale, (0, 2, 3, 1))
    outputs = {}
    for i, key in enumerate(pool_input_keys(model.config)):
        h = model.conv(f"encoder.block{i}.conv1")(model.conv(f"encoder.block{i}.conv0")(h))
        outputs[key] = np.asarray(tf.transpose(h, (0, 3, 1, 2)).numpy())
        h = _max_pool(h)
    return outputs
