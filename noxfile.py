# /// script
# dependencies = ["nox>=2024.4.15"]
# ///
"""nox sessions for ptycho-parity.

ONE shared environment. TensorFlow and PyTorch are several GB together, so every session runs in
the same virtualenv, ``.venv`` in the repository root, instead of one per session (nox's default;
sharing is the long-open wntrblm/nox#167). ``_shared_env`` creates it on first use and reinstalls
the project whenever ``pyproject.toml`` changes (a hash marker inside the venv); sessions are
declared with ``venv_backend="none"`` and call the venv's interpreter explicitly. One Python only:
a matrix would repeat the framework installs without telling us anything about parity.

CPU machines get the ``cpu`` extra (torch pinned to 2.13.0, the CPU build on local disk;
tensorflow-cpu). Set ``PARITY_EXTRA=gpu`` to build the environment with CUDA wheels instead.

Sessions: tests (default), lint (default), parity, parity-matrix (slow), selftest, bench, run.
``session.posargs`` always reach the underlying command.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"
nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "none"

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = str(BIN / "python")


def _shared_env(session: nox.Session) -> str:
    """Create or refresh the shared venv; return its python. The only place deps are installed."""
    extra = os.environ.get("PARITY_EXTRA", "cpu")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extra.encode()).hexdigest()
    marker = VENV / ".parity-installed"
    if not (BIN / "python").exists():
        session.run(sys.executable, "-m", "venv", str(VENV), external=True)
    if not marker.exists() or marker.read_text() != digest:
        session.run(PY, "-m", "pip", "install", "--upgrade", "pip", external=True)
        session.run(PY, "-m", "pip", "install", "-e", f".[{extra},test]", external=True)
        marker.write_text(digest)
    return PY


def _pytest(session: nox.Session, py: str, *args: str, none_selected_ok: bool = False) -> None:
    """pytest in the shared venv; ``none_selected_ok`` accepts exit 5 (a marker selected nothing)."""
    session.run(py, "-m", "pytest", *args, external=True,
                success_codes=[0, 5] if none_selected_ok else [0],
                env={"PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"})


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Fast test suite: framework-free tests, then each backend's tests in its own process."""
    py = _shared_env(session)
    if session.posargs:
        _pytest(session, py, *session.posargs)
        return
    # A test process loads at most one framework (TF and torch in one process is fragile).
    _pytest(session, py, "tests", "--ignore=tests/backends/tensorflow",
            "--ignore=tests/backends/torch")
    _pytest(session, py, "tests/backends/tensorflow")
    _pytest(session, py, "tests/backends/torch")


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check of the whole tree."""
    py = _shared_env(session)
    session.run(py, "-m", "ruff", "check", *(session.posargs or ["."]), external=True)


@nox.session(venv_backend="none")
def run(session: nox.Session) -> None:
    """`parity run` on the built-in default case (pass other options after --)."""
    py = _shared_env(session)
    session.run(py, "-m", "parity.cli", "run", *(session.posargs or ["--case", "default"]),
                external=True)


@nox.session(venv_backend="none", default=False)
def parity(session: nox.Session) -> None:
    """The default case through the whole ladder L0-L5; writes a report; fails on divergence."""
    py = _shared_env(session)
    session.run(py, "-m", "parity.cli", "run", "--case", "default", "--levels", "all",
                *session.posargs, external=True)


@nox.session(name="parity-matrix", venv_backend="none", default=False)
def parity_matrix(session: nox.Session) -> None:
    """Slow matrix: N, gridsize, seeds and real data (pytest -m slow, then parity runs)."""
    py = _shared_env(session)
    _pytest(session, py, "tests", "-m", "slow", "--ignore=tests/backends/tensorflow",
            "--ignore=tests/backends/torch", *session.posargs, none_selected_ok=True)
    _pytest(session, py, "tests/backends/tensorflow", "-m", "slow")
    _pytest(session, py, "tests/backends/torch", "-m", "slow")
    device = os.environ.get("PARITY_MATRIX_DEVICE", "cpu")
    for case, options in _matrix_runs(device):
        for seed in ("0", "1"):
            session.run(py, "-m", "parity.cli", "run", "--case", case, "--seed", seed,
                        "--device", device, "--quiet", *options, external=True)


def _matrix_runs(device: str) -> list[tuple[str, tuple[str, ...]]]:
    """The parity runs of the matrix: ``(case, extra parity-run options)``.

    ``n128`` is the full-size network (N=128, gridsize 2, filter scale 2): one epoch costs a
    backend 110-170 s on one CPU core, so its independent 20-epoch training (L5) is a GPU job
    (``PARITY_MATRIX_DEVICE=cuda``); on a CPU the matrix runs its L0-L4.
    """
    full_size = () if device.startswith("cuda") else ("--levels", "L0,L1,L2,L3,L4")
    return [("default-gs2", ()), ("fly001", ()), ("siemens-star", ()), ("n128", full_size)]


@nox.session(venv_backend="none", default=False)
def selftest(session: nox.Session) -> None:
    """Inject every known port bug into one backend and prove the gate catches each."""
    py = _shared_env(session)
    session.run(py, "-m", "parity.cli", "selftest", *session.posargs, external=True)


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Throughput and memory of both backends (prints figures, writes a bench bundle)."""
    py = _shared_env(session)
    session.run(py, "-m", "parity.cli", "bench", *session.posargs, external=True)


if __name__ == "__main__":
    nox.main()
