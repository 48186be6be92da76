"""Adapter discovery (parity/registry.py), and the contract proved on the NumPy oracle adapter."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import numpy as np
import pytest

from parity import registry
from parity.config import ModelConfig
from parity.contract import PHYSICS_OUTPUT_KEYS
from parity.oracle.adapter import OracleAdapter
from parity.registry import ENTRY_POINT_GROUP, available_adapters, load_adapter


def test_installed_adapters_are_listed():
    assert {"oracle", "tensorflow", "torch"} <= set(available_adapters())
    assert available_adapters() == sorted(available_adapters())


def test_unknown_name_lists_the_installed_ones():
    with pytest.raises(ValueError, match="unknown backend 'jax'") as info:
        load_adapter("jax")
    for name in ("oracle", "tensorflow", "torch"):
        assert name in str(info.value)


def test_entry_point_that_is_not_an_adapter(monkeypatch):
    fake = EntryPoint(name="fake", value="parity.config:ModelConfig", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"fake": fake})
    with pytest.raises(ValueError, match="is not an Adapter subclass"):
        load_adapter("fake")


def test_registered_name_and_adapter_name_must_agree(monkeypatch):
    alias = EntryPoint(name="alias", value="parity.oracle.adapter:OracleAdapter",
                       group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"alias": alias})
    with pytest.raises(ValueError, match=r"registered as 'alias' .* says its name is 'oracle'"):
        load_adapter("alias")


def test_backend_names_are_checked_before_any_work(monkeypatch):
    assert registry.check_backend_names(["oracle", "torch"]) == ("oracle", "torch")
    with pytest.raises(ValueError, match="named more than once"):
        registry.check_backend_names(["torch", "torch"])
    with pytest.raises(ValueError, match="no backend named"):
        registry.check_backend_names([])
    lost = EntryPoint(name="lost", value="not_on_any_path_xyz.adapter:Lost", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"lost": lost})
    monkeypatch.setattr(registry, "available_adapters", lambda: ["lost"])
    with pytest.raises(ValueError, match=r"no module named 'not_on_any_path_xyz'.*PYTHONPATH"):
        registry.check_backend_names(["lost"])


def test_adapter_table_lists_every_adapter_and_flags_a_missing_module(monkeypatch):
    rows = {name: (target, source) for name, target, source in registry.adapter_table()}
    assert rows["torch"][0] == "backends.torch.adapter:TorchAdapter"
    assert "NOT IMPORTABLE" not in rows["torch"][1]
    monkeypatch.setenv(registry.ADAPTERS_ENV, "lost=not_on_any_path_xyz:Lost")
    rows = {name: source for name, _, source in registry.adapter_table()}
    assert rows["lost"].startswith(registry.ADAPTERS_ENV) and "NOT IMPORTABLE" in rows["lost"]


def test_oracle_adapter_proves_the_physics_contract():
    adapter = load_adapter("oracle", device="cpu")
    assert isinstance(adapter, OracleAdapter) and adapter.device_request == "cpu"
    config = ModelConfig(N=32, gridsize=2)
    B, C, N, P, n = 3, 4, 32, config.canvas_px, 6
    rng = np.random.default_rng(0)

    def complex64(shape):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)

    relative = rng.uniform(-2, 2, (B, C, 2))
    relative -= relative.mean(axis=1, keepdims=True)
    inputs = {
        "probe": complex64((N, N)),
        "patches": complex64((B, C, N, N)),
        "relative_px": relative.astype(np.float32),
        "translations_px": rng.uniform(-2, 2, (B, C, 2)).astype(np.float32),
        "stitch_patches": complex64((n, N, N)),
        "stitch_centres_px": rng.uniform(20, 40, (n, 2)),
        "pred_amplitude": rng.uniform(0.5, 2, (B, C, N, N)).astype(np.float32),
        "obs_amplitude": rng.uniform(0, 2, (B, C, N, N)).astype(np.float32),
    }
    out = adapter.forward_physics(config, inputs)
    assert sorted(out) == sorted(PHYSICS_OUTPUT_KEYS)
    documented = {  # parity/contract.py PHYSICS_OUTPUT_KEYS comment
        "probe_normalised": (N, N),
        "exit_wave": (B, C, N, N),
        "farfield_amplitude": (B, C, N, N),
        "translated": (B, C, N, N),
        "merged_canvas": (B, P, P),
        "extracted": (B, C, N, N),
        "stitched_origin_px": (2,),
        "poisson_nll": (),
        "mae": (),
    }
    for key, shape in documented.items():
        assert np.shape(out[key]) == shape, key
    height, width = out["stitched"].shape
    assert height >= config.stitch_crop_px and width >= config.stitch_crop_px
    for key, value in out.items():
        assert np.isfinite(value).all(), key
