"""The L0-L2 stage checks (parity/ladder.py) on synthetic backend outputs, no backend run."""

from __future__ import annotations

import numpy as np

from parity.divergences import load_registry
from parity.judge import Judge
from parity.ladder import pool_routing
from parity.tolerances import load_table


def _pool_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float64 'oracle' pool inputs of two blocks, one window with an exact float64 tie."""
    block0 = rng.uniform(0.1, 1.0, (1, 2, 4, 4))
    block0[0, 0, 0, 0] = block0[0, 0, 0, 1] = 2.0  # window (0, 0) of channel 0: a tie
    block1 = rng.uniform(0.1, 1.0, (1, 2, 2, 2))
    return {"pool_input.encoder.block0": block0, "pool_input.encoder.block1": block1}


def test_pool_routing_accepts_a_flipped_float64_tie_and_names_a_real_routing_change() -> None:
    judge = Judge(load_table(), load_registry(), device="cpu")
    oracle = _pool_inputs(np.random.default_rng(0))
    base = {k: v.astype(np.float32) for k, v in oracle.items()}
    ours = {k: v.copy() for k, v in base.items()}
    ours["pool_input.encoder.block0"][0, 0, 0, 0] -= np.float32(2e-7)  # rounding: the tie flips
    routing = pool_routing(judge, ours, base, oracle)
    assert routing is not None
    assert routing.flipped == {"encoder.block0": 1, "encoder.block1": 0}
    assert routing.rounding_only and routing.deepest == 0
    # A winner moved where float64 has no tie (0.5 apart): not rounding.
    moved = {k: v.copy() for k, v in ours.items()}
    window = moved["pool_input.encoder.block1"][0, 1]
    window[np.unravel_index(np.argmin(window), window.shape)] = 5.0
    routing = pool_routing(judge, moved, base, oracle)
    assert routing.unexplained == {"encoder.block0": 0, "encoder.block1": 1}
    assert not routing.rounding_only and routing.deepest == 1
    assert "not a float64 tie" in routing.describe()
    assert pool_routing(judge, {}, base, oracle) is None  # no pool inputs: no diagnosis


def test_layout_names_keys_outside_the_contract_and_pair_dtypes() -> None:
    """L0: a key no contract lists (a typo, a debug array) and a precision other than the
    baseline's are findings; optional pool inputs are judged only when returned."""
    from parity.config import ModelConfig, TrainConfig
    from parity.contract import NETWORK_OUTPUT_KEYS, PHYSICS_OUTPUT_KEYS, pool_input_keys
    from parity.judge import Judge
    from parity.ladder import level0_checks
    from parity.oracle.adapter import OracleAdapter

    model, train = ModelConfig(N=32, stitch_crop_px=16), TrainConfig()
    oracle = OracleAdapter()
    physics = {k: np.zeros((2, 1, 32, 32)) for k in PHYSICS_OUTPUT_KEYS}
    network = {k: np.zeros((2, 32, 32), np.complex128) for k in NETWORK_OUTPUT_KEYS}
    network.update({k: np.zeros((2, 4, 8, 8)) for k in pool_input_keys(model)})
    expected = {"physics": physics, "network": network}
    f32 = {k: v.astype(np.float32) for k, v in physics.items()}
    good = {"physics": f32, "network": {k: network[k].astype(np.complex64)
                                        for k in NETWORK_OUTPUT_KEYS}}  # no pool inputs: fine
    bad = {"physics": {**f32, "debug_view": np.zeros(3, np.float32)},
           "network": {**good["network"], "trimmed_obj": network["trimmed_obj"]}}  # complex128
    record = {"config": oracle.effective_config(model, train)}
    judge = Judge(load_table(), load_registry(), device="cpu")

    def layout(outputs: dict) -> dict[str, str]:
        checks = level0_checks(judge, oracle, model, train, "port", "base", record, {},
                               {"port": outputs, "base": good}, expected)
        return {f"{c.stage}/{c.quantity}": c.verdict + " " + (c.message or "") for c in checks}

    assert all(v.startswith("pass") for v in layout(good).values())
    found = layout(bad)
    assert found["layout/physics"].startswith("fail") and "debug_view: unexpected" in \
        found["layout/physics"]
    assert found["pair.dtype/network"].startswith("fail") and "complex128" in \
        found["pair.dtype/network"]
