"""``parity run`` (parity/cli_run.py): its option parsing, and bad options or inputs exiting 2
with the problem named, before any bundle is written."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from parity import session
from parity.cli import EXIT_USAGE, main
from parity.cli_run import _parse_overrides, _progress_printer


def test_progress_names_a_backends_extra_jobs(capsys):
    """The noise-floor and cross-inference jobs start and finish apart from their backend's main
    job; their lines say which job, so "finished" is not read as the backend's end."""
    show = _progress_printer(quiet=False)
    show({"backend": "tensorflow", "event": "backend-start", "tasks": ["physics", "train"]})
    show({"backend": "tensorflow", "job": "tensorflow-noise", "event": "backend-start",
          "tasks": ["train_steps_noise"]})
    show({"backend": "tensorflow", "job": "tensorflow-noise", "event": "backend-end",
          "status": "ok", "seconds": 27.04})
    show({"backend": "tensorflow", "event": "end", "task": "train", "status": "ok",
          "seconds": 118.0})
    assert capsys.readouterr().err.splitlines() == [
        "[tensorflow] starting tasks physics, train",
        "[tensorflow, job tensorflow-noise] starting tasks train_steps_noise",
        "[tensorflow, job tensorflow-noise] finished: ok (27.0 s)",
        "  [tensorflow] train ok (118.0 s)"]
    _progress_printer(quiet=True)({"backend": "torch", "event": "backend-start", "tasks": []})
    assert capsys.readouterr().err == ""


def test_python_spellings_of_json_values_are_understood():
    assert _parse_overrides(["deterministic=True", "fast = false", "x=None"], "train") == \
        {"deterministic": True, "fast": False, "x": None}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--case", "no-such-case"], "unknown case"),
        (["run", "--backends", "tensorflow,nonexistent", "--case", "small"], "unknown backend"),
        (["run", "--levels", "L9", "--case", "small"], "unknown level"),
        (["run", "--train", "epochs=0", "--case", "small"], "epochs=0"),
        (["run", "--model", "colour=blue", "--case", "small"], "unknown ModelConfig"),
        (["run", "--inject", "torch=no-such-bug", "--case", "small"], "unknown injection"),
        # one injection per backend: the earlier one must not be dropped silently
        (["run", "--inject", "torch=offset_sign", "--inject", "torch=axis_order", "--case",
          "small", "--levels", "L0"],
         "torch injected twice ('offset_sign' and 'axis_order')"),
        (["run", "--train", "epochs=1", "--train", "epochs=2", "--case", "small"],
         "--train epochs: given twice"),
        (["run", "--levels", "L5", "--seeds", "0,1", "--train", "seed=7", "--case", "small"],
         "--train seed=7 has no effect with --seeds 0,1"),
        (["run", "--levels", "L5", "--train", "validation_fraction=0.999", "--case", "small"],
         "validation_fraction=0.999 leaves no training group"),
        (["run", "--train", "learning_rate=nan", "--case", "small", "--levels", "L0"],
         "learning_rate"),
        (["run", "--model", "gridsize=3", "--case", "small", "--levels", "L0"],
         "gridsize=3 groups C=9 positions"),
    ],
)
def test_bad_options_exit_2_with_a_named_problem(argv, needle, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == EXIT_USAGE
    assert needle in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "a rejected run must not write a bundle"


def test_unreadable_container_exits_2(tmp_path, capsys):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert main(["run", "--container", str(bad), "--out", str(tmp_path / "r")]) == EXIT_USAGE
    assert "broken.npz" in capsys.readouterr().err


def test_missing_container_exits_2(tmp_path, capsys):
    assert main(["run", "--container", str(tmp_path / "nope.npz")]) == EXIT_USAGE
    assert "nope.npz" in capsys.readouterr().err


def test_an_injected_run_is_marked_at_the_start_and_next_to_the_verdict(monkeypatch, capsys,
                                                                       tmp_path):
    def fake_run(**kwargs: Any) -> tuple[Path, Any]:
        print("<run>")
        assert kwargs["injections"] == {"torch": "offset_sign"}
        result = SimpleNamespace(verdict="divergence", exit_code=1, first_divergence=None,
                                 checks=(), warnings=(), backend_runs=())
        return tmp_path / "bundle", result

    monkeypatch.setattr(session, "run_and_report", fake_run)
    assert main(["run", "--case", "small", "--inject", "torch=offset_sign",
                 "--out", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    notice = "SELF-TEST: bug 'offset_sign' injected into torch -- not a port result"
    assert lines[:2] == [notice, "<run>"]
    assert lines[2] == "verdict: divergence (exit 1) [self-test run: see the notice above]"


def test_a_timed_out_backend_line_names_the_option_that_raises_the_limit(monkeypatch, capsys,
                                                                         tmp_path):
    runs = (SimpleNamespace(backend="tensorflow", status="timeout", failed=True, log_path=None,
                            message="tensorflow exceeded its 900 s timeout and was killed "
                                    "(last task: train_seed7)"),
            SimpleNamespace(backend="torch", status="crashed", failed=True, log_path=None,
                            message="exit code 1"))

    def fake_run(**kwargs: Any) -> tuple[Path, Any]:
        assert kwargs["timeout_s"] is None  # the session picks the default per L5 training
        return tmp_path / "bundle", SimpleNamespace(
            verdict="backend-failure", exit_code=3, first_divergence=None, checks=(),
            warnings=(), backend_runs=runs)

    monkeypatch.setattr(session, "run_and_report", fake_run)
    assert main(["run", "--case", "small", "--out", str(tmp_path)]) == 3
    out = capsys.readouterr().out
    assert ("backend tensorflow: timeout: tensorflow exceeded its 900 s timeout and was killed "
            "(last task: train_seed7); --timeout raises the limit") in out
    assert "backend torch: crashed: exit code 1\n" in out
