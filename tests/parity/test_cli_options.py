"""Options several sub-commands share (parity/cli_options.py), and the commands that use them
checking everything before any work."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from parity import flake, selftest
from parity.cli import main
from parity.cli_options import check_device, output_file, parse_levels, parse_names, reports_dir
from parity.report.bundle_names import COMPLETE_MARKER
from parity.results import LEVELS


@pytest.mark.parametrize(("text", "levels"), [
    ("all", LEVELS), ("ALL", LEVELS), (" all ,", LEVELS), ("l2, L0", ("L0", "L2")),
])
def test_levels_in_ladder_order(text: str, levels: tuple[str, ...]) -> None:
    assert parse_levels(text) == levels


@pytest.mark.parametrize(("text", "message"), [
    ("", "--levels '': no level given"), (" , ", "no level given"),
    ("L9", r"unknown level\(s\) \['L9'\]"),
    # 'all' among other names is neither "all" nor an unknown level ['ALL']
    ("all,L1", "--levels 'all,L1': 'all' cannot be combined with other levels"),
    ("L1,all", "'all' cannot be combined"),
    # a repeated level is likely a typo for another one: named, not silently merged
    ("L0,L0", r"--levels 'L0,L0': level\(s\) L0 given twice"),
    ("l5,L5,L1", r"level\(s\) L5 given twice"),
])
def test_bad_levels_name_the_option(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_levels(text)


def test_names_are_stripped_and_empty_ones_dropped() -> None:
    assert parse_names(" tensorflow, torch ,") == ("tensorflow", "torch")
    assert parse_names(None) == ()


@pytest.mark.parametrize("text", ["auto", "cpu", "CUDA", "cuda:1", "gpu", "/GPU:0", "/cpu:0"])
def test_device_requests_every_backend_understands(text: str) -> None:
    assert check_device(text) == text


@pytest.mark.parametrize("text", ["tpu", "cuda:", "mps", "cuda:x", ""])
def test_other_device_requests_are_usage_errors(text: str) -> None:
    with pytest.raises(ValueError, match="expected auto, cpu, cuda"):
        check_device(text)


def test_reports_dir_is_created_or_named_as_the_problem(tmp_path: Path) -> None:
    assert reports_dir(str(tmp_path / "a" / "b")).is_dir()
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        reports_dir(str(a_file))
    with pytest.raises(ValueError, match="cannot create the reports directory"):
        reports_dir(str(a_file / "below"))


def test_a_finished_bundle_is_not_a_reports_dir(tmp_path: Path) -> None:
    """``--out`` naming a bundle is refused as ``parity list`` refuses it, before any work."""
    bundle = tmp_path / "20260101T000000Z_small"
    bundle.mkdir()
    (bundle / COMPLETE_MARKER).write_text("")
    with pytest.raises(ValueError, match=r"--out '.*_small': .* is a bundle, not a reports "
                                         "directory"):
        reports_dir(str(bundle))


@pytest.mark.parametrize("command", [["run", "--case", "small", "--levels", "L0"],
                                     ["bench", "--quick"]])
def test_commands_refuse_to_write_into_a_bundle(command: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "20260101T000000Z_small"
    bundle.mkdir()
    (bundle / COMPLETE_MARKER).write_text("")
    assert main([*command, "--out", str(bundle)]) == 2
    assert "is a bundle, not a reports directory" in capsys.readouterr().err
    assert [p.name for p in bundle.iterdir()] == [COMPLETE_MARKER]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_reports_dir_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="not writable"):
        reports_dir(str(locked))


def test_output_file_is_checked_before_any_work(tmp_path: Path) -> None:
    assert output_file(str(tmp_path / "x.json"), option="--json") == tmp_path / "x.json"
    with pytest.raises(ValueError, match=r"--json .* is a directory"):
        output_file(str(tmp_path), option="--json")
    with pytest.raises(ValueError, match="does not exist"):
        output_file(str(tmp_path / "no" / "x.json"), option="--json")


def _no_run(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the command ran although an option was bad")


@pytest.mark.parametrize(("argv", "message"), [
    (["flake", "--levels", ""], "--levels '': no level given"),
    (["flake", "--json", "/nonexistent-dir/x.json"], "does not exist"),
    (["selftest", "--json", "."], "is a directory"),
    (["run", "--case", "small", "--device", "tpu"], "--device 'tpu'"),
])
def test_commands_check_options_first(argv: list[str], message: str, monkeypatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(flake, "run_flake", _no_run)
    monkeypatch.setattr(selftest, "run_selftest", _no_run)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_selftest_checks_backend_names_before_any_run() -> None:
    with pytest.raises(ValueError, match=r"--target 'nosuch'.*unknown backend\(s\) \['nosuch'\]"):
        selftest.run_selftest(target="nosuch")
    with pytest.raises(ValueError, match="named more than once"):
        selftest.run_selftest(target="torch", baseline="torch")


def test_selftest_only_takes_comma_lists(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = {}

    def fake(**kwargs: Any) -> list[selftest.SelftestOutcome]:
        seen.update(kwargs)
        return [selftest.SelftestOutcome("clean", None, 0, None, None, True)]

    monkeypatch.setattr(selftest, "run_selftest", fake)
    assert main(["selftest", "--only", "offset_sign,axis_order", "--only", "eps"]) == 0
    assert seen["injections"] == ["offset_sign", "axis_order", "eps"]


def test_selftest_without_a_clean_run_is_a_backend_failure(monkeypatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(selftest, "run_selftest", lambda **kwargs: [
        selftest.SelftestOutcome("clean", None, 3, None, None, False)])
    assert main(["selftest"]) == 3
    assert "the clean pair did not run" in capsys.readouterr().err


@pytest.mark.parametrize(("codes", "exit_code"), [([0, 0], 0), ([0, 1], 1), ([3, 3], 3),
                                                  ([0, 4], 3)])
def test_flake_exit_code(codes: list[int], exit_code: int, monkeypatch, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    report = flake.FlakeReport(len(codes), len(set(codes)) == 1, [], codes, {})
    monkeypatch.setattr(flake, "run_flake", lambda **kwargs: report)
    assert main(["flake", "--repeat", "2", "--levels", "all", "--json",
                 str(tmp_path / "f.json")]) == exit_code
    assert (tmp_path / "f.json").exists()
