"""Golden baselines of the tensorflow backend: its own float32 outputs, frozen on disk.

What they catch, the inputs and every tolerance: ``tests/backends/support/golden.py``.
``tests/backends/torch/test_golden.py`` is the twin (same checks, its own data directory
``test_golden/``); regenerate only with ``--force-regen`` and a reviewed diff (docs/backends.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from backends.tensorflow.adapter import TensorFlowAdapter as BackendAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import golden


@pytest.fixture(scope="module")
def golden_inputs() -> dict[str, Any]:
    return golden.golden_inputs()


@pytest.fixture(scope="module")
def adapter() -> BackendAdapter:
    return BackendAdapter(device="cpu")  # goldens are CPU results; a GPU rounds otherwise


def test_golden_inputs(ndarrays_regression, golden_inputs) -> None:
    """Framework-free: if this fails in both twins, the input builders in ``parity`` changed."""
    golden.check_inputs(ndarrays_regression, golden_inputs)


def test_golden_physics(ndarrays_regression, adapter, golden_inputs) -> None:
    golden.check_physics(ndarrays_regression, adapter, golden_inputs)


def test_golden_network_forward(ndarrays_regression, adapter, golden_inputs) -> None:
    golden.check_network_forward(ndarrays_regression, adapter, golden_inputs)


def test_golden_loss_and_grads(ndarrays_regression, adapter, golden_inputs) -> None:
    golden.check_loss_and_grads(ndarrays_regression, adapter, golden_inputs)


def test_golden_train_steps(ndarrays_regression, adapter, golden_inputs) -> None:
    golden.check_train_steps(ndarrays_regression, adapter, golden_inputs)
