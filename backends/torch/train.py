"""Training: numerics, the loss, the LightningModule and ``fit``.

Twin of ``backends/tensorflow/train.py``.

The optimiser and the plateau schedule with Keras semantics are :mod:`backends.torch.optim`'s; the
exact single-step hooks of the stage ladder (L3 ``loss_and_grads``, L4 ``train_steps``) are
:mod:`backends.torch.steps`', on :meth:`PtychoPINNModule.exact_step`.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L  # noqa: N812 - the usual Lightning idiom
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from backends.torch import _select_device, _strict_float32
from backends.torch.infer import _write_bundle
from backends.torch.model import PtychoPINN, build_model
from backends.torch.optim import KerasAdam, keras_plateau
from backends.torch.physics import mae_loss, poisson_nll
from backends.torch.weights import import_weights
from parity.config import ModelConfig, TrainConfig, validation_split
from parity.contract import PreparedData, TrainResult

__all__ = ["PtychoPINNModule", "configure_numerics", "fit", "loss_value", "op_determinism_enabled"]


def op_determinism_enabled() -> bool:
    """Whether ``torch.use_deterministic_algorithms`` is on."""
    return bool(torch.are_deterministic_algorithms_enabled())


def configure_numerics(*, seed: int, deterministic: bool) -> dict[str, Any]:
    """Seed every RNG, pin numerics and CPU threads; return the flags set (for reports).

    ``lightning.seed_everything(seed, workers=True)``; TF32 off for matmul and cuDNN (always: a
    parity run never wants it); ``cudnn.benchmark = False``; with ``deterministic``,
    ``torch.use_deterministic_algorithms(True)``, ``cudnn.deterministic = True`` and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (set before CUDA initialises, when not already set).
    CPU threads: ``OMP_NUM_THREADS`` when set, else ``os.cpu_count()``.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    L.seed_everything(int(seed), workers=True, verbose=False)
    torch.use_deterministic_algorithms(bool(deterministic))
    _strict_float32()
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = bool(deterministic)
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    return {
        "seed": int(seed),
        "deterministic_algorithms": op_determinism_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "num_threads": torch.get_num_threads(),
    }


def loss_value(pred_amplitude: torch.Tensor, observed_amplitude: torch.Tensor,
               train: TrainConfig) -> torch.Tensor:
    """The training loss: ``nll_weight * poisson_nll(pred**2, obs**2) + mae_weight * mae``.

    Parameters
    ----------
    pred_amplitude, observed_amplitude : torch.Tensor
        ``(B, C, N, N)`` amplitudes in count units: ``s * A_hat`` and ``s * X``.
    train : TrainConfig
        Loss weights.

    Returns
    -------
    torch.Tensor
        0-d; a term whose weight is 0 is not computed.
    """
    loss = pred_amplitude.new_zeros(())
    if train.nll_weight:
        loss = loss + train.nll_weight * poisson_nll(pred_amplitude**2, observed_amplitude**2)
    if train.mae_weight:
        loss = loss + train.mae_weight * mae_loss(pred_amplitude, observed_amplitude)
    return loss


class PtychoPINNModule(L.LightningModule):
    """Lightning wrapper of :class:`~backends.torch.model.PtychoPINN`.

    One loss path: :meth:`loss` (on amplitudes) inside :meth:`step` (forward + loss), used by
    :meth:`training_step`, :meth:`validation_step` and :meth:`exact_step`. Optimisation is manual
    (``automatic_optimization = False``) so that a step is exactly zero_grad -> loss -> backward ->
    Keras Adam, the same in ``fit`` and in the single-step hooks, and so that the plateau scheduler
    is stepped where Keras steps it (epoch end, on ``val_loss``). Epoch ``loss`` / ``val_loss`` are
    batch-size-weighted means accumulated on the device (Keras metric semantics); the host reads
    them once per epoch.

    Parameters
    ----------
    model : PtychoPINN
        The network, with its physics set.
    train : TrainConfig
        Loss weights and optimiser options.
    fast : bool
        Keyword-only. Channels-last memory, ``torch.compile`` of the real-valued network and bf16
        autocast of it on CUDA. Off for parity runs.
    progress : callable, optional
        Keyword-only. Called as ``progress(epoch, logs)`` after each epoch.
    """

    def __init__(self, model: PtychoPINN, train: TrainConfig, *, fast: bool = False,
                 progress: Callable[[int, dict[str, float]], Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.train_config = train
        self.fast = fast
        self.progress = progress
        self.automatic_optimization = False
        self.save_hyperparameters({"model": asdict(model.config), "train": asdict(train),
                                   "fast": fast})
        self.history: dict[str, list[float]] = {"loss": [], "val_loss": [], "lr": []}
        self._totals: dict[str, tuple[torch.Tensor, int]] = {}
        self._epoch_val_loss: float | None = None
        if fast:
            _install_fast_path(model)

    # -- the one loss path --------------------------------------------------------------------
    def loss(self, pred_amplitude: torch.Tensor, observed_amplitude: torch.Tensor) -> torch.Tensor:
        """:func:`loss_value` with this module's :class:`TrainConfig`."""
        return loss_value(pred_amplitude, observed_amplitude, self.train_config)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Forward one batch ``(X, relative_px)`` and return its loss (0-d)."""
        diffraction, relative = batch
        x_scaled = diffraction * self.model.intensity_scale  # the model input s * X
        outputs = self.model(x_scaled, relative)
        return self.loss(outputs["pred_amplitude"], x_scaled)

    def exact_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                   optimizer: torch.optim.Optimizer, *,
                   backward: Callable[[torch.Tensor], None] | None = None,
                   record_grads: bool = False,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """zero_grad -> :meth:`step` -> backward -> ``optimizer.step()``.

        Returns the detached loss (before the step) and, with ``record_grads``, a copy of every
        weight's gradient keyed by its torch parameter name. ``backward`` defaults to
        ``Tensor.backward`` (no Trainer needed); ``fit`` passes ``manual_backward``.
        """
        optimizer.zero_grad(set_to_none=True)
        loss = self.step(batch)
        (backward or torch.Tensor.backward)(loss)
        grads = ({name: p.grad.detach().clone() for name, p in self.model.named_parameters()
                  if p.grad is not None} if record_grads else {})
        optimizer.step()
        return loss.detach(), grads

    # -- Lightning hooks ----------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """One exact optimiser step; the loss is summed on the device for the epoch mean."""
        loss, _ = self.exact_step(batch, self.optimizers(), backward=self.manual_backward)
        self._accumulate("loss", loss, int(batch[0].shape[0]))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Loss of one validation batch, summed on the device for the epoch mean."""
        self._accumulate("val_loss", self.step(batch).detach(), int(batch[0].shape[0]))

    def configure_optimizers(self) -> dict[str, Any]:
        """:class:`KerasAdam` from the :class:`TrainConfig`, and the Keras-semantics plateau."""
        t = self.train_config
        optimizer = KerasAdam(self.model.parameters(), lr=float(np.float32(t.learning_rate)),
                              beta_1=t.adam_beta_1, beta_2=t.adam_beta_2, epsilon=t.adam_epsilon)
        # Manual optimisation: the scheduler is stepped in on_train_epoch_end on val_loss.
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": keras_plateau(optimizer, t), "interval": "epoch"}}

    def on_train_epoch_start(self) -> None:
        """Reset the epoch's loss sums."""
        self._totals.pop("loss", None)
        self._epoch_val_loss = None

    def on_validation_epoch_start(self) -> None:
        """Reset the validation sums."""
        self._totals.pop("val_loss", None)

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss`` (runs before ``on_train_epoch_end`` of the same epoch)."""
        if "val_loss" in self._totals and not self.trainer.sanity_checking:
            value = self._mean("val_loss")
            self.log("val_loss", value)
            self._epoch_val_loss = float(value)

    def on_train_epoch_end(self) -> None:
        """Log ``loss``; record the history (``lr`` = the rate used in this epoch, as Keras logs
        it); step the plateau scheduler on ``val_loss``; call ``progress``. EarlyStopping, a
        monitoring callback, runs after this hook and sees ``loss``."""
        loss = self._mean("loss")
        self.log("loss", loss)
        optimizer = self.optimizers().optimizer
        logs = {"loss": float(loss), "lr": float(np.float32(optimizer.param_groups[0]["lr"]))}
        self.history["loss"].append(logs["loss"])
        self.history["lr"].append(logs["lr"])
        if self._epoch_val_loss is not None:
            logs["val_loss"] = self._epoch_val_loss
            self.history["val_loss"].append(self._epoch_val_loss)
            self.lr_schedulers().step(self._epoch_val_loss)  # Keras: on_epoch_end, val_loss
            for group in optimizer.param_groups:  # Keras keeps the rate in a float32 variable
                group["lr"] = float(np.float32(group["lr"]))
        self.log("lr", logs["lr"])
        if self.progress is not None:
            self.progress(int(self.current_epoch), dict(logs))

    # -- helpers ------------------------------------------------------------------------------
    def _accumulate(self, key: str, loss: torch.Tensor, batch_size: int) -> None:
        total, count = self._totals.get(key, (torch.zeros((), device=loss.device), 0))
        self._totals[key] = (total + loss.float() * batch_size, count + batch_size)

    def _mean(self, key: str) -> torch.Tensor:
        total, count = self._totals[key]
        return total / torch.tensor(float(count), device=total.device)


def _install_fast_path(model: PtychoPINN) -> None:
    """Channels-last, compiled (and, on a CUDA device with bf16 support, bf16-autocast)
    real-valued network; the complex physics stays eager (inductor's complex support is partial).
    GPUs without bf16 (before Ampere) run the compiled network in float32."""
    model.use_channels_last()
    compiled = torch.compile(model.network)

    def network(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return compiled(x)
        return compiled(x)

    model.network_impl = network


class _GroupBatches(Dataset):
    """Whole batches by index list (one gather per batch instead of per-sample collation)."""

    def __init__(self, diffraction: torch.Tensor, relative: torch.Tensor) -> None:
        self.diffraction = diffraction
        self.relative = relative

    def __len__(self) -> int:
        return int(self.diffraction.shape[0])

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.diffraction[indices], self.relative[indices]


def _loader(data: PreparedData, groups: range, batch_size: int, *, shuffle_seed: int | None,
            pin: bool) -> DataLoader:
    index = torch.as_tensor(list(groups), dtype=torch.int64)
    dataset = _GroupBatches(torch.tensor(data.diffraction)[index],
                            torch.tensor(data.relative_px)[index])
    if shuffle_seed is None:
        sampler: Any = SequentialSampler(dataset)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(shuffle_seed))
    return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=False),
                      batch_size=None, num_workers=0, pin_memory=pin)


def _check_data(config: ModelConfig, data: PreparedData) -> None:
    _, C, N, _ = data.diffraction.shape
    if N != config.N:
        raise ValueError(f"data patterns are {N}x{N}; the model expects N={config.N}")
    if config.channels != C:
        raise ValueError(f"data groups have C={C} patterns; gridsize {config.gridsize} expects "
                         f"C={config.channels}")


def _trainer_device(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"accelerator": "cuda", "devices": [device.index or 0]}
    return {"accelerator": device.type, "devices": 1}


def fit(config: ModelConfig, train: TrainConfig, data: PreparedData,
        workdir: str | os.PathLike[str], *, initial_weights: Mapping[str, np.ndarray] | None = None,
        progress: Callable[[int, dict[str, float]], Any] | None = None,
        fast: bool = False) -> TrainResult:
    """Train from scratch with Lightning and save a bundle in ``workdir``.

    Parameters
    ----------
    config, train : ModelConfig, TrainConfig
        Options.
    data : PreparedData
        Groups; the last ``train.validation_fraction`` (:func:`parity.config.validation_split`)
        are held out for ``val_loss`` before any shuffling.
    workdir : path
        Bundle directory (``config.json``, ``weights.npz``, ``probe.npy``, ``model.ckpt``) and the
        ``CSVLogger`` output.
    initial_weights : mapping, optional
        Neutral weights to start from; default native init seeded by ``train.seed``.
    progress : callable, optional
        ``progress(epoch, logs)`` after each epoch (``logs``: ``loss``, ``val_loss``, ``lr``).
    fast : bool
        Opt-in speed path (see :class:`PtychoPINNModule`); off for parity.

    Returns
    -------
    TrainResult
        ``history`` holds per epoch ``loss``, ``val_loss`` (empty without validation groups) and
        ``lr`` (the rate used during that epoch, as Keras logs it before a reduction).

    Raises
    ------
    ValueError
        If the data's ``N`` or ``C`` differs from ``config``.
    """
    _check_data(config, data)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    device = _select_device()
    configure_numerics(seed=train.seed, deterministic=train.deterministic)
    model = build_model(config, seed=train.seed)
    if initial_weights is not None:
        import_weights(model, initial_weights)
    model.set_physics(data.probe, data.intensity_scale)
    train_groups, val_groups = validation_split(data.diffraction.shape[0],
                                                train.validation_fraction)
    pin = device.type == "cuda"
    train_loader = _loader(data, train_groups, train.batch_size,
                           shuffle_seed=train.seed if train.shuffle else None, pin=pin)
    val_loader = (_loader(data, val_groups, train.batch_size, shuffle_seed=None, pin=pin)
                  if len(val_groups) else None)
    module = PtychoPINNModule(model, train, fast=fast, progress=progress)
    with warnings.catch_warnings(), _quiet_lightning():
        for message in (".*does not have many workers.*", ".*LeafSpec.*is deprecated.*",
                        ".*no val_dataloader.*", ".*GPU available but not used.*"):
            warnings.filterwarnings("ignore", message=message)
        trainer = L.Trainer(
            **_trainer_device(device), max_epochs=train.epochs,
            deterministic=train.deterministic, logger=CSVLogger(workdir),
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
            num_sanity_val_steps=0, log_every_n_steps=1,
            callbacks=[EarlyStopping(monitor="loss", mode="min",
                                     patience=train.early_stop_patience, min_delta=0.0,
                                     check_on_train_epoch_end=True, check_finite=False)],
        )
        start = time.perf_counter()
        trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - start
    history = {key: list(values) for key, values in module.history.items()}
    _write_bundle(workdir, model, train, probe=data.probe, intensity_scale=data.intensity_scale,
                  history=history)
    return TrainResult(bundle_dir=workdir, history=history, epochs_run=len(history["loss"]),
                       seconds=seconds)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lower Lightning's info chatter ("GPU available ...") to warnings during ``fit``."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
