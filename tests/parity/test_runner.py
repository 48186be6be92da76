"""Backends that fail, run through the engine in SUBPROCESS isolation (parity/runner.py, worker.py),
and the ``PTYCHO_PARITY_ADAPTERS`` variable of parity/registry.py that lets the workers find them.

Each test pairs the float64 oracle (baseline) with one adapter of
``tests/parity/support/faulty_adapters.py`` that misbehaves in one hook, at levels L0-L2 (NumPy
only: each worker starts in about a second). The faulty adapters are registered through
``PTYCHO_PARITY_ADAPTERS`` and found by the worker subprocess through ``PYTHONPATH``, exactly as a
third-party adapter would be. Each failure must be reported with its own status, keep the other
backend's checks, keep what the faulty backend did before failing, and give exit code 3; a wrong
but finite output is a divergence (exit 1) instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.cases import get_case
from parity.cli import EXIT_USAGE, main
from parity.config import ModelConfig
from parity.contract import NETWORK_OUTPUT_KEYS, PHYSICS_OUTPUT_KEYS, pool_input_keys
from parity.engine import RunPlan, run_parity
from parity.registry import ADAPTERS_ENV, available_adapters, load_adapter
from parity.results import BackendRun, RunResult

SUPPORT = Path(__file__).resolve().parent / "support"
sys.path.insert(0, str(SUPPORT))
import faulty_adapters  # noqa: E402  (a plain module under tests/parity/support)

LEVELS = ("L0", "L1", "L2")
BASELINE = "oracle"

#: Timeout of runs that must NOT time out, s: a NumPy worker at L0-L2 takes about 1 s; the margin
#: absorbs a loaded 2-core machine.
RUN_TIMEOUT_S = 120.0

#: Timeout of the hang test, s: long enough for the oracle baseline (about 1 s) on a busy machine,
#: short enough to keep the test quick.
HANG_TIMEOUT_S = 6.0

#: How much later than its timeout a hung backend may be reported, s: killing the process group
#: and reading its manifest takes well under a second; 20 s would mean the kill did not work.
KILL_SLACK_S = 20.0


@pytest.fixture(scope="module", autouse=True)
def faulty_registered() -> Iterator[None]:
    """Register every faulty adapter for this process and the workers it starts."""
    with pytest.MonkeyPatch.context() as patch:
        path = os.environ.get("PYTHONPATH", "")
        patch.setenv("PYTHONPATH", str(SUPPORT) + (os.pathsep + path if path else ""))
        patch.setenv(ADAPTERS_ENV, faulty_adapters.adapters_env())
        yield


@pytest.fixture(scope="module")
def small_case():
    case = get_case("small")
    return case.build(0), case.model_config(), case.train_config()


def _run(small_case, faulty: str, workdir: Path, *,
         timeout_s: float = RUN_TIMEOUT_S, baseline_first: bool = True) -> RunResult:
    container, model, train = small_case
    backends = (BASELINE, faulty) if baseline_first else (faulty, BASELINE)
    plan = RunPlan(container=container, model=model, train=train, backends=backends,
                   levels=LEVELS, isolation="subprocess", timeout_s=timeout_s)
    result, _ = run_parity(plan, workdir)
    return result


def _run_of(result: RunResult, backend: str) -> BackendRun:
    return next(r for r in result.backend_runs if r.backend == backend)


def _checks(result: RunResult, backend: str, level: str | None = None) -> list:
    """``backend``'s checks against the float64 oracle (the ``pair.`` ones compare backends)."""
    return [c for c in result.checks
            if c.backend == backend and c.reference == BASELINE and not c.stage.startswith("pair.")
            and (level is None or c.level == level)]


def _pair_checks(result: RunResult, backend: str) -> list:
    """``backend`` against the baseline backend (which is also named ``oracle`` here)."""
    return [c for c in result.checks if c.backend == backend and c.stage.startswith("pair.")]


def _assert_baseline_kept(result: RunResult) -> None:
    """The oracle's own checks at every level are present and pass, whatever the other did."""
    assert _run_of(result, BASELINE).status == "ok"
    model = ModelConfig(**result.config["model"])
    counts = {"L0": 3, "L1": len(PHYSICS_OUTPUT_KEYS),
              "L2": len(NETWORK_OUTPUT_KEYS) + len(pool_input_keys(model))}
    for level, count in counts.items():
        own = _checks(result, BASELINE, level)
        assert len(own) == count, (level, [c.name for c in own])
        assert all(c.verdict == "pass" for c in own), [c.name for c in own if c.verdict != "pass"]


def _log(workdir: Path, backend: str) -> str:
    return (workdir / f"{backend}.log").read_text(errors="replace")


def test_raising_hook_is_partial_and_keeps_what_ran(small_case, tmp_path):
    result = _run(small_case, "faulty-raise", tmp_path)
    run = _run_of(result, "faulty-raise")
    assert result.exit_code == 3 and result.verdict == "backend-failure"
    assert run.status == "partial"
    assert run.tasks["network"]["status"] == "error"
    assert "RuntimeError" in run.tasks["network"]["error"]
    assert faulty_adapters.MARKER in run.message
    assert run.log_path == "logs/faulty-raise.log"
    # the worker writes the traceback into the log the bundle keeps
    log = _log(tmp_path, "faulty-raise")
    assert "Traceback" in log and "RuntimeError" in log and faulty_adapters.MARKER in log
    # what ran before the failure is judged, the failed stage is an error, not a silent gap
    assert all(c.verdict == "pass" for c in _checks(result, "faulty-raise", "L1"))
    assert len(_checks(result, "faulty-raise", "L1")) == len(PHYSICS_OUTPUT_KEYS)
    l2 = _checks(result, "faulty-raise", "L2") + [c for c in _pair_checks(result, "faulty-raise")
                                                   if c.level == "L2"]
    assert [c.verdict for c in l2] == ["error", "error"]
    assert all("RuntimeError" in c.message for c in l2)
    _assert_baseline_kept(result)


def test_segfault_is_crashed_with_the_signal_named(small_case, tmp_path):
    result = _run(small_case, "faulty-segv", tmp_path)
    run = _run_of(result, "faulty-segv")
    assert result.exit_code == 3
    assert run.status == "crashed"
    assert "SIGSEGV" in run.message and "physics" in run.message
    # the task that was running is marked with the crash, the one never started as missing
    assert run.tasks["effective_config"]["status"] == "ok"
    assert run.tasks["physics"]["status"] == "crashed"
    assert run.tasks["network"]["status"] == "missing"
    assert "about to segfault" in _log(tmp_path, "faulty-segv")
    # the one-line message ends with the log's last line, so the console says why
    last = [line.strip() for line in _log(tmp_path, "faulty-segv").splitlines() if line.strip()]
    assert run.message.splitlines()[0].endswith(f": {last[-1][:300]}; log tail:")
    assert [c.verdict for c in _checks(result, "faulty-segv", "L0")] == ["pass"]
    for level in ("L1", "L2"):
        errors = _checks(result, "faulty-segv", level)
        assert [c.verdict for c in errors] == ["error"], level
        assert "SIGSEGV" in errors[0].message
    _assert_baseline_kept(result)


def test_hang_is_killed_at_the_timeout(small_case, tmp_path):
    result = _run(small_case, "faulty-hang", tmp_path, timeout_s=HANG_TIMEOUT_S)
    run = _run_of(result, "faulty-hang")
    assert result.exit_code == 3
    assert run.status == "timeout"
    assert HANG_TIMEOUT_S <= run.seconds < HANG_TIMEOUT_S + KILL_SLACK_S
    assert "timeout" in run.message and "physics" in run.message
    assert run.tasks["physics"]["status"] == "timeout"
    assert run.tasks["network"]["status"] == "missing"
    assert "hanging in forward_physics" in _log(tmp_path, "faulty-hang")
    _assert_baseline_kept(result)


def test_memory_error_is_oom(small_case, tmp_path):
    result = _run(small_case, "faulty-oom", tmp_path)
    run = _run_of(result, "faulty-oom")
    assert result.exit_code == 3
    assert run.status == "oom"
    assert run.tasks["network"]["status"] == "oom"
    assert "MemoryError" in _log(tmp_path, "faulty-oom")
    _assert_baseline_kept(result)


def test_nan_output_is_reported_as_nan_and_never_passes(small_case, tmp_path):
    result = _run(small_case, "faulty-nan", tmp_path)
    run = _run_of(result, "faulty-nan")
    assert result.exit_code == 3
    assert run.status == "nan"
    assert run.tasks["network"]["status"] == "nan" and "amplitude" in run.tasks["network"]["error"]
    amplitude = [c for c in _checks(result, "faulty-nan", "L2") if c.stage == "amplitude"]
    assert [c.verdict for c in amplitude] == ["fail"]
    assert amplitude[0].measured.get("nonfinite_mismatch") == 1
    _assert_baseline_kept(result)


def test_exit_in_the_middle_of_a_job_is_not_a_success(small_case, tmp_path):
    result = _run(small_case, "faulty-exit", tmp_path)
    run = _run_of(result, "faulty-exit")
    assert result.exit_code == 3
    assert run.status == "crashed"
    assert "before finishing" in run.message
    assert run.tasks["physics"]["status"] == "crashed"
    _assert_baseline_kept(result)


def test_output_that_is_not_an_array_is_a_backend_error_naming_hook_and_key(small_case,
                                                                           tmp_path):
    result = _run(small_case, "faulty-tensor", tmp_path)
    run = _run_of(result, "faulty-tensor")
    assert result.exit_code == 3 and run.status == "partial"
    error = run.tasks["network"]["error"]
    assert "network_forward output 'amplitude' is a" in error and "not a NumPy array" in error
    _assert_baseline_kept(result)


def test_hook_returning_none_is_named(small_case, tmp_path):
    result = _run(small_case, "faulty-none", tmp_path)
    run = _run_of(result, "faulty-none")
    assert result.exit_code == 3
    assert "forward_physics returned NoneType" in run.tasks["physics"]["error"]


def test_protocol_lookalikes_and_bad_environment_do_not_break_the_run(small_case, tmp_path):
    """The reader thread survives a JSON list and null fields after the prefix, a 100 kB line and
    a progress line glued to text without a newline; environment() that is not JSON-able is
    recorded as an error of its own, not as a failure of the task."""
    result = _run(small_case, "faulty-chatty", tmp_path)
    run = _run_of(result, "faulty-chatty")
    assert result.exit_code == 0, [(c.name, c.message) for c in result.checks
                                   if c.verdict != "pass"]
    assert "not JSON-able" in run.environment["error"]
    assert f"{faulty_adapters.MARKER}: no newline at the end" in _log(tmp_path, "faulty-chatty")


def test_hook_missing_from_capabilities_is_not_called_and_the_run_cannot_pass(small_case,
                                                                             tmp_path):
    result = _run(small_case, "faulty-nocap", tmp_path)
    run = _run_of(result, "faulty-nocap")
    assert result.exit_code == 3 and run.status == "partial"
    assert run.tasks["network"]["status"] == "unsupported"
    assert "not supported by faulty-nocap: network_forward" in run.tasks["network"]["error"]
    assert faulty_adapters.MARKER not in _log(tmp_path, "faulty-nocap")  # never called
    l2 = _checks(result, "faulty-nocap", "L2")
    assert l2 and {c.verdict for c in l2} == {"skipped"}
    assert [c.verdict for c in _checks(result, "faulty-nocap", "L1")] == \
        ["pass"] * len(PHYSICS_OUTPUT_KEYS)


def test_sys_exit_in_process_is_a_crash_not_a_verdict(small_case, tmp_path):
    container, model, train = small_case
    plan = RunPlan(container=container, model=model, train=train,
                   backends=(BASELINE, "faulty-exit"), levels=LEVELS, isolation="inprocess",
                   timeout_s=RUN_TIMEOUT_S)
    result, _ = run_parity(plan, tmp_path)
    run = _run_of(result, "faulty-exit")
    assert result.exit_code == 3 and run.status == "crashed"
    assert "called sys.exit(0)" in run.message


def test_wrong_shape_is_a_divergence_named_at_l0(small_case, tmp_path):
    result = _run(small_case, "faulty-shape", tmp_path)
    assert _run_of(result, "faulty-shape").status == "ok"
    assert result.exit_code == 1 and result.verdict == "divergence"
    first = result.first_divergence
    assert first is not None and first.level == "L0" and first.stage == "layout"
    assert "trimmed_obj" in first.message
    trimmed = [c for c in _checks(result, "faulty-shape", "L2") if c.stage == "trimmed_obj"]
    assert [c.verdict for c in trimmed] == ["fail"] and "shape" in trimmed[0].message
    _assert_baseline_kept(result)


def test_crashed_baseline_turns_pair_checks_into_errors(small_case, tmp_path):
    """A failed baseline must not make the backend-vs-backend checks vanish silently."""
    result = _run(small_case, "faulty-segv", tmp_path, baseline_first=False)
    assert result.exit_code == 3
    pair = _pair_checks(result, BASELINE)
    assert [c.verdict for c in pair] == ["error"]
    assert pair[0].backend == BASELINE and "faulty-segv" in pair[0].message
    # the healthy backend's checks against the float64 oracle are all still there
    assert len(_checks(result, BASELINE, "L1")) == len(PHYSICS_OUTPUT_KEYS)
    assert all(c.verdict == "pass" for c in _checks(result, BASELINE))


# -- the adapter registry variable (how workers find these adapters) ---------------------------


@pytest.mark.parametrize("value", [
    "noequals", "=faulty_adapters:RaisingAdapter", "x=", "x=faulty_adapters",
    "x=faulty_adapters:", "x=:RaisingAdapter", "bad name=faulty_adapters:RaisingAdapter",
    "x=faulty adapters:RaisingAdapter", "x=a:B,x=a:C", "x=a:B,,y=a:C", "x=a:B,",
    "x=a-b:C", "x=1a:B",
])
def test_malformed_adapter_variable_is_named(monkeypatch, value, capsys, tmp_path):
    monkeypatch.setenv(ADAPTERS_ENV, value)
    for call in (available_adapters, lambda: load_adapter("oracle")):
        with pytest.raises(ValueError, match=ADAPTERS_ENV):
            call()
    code = main(["run", "--case", "small", "--backends", "oracle", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE and err.startswith("parity: error:") and ADAPTERS_ENV in err


@settings(max_examples=50, deadline=None)  # each example reads the installed entry points
@given(st.text(alphabet="ab1_=:.,- \t", max_size=30))
def test_any_adapter_variable_is_read_or_named_in_the_error(value):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ADAPTERS_ENV, value)
        try:
            names = available_adapters()
        except ValueError as err:
            assert ADAPTERS_ENV in str(err)
        else:
            listed = {item.partition("=")[0].strip() for item in value.split(",")} \
                if value.strip() else set()
            assert listed <= set(names) and {"oracle"} <= set(names)


def test_adapter_variable_adds_to_the_installed_ones(monkeypatch):
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.setenv(ADAPTERS_ENV, faulty_adapters.adapters_env(["faulty-nan", "faulty-raise"]))
    names = available_adapters()
    assert {"oracle", "faulty-nan", "faulty-raise"} <= set(names) and names == sorted(names)
    adapter = load_adapter("faulty-nan", device="cpu")
    assert isinstance(adapter, faulty_adapters.NaNAdapter) and adapter.device_request == "cpu"


@pytest.mark.parametrize(("value", "needle"), [
    ("oracle=faulty_adapters:RaisingAdapter", "already installed"),
    ("fake=parity.config:ModelConfig", "is not an Adapter subclass"),
    ("ghost=no_such_module_for_parity:Thing", "cannot be loaded"),
    ("ghost=faulty_adapters:NoSuchClass", "cannot be loaded"),
])
def test_adapter_variable_entries_must_be_adapters(monkeypatch, value, needle):
    monkeypatch.syspath_prepend(str(SUPPORT))
    monkeypatch.setenv(ADAPTERS_ENV, value)
    with pytest.raises(ValueError, match=needle):
        load_adapter(value.split("=")[0])
