"""Tests of parity.equivalence: the pre-registered TOST margins, the L5 checks built from
per-seed metrics, and the L5 multi-seed mode of the engine (in process, framework-free seeded
adapters built on the NumPy oracle). The TOST itself is tested in test_tost.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from fixtures.objects import make_object
from fixtures.probes import make_probe
from fixtures.scans import make_scan
from fixtures.simulate import simulate_container
from parity.cli import EXIT_USAGE, main
from parity.config import ModelConfig, TrainConfig
from parity.contract import PreparedData, TrainResult
from parity.engine import RunPlan, run_parity
from parity.equivalence import EQUIVALENCE_METRICS, equivalence_checks, metric_value
from parity.inputs import initial_weights as numpy_initial_weights
from parity.oracle.adapter import OracleAdapter
from parity.report.summary import render_summary
from parity.tolerances import load_table
from parity.tost import paired_tost

# --------------------------------------------------------------------------- margins


def test_margins_are_pre_registered_in_the_tolerance_file():
    table = load_table()
    expected = {"mae_amp": 0.015, "mae_phase": 0.025, "ssim_amp": 0.035, "ssim_phase": 0.04}
    for metric in EQUIVALENCE_METRICS:
        entry = table.margin(metric)
        assert entry.reason.strip() and entry.alpha == 0.05
        if metric in expected:
            assert entry.margin == pytest.approx(expected[metric], abs=0.0)
    assert 0 < table.margin("r_factor").margin < 0.06  # tighter than the single-seed atol
    with pytest.raises(KeyError, match="no equivalence margin for 'psnr_amp'"):
        table.margin("psnr_amp")


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ('metric = "mae_amp"\nmargin = -0.1\nalpha = 0.05\nreason = "x"', "finite number > 0"),
        ('metric = "mae_amp"\nmargin = 0.1\nalpha = 0.05\nreason = " "', "has no reason"),
        ('metric = "mae_amp"\nmargin = 0.1\nreason = "x"', "malformed"),
    ],
)
def test_bad_margin_entries_are_rejected(entry, needle, tmp_path):
    path = tmp_path / "tol.toml"
    path.write_text(f"[[equivalence]]\n{entry}\n")
    with pytest.raises(ValueError, match=needle):
        load_table(path)


def test_repeated_margin_entry_is_rejected(tmp_path):
    entry = '[[equivalence]]\nmetric = "mae_amp"\nmargin = 0.1\nalpha = 0.05\nreason = "x"\n'
    path = tmp_path / "tol.toml"
    path.write_text(entry + entry)
    with pytest.raises(ValueError, match="repeats metric 'mae_amp'"):
        load_table(path)


# --------------------------------------------------------------------------- equivalence_checks


def _metrics(gated: Mapping[str, float | None], r_factor: float) -> dict:
    return {"gated": dict(gated), "data_consistency": {"r_factor": r_factor}}


def test_equivalence_checks_pair_seeds_skip_undefined_and_name_missing():
    margins = {m: load_table().margin(m) for m in EQUIVALENCE_METRICS}
    per_seed = {}
    for seed, (amp, phase_mae) in enumerate([(0.80, 0.10), (0.82, 0.12), (0.79, 0.11)]):
        base = {"ssim_amp": amp, "ssim_phase": None, "mae_amp": 0.05, "mae_phase": phase_mae}
        ours = {**base, "ssim_amp": amp + 0.001 * (seed - 1), "mae_amp": 0.05 + 0.04,
                "mae_phase": None if seed == 2 else phase_mae}
        per_seed[seed] = {"ref": _metrics(base, 0.2), "dut": _metrics(ours, 0.2 + 0.001 * seed)}
    per_seed[3] = {"ref": _metrics(per_seed[0]["ref"]["gated"], 0.2)}  # dut's training failed
    checks, tests = equivalence_checks(per_seed, ("ref", "dut"), margins)
    by_metric = {c.quantity: c for c in checks}
    assert set(by_metric) == {"ssim_amp", "mae_amp", "mae_phase", "r_factor"}  # ssim_phase: None
    assert all(c.level == "L5" and c.stage == "equivalence" for c in checks)
    assert by_metric["ssim_amp"].verdict == "pass"
    assert by_metric["mae_amp"].verdict == "fail"  # a constant +0.04 shift, margin 0.015
    assert by_metric["mae_phase"].verdict == "error" and "seed(s) [2]" in by_metric["mae_phase"].message
    assert "seed(s) [3] left out" in by_metric["r_factor"].message
    assert tests["dut"]["ssim_amp"]["seeds"] == [0, 1, 2]
    assert by_metric["mae_amp"].tolerance["margin"] == 0.015
    assert metric_value(per_seed[1], "dut", "r_factor") == pytest.approx(0.201, abs=1e-15)


def test_equivalence_checks_with_one_paired_seed_are_errors_not_passes():
    margins = {m: load_table().margin(m) for m in EQUIVALENCE_METRICS}
    gated = {"ssim_amp": 0.8, "ssim_phase": 0.7, "mae_amp": 0.05, "mae_phase": 0.1}
    per_seed = {0: {"ref": _metrics(gated, 0.2), "dut": _metrics(gated, 0.2)},
                1: {"ref": _metrics(gated, 0.2)}}
    checks, tests = equivalence_checks(per_seed, ("ref", "dut"), margins)
    assert len(checks) == len(EQUIVALENCE_METRICS)
    assert all(c.verdict == "error" and "INSUFFICIENT" in c.message for c in checks)
    assert tests["dut"]["mae_amp"]["verdict"] == "insufficient"


# --------------------------------------------------------------------------- engine


class _SeededNet(OracleAdapter):
    """The oracle network as a 'trainer': training = the NumPy initialisation seeded by
    ``TrainConfig.seed`` (+ ``seed_offset``), inference = the float64 forward pass; ``noise``
    multiplies the predicted patches by a seeded random amplitude factor (a broken backend)."""

    capabilities = OracleAdapter.capabilities | {"train", "infer"}

    def __init__(self, name: str, *, seed_offset: int = 0, noise: float = 0.0) -> None:
        super().__init__()
        self.name = name
        self.seed_offset = seed_offset
        self.noise = noise

    def train(self, config: ModelConfig, train: TrainConfig, data: PreparedData, workdir: Path,
              *, initial_weights=None, progress=None) -> TrainResult:
        seed = train.seed + self.seed_offset
        np.savez(workdir / "weights.npz", **numpy_initial_weights(config, seed=seed))
        (workdir / "config.json").write_text(json.dumps({"model": dataclasses.asdict(config),
                                                         "seed": seed}))
        return TrainResult(bundle_dir=workdir, history={}, epochs_run=0)

    def infer(self, bundle_dir: Path, data: PreparedData) -> np.ndarray:
        saved = json.loads((Path(bundle_dir) / "config.json").read_text())
        config = ModelConfig(**saved["model"])
        with np.load(Path(bundle_dir) / "weights.npz") as archive:
            weights = {k: archive[k] for k in archive.files}
        patches = self.network_forward(config, weights, data.batch(slice(None)))["trimmed_obj"]
        if self.noise:
            rng = np.random.default_rng(saved["seed"] + 1000)
            patches = patches * np.abs(1.0 + self.noise * rng.standard_normal(patches.shape))
        return patches


@pytest.fixture(scope="module")
def tiny_case():
    """N=32, a 44 px GRF object, 25 patterns: the oracle's float64 forward stays ~1 s."""
    obj = make_object("grf", 44, seed=0, background=0.5)
    probe = make_probe("default", 32)
    positions = make_scan("raster", obj.shape, step_px=6, margin_px=8, jitter_px=0.75, seed=1)
    container = simulate_container(obj, probe, positions, name="tiny", nphotons=1e6, seed=2,
                                   gridsize=1, K=4)
    model = ModelConfig(N=32, gridsize=1, n_filters_scale=1, stitch_crop_px=10)
    return container, model, TrainConfig(epochs=1, batch_size=16, seed=0)


def _run(tiny_case, tmp_path, seeds, **dut_options):
    container, model, train = tiny_case
    plan = RunPlan(container=container, model=model, train=train, backends=("ref", "dut"),
                   levels=("L0", "L5"), isolation="inprocess", seeds=seeds)

    def factory(name: str) -> _SeededNet:
        return _SeededNet(name, **(dut_options if name == "dut" else {}))

    return run_parity(plan, tmp_path, adapter_factory=factory)


def test_engine_multi_seed_identical_backends_are_equivalent(tiny_case, tmp_path):
    result, _ = _run(tiny_case, tmp_path, (0, 1, 2))
    record = result.equivalence
    assert record["seeds"] == [0, 1, 2]
    assert set(record["per_seed"]) == {"0", "1", "2"}
    for seed in ("0", "1", "2"):
        for backend in ("ref", "dut"):
            assert set(record["per_seed"][seed][backend]["gated"]) >= {"ssim_amp", "mae_amp"}
            assert record["training"][seed][backend]["seed"] == int(seed)
    # each seed trained from its own initialisation: the metrics differ between seeds
    amp = [record["per_seed"][s]["ref"]["gated"]["ssim_amp"] for s in ("0", "1", "2")]
    assert len(set(amp)) == 3
    tests = [c for c in result.checks if c.stage == "equivalence"]
    assert {c.quantity for c in tests} <= set(EQUIVALENCE_METRICS) and len(tests) >= 4
    assert all(c.verdict == "pass" and c.measured["sd"] == 0.0 for c in tests), \
        [c.message for c in tests]
    assert not [c for c in result.checks if c.stage == "independent"]  # single draws: not gated
    assert result.exit_code == 0
    assert record["margins"]["mae_amp"]["margin"] == 0.015
    assert {c.level for c in result.checks} == {"L0", "L5"}
    assert sum(1 for c in result.checks if c.level == "L0" and c.stage == "effective_config") == 2
    report = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert report["equivalence"]["tests"]["dut"]["mae_amp"]["verdict"] == "equivalent"
    assert report["config"]["seeds"] == [0, 1, 2]
    summary = render_summary(result)
    assert "## L5 equivalence over seeds (paired TOST)" in summary
    assert "| mae_amp [dut] | 3 | 0 | [0, 0] | +-0.015 | EQUIVALENT |" in summary


def test_engine_multi_seed_noisy_backend_is_not_equivalent(tiny_case, tmp_path):
    result, _ = _run(tiny_case, tmp_path, (0, 1), seed_offset=100, noise=0.5)
    assert result.exit_code == 1
    first = result.first_divergence
    assert first is not None and (first.level, first.stage) == ("L5", "equivalence")
    record = result.equivalence
    margins = load_table()
    for check in (c for c in result.checks if c.stage == "equivalence"):
        # the recorded test is the TOST of the recorded per-seed metrics, nothing else
        base = [metric_value(record["per_seed"][s], "ref", check.quantity) for s in ("0", "1")]
        ours = [metric_value(record["per_seed"][s], "dut", check.quantity) for s in ("0", "1")]
        again = paired_tost(base, ours, margin=margins.margin(check.quantity).margin,
                            seeds=[0, 1])
        assert check.measured["mean_diff"] == pytest.approx(again.mean, abs=1e-12)
        assert check.verdict == {"equivalent": "pass", "not_equivalent": "fail"}[again.verdict]
    mae_amp = next(c for c in result.checks if c.stage == "equivalence"
                   and c.quantity == "mae_amp")
    assert mae_amp.verdict == "fail" and mae_amp.measured["mean_diff"] > 0.015


def test_single_seed_mode_is_unchanged(tiny_case, tmp_path):
    container, model, train = tiny_case
    plan = RunPlan(container=container, model=model, train=train, backends=("ref", "dut"),
                   levels=("L5",), isolation="inprocess")
    result, _ = run_parity(plan, tmp_path, adapter_factory=lambda name: _SeededNet(name))
    assert result.equivalence == {} and "seeds" not in result.config
    assert not [c for c in result.checks if c.stage == "equivalence"]
    independent = [c for c in result.checks if c.stage == "independent"]
    assert independent and all(c.verdict == "pass" for c in independent)
    assert "equivalence over seeds" not in render_summary(result)


@pytest.mark.parametrize(
    ("seeds", "levels", "needle"),
    [((0,), ("L5",), "at least 2 distinct"), ((0, 0), ("L5",), "at least 2 distinct"),
     ((0, -1), ("L5",), "integers >= 0"), ((0, 1), ("L0",), "L5 is not among")],
)
def test_run_plan_rejects_bad_seeds(tiny_case, seeds, levels, needle):
    container, model, train = tiny_case
    with pytest.raises(ValueError, match=needle):
        RunPlan(container=container, model=model, train=train, levels=levels, seeds=seeds)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [(["--seeds", "3"], "at least 2 distinct"), (["--seeds", "0,x"], "comma list of integers"),
     (["--seeds", "0,1", "--levels", "L0,L1"], "needs level L5")],
)
def test_cli_bad_seeds_exit_2(argv, needle, tmp_path, capsys):
    assert main(["run", "--case", "small", *argv, "--out", str(tmp_path)]) == EXIT_USAGE
    assert needle in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_help_documents_seeds(capsys):
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--seeds S1,S2,..." in text and "comma list of at least 2 distinct" in text
