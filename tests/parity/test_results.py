"""Tests of parity.results: the warnings a run record derives from itself (an injected bug, the
input reader's notes) and which reach report.json."""

from __future__ import annotations

from parity.results import BackendRun, RunResult, injection_notice

RUNS = (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok"))


def _result(**fields: object) -> RunResult:
    return RunResult("small", "20261129T205258Z", ("L1",), ("tensorflow", "torch"), (), RUNS,
                     **fields)


def test_an_injected_bug_is_the_first_warning_and_in_report_json() -> None:
    result = _result(config={"injections": {"torch": "offset_sign"}},
                     warnings=("divergence allowance D1 is no longer needed",))
    banner = "SELF-TEST: bug 'offset_sign' injected into torch -- not a port result"
    assert result.self_test_banner == banner
    assert result.warnings == (banner, "divergence allowance D1 is no longer needed")
    assert result.to_dict()["warnings"][0] == banner
    assert _result(config={"injections": {}}).self_test_banner is None
    assert _result().warnings == ()


def test_input_notes_become_warnings_once() -> None:
    provenance = {"container": {"provenance": {
        "nphotons_note": "not in file; assumed PtychoPINN default 1e+09",
        "legacy_keys_read": ["probe", "object"], "source_file": "x.npz"}}}
    result = _result(provenance=provenance)
    assert result.warnings == (
        "input: container.provenance.nphotons_note = not in file; assumed PtychoPINN default "
        "1e+09",
        "input: container.provenance.legacy_keys_read = probe, object")
    rebuilt = _result(provenance=provenance, warnings=tuple(result.to_dict()["warnings"]))
    assert rebuilt.warnings == result.warnings  # a record read back gains nothing twice


def test_a_run_without_injection_has_no_self_test_notice() -> None:
    assert injection_notice({}) is None
    assert injection_notice({"tensorflow": "axis_order", "torch": "fft_normalisation"}) == (
        "SELF-TEST: bug 'axis_order' injected into tensorflow, bug 'fft_normalisation' "
        "injected into torch -- not a port result")
