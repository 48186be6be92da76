"""Training: numerics, the loss, the Keras trainer and ``fit``.

Twin of ``backends/torch/train.py``. The optimiser and the schedule callbacks are Keras's own
(:mod:`backends.tensorflow.optim`); the exact single-step hooks of the stage ladder
(L3 ``loss_and_grads``, L4 ``train_steps``) are :mod:`backends.tensorflow.steps`'.

One loss path: :meth:`PtychoPINNTrainer.step` (forward plus :func:`loss_value`) serves the compiled
``train_step`` and ``test_step`` that ``keras.Model.fit`` runs, and the exact steps of
:mod:`backends.tensorflow.steps`.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backends.tensorflow import _import_tensorflow, _strict_float32
from backends.tensorflow.infer import _write_bundle
from backends.tensorflow.model import PtychoPINN, build_model
from backends.tensorflow.optim import keras_adam, keras_callbacks
from backends.tensorflow.physics import mae_loss, poisson_nll
from backends.tensorflow.weights import import_weights
from parity.config import ModelConfig, TrainConfig, validation_split
from parity.contract import PreparedData, TrainResult

tf = _import_tensorflow()
import keras  # noqa: E402 - after the TensorFlow import helper has set the environment

__all__ = ["PtychoPINNTrainer", "configure_numerics", "fit", "loss_value", "op_determinism_enabled"]


def _thread_count() -> int:
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or (os.cpu_count() or 1)


def _framework_config() -> Any:
    # disable_op_determinism / is_op_determinism_enabled have no public tf.config name in TF 2.21.
    from tensorflow.python.framework import config as framework_config

    return framework_config


def op_determinism_enabled() -> bool:
    """Whether TensorFlow op determinism is on (no public ``tf.config`` name in TF 2.21)."""
    return bool(_framework_config().is_op_determinism_enabled())


def configure_numerics(*, seed: int, deterministic: bool) -> dict[str, Any]:
    """Seed every RNG, pin numerics and CPU threads; return the flags set (for reports).

    ``keras.utils.set_random_seed(seed)`` (Python, NumPy and TensorFlow global seeds);
    ``tf.config.experimental.enable_op_determinism()`` when ``deterministic`` (else disabled);
    TF32 off (``enable_tensor_float_32_execution(False)``, always: a parity run never wants it).
    CPU threads: intra-op ``OMP_NUM_THREADS`` when set, else ``os.cpu_count()``, inter-op the
    same; TensorFlow accepts these only before its runtime starts, so once it has started the
    current values are kept and reported (``threads_pinned`` False).
    """
    threads = _thread_count()
    pinned = True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # "cannot be modified after initialization"
        pinned = False
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        _framework_config().disable_op_determinism()
    _strict_float32(tf)
    return {
        "seed": int(seed),
        "op_determinism": op_determinism_enabled(),
        "tensor_float_32_execution": bool(
            tf.config.experimental.tensor_float_32_execution_enabled()),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "threads_pinned": pinned,
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }


def loss_value(pred_amplitude: Any, observed_amplitude: Any, train: TrainConfig) -> Any:
    """The training loss: ``nll_weight * poisson_nll(pred**2, obs**2) + mae_weight * mae``.

    Parameters
    ----------
    pred_amplitude, observed_amplitude : tf.Tensor
        ``(B, C, N, N)`` amplitudes in count units: ``s * A_hat`` and ``s * X``.
    train : TrainConfig
        Loss weights.

    Returns
    -------
    tf.Tensor
        0-d float32; a term whose weight is 0 is not computed.
    """
    loss = tf.zeros((), dtype=pred_amplitude.dtype)
    if train.nll_weight:
        loss = loss + train.nll_weight * poisson_nll(tf.square(pred_amplitude),
                                                     tf.square(observed_amplitude))
    if train.mae_weight:
        loss = loss + train.mae_weight * mae_loss(pred_amplitude, observed_amplitude)
    return loss


class PtychoPINNTrainer(keras.Model):
    """Keras wrapper that trains a :class:`~backends.tensorflow.model.PtychoPINN` with ``fit``.

    TensorFlow only: the torch twin of this class is ``backends.torch.train.PtychoPINNModule``
    (a LightningModule); both wrap the plain network and hold the one loss path.

    Batches are dicts ``{"diffraction": X, "relative_px": r}`` (``X`` normalised, NOT times
    ``s``); :meth:`step` scales by the network's ``s`` and returns the loss. ``train_step`` and
    ``test_step`` update one batch-size-weighted ``Mean`` metric named ``loss`` (Keras prefixes
    ``val_`` in validation), so epoch losses follow Keras metric semantics.

    Parameters
    ----------
    network : PtychoPINN
        The network, physics set.
    train : TrainConfig
        Loss weights (and, for :func:`fit`, the optimiser settings).
    """

    def __init__(self, network: PtychoPINN, train: TrainConfig, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "ptychopinn_trainer"), **kwargs)
        self.network = network
        self.train_config = train
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = True

    @property
    def metrics(self) -> list[Any]:
        """The one metric, ``loss`` (Keras resets it every epoch and every evaluation)."""
        return [self.loss_tracker]

    def call(self, inputs: Mapping[str, Any], training: bool = False) -> dict[str, Any]:
        """The network's forward pass (:meth:`PtychoPINN.call`)."""
        return self.network(inputs, training=training)

    # -- the one loss path --------------------------------------------------------------------
    def loss_of(self, pred_amplitude: Any, observed_amplitude: Any) -> Any:
        """:func:`loss_value` with this trainer's :class:`TrainConfig`."""
        return loss_value(pred_amplitude, observed_amplitude, self.train_config)

    def step(self, batch: Mapping[str, Any], training: bool = True) -> Any:
        """Forward one batch ``{"diffraction": X, "relative_px": r}``; return its loss (0-d)."""
        x_scaled = batch["diffraction"] * self.network.intensity_scale  # the model input s * X
        outputs = self.network({"diffraction_scaled": x_scaled,
                                "relative_px": batch["relative_px"]}, training=training)
        return self.loss_of(outputs["pred_amplitude"], x_scaled)

    def loss_and_gradients(self, batch: Mapping[str, Any]) -> tuple[Any, list[Any]]:
        """:meth:`step` under a tape; gradients in ``network.weight_variables()`` order."""
        variables = [var for _, var in self.network.weight_variables()]
        with tf.GradientTape() as tape:
            loss = self.step(batch, training=True)
        return loss, tape.gradient(loss, variables)

    def apply_update(self, optimizer: Any, gradients: list[Any]) -> None:
        """One ``optimizer`` update of the network's weights with ``gradients`` (in
        ``network.weight_variables()`` order, as :meth:`loss_and_gradients` returns them): the
        update ``train_step`` and the exact steps of :mod:`backends.tensorflow.steps` apply."""
        optimizer.apply(gradients, [var for _, var in self.network.weight_variables()])

    # -- Keras hooks --------------------------------------------------------------------------
    def train_step(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Loss and gradients of one batch, one Adam step, batch-size-weighted ``loss`` mean."""
        loss, gradients = self.loss_and_gradients(data)
        self.apply_update(self.optimizer, gradients)
        self.loss_tracker.update_state(loss, sample_weight=self._batch_size(data))
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Loss of one validation batch into the batch-size-weighted mean (``val_loss``)."""
        loss = self.step(data, training=False)
        self.loss_tracker.update_state(loss, sample_weight=self._batch_size(data))
        return {"loss": self.loss_tracker.result()}

    @staticmethod
    def _batch_size(data: Mapping[str, Any]) -> Any:
        return tf.cast(tf.shape(data["diffraction"])[0], tf.float32)


class _EpochRecorder(keras.callbacks.Callback):
    """History (``loss``, ``val_loss``, ``lr`` = the rate used during the epoch) and progress."""

    def __init__(self, progress: Callable[[int, dict[str, float]], Any] | None) -> None:
        super().__init__()
        self.progress = progress
        self.history: dict[str, list[float]] = {"loss": [], "val_loss": [], "lr": []}
        self._lr = math.nan

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._lr = float(np.float32(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = dict(logs or {})
        record = {"loss": float(logs["loss"]), "lr": self._lr}
        self.history["loss"].append(record["loss"])
        self.history["lr"].append(self._lr)
        if "val_loss" in logs:
            record["val_loss"] = float(logs["val_loss"])
            self.history["val_loss"].append(record["val_loss"])
        if self.progress is not None:
            self.progress(int(epoch), record)


def _dataset(data: PreparedData, groups: range, batch_size: int, *,
             shuffle_seed: int | None) -> Any:
    """``tf.data`` batches of ``{"diffraction", "relative_px"}`` over ``groups`` (in order, or
    reshuffled every epoch from ``shuffle_seed``)."""
    index = np.asarray(groups, dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices({
        "diffraction": data.diffraction[index],
        "relative_px": data.relative_px[index],
    })
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(index), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(2)


def _check_data(config: ModelConfig, data: PreparedData) -> None:
    _, C, N, _ = data.diffraction.shape
    if N != config.N:
        raise ValueError(f"data patterns are {N}x{N}; the model expects N={config.N}")
    if config.channels != C:
        raise ValueError(f"data groups have C={C} patterns; gridsize {config.gridsize} expects "
                         f"C={config.channels}")


def fit(config: ModelConfig, train: TrainConfig, data: PreparedData,
        workdir: str | os.PathLike[str], *, initial_weights: Mapping[str, np.ndarray] | None = None,
        progress: Callable[[int, dict[str, float]], Any] | None = None,
        fast: bool = False) -> TrainResult:
    """Train from scratch with ``keras.Model.fit`` and save a bundle in ``workdir``.

    Parameters
    ----------
    config, train : ModelConfig, TrainConfig
        Options.
    data : PreparedData
        Groups; the last ``train.validation_fraction`` (:func:`parity.config.validation_split`)
        are held out for ``val_loss`` before any shuffling.
    workdir : path
        Bundle directory (``config.json``, ``weights.npz``, ``probe.npy``, ``model.weights.h5``).
    initial_weights : mapping, optional
        Neutral weights to start from; default native init seeded by ``train.seed``.
    progress : callable, optional
        ``progress(epoch, logs)`` after each epoch (``logs``: ``loss``, ``val_loss``, ``lr``).
    fast : bool
        Opt-in speed path: the training step is XLA-compiled (``jit_compile=True``) and op
        determinism is left off (Keras disables XLA under op determinism); off for parity runs.

    Returns
    -------
    TrainResult
        ``history`` holds per epoch ``loss``, ``val_loss`` (empty without validation groups) and
        ``lr`` (the rate used during that epoch, before any reduction at its end).

    Raises
    ------
    ValueError
        If the data's ``N`` or ``C`` differs from ``config``.

    Notes
    -----
    Shuffling: ``tf.data`` ``shuffle(seed=train.seed, reshuffle_each_iteration=True)`` over the
    training groups. ReduceLROnPlateau (on ``val_loss``) is attached only when there are
    validation groups, as the torch twin steps its scheduler only then.
    """
    _check_data(config, data)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # Keras silently turns XLA off while op determinism is on, so the fast path runs without it.
    configure_numerics(seed=train.seed, deterministic=train.deterministic and not fast)
    network = build_model(config, seed=train.seed)
    if initial_weights is not None:
        import_weights(network, initial_weights)
    network.set_physics(data.probe, data.intensity_scale)
    train_groups, val_groups = validation_split(data.diffraction.shape[0],
                                                train.validation_fraction)
    train_data = _dataset(data, train_groups, train.batch_size,
                          shuffle_seed=train.seed if train.shuffle else None)
    val_data = (_dataset(data, val_groups, train.batch_size, shuffle_seed=None)
                if len(val_groups) else None)
    trainer = PtychoPINNTrainer(network, train)
    trainer.compile(optimizer=keras_adam(train), jit_compile=bool(fast), run_eagerly=False)
    if bool(trainer.jit_compile) != bool(fast):  # Keras may refuse XLA (e.g. macOS GPU)
        warnings.warn(f"fast={fast} but Keras compiled with jit_compile={trainer.jit_compile}",
                      RuntimeWarning, stacklevel=2)
    recorder = _EpochRecorder(progress)
    callbacks = [recorder, *keras_callbacks(train, validation=val_data is not None)]
    start = time.perf_counter()
    trainer.fit(train_data, validation_data=val_data, epochs=train.epochs, callbacks=callbacks,
                shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    history = {key: list(values) for key, values in recorder.history.items()}
    _write_bundle(workdir, network, train, probe=data.probe, intensity_scale=data.intensity_scale,
                  history=history)
    return TrainResult(bundle_dir=workdir, history=history, epochs_run=len(history["loss"]),
                       seconds=seconds)
