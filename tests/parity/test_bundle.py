"""The bundle files shared by both backends (parity/bundle.py), without any framework."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parity.bundle import (
    BUNDLE_CONFIG,
    BUNDLE_PROBE,
    BUNDLE_WEIGHTS,
    atomic_write,
    check_checkpoint_agrees,
    read_bundle,
    write_bundle,
)
from parity.config import ModelConfig, TrainConfig

CHECKPOINT = "native.bin"


def _write(directory: Path, **overrides) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    weights = {"a.kernel": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
               "a.bias": rng.standard_normal(4).astype(np.float32)}
    probe = (rng.standard_normal((32, 32)) + 1j * rng.standard_normal((32, 32))).astype(np.complex64)
    arguments = dict(backend="numpy", model=ModelConfig(N=32, gridsize=1),
                     train=TrainConfig(epochs=3, seed=7), probe=probe, intensity_scale=12.5,
                     history={"loss": [np.float32(2.0), 1.5]}, weights=weights,
                     checkpoint_name=CHECKPOINT,
                     write_checkpoint=lambda path: path.write_bytes(b"native"))
    arguments.update(overrides)
    write_bundle(directory, **arguments)
    return {"probe": probe, **weights}


def test_bundle_round_trips_bit_for_bit(tmp_path: Path) -> None:
    arrays = _write(tmp_path / "bundle")
    files = read_bundle(tmp_path / "bundle", CHECKPOINT)
    assert files.model == ModelConfig(N=32, gridsize=1)
    assert files.train == TrainConfig(epochs=3, seed=7)
    assert files.intensity_scale == 12.5
    assert files.config["backend"] == "numpy"
    assert files.config["history"] == {"loss": [2.0, 1.5]}
    assert files.checkpoint.read_bytes() == b"native"
    np.testing.assert_array_equal(files.probe, arrays["probe"])  # exact: tolerance 0
    assert files.probe.dtype == np.complex64
    assert sorted(files.weights) == ["a.bias", "a.kernel"]
    for key, value in files.weights.items():
        np.testing.assert_array_equal(value, arrays[key])
    check_checkpoint_agrees(files, {k: v.copy() for k, v in files.weights.items()})
    assert sorted(p.name for p in files.directory.iterdir()) == sorted(
        [BUNDLE_CONFIG, BUNDLE_WEIGHTS, BUNDLE_PROBE, CHECKPOINT])  # no temporary left behind


@pytest.mark.parametrize("missing", [BUNDLE_CONFIG, BUNDLE_WEIGHTS, BUNDLE_PROBE, CHECKPOINT])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    _write(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"lacks {missing.replace('.', '[.]')}"):
        read_bundle(tmp_path, CHECKPOINT)


@pytest.mark.parametrize(("name", "content", "match"), [
    (BUNDLE_CONFIG, b"{not json", r"config\.json is not a valid bundle config"),
    (BUNDLE_CONFIG, b"\xff\xfe", r"config\.json is not a valid bundle config"),
    (BUNDLE_CONFIG, json.dumps({"model": {"N": 32}}).encode(), r"config\.json .*intensity_scale"),
    (BUNDLE_CONFIG, json.dumps({"model": {"N": -1}, "intensity_scale": 1}).encode(),
     r"config\.json is not a valid bundle config"),
    (BUNDLE_WEIGHTS, b"PK\x03\x04truncated", r"cannot read .*weights\.npz"),
    (BUNDLE_PROBE, b"", r"cannot read .*probe\.npy"),
])
def test_unreadable_file_is_named(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    _write(tmp_path)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_bundle(tmp_path, CHECKPOINT)


def test_checkpoint_disagreeing_with_weights_is_named(tmp_path: Path) -> None:
    _write(tmp_path)
    files = read_bundle(tmp_path, CHECKPOINT)
    changed = dict(files.weights, **{"a.bias": files.weights["a.bias"] + np.float32(1e-6)})
    with pytest.raises(ValueError, match=r"weights\.npz disagrees with .*native\.bin at "
                                         r"\['a\.bias'\] \(1 weight"):
        check_checkpoint_agrees(files, changed)
    extra = dict(files.weights, **{"b.kernel": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match=r"\['b\.kernel'\]"):
        check_checkpoint_agrees(replace(files), extra)


def test_failed_write_leaves_earlier_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    target.write_text("earlier")

    def crash(path: Path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_text() == "earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
