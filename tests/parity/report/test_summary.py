"""Tests of parity.report.summary: the Markdown review of a run."""

from __future__ import annotations

import pytest

from parity.report import summary
from parity.report.summary import render_summary
from parity.results import BackendRun, Check, RunResult

TOL = {"rtol": 1e-5, "atol": 1e-6, "reason": "f32 FFT vs f64 oracle"}


def _result(*, crashed: bool = True, failing: bool = True) -> RunResult:
    checks = [
        Check("L0", "grouping", "nn_indices", "pair", "tensorflow", "pass",
              {"n_mismatch": 0}, {"exact": True, "reason": "index data"}),
        Check("L1", "exit_wave", "complex", "torch", "oracle", "pass",
              {"max_abs_err": 2e-8, "max_rel_err": 3e-7, "fraction_out": 0.0}, TOL),
        Check("L1", "farfield_amplitude", "amplitude", "torch", "oracle",
              "fail" if failing else "pass",
              {"max_abs_err": 3.2e-4, "max_rel_err": 0.02, "fraction_out": 0.125,
               "worst": [[0, 3, 4], [1, 2, 2]]}, TOL, "sign of | the shift"),
        Check("L2", "network.trimmed_obj", "amplitude", "pair", "tensorflow", "known",
              {"max_abs_err": 2e-3, "cosine": 0.99999}, {"rtol": 1e-4, "reason": "registry #3"}),
        Check("L2", "network.encoded", "features", "pair", "tensorflow",
              "fail" if failing else "pass", {"max_abs_err": 1.0}, {"atol": 1e-5, "reason": "L2"}),
        Check("L3", "grad", "decoder_amp.head.kernel", "pair", "tensorflow", "skipped",
              message="torch backend crashed"),
        Check("L3", "loss", "poisson_nll", "pair", "tensorflow", "error" if crashed else "pass",
              message="no output from torch" if crashed else ""),
    ]
    runs = (
        BackendRun("tensorflow", "ok", 12.5, environment={"tensorflow_version": "2.21.0",
                                                          "device": "cpu"}),
        BackendRun("torch", "crashed" if crashed else "ok", 3.25, log_path="logs/torch.log",
                   tasks={"train": {"status": "error", "error": "Segfault"}} if crashed else {},
                   message="exit code -11" if crashed else ""),
    )
    return RunResult(
        case="lines64", stamp="20240131T235959Z", levels=("L0", "L1", "L2", "L3"),
        backends=("tensorflow", "torch"), checks=tuple(checks), backend_runs=runs,
        metrics={"tensorflow": {"amp": {"ssim": 0.91, "psnr": 30.5}, "frc_half_bit": 0.21,
                                "alignment": {"shift_px": [0.25, -0.5], "phase_offset_rad": 0.1}},
                 "torch": {"amp": {"ssim": 0.89, "psnr": 29.0}, "frc_half_bit": 0.2,
                           "alignment": {"shift_px": [0.5, 0.0], "phase_offset_rad": -0.2}},
                 "delta": {"amp": {"ssim": -0.02, "psnr": -1.5}, "frc_half_bit": -0.01}},
        config={"model": {"N": 64, "gridsize": 1}, "train": {"epochs": 2}, "sizing": "cpu-default"},
        provenance={"numpy_version": "2.4.6", "data_sha256": "ab12"},
        warnings=("allowance registry #7 no longer needed",),
    )


def test_summary_names_first_divergence_with_numbers_and_tolerance() -> None:
    text = render_summary(_result())
    first = next(line for line in text.splitlines() if line.startswith("**First divergent"))
    assert "L1" in first and "farfield_amplitude" in first and "[torch vs oracle]" in first
    assert "max_abs_err=3.200e-04" in text
    assert "rtol=1.000e-05, atol=1.000e-06 (f32 FFT vs f64 oracle)" in text
    assert "worst (first 2 of 2): [0, 3, 4]; [1, 2, 2]" in text
    assert "- figure:" not in text  # no divergence figure was drawn


def test_the_first_divergence_links_its_figure() -> None:
    text = render_summary(_result(), figures=["figures/objects.png", "figures/divergence.png"])
    section = text.split("## Checks by level")[0]
    assert "- figure: [figures/divergence.png](figures/divergence.png)" in section


def test_the_first_divergence_says_why_its_figure_is_missing() -> None:
    """An L0 layout divergence has no arrays: the reason was only at the end of the summary,
    among the other figures' notes, while the first-divergence section said nothing."""
    note = ("divergence: L1/farfield_amplitude/amplitude[torch vs oracle] has no arrays in the "
            "evidence (an exact check of configuration or layout, or a metric)")
    text = render_summary(_result(), figure_notes=["frc: no FRC evidence", note])
    section = text.split("## Checks by level")[0]
    assert ("- figure: not drawn: L1/farfield_amplitude/amplitude[torch vs oracle] has no arrays "
            "in the evidence") in section
    assert "frc" not in section
    assert f"- not drawn: {note}" in text  # still listed with the figures


def test_the_first_divergence_leaves_out_fields_that_do_not_apply() -> None:
    """A real array's comparison records its phase errors as None: the measured line of the
    first divergence was padded with 'max_phase_error_rad=n/a, ...'."""
    base = _result(crashed=False, failing=False)
    check = Check("L4", "weights", "all", "torch", "tensorflow", "fail",
                  {"max_abs_error": 5.4e-4, "max_amplitude_error": None,
                   "max_phase_error_rad": None, "fraction_out": 0.067}, TOL)
    text = render_summary(RunResult(**{**base.__dict__, "checks": (*base.checks, check)}))
    measured = next(line for line in text.splitlines() if line.startswith("- measured:"))
    assert measured == "- measured: max_abs_error=5.400e-04, fraction_out=0.067"


def test_summary_verdict_tables_backends_metrics_config_provenance() -> None:
    text = render_summary(_result(), figures=["figures/objects.png"],
                          figure_notes=["frc: no FRC evidence"])
    assert "**Verdict: BACKEND-FAILURE** (exit code 3)" in text
    for label in ("PASS", "FAIL", "KNOWN", "SKIP", "ERROR"):
        assert f"| {label} |" in text
    assert "| torch | CRASHED | 3.2" in text and "logs/torch.log" in text
    assert "train: error" in text
    metric_row = next(line for line in text.splitlines() if line.startswith("| amp.ssim |"))
    assert metric_row == "| amp.ssim | 0.91 | 0.89 | -0.02 |"
    assert "| alignment.shift_px (dy, dx) | [0.25, -0.5] | [0.5, 0] |" in text
    assert "Sizing: **cpu-default**" in text
    # a git revision, TF32 and determinism flags were not recorded: the summary says so
    assert "Not recorded: git revision, TF32 flag, determinism flag." in text
    assert "| device | cpu |" in text
    assert "- allowance registry #7 no longer needed" in text
    assert "- [figures/objects.png](figures/objects.png)" in text
    assert "- not drawn: frc: no FRC evidence" in text


def test_summary_table_rows_keep_their_columns_when_a_message_has_a_pipe() -> None:
    lines = render_summary(_result()).splitlines()
    header = next(line for line in lines if line.startswith("| check |"))
    row = next(line for line in lines if "farfield_amplitude" in line and line.startswith("|"))
    unescaped = row.replace("\\|", "")
    assert unescaped.count("|") == header.count("|")


def test_summary_on_parity() -> None:
    text = render_summary(_result(crashed=False, failing=False))
    assert "**Verdict: PARITY** (exit code 0)" in text
    assert "none: every check passed or is a known divergence" in text


def test_summary_backend_failure_without_divergence_says_why() -> None:
    text = render_summary(_result(crashed=True, failing=False))
    assert "none found, but a backend failed to run (torch (crashed))" in text


def test_summary_respects_the_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _result()
    many = tuple(Check("L1", f"stage{i}", "amplitude", "torch", "oracle", "pass",
                       {"max_abs_err": 1e-8}, TOL, "x" * 100) for i in range(400))
    big = RunResult(**{**base.__dict__, "checks": base.checks + many})
    monkeypatch.setattr(summary, "MAX_SUMMARY_BYTES", 20_000)
    text = render_summary(big)
    assert len(text.encode("utf-8")) <= 20_000
    assert "passing checks left out" in text
    assert "farfield_amplitude" in text  # failures always stay
    monkeypatch.setattr(summary, "MAX_SUMMARY_BYTES", 3_000)
    cut = render_summary(big)
    assert len(cut.encode("utf-8")) <= 3_000
    assert cut.endswith("**Summary cut at the size cap; the full record is report.json.**\n")


def test_summary_reads_numpy_and_nested_measured_values() -> None:
    import numpy as np

    base = _result(crashed=False, failing=False)
    check = Check("L1", "translation", "complex", "torch", "oracle", "fail",
                  {"max_abs_err": np.float32(0.25), "phase": {"max_abs_err": float("nan")},
                   "worst": np.array([[1, 2], [3, 4]])}, TOL)
    text = render_summary(RunResult(**{**base.__dict__, "checks": (*base.checks, check)}))
    assert "max_abs_err=0.25, phase.max_abs_err=nan" in text
    assert "worst (first 2 of 2): [1, 2]; [3, 4]" in text
    assert "| translation / complex | torch vs oracle | 0.25 |" in text


def test_summary_with_the_engine_layout_of_metrics_and_tolerances() -> None:
    base = _result(crashed=False, failing=False)
    allowance = {"rtol": 1e-4, "reason": "f32 FFT",
                 "allowance": {"id": "D3", "rtol": 1e-3, "reason": "oneDNN conv rounding"}}
    check = Check("L2", "network.amplitude", "amplitude", "torch", "tensorflow", "known",
                  {"max_abs_error": 2e-4, "cosine_similarity": 0.99999}, allowance)
    metrics = {
        name: {"truth": {"ssim_amp": ssim, "alignment": {"shift_px": [0.5, -0.25]},
                         "frc_curve": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]},
               "data_consistency": {"mae": 0.01}}
        for name, ssim in (("tensorflow", 0.9), ("torch", 0.88))
    }
    metrics["delta"] = {"torch": {"ssim_amp": -0.02}}
    text = render_summary(RunResult(**{**base.__dict__, "checks": (*base.checks, check),
                                       "metrics": metrics,
                                       "provenance": {"numpy": "2.4", "git_revision": "abc",
                                                      "data_hash": "ff"}}))
    assert ("rtol=1.000e-04, allowance.id=D3, allowance.rtol=0.001 "
            "(f32 FFT; allowance: oneDNN conv rounding)") in text
    assert "| 2.000e-04 |  |  | 0.99999 |" in text
    assert "| metric | tensorflow | torch | delta torch |" in text
    assert "| truth.ssim_amp | 0.9 | 0.88 | -0.02 |" in text
    assert "| ssim_amp |" not in text
    assert "| truth.alignment.shift_px (dy, dx) | [0.5, -0.25] | [0.5, -0.25] |  |" in text
    assert "frc_curve" not in text  # curves are drawn, not tabulated
    assert "Not recorded: TF32 flag, determinism flag." in text


def test_an_unevaluated_check_never_lets_a_run_pass() -> None:
    """An ``error`` check (e.g. no tolerance entry) without any ``fail``: exit 1, named first."""
    error = Check("L2", "network", "amplitude", "torch", "tensorflow", "error",
                  message="no tolerance for L2/network/amplitude")
    runs = (BackendRun("tensorflow", "ok", 1.0), BackendRun("torch", "ok", 1.0))
    result = RunResult(case="c", stamp="20240131T235959Z", levels=("L2",),
                       backends=("tensorflow", "torch"), checks=(error,), backend_runs=runs)
    assert result.first_divergence is error and result.exit_code == 1
    crashed = (runs[0], BackendRun("torch", "crashed", 1.0, message="exit code -11"))
    result = RunResult(case="c", stamp="20240131T235959Z", levels=("L2",),
                       backends=("tensorflow", "torch"), checks=(error,), backend_runs=crashed)
    assert result.first_divergence is None and result.exit_code == 3


def _l5_result(metrics: dict, **fields: object) -> RunResult:
    runs = (BackendRun("tensorflow", "ok", 1.0), BackendRun("torch", "ok", 1.0))
    return RunResult(case="c", stamp="20240131T235959Z", levels=("L5",),
                     backends=("tensorflow", "torch"), checks=(), backend_runs=runs,
                     metrics=metrics, **fields)


def test_an_injected_bug_is_bannered_under_the_verdict_and_warned() -> None:
    result = _l5_result({}, config={"injections": {"torch": "offset_sign"}})
    text = render_summary(result)
    banner = "SELF-TEST: bug 'offset_sign' injected into torch -- not a port result"
    lines = text.splitlines()
    verdict = next(i for i, line in enumerate(lines) if line.startswith("**Verdict:"))
    assert lines[verdict + 2] == f"> **{banner}**"
    assert f"- {banner}" in text.split("## Warnings")[1]
    assert "> **SELF-TEST" not in render_summary(_l5_result({}))


def test_input_notes_reach_the_warnings() -> None:
    notes = {"nphotons_note": "not in file; assumed PtychoPINN default 1e+09",
             "legacy_layout": "diffraction stored (N, N, n): transposed", "diffraction_key": "x"}
    text = render_summary(_l5_result({}, provenance={"container": {"provenance": notes}}))
    warnings = text.split("## Warnings")[1].split("## Figures")[0]
    assert ("- input: container.provenance.nphotons_note = not in file; assumed PtychoPINN "
            "default 1e+09") in warnings
    assert "container.provenance.legacy_layout = diffraction stored" in warnings
    assert "diffraction_key" not in warnings and "None." not in warnings


def _frc(status: str) -> dict:
    return {"crossing_half_bit_cycles_per_px": 0.0 if status != "crossed" else 0.21,
            "status_half_bit": status}


def test_metrics_of_a_run_without_truth_are_not_titled_against_truth() -> None:
    dc = {"r_factor": 0.2, "scale": 1.0, "patterns": 42, "patterns_total": 144}
    text = render_summary(_l5_result({"tensorflow": {"data_consistency": dc},
                                      "torch": {"data_consistency": {**dc, "r_factor": 0.25}},
                                      "delta": {"torch": {"r_factor": 0.05}}}))
    assert "## Metrics (no ground truth: data consistency only)" in text
    assert "vs truth after alignment" not in text
    assert "| data_consistency.patterns | 42 of 144 | 42 of 144 |  |" in text
    assert "patterns_total" not in text
    assert "None: there is no ground truth to align to." in text


def test_metric_rows_get_deltas_and_frc_crossings_that_did_not_cross_read_na() -> None:
    def entry(ssim: float, status: str) -> dict:
        return {"truth": {"amplitude": {"ssim": ssim, "frc": _frc(status)},
                          "alignment": {"shift_px": [15.28, -0.44], "registration_error": 0.5}},
                "gated": {"ssim_amp": ssim}}

    text = render_summary(_l5_result({"tensorflow": entry(0.5, "below_at_first_ring"),
                                      "torch": entry(0.25, "crossed"),
                                      "delta": {"torch": {"ssim_amp": -0.25}}}))
    assert "delta <backend> = <backend> - tensorflow" in text
    assert "| truth.amplitude.ssim | 0.5 | 0.25 | -0.25 |" in text
    assert "| gated.ssim_amp | 0.5 | 0.25 | -0.25 |" in text
    assert ("| truth.amplitude.frc.crossing_half_bit_cycles_per_px | n/a | 0.21 |  |"
            in text)
    assert "| truth.alignment.shift_px (dy, dx) | [15.28, -0.44] | [15.28, -0.44] |  |" in text
    assert "| truth.alignment.registration_error | 0.5 | 0.5 | 0 |" in text


def test_the_tolerance_column_shows_the_scaled_bound_that_decided() -> None:
    check = Check("L2", "network", "pred_amplitude", "torch", "tensorflow", "pass",
                  {"max_abs_error": 3.268e-5, "atol_effective": 0.0025},
                  {"rtol": 1e-4, "atol": 1e-5, "atol_scale": "max_abs", "reason": "f32"})
    runs = (BackendRun("tensorflow", "ok", 1.0), BackendRun("torch", "ok", 1.0))
    result = RunResult(case="c", stamp="20240131T235959Z", levels=("L2",),
                       backends=("tensorflow", "torch"), checks=(check,), backend_runs=runs)
    assert "atol=1.000e-05 -> 0.0025 used, atol_scale=max_abs (f32)" in render_summary(result)


def test_a_figure_drawn_differently_is_a_note_not_a_skip() -> None:
    text = render_summary(_l5_result({}), figures=["figures/loss.png"],
                          figure_notes=["loss: drawn with a linear y axis (non-positive values "
                                        "rule out log)", "frc: no FRC evidence"])
    assert "- note: loss: drawn with a linear y axis" in text
    assert "not drawn: loss" not in text and "- not drawn: frc: no FRC evidence" in text
