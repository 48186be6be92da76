"""Runs one adapter's job in its own subprocess (default) or in-process (tests), with a timeout.

A crash, hang, out-of-memory or NaN in a backend becomes a :class:`BackendOutcome` with a status
and the tail of its log; it never raises into the harness.
"""

from __future__ import annotations

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

from parity.worker import HARNESS_PID_ENV, OUT_OF_MEMORY_ERRORS, PROGRESS_PREFIX, run_job

__all__ = ["CANCEL_POLL_S", "LOG_TAIL_LINES", "BackendOutcome", "JobCancelledError",
           "run_backend"]

class JobCancelledError(Exception):
    """A running job was stopped because the harness is stopping (Ctrl-C, SIGTERM, an error)."""


#: Seconds between checks of a job's cancel flag while its process runs.
CANCEL_POLL_S = 0.2

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


def _close_unfinished(manifest: dict[str, Any], expected: list[str], status: str,
                      reason: str) -> dict[str, Any]:
    """The manifest with every task the worker never finished marked as such.

    A worker that dies or is killed leaves its current task as ``running`` and never writes the
    later ones; a report must not say "running" about a process that is gone, nor leave a
    stage's absence unexplained.
    """
    tasks = {name: dict(record) for name, record in manifest.get("tasks", {}).items()}
    for record in tasks.values():
        if record.get("status") == "running":
            record["status"] = status
            record["error"] = reason
    for name in expected:
        if name not in tasks:
            tasks[name] = {"status": "missing",
                           "error": f"not run: the backend stopped earlier ({reason})"}
    return {**manifest, "tasks": tasks}


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _last_words(tail: str) -> str:
    """``": <the log's last line>"`` (a crash's exception line, so that the one-line message says
    why), or ``""`` for an empty log."""
    lines = [line.strip() for line in tail.splitlines()
             if line.strip() and PROGRESS_PREFIX not in line]
    return f": {lines[-1][:300]}" if lines else ""


def _progress_event(line: str) -> dict[str, Any] | None:
    """The progress event a worker's stdout line carries, or None.

    The prefix may follow text a hook printed without a newline. A line that is not a JSON
    object after the prefix (a hook printing something that looks like the protocol) is only
    logged: the reader thread must never die, or the pipe fills and the worker blocks.
    """
    at = line.find(PROGRESS_PREFIX)
    if at < 0:
        return None
    try:
        event = json.loads(line[at + len(PROGRESS_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None


def run_backend(job_dir: Path, *, timeout_s: float, isolation: str = "subprocess",
                on_progress: Callable[[dict[str, Any]], None] | None = None,
                adapter: Any = None, env: dict[str, str] | None = None,
                cancel: threading.Event | None = None) -> BackendOutcome:
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
    cancel : threading.Event, optional
        Set by another thread to stop the job: its process group is killed and
        :class:`JobCancelledError` raised (jobs run side by side cannot see the main thread's
        Ctrl-C themselves).
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
        except SystemExit as err:  # a hook called sys.exit(): in a subprocess, an early exit
            log_path.write_text(f"SystemExit: {err.code}\n")
            return BackendOutcome(backend, "crashed", time.perf_counter() - started,
                                  _close_unfinished(_read_manifest(job_dir), expected, "crashed",
                                                    f"sys.exit({err.code!r}) during a task"),
                                  log_path, f"{backend} called sys.exit({err.code!r}) during "
                                            f"{_last_task(_read_manifest(job_dir))}")
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

    # HARNESS_PID_ENV lets the worker ask the kernel to kill it when this process dies (a
    # SIGKILL of the harness must not leave a backend computing on, unseen).
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                 HARNESS_PID_ENV: str(os.getpid()), **(env or {})}
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
                event = _progress_event(line)
                if event is None:
                    continue
                try:
                    emit(event)
                except Exception as err:  # an odd event must not stop the reader (see above)
                    log.write(f"[harness] progress event not shown: {type(err).__name__}: "
                              f"{err}\n")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    process.wait(timeout=min(CANCEL_POLL_S, max(deadline - time.monotonic(), 0)))
                    break
                except subprocess.TimeoutExpired:
                    if cancel is not None and cancel.is_set():
                        raise JobCancelledError(f"{backend}: stopped with the harness") from None
                    if time.monotonic() >= deadline:
                        raise
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(process)
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception, ...: no orphan
            _kill_group(process)
            reader.join(timeout=10)  # the reader must not write to the log once it is closed
            raise
        reader.join(timeout=10)
    seconds = time.perf_counter() - started
    manifest = _read_manifest(job_dir)
    if timed_out:
        task = _last_task(manifest)
        return BackendOutcome(
            backend, "timeout", seconds,
            _close_unfinished(manifest, expected, "timeout",
                              f"killed after the {timeout_s:g} s timeout during {task}"),
            log_path, f"{backend} exceeded its {timeout_s:g} s timeout and was killed "
                      f"(last task: {task})")
    code = process.returncode
    if code != 0 or not manifest.get("finished"):
        # A zero status without the manifest's "finished" mark: the adapter ended the process
        # (sys.exit / os._exit) in the middle of a task. Not a success.
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            what = f"killed by signal {name}{hint}"
        elif code == 0:
            what = "exited (status 0) before finishing its tasks"
        else:
            what = f"exited with status {code}"
        task = _last_task(manifest)
        tail = _tail(log_path)
        status = "oom" if any(name in tail for name in OUT_OF_MEMORY_ERRORS) else "crashed"
        return BackendOutcome(
            backend, status, seconds,
            _close_unfinished(manifest, expected, status, f"{what} during {task}"),
            log_path, f"{backend} {what} during {task}{_last_words(tail)}; log tail:\n{tail}")
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
