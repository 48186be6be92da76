"""``backends.tensorflow.weights``: neutral-weights export and import, and import's errors."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from backends.tensorflow import model as tf_model  # noqa: E402
from backends.tensorflow import weights as tf_weights  # noqa: E402
from parity.architecture import init_weights, weight_shapes  # noqa: E402
from parity.config import ModelConfig  # noqa: E402


def _ids(config: ModelConfig) -> str:
    return (f"N{config.N}-g{config.gridsize}-big{int(config.probe_big)}"
            f"-obj{int(config.object_big)}-{config.amp_activation}")


@pytest.mark.parametrize("config", [ModelConfig(N=64, gridsize=2, probe_big=True),
                                    ModelConfig(N=128, gridsize=1)], ids=_ids)
def test_export_import_round_trip_is_bit_identical(config):
    weights = init_weights(config, seed=3)
    model = tf_model.build_model(config, seed=0)
    tf_weights.import_weights(model, weights)
    exported = tf_weights.export_weights(model)
    assert list(exported) == list(weight_shapes(config))  # build order, neutral names
    for name, value in weights.items():
        assert exported[name].dtype == np.float32
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


def test_import_names_missing_and_unexpected_weights():
    config = ModelConfig(N=64)
    model = tf_model.build_model(config, seed=0)
    weights = init_weights(config, seed=0)
    del weights["decoder_phase.head.bias"]
    weights["decoder_amp.extra.kernel"] = np.zeros((3, 3, 1, 1), np.float32)
    with pytest.raises(KeyError, match=r"missing \['decoder_phase.head.bias'\].*"
                                       r"unexpected \['decoder_amp.extra.kernel'\]"):
        tf_weights.import_weights(model, weights)


def test_import_names_misshaped_and_non_finite_weights_and_writes_nothing():
    config = ModelConfig(N=64)
    model = tf_model.build_model(config, seed=0)
    before = tf_weights.export_weights(model)
    weights = init_weights(config, seed=0)
    weights["encoder.block1.conv0.kernel"] = np.zeros((3, 3, 32, 63), np.float32)
    with pytest.raises(ValueError, match=r"encoder.block1.conv0.kernel has shape \(3, 3, 32, 63\); "
                                         r"expected \(3, 3, 32, 64\)"):
        tf_weights.import_weights(model, weights)
    weights = init_weights(config, seed=0)
    weights["decoder_amp.head.bias"] = np.array([np.nan], np.float32)
    with pytest.raises(ValueError, match=r"decoder_amp\.head\.bias has non-finite"):
        tf_weights.import_weights(model, weights)
    after = tf_weights.export_weights(model)  # validation happens before any assignment
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
