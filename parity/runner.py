"""Runs one adapter's job in its own subprocess (default) or in-process (tests), with a timeout.

A crash, hang, out-of-memory or NaN in a backend becomes a :class:`BackendOutcome` with a status
and the tail of its log; it never raises into the harness.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.worker import PROGRESS_PREFIX, run_job

__all__ = ["BackendOutcome", "run_backend"]

#: Lines of log kept in the outcome message when a backend fails.
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class BackendOutcome:
    """What came back from one backend's job.

    Attributes
    ----------
    backend : str
        Adapter name.
    status : str
        ``ok``, ``partial`` (some tasks failed), ``nan``, ``crashed``, ``timeout``, ``oom``.
    seconds : float
        Wall time.
    manifest : dict
        The worker's manifest (tasks with status/error, environment, effective config, history).
    log_path : pathlib.Path
        Captured stdout and stderr.
    message : str
        What went wrong, with the log tail for crashes.
    """

    backend: str
    status: str
    seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)
    log_path: Path = Path()
    message: str = ""

    def task_ok(self, name: str) -> bool:
        """True when task ``name`` ran and produced finite outputs."""
        return self.manifest.get("tasks", {}).get(name, {}).get("status") == "ok"


def _read_manifest(job_dir: Path) -> dict[str, Any]:
    path = job_dir / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _classify(manifest: dict[str, Any], expected: list[str]) -> tuple[str, str]:
    tasks = manifest.get("tasks", {})
    problems = []
    status = "ok"
    for name in expected:
        record = tasks.get(name)
        if record is None:
            problems.append(f"{name}: not run")
            status = "partial"
        elif record.get("status") != "ok":
            problems.append(f"{name}: {record.get('status')} ({record.get('error', '')})")
            if record.get("status") in ("nan", "oom") and status == "ok":
                status = record["status"]
            elif status == "ok":
                status = "partial"
    return status, "; ".join(problems)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def run_backend(job_dir: Path, *, timeout_s: float, isolation: str = "subprocess",
                on_progress: Callable[[dict[str, Any]], None] | None = None,
                adapter: Any = None, env: dict[str, str] | None = None) -> BackendOutcome:
    """Run the job in ``job_dir`` (``job.json`` written by the caller).

    Parameters
    ----------
    job_dir : pathlib.Path
        Job directory.
    timeout_s : float
        Wall-clock limit; the whole process group is killed past it.
    isolation : str
        ``subprocess`` (default: the backend's framework never enters this process) or
        ``inprocess`` (tests; ``adapter`` may supply an instance).
    on_progress : callable, optional
        Called with each progress event.
    env : dict, optional
        Extra environment variables for the subprocess.
    """
    job_dir = Path(job_dir)
    job = json.loads((job_dir / "job.json").read_text())
    backend = job["backend"]
    expected = [t["name"] for t in job["tasks"]]
    log_path = job_dir / "backend.log"
    started = time.perf_counter()
    emit = on_progress or (lambda event: None)
    if isolation == "inprocess":
        try:
            manifest = run_job(job_dir, adapter=adapter, emit=emit)
        except Exception as err:  # in-process mode mirrors the subprocess contract
            log_path.write_text(f"{type(err).__name__}: {err}\n")
            return BackendOutcome(backend, "crashed", time.perf_counter() - started,
                                  _read_manifest(job_dir), log_path,
                                  f"worker raised {type(err).__name__}: {err}")
        status, message = _classify(manifest, expected)
        return BackendOutcome(backend, status, time.perf_counter() - started, manifest, log_path,
                              message)
    if isolation != "subprocess":
        raise ValueError(f"isolation={isolation!r}; expected 'subprocess' or 'inprocess'")

    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                 **(env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "parity.worker", str(job_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=child_env, start_new_session=True, text=True, bufsize=1,
        )

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()
                if line.startswith(PROGRESS_PREFIX):
                    with contextlib.suppress(ValueError):  # a garbled line is only logged
                        emit(json.loads(line[len(PROGRESS_PREFIX):]))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
        except KeyboardInterrupt:
            _kill_group(process)
            raise
        reader.join(timeout=10)
    seconds = time.perf_counter() - started
    manifest = _read_manifest(job_dir)
    if timed_out:
        return BackendOutcome(backend, "timeout", seconds, manifest, log_path,
                              f"{backend} exceeded its {timeout_s:.0f} s timeout and was killed "
                              f"(last task: {_last_task(manifest)})")
    if process.returncode != 0:
        code = process.returncode
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            what = f"killed by signal {name}{hint}"
        else:
            what = f"exited with status {code}"
        status = "oom" if "MemoryError" in _tail(log_path) else "crashed"
        return BackendOutcome(backend, status, seconds, manifest, log_path,
                              f"{backend} {what} during {_last_task(manifest)}; log tail:\n"
                              f"{_tail(log_path)}")
    status, message = _classify(manifest, expected)
    return BackendOutcome(backend, status, seconds, manifest, log_path, message)


def _last_task(manifest: dict[str, Any]) -> str:
    tasks = manifest.get("tasks", {})
    running = [n for n, t in tasks.items() if t.get("status") == "running"]
    if running:
        return running[-1]
    return list(tasks)[-1] if tasks else "start-up"


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=30)
