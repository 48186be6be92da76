"""Tests of parity/config.py: defaults, derived sizes, validation, round trip, validation split."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from parity.config import ModelConfig, TrainConfig, config_from_dict, validation_split


def test_reference_defaults():
    # PtychoPINN reference values (research brief §2.5); n_filters_scale 1 is the CPU default.
    model, train = ModelConfig(), TrainConfig()
    assert (model.N, model.gridsize, model.n_filters_scale) == (64, 1, 1)
    assert (model.amp_activation, model.probe_scale, model.stitch_crop_px) == ("sigmoid", 4.0, 20)
    assert (train.batch_size, train.learning_rate, train.adam_epsilon) == (16, 1e-3, 1e-7)
    assert (train.adam_beta_1, train.adam_beta_2) == (0.9, 0.999)
    assert (train.plateau_factor, train.plateau_patience, train.plateau_min_lr) == (0.5, 2, 1e-4)
    assert (train.early_stop_patience, train.validation_fraction) == (3, 0.05)


@pytest.mark.parametrize(
    ("kwargs", "channels", "output_channels", "canvas_px"),
    [
        ({}, 1, 1, 74),
        ({"gridsize": 2}, 4, 4, 78),  # the reference's 78x78 canvas (N=64, g=2)
        ({"gridsize": 2, "object_big": False}, 4, 1, 78),
        ({"N": 32, "gridsize": 3, "offset_px": 6}, 9, 9, 54),
    ],
)
def test_derived_sizes(kwargs, channels, output_channels, canvas_px):
    config = ModelConfig(**kwargs)
    assert config.channels == channels
    assert config.output_channels == output_channels
    assert config.canvas_px == canvas_px


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"N": 48}, "N=48"),
        ({"gridsize": 0}, "gridsize=0"),
        ({"gridsize": 5}, "gridsize=5"),
        ({"n_filters_scale": 0}, "n_filters_scale=0"),
        ({"amp_activation": "tanh"}, "amp_activation='tanh'"),
        ({"probe_scale": 0.0}, "probe_scale=0.0"),
        ({"probe_scale": float("nan")}, "probe_scale=nan"),
        ({"offset_px": -1}, "offset_px"),
        ({"max_position_jitter_px": 3}, "even"),
        ({"gridsize": 2, "offset_px": 3}, "even"),
        ({"stitch_crop_px": 21}, "stitch_crop_px=21"),
        ({"stitch_crop_px": 66}, "stitch_crop_px=66"),
    ],
)
def test_model_config_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"adam_epsilon": float("inf")}, "adam_epsilon"),
        ({"adam_beta_1": 1.0}, "adam_beta_1"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"nll_weight": 1.5}, "nll_weight"),
        ({"nll_weight": 0.0, "mae_weight": 0.0}, "both 0"),
        ({"plateau_patience": -1}, "plateau_patience"),
        ({"early_stop_patience": 0}, "early_stop_patience"),
    ],
)
def test_train_config_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (ModelConfig, {"N": "64"}, r"ModelConfig option N='64' is str; expected int"),
        (ModelConfig, {"N": 64.0}, r"N=64\.0 is float; expected int"),
        (ModelConfig, {"gridsize": True}, r"gridsize=True is bool; expected int"),
        (ModelConfig, {"object_big": 1}, r"object_big=1 is int; expected bool"),
        (ModelConfig, {"amp_activation": None}, r"amp_activation=None is NoneType; expected str"),
        (ModelConfig, {"probe_scale": "4"}, r"probe_scale='4' is str; expected float"),
        (TrainConfig, {"epochs": [3]}, r"TrainConfig option epochs=\[3\] is list; expected int"),
        (TrainConfig, {"learning_rate": float("inf")}, r"learning_rate=inf: expected a finite"),
        (TrainConfig, {"deterministic": "yes"}, r"deterministic='yes' is str; expected bool"),
    ],
)
def test_wrong_types_are_named(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_numpy_scalars_become_python_values():
    # Values read from NPZ metadata arrive as NumPy scalars; the config stores Python ones so that
    # it serialises to JSON and compares exactly at L0.
    model = ModelConfig(N=np.int64(32), probe_scale=np.float32(2.5), object_big=np.bool_(False))
    train = TrainConfig(epochs=np.int32(2), learning_rate=np.float64(1e-3))
    assert (type(model.N), type(model.probe_scale), type(model.object_big)) == (int, float, bool)
    assert (type(train.epochs), type(train.learning_rate)) == (int, float)
    assert json.loads(json.dumps(dataclasses.asdict(model)))["probe_scale"] == 2.5
    assert ModelConfig(probe_scale=4) == ModelConfig(probe_scale=4.0)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().N = 32  # type: ignore[misc]


def test_config_from_dict_round_trip_and_unknown_key():
    model = ModelConfig(N=32, gridsize=2, probe_big=True)
    assert config_from_dict(ModelConfig, dataclasses.asdict(model)) == model
    train = TrainConfig(epochs=3, mae_weight=0.5)
    assert config_from_dict(TrainConfig, dataclasses.asdict(train)) == train
    with pytest.raises(ValueError, match=r"unknown ModelConfig option\(s\) \['nfilters'\]"):
        config_from_dict(ModelConfig, {"nfilters": 2})


@pytest.mark.parametrize(
    ("n", "fraction", "train_range", "val_range"),
    [
        (100, 0.05, range(0, 95), range(95, 100)),
        (10, 0.05, range(0, 9), range(9, 10)),  # floor(9.5) = 9, as Keras' int() split
        (7, 0.0, range(0, 7), range(7, 7)),
    ],
)
def test_validation_split_takes_the_last_fraction(n, fraction, train_range, val_range):
    assert validation_split(n, fraction) == (train_range, val_range)


@pytest.mark.parametrize(("n", "fraction", "match"), [(0, 0.1, "n_groups=0"),
                                                      (1, 0.5, "no training group")])
def test_validation_split_rejects(n, fraction, match):
    with pytest.raises(ValueError, match=match):
        validation_split(n, fraction)
