"""The shared effective-configuration dict (parity/effective.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from parity.architecture import weight_shapes
from parity.config import ModelConfig, TrainConfig
from parity.effective import (
    ADAM_FORMULA,
    FRAMEWORK_SECTION,
    LOSS_REDUCTION,
    effective_config_dict,
    shared_part,
)


def test_contents():
    model = ModelConfig(N=64, gridsize=2, probe_big=True)
    train = TrainConfig(mae_weight=0.5)
    effective = effective_config_dict(model, train, conv_layout="NHWC")
    assert effective["model"] == dataclasses.asdict(model)
    assert effective["train"] == dataclasses.asdict(train)
    derived = effective["derived"]
    assert (derived["channels"], derived["output_channels"], derived["canvas_px"]) == (4, 4, 78)
    assert derived["encoder_widths"] == [32, 64, 128]
    assert derived["decoder_widths"] == [64, 32]
    assert derived["head_in_channels"] == 28 and derived["border_width"] == 32
    assert derived["weight_shapes"]["decoder_amp.head.kernel"] == [3, 3, 28, 4]
    assert derived["n_parameters"] == sum(
        math.prod(s) for s in weight_shapes(model).values())
    assert effective["optimizer"]["formula"] == ADAM_FORMULA == "keras-epsilon-hat"
    assert effective["optimizer"]["epsilon"] == train.adam_epsilon
    assert effective["loss"]["reduction"] == LOSS_REDUCTION == "mean over all elements"
    assert effective["callbacks"]["plateau"]["semantics"] == "keras"
    assert effective["conventions"]["local_offset_sign"] == -1.0
    assert effective[FRAMEWORK_SECTION] == {"conv_layout": "NHWC"}
    assert json.loads(json.dumps(effective)) == effective  # lists, not tuples: exact round trip


def test_a_changed_config_shows_outside_the_framework_section():
    train = TrainConfig()
    base = effective_config_dict(ModelConfig(), train, conv_layout="NHWC")
    other = effective_config_dict(ModelConfig(), train, conv_layout="NCHW")
    assert shared_part(base) == shared_part(other)  # framework facts may differ
    changed = effective_config_dict(ModelConfig(probe_scale=2.0), train)
    assert shared_part(changed) != shared_part(base)
    assert FRAMEWORK_SECTION not in shared_part(base)


def test_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"expected \(ModelConfig, TrainConfig\)"):
        effective_config_dict(TrainConfig(), ModelConfig())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="device="):
        effective_config_dict(ModelConfig(), TrainConfig(), device=object())
