"""Train the built-in ``default`` case with one backend and score it as L5 does.

Shared by ``tests/backends/{tensorflow,torch}/test_train.py``: the backends mirror each other
module for module (``train.fit``, ``model.build_model``, ``infer.predict_patches``,
``infer.infer``, ``stitch.stitch_patches``), so one helper serves both by package name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fixtures.cases import get_case
from parity.contract import TrainResult
from parity.evaluation import score_against_truth
from parity.prepare import group_container, prepare


def train_default_case(backend: str, workdir: Path, *, epochs: int,
                       progress: Callable[[int, dict[str, float]], Any] | None = None
                       ) -> tuple[TrainResult, dict[str, Any], dict[str, Any]]:
    """Train ``fixtures/cases.py``'s ``default`` case from scratch with ``backends.<backend>``.

    Returns ``(result, before, after)``: the :class:`TrainResult` and the truth evaluation
    (:func:`parity.evaluation.score_against_truth`, what L5 reports) of the stitched object of
    the untrained network (``fit``'s own starting point) and of the trained one.
    """
    train_module, model_module, infer_module, stitch_module = (
        importlib.import_module(f"backends.{backend}.{name}")
        for name in ("train", "model", "infer", "stitch"))
    case = get_case("default")
    container, model = case.build(0), case.model_config()
    data = prepare(container, group_container(container, model), model)
    train = case.train_config(epochs=epochs)
    result = train_module.fit(model, train, data, workdir, progress=progress)
    untrained = model_module.build_model(model, seed=train.seed)
    untrained.set_physics(data.probe, data.intensity_scale)

    def score(patches: np.ndarray) -> dict[str, Any]:
        obj, origin = stitch_module.stitch_patches(patches, data.centres_px,
                                                   crop_px=model.stitch_crop_px)
        return score_against_truth(container.object_truth, obj, origin, model)

    return (result, score(infer_module.predict_patches(untrained, data)),
            score(infer_module.infer(workdir, data)))


def ssim(evaluation: dict[str, Any]) -> tuple[float, float]:
    """Amplitude and phase SSIM of an evaluation."""
    return evaluation["amplitude"]["ssim"], evaluation["phase"]["ssim"]
