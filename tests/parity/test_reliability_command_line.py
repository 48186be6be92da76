"""Reliability of the ``parity`` command line: junk generated with hypothesis must end in exit 2
with one ``parity: error:`` line (or 0 for help), and a harness bug in exit 4.

The junk runs in process inside a sandbox fixture that replaces real work (runs, self-test,
bench, flake) by an exception, so only argument validation is exercised.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parity.cli import EXIT_INTERNAL, EXIT_USAGE, main
from parity.container import Container
from parity.registry import ADAPTERS_ENV

# -- bad input: the command line --------------------------------------------------------------


class _WouldRunError(BaseException):
    """Raised instead of starting real work: the arguments passed every check.

    A ``BaseException`` so that the CLI's handler of unexpected errors lets it through.
    """


def _would_run(*args, **kwargs):
    raise _WouldRunError


_COMMANDS = ["run", "cases", "fixtures", "list", "show", "diff", "convert", "selftest", "bench",
             "flake", "frobnicate", "", "-h"]
_VALUED = ["--case", "--container", "--levels", "--backends", "--device", "--seed", "--model",
           "--train", "--timeout", "--isolation", "--inject", "--out", "--write", "-o", "--repeat",
           "--repeats", "--only", "--json", "--target", "--baseline"]
_FLAGS = ["--quiet", "--quick", "--help", "--", "-", "-x", "--levels=L1", "--seed="]
_VALUES = ["small", "default", "nope", "L0", "L1,L2", "all", "L9", ",", "", " ", "oracle",
           "oracle,oracle", "tensorflow,nonexistent", "-1", "0", "3", "x", "1e999", "nan", "inf",
           "-5", "epochs=0", "epochs=1.5", "N=abc", "gridsize={}", "colour=blue",
           "learning_rate=NaN", "=", "oracle=offset_sign", "torch=no-such-bug", "latest", "-2",
           "subprocess", "sideways", "é", "/nonexistent/x.npz", "a\x00b", "OUT", "OUT/x.npz"]


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Iterator[Path]:
    """Junk arguments may only validate: real work is replaced by ``_WouldRunError``."""
    import fixtures.cases
    import parity.cli_extra
    import parity.session

    built: dict[tuple[str, int], Container] = {}
    original_build = fixtures.cases.Case.build

    def cached_build(self, seed: int = 0) -> Container:
        key = (self.name, seed)
        if key not in built:
            built[key] = original_build(self, seed)
        return built[key]

    original_extra = parity.cli_extra.add_extra_commands

    def extra_without_work(sub) -> None:
        original_extra(sub)
        for name in ("selftest", "bench", "flake"):
            sub.choices[name].set_defaults(func=_would_run)

    monkeypatch.setattr(fixtures.cases.Case, "build", cached_build)
    monkeypatch.setattr(parity.session, "run_parity", _would_run)
    monkeypatch.setattr(parity.cli_extra, "add_extra_commands", extra_without_work)
    monkeypatch.delenv(ADAPTERS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@st.composite
def _argv(draw) -> list[str]:
    """A sub-command, then mostly option-value pairs (to get past argparse), some strays."""
    words = [draw(st.sampled_from(_COMMANDS))]
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 9))
        if kind < 7:
            words += [draw(st.sampled_from(_VALUED)), draw(st.sampled_from(_VALUES))]
        elif kind == 7:
            words.append(draw(st.sampled_from(_FLAGS)))
        elif kind == 8:
            words.append(draw(st.sampled_from(_VALUES)))
        else:
            words.append(draw(st.text(max_size=8)))
    return words


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_argv())
def test_junk_command_lines_exit_2_with_one_error_line(sandbox, argv):
    argv = [w.replace("OUT", str(sandbox / "out")) for w in argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except _WouldRunError:
            event("valid: would run")
            return  # every check passed: valid input, no error expected
    event(f"exit {code}")
    err = stderr.getvalue()
    assert code in (0, EXIT_USAGE), (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == EXIT_USAGE:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("parity: error: "), (argv, err)


def test_a_harness_bug_is_exit_4_not_a_verdict(monkeypatch, capsys, tmp_path):
    """An unexpected exception is neither bad input (2) nor, as Python's default 1, divergence."""
    import parity.session

    def broken(**options):
        raise RuntimeError("simulated harness bug")

    monkeypatch.setattr(parity.session, "run_and_report", broken)
    assert main(["run", "--case", "small", "--out", str(tmp_path)]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err and "simulated harness bug" in err


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert main(["run", "--help"]) == 0
    assert "--backends" in capsys.readouterr().out
