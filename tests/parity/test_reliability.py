"""Reliability of the ``parity`` command: failing backends in the bundle, interrupted runs, bad input.

The CLI runs in a subprocess with the float64 oracle as baseline and the adapters of
``tests/parity/support/faulty_adapters.py`` (registered through ``PTYCHO_PARITY_ADAPTERS``), at
L0-L2: no framework is loaded and each worker starts in about a second. Bad input is generated
with hypothesis: malformed containers must raise ``ValueError``/``TypeError`` naming the field,
and junk command lines must end in exit 2 with one ``parity: error:`` line (or 0 for help).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from parity.cli import EXIT_INTERNAL, EXIT_USAGE, main
from parity.container import Container, ContainerMetadata
from parity.io.container_npz import read_npz, write_npz
from parity.registry import ADAPTERS_ENV
from parity.report.bundle import COMPLETE_MARKER, STAGING_PREFIX
from parity.report.runs import list_runs

SUPPORT = Path(__file__).resolve().parent / "support"
sys.path.insert(0, str(SUPPORT))
import faulty_adapters  # noqa: E402  (a plain module under tests/parity/support)

#: Backends of the one CLI run that shows every failure mode in a single bundle.
FAILING = ("faulty-raise", "faulty-segv", "faulty-hang", "faulty-oom", "faulty-nan")
EXPECTED_STATUS = {"faulty-raise": "partial", "faulty-segv": "crashed",
                   "faulty-hang": "timeout", "faulty-oom": "oom", "faulty-nan": "nan"}
#: What each failing backend's log must show (the bundle keeps the log, not the manifest).
LOG_EVIDENCE = {"faulty-raise": "RuntimeError", "faulty-segv": "about to segfault",
                "faulty-hang": "hanging in forward_physics", "faulty-oom": "MemoryError",
                "faulty-nan": '"status": "nan"'}

#: Per-backend timeout of the failing run, s: the oracle needs about 1 s at L0-L2 even on a
#: loaded 2-core machine, and the hanging backend costs exactly this long.
HANG_TIMEOUT_S = 6
#: Limit on any CLI subprocess, s (a run here takes 5-15 s; this only stops a stuck test).
PROCESS_LIMIT_S = 180


def _env(tmpdir: Path | None = None) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": str(SUPPORT) + (os.pathsep + path if path else ""),
           ADAPTERS_ENV: faulty_adapters.adapters_env(), "OMP_NUM_THREADS": "1"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


def _cli(root: Path, backends: str, *, timeout_s: float = 120, tmpdir: Path | None = None
         ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "run", "--case", "small", "--backends", backends,
         "--levels", "L0,L1,L2", "--timeout", str(timeout_s), "--out", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmpdir))


def _bundle(root: Path) -> Path:
    (bundle,) = [run.path for run in list_runs(root)]
    return bundle


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """Two CLI runs started together: every failure mode in one run, and a divergence."""
    roots = {"failing": tmp_path_factory.mktemp("failing"),
             "doctored": tmp_path_factory.mktemp("doctored")}
    processes = {
        "failing": _cli(roots["failing"], ",".join(("oracle", *FAILING)),
                        timeout_s=HANG_TIMEOUT_S),
        "doctored": _cli(roots["doctored"], "oracle,faulty-doctored"),
    }
    out = {}
    for key, process in processes.items():
        stdout, stderr = process.communicate(timeout=PROCESS_LIMIT_S)
        assert "Traceback" not in stderr, stderr
        out[key] = (process.returncode, stdout, _bundle(roots[key]))
    return out


# -- failing backends in the bundle -----------------------------------------------------------


def test_failed_backends_exit_3_and_each_status_is_in_the_report(cli_runs):
    code, stdout, bundle = cli_runs["failing"]
    assert code == 3
    report = json.loads((bundle / "report.json").read_text())
    assert report["exit_code"] == 3 and report["verdict"] == "backend-failure"
    statuses = {run["backend"]: run["status"] for run in report["backend_runs"]}
    assert statuses == {"oracle": "ok", **EXPECTED_STATUS}
    crashed = next(r for r in report["backend_runs"] if r["backend"] == "faulty-segv")
    assert "SIGSEGV" in crashed["message"]
    for backend, status in EXPECTED_STATUS.items():
        line = next(line for line in stdout.splitlines() if line.startswith(f"backend {backend}:"))
        assert f": {status}:" in line and f"logs/{backend}.log" in line, line


def test_each_failed_backend_log_is_in_the_bundle_and_named(cli_runs):
    _, _, bundle = cli_runs["failing"]
    summary = (bundle / "summary.md").read_text()
    cases = {case.get("name"): case
             for case in ET.parse(bundle / "junit.xml").getroot().iter("testcase")
             if case.get("classname") == "backends"}
    for backend, status in EXPECTED_STATUS.items():
        log = bundle / "logs" / f"{backend}.log"
        assert LOG_EVIDENCE[backend] in log.read_text(errors="replace"), backend
        row = next(line for line in summary.splitlines()
                   if line.startswith(f"| {backend} |"))
        assert status.upper() in row and f"logs/{backend}.log" in row, row
        error = cases[backend].find("error")
        assert error is not None and error.get("type") == status, backend
        assert f"logs/{backend}.log" in (error.text or ""), backend
    assert cases["oracle"].find("error") is None
    assert (bundle / "logs" / "oracle.log").is_file()


def test_the_healthy_backend_checks_are_kept(cli_runs):
    _, _, bundle = cli_runs["failing"]
    report = json.loads((bundle / "report.json").read_text())
    own = [c for c in report["checks"] if c["backend"] == "oracle"]
    assert {c["level"] for c in own} == {"L0", "L1", "L2"}
    assert own and all(c["verdict"] == "pass" for c in own)
    # the stages a failed backend never produced are errors, never passes nor silent gaps
    for backend in ("faulty-segv", "faulty-hang"):
        l1 = [c for c in report["checks"] if c["backend"] == backend and c["level"] == "L1"]
        assert [c["verdict"] for c in l1] == ["error"], backend


def test_doctored_finite_numbers_are_a_divergence_exit_1(cli_runs):
    code, stdout, bundle = cli_runs["doctored"]
    assert code == 1
    report = json.loads((bundle / "report.json").read_text())
    assert report["verdict"] == "divergence" and report["exit_code"] == 1
    assert all(run["status"] == "ok" for run in report["backend_runs"])
    first = report["first_divergence"]
    assert (first["level"], first["stage"], first["backend"]) == (
        "L1", "farfield_amplitude", "faulty-doctored")
    # a 5 % scale error is measured as such (1e-6: float64 rounding of the ratio, nothing else)
    assert abs(first["measured"]["max_rel_error"] - (faulty_adapters.DOCTOR_FACTOR - 1)) < 1e-6
    assert "first divergent stage: L1/farfield_amplitude/" in stdout
    assert "farfield_amplitude" in (bundle / "summary.md").read_text().split("## Checks")[0]


# -- interrupted runs -------------------------------------------------------------------------


def _digest(tree: Path) -> dict[str, str]:
    return {p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(tree.rglob("*")) if p.is_file()}


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for_hang(tmpdir: Path, process: subprocess.Popen[str]) -> int:
    """Block until the hanging backend is inside its hook; return the worker's pid."""
    deadline = time.monotonic() + PROCESS_LIMIT_S
    while time.monotonic() < deadline:
        for job in tmpdir.glob("parity-run-*/faulty-hang"):
            log = job / "backend.log"
            if log.exists() and "hanging in forward_physics" in log.read_text(errors="replace"):
                return int(json.loads((job / "manifest.json").read_text())["pid"])
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the hanging backend never started")


@pytest.mark.parametrize(("signum", "expected_code", "cleans_up"), [
    (signal.SIGINT, 130, True),
    (signal.SIGTERM, 143, True),
    (signal.SIGKILL, -signal.SIGKILL, False),
])
def test_interrupted_run_leaves_no_bundle_and_touches_none(cli_runs, tmp_path, signum,
                                                            expected_code, cleans_up):
    root, tmpdir = tmp_path / "reports", tmp_path / "tmp"
    tmpdir.mkdir()
    earlier = root / cli_runs["failing"][2].name
    shutil.copytree(cli_runs["failing"][2], earlier)
    before = _digest(earlier)
    process = _cli(root, "faulty-hang,oracle", tmpdir=tmpdir)  # hang first: no wait for oracle
    worker = None
    try:
        worker = _wait_for_hang(tmpdir, process)
        time.sleep(1.0)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == expected_code, stderr
        assert "Traceback" not in stderr
        # the backend's worker goes too: killed by the harness, or by the kernel when the
        # harness itself was SIGKILLed (10 s: the kill is immediate; this is only a bound)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), f"worker {worker} outlived the interrupted harness"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)
    visible = sorted(p.name for p in root.iterdir() if not p.name.startswith(STAGING_PREFIX))
    assert visible == [earlier.name], "an interrupted run left a bundle-like directory"
    complete = [p for p in root.iterdir() if (p / COMPLETE_MARKER).exists()]
    assert complete == [earlier]
    assert [run.path for run in list_runs(root)] == [earlier]
    assert _digest(earlier) == before, "an interrupted run modified an earlier bundle"
    if cleans_up:  # Ctrl-C and SIGTERM also remove the run's scratch directory
        assert list(tmpdir.glob("parity-run-*")) == []


# -- bad input: containers --------------------------------------------------------------------

_N_CHOICES = (4, 6, 8)
_OBJECT_PX = 16


@st.composite
def _valid_arrays(draw) -> dict[str, np.ndarray]:
    n = draw(st.integers(1, 6))
    N = draw(st.sampled_from(_N_CHOICES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cells = rng.choice((_OBJECT_PX - 1) ** 2, size=n, replace=False)
    positions = np.stack([cells % (_OBJECT_PX - 1), cells // (_OBJECT_PX - 1)], axis=1)
    return {
        "diffraction": rng.uniform(0.1, 2.0, (n, N, N)).astype(np.float32),
        "positions_px": positions + rng.uniform(0, 0.5, (n, 2)),  # distinct, inside
        "probe": (rng.normal(size=(N, N)) + 1j * rng.normal(size=(N, N))).astype(np.complex64),
        "object_truth": np.ones((_OBJECT_PX, _OBJECT_PX), np.complex64),
    }


def _index(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(draw(st.integers(0, d - 1)) for d in shape)


def _nonfinite(draw, array: np.ndarray) -> np.ndarray:
    bad = np.array(array, copy=True)
    bad[_index(draw, bad.shape)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return bad


def _other_shape(draw, avoid: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    return shape if shape != avoid else (*avoid, 1)


def _other_dtype(draw, array: np.ndarray, allowed: str) -> np.ndarray:
    dtype = draw(st.sampled_from(["int32", "uint8", "bool", "float32", "complex64", "U3",
                                  "object"]))
    if np.dtype(dtype).kind in allowed:
        dtype = "U3"
    if dtype == "object":
        return np.full(array.shape, None, dtype=object)
    if dtype == "U3":
        return np.full(array.shape, "x", dtype="U3")
    return np.abs(array).astype(dtype)


@st.composite
def _corrupted(draw) -> tuple[str, dict[str, np.ndarray]]:
    """A container's arrays with exactly one field broken; returns (field, arrays)."""
    arrays = draw(_valid_arrays())
    n, N, _ = arrays["diffraction"].shape
    field = draw(st.sampled_from(["diffraction", "positions_px", "probe", "object_truth"]))
    array = arrays[field]
    how = draw(st.sampled_from(["shape", "dtype", "nonfinite", "special"]))
    if how == "shape":
        avoid = array.shape
        if field == "diffraction":  # keep n so that only diffraction is at fault
            broken = np.ones(_other_shape(draw, avoid), np.float32)
            if broken.ndim == 3 and broken.shape[1] == broken.shape[2] and broken.shape[0] > 0:
                broken = np.ones((n, N, N + 1), np.float32)  # square patterns: make them not
        else:
            broken = np.ones(_other_shape(draw, avoid), array.dtype)
            if field == "object_truth" and broken.ndim == 2:
                broken = broken[None]
    elif how == "dtype":
        allowed = {"diffraction": "f", "positions_px": "fiu", "probe": "c",
                   "object_truth": "c"}[field]
        broken = _other_dtype(draw, array, allowed)
    elif how == "nonfinite":
        broken = _nonfinite(draw, array)
    elif field == "diffraction":
        broken = draw(st.sampled_from(["empty", "negative", "zero"]))
        broken = {"empty": np.ones((0, N, N), np.float32),
                  "negative": -array,
                  "zero": np.zeros_like(array)}[broken]
    elif field == "positions_px":  # outside the object, or an empty scan
        if draw(st.booleans()):
            broken = np.array(array, copy=True)
            broken[(*_index(draw, (n,)), draw(st.integers(0, 1)))] = draw(
                st.sampled_from([-1.5, _OBJECT_PX + 0.5, 1e6]))
        else:
            broken = np.zeros((0, 2))
    elif field == "probe":
        broken = np.zeros_like(array) if draw(st.booleans()) else \
            np.ones((N + draw(st.integers(1, 3)), N), np.complex64)
    else:
        broken = np.ones((_OBJECT_PX,), np.complex64)
    return field, {**arrays, field: broken}


@settings(max_examples=200, deadline=None)
@given(_corrupted())
def test_malformed_container_names_the_field(case):
    field, arrays = case
    with pytest.raises((ValueError, TypeError)) as info:
        Container(**arrays)
    assert field in str(info.value), (field, str(info.value))


@settings(max_examples=50, deadline=None)
@given(_valid_arrays())
def test_the_valid_base_of_the_generator_is_accepted(arrays):
    """The corruptions above start from containers that are valid (else they prove nothing)."""
    assert Container(**arrays).n_patterns == arrays["diffraction"].shape[0]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["nphotons", "gridsize", "K", "name"]), st.data())
def test_bad_metadata_names_the_field(field, data):
    value = data.draw({
        "nphotons": st.sampled_from([0.0, -1.0, float("nan"), float("inf"), "many"]),
        "gridsize": st.sampled_from([0, 5, -2]),
        "K": st.integers(0, 3),
        "name": st.sampled_from(["", "a/b", "two words", "tab\tname", "back\\slash"]),
    }[field])
    options = {"gridsize": 2} if field == "K" else {}
    with pytest.raises((ValueError, TypeError)) as info:
        ContainerMetadata(**options, **{field: value})
    assert field in str(info.value), str(info.value)


def _three_patterns(**override) -> dict[str, object]:
    rng = np.random.default_rng(0)
    arrays = {"diffraction": rng.uniform(0.1, 2, (3, 4, 4)).astype(np.float32),
              "positions_px": np.array([[2.0, 3.0], [5.5, 7.25], [9.0, 1.5]]),
              "probe": np.ones((4, 4), np.complex64),
              "object_truth": np.ones((_OBJECT_PX, _OBJECT_PX), np.complex64)}
    return {**arrays, **override}


#: Bad input that once slipped through with an unnamed error: each must name its field.
_CONTAINER_GAPS = {
    "duplicate positions": ("positions_px", lambda: Container(**_three_patterns(
        positions_px=np.array([[2.0, 3.0], [5.5, 7.25], [2.0, 3.0]])))),
    "ragged positions": ("positions_px", lambda: Container(**_three_patterns(
        positions_px=[[2.0, 3.0], [5.5], [9.0, 1.5]]))),
    "ragged diffraction": ("diffraction", lambda: Container(**_three_patterns(
        diffraction=[[[1.0]], [[1.0, 2.0]], [[3.0]]]))),
    "gridsize not a number": ("gridsize", lambda: ContainerMetadata(gridsize="two")),
    "gridsize None": ("gridsize", lambda: ContainerMetadata(gridsize=None)),
    "seed not a number": ("seed", lambda: ContainerMetadata(seed="x")),
    "name not a string": ("name", lambda: ContainerMetadata(name=5)),
}


@pytest.mark.parametrize("gap", sorted(_CONTAINER_GAPS))
def test_known_container_gaps(gap):
    field, build = _CONTAINER_GAPS[gap]
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert field in str(info.value), str(info.value)


# -- bad input: container files ---------------------------------------------------------------


_THREE = Container(**_three_patterns(), metadata=ContainerMetadata(name="three"))


@pytest.fixture(scope="module")
def container_bytes(tmp_path_factory) -> bytes:
    return write_npz(_THREE, tmp_path_factory.mktemp("npz") / "three.npz").read_bytes()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_truncated_or_padded_container_file_names_the_file(container_bytes, tmp_path, data):
    """A cut-off file (plus junk) is rejected naming the file, or read back unchanged."""
    cut = data.draw(st.integers(0, len(container_bytes) - 1))
    junk = data.draw(st.binary(max_size=64))
    path = tmp_path / "damaged.npz"
    path.write_bytes(container_bytes[:cut] + junk)
    try:
        container = read_npz(path, name="three")
    except ValueError as err:
        assert "damaged.npz" in str(err), str(err)
    else:  # only the zip comment was touched: the data must be what was written
        assert container.content_hash() == _THREE.content_hash()


def _corrupt_deflate(raw: bytes) -> bytes:
    """``raw`` with the compressed data of its first member replaced by an invalid block."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        offset = archive.infolist()[0].header_offset
    header = raw[offset:offset + 30]
    start = offset + 30 + int.from_bytes(header[26:28], "little") + \
        int.from_bytes(header[28:30], "little")
    # 0xFF starts a final block of the reserved type 11: zlib raises "invalid block type"
    return raw[:start] + b"\xff" * 16 + raw[start + 16:]


def test_corrupted_compressed_member_names_the_file(container_bytes, tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(_corrupt_deflate(container_bytes))
    with pytest.raises(ValueError, match=r"corrupt\.npz"):
        read_npz(path)


def test_cli_reports_a_corrupted_container_in_one_line(container_bytes, tmp_path, capsys):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(_corrupt_deflate(container_bytes))
    assert main(["run", "--container", str(path), "--out", str(tmp_path / "r")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("parity: error:") and "corrupt.npz" in err and "\n" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


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
