"""Backend jobs (parity/jobs.py): task lists, core sharing, merged outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cases import get_case
from parity.engine import RunPlan
from parity.jobs import backend_tasks, job_threads, merge_outcomes
from parity.runner import BackendOutcome


def test_backend_jobs_share_the_cores_when_run_side_by_side(monkeypatch) -> None:
    container = get_case("small").build(0)
    case = get_case("small")
    plan = RunPlan(container=container, model=case.model_config(), train=case.train_config())
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert job_threads(plan) == {"OMP_NUM_THREADS": "2"}  # 5 cores, 2 backends
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert job_threads(plan) == {}  # the caller's pinning is kept
    for other in ({"parallel": False}, {"isolation": "inprocess"}, {"backends": ("torch",)}):
        assert job_threads(RunPlan(container=container, model=case.model_config(),
                                    train=case.train_config(), **other)) is None


def test_a_failed_cross_inference_job_marks_its_backend(tmp_path: Path) -> None:
    """The short same-weights job is merged into its backend's outcome: tasks, log and status."""
    main_log, extra_log = tmp_path / "main.log", tmp_path / "cross" / "backend.log"
    extra_log.parent.mkdir()
    main_log.write_text("main job\n")
    extra_log.write_text("Traceback: boom\n")
    main = BackendOutcome("torch", "ok", 10.0, {"tasks": {"train": {"status": "ok"}}}, main_log)
    extra = BackendOutcome("torch", "crashed", 2.0,
                           {"tasks": {"baseline_weights": {"status": "error"}}}, extra_log,
                           "exit code 1")
    merged = merge_outcomes(main, extra)
    assert merged.status == "crashed" and merged.seconds == 12.0
    assert set(merged.manifest["tasks"]) == {"train", "baseline_weights"}
    assert "cross-inference job: exit code 1" in merged.message
    assert "Traceback: boom" in main_log.read_text()
    assert merge_outcomes(main, BackendOutcome("torch", "ok", 1.0, {}, extra_log)).status == "ok"




FILES = {name: f"../inputs/{name}.npz" for name in
         ("data", "physics", "weights", "batch", "batches", "weights_perturbed",
          "weights_perturbed_1", "weights_perturbed_2")}


@pytest.mark.parametrize(("levels", "seeds", "baseline_tasks", "other_tasks"), [
    # L0 judges the layouts of the forward outputs, so it computes them on its own too.
    (("L0",), (), ["effective_config", "physics", "network"],
     ["effective_config", "physics", "network"]),
    (("L0", "L1", "L2", "L3", "L4", "L5"), (),
     ["effective_config", "physics", "network", "loss_and_grads", "train_steps",
      "train_steps_noise", "train_steps_noise_1", "train_steps_noise_2", "loss_and_grads_noise",
      "train"],
     ["effective_config", "physics", "network", "loss_and_grads", "train_steps", "train"]),
    # L3 alone still runs the network forward: its pool inputs tell a max-pool winner flipped by
    # rounding from a routing bug (n128 grouped with seed 4 failed at 360x its noise floor).
    (("L3",), (), ["effective_config", "network", "loss_and_grads", "loss_and_grads_noise"],
     ["effective_config", "network", "loss_and_grads"]),
    (("L5",), (3, 5), ["effective_config", "train", "train_seed5"],
     ["effective_config", "train", "train_seed5"]),
])
def test_backend_tasks_follow_the_levels(levels, seeds, baseline_tasks, other_tasks) -> None:
    case = get_case("small")
    plan = RunPlan(container=case.build(0), model=case.model_config(), train=case.train_config(),
                   levels=levels, seeds=seeds)
    baseline = backend_tasks(plan, FILES, is_baseline=True)
    other = backend_tasks(plan, FILES, is_baseline=False)
    assert [t["name"] for t in baseline] == baseline_tasks
    assert [t["name"] for t in other] == other_tasks
    trains = [t for t in baseline if t["kind"] == "train"]
    assert [t.get("seed") for t in trains] == ((list(seeds) or [None]) if "L5" in levels else [])
    assert len({t["workdir"] for t in trains}) == len(trains)  # one bundle per training
    # Each noise rerun starts from its own jittered weights; L3's rerun shares the first set.
    noise = {t["name"]: t["weights"] for t in baseline if "_noise" in t["name"]}
    assert noise == ({"train_steps_noise": FILES["weights_perturbed"],
                      "train_steps_noise_1": FILES["weights_perturbed_1"],
                      "train_steps_noise_2": FILES["weights_perturbed_2"],
                      "loss_and_grads_noise": FILES["weights_perturbed"]}
                     if {"L3", "L4"} <= set(levels) else
                     {"loss_and_grads_noise": FILES["weights_perturbed"]} if "L3" in levels
                     else {})
