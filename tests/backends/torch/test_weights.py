"""backends/torch/weights.py: neutral-weights export and import, and import's errors."""

from __future__ import annotations

import numpy as np
import pytest

from backends.torch.model import build_model
from backends.torch.weights import export_weights, import_weights
from parity.architecture import init_weights, weight_shapes
from parity.config import ModelConfig


@pytest.mark.parametrize("config", [ModelConfig(N=64, gridsize=1),
                                    ModelConfig(N=128, gridsize=2, probe_big=True)])
def test_export_after_import_is_bit_identical(config: ModelConfig) -> None:
    weights = init_weights(config, 11)
    model = build_model(config, seed=0)
    import_weights(model, weights)
    exported = export_weights(model)
    assert list(exported) == list(weight_shapes(config))
    for name, value in weights.items():
        assert exported[name].dtype == np.float32
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


def test_import_names_missing_unexpected_and_misshaped_weights() -> None:
    config = ModelConfig(N=64)
    model = build_model(config, seed=0)
    before = export_weights(model)
    weights = init_weights(config, 1)
    missing = dict(weights)
    del missing["decoder_phase.head.kernel"]
    missing["decoder_phase.extra.bias"] = np.zeros(3, np.float32)
    with pytest.raises(KeyError, match=r"missing \['decoder_phase.head.kernel'\], "
                                       r"unexpected \['decoder_phase.extra.bias'\]"):
        import_weights(model, missing)
    misshaped = dict(weights)
    misshaped["encoder.block1.conv0.kernel"] = np.zeros((3, 3, 32, 65), np.float32)
    with pytest.raises(ValueError, match=r"encoder.block1.conv0.kernel has shape "
                                         r"\(3, 3, 32, 65\); expected \(3, 3, 32, 64\)"):
        import_weights(model, misshaped)
    after = export_weights(model)  # a rejected import leaves the model untouched
    assert all(np.array_equal(before[k], after[k]) for k in before)
