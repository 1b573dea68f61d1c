"""Rule files in real two-process jobs on 127.0.0.1: TensorFlow workers and JAX processes."""

from __future__ import annotations

import json

import pytest

from cbdsl.conformance import multiprocess
from cbdsl.conformance.conform import SuiteOptions, plan_columns

REPORTS: dict[str, dict] = {}


def _report(backend: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The backend's jobs, run once for the module (each start bounded in time)."""
    why = multiprocess.cannot_run(backend)
    if why:
        pytest.skip(why)
    if backend not in REPORTS:
        REPORTS[backend] = multiprocess.run_backend(
            backend, tmp_path_factory.mktemp(f"jobs-{backend}"))
    return REPORTS[backend]


@pytest.mark.fit
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_every_process_decides_as_keras_classes_in_the_same_job(backend, tmp_path_factory):
    report = _report(backend, tmp_path_factory)
    assert report["world"] == 2 and [r["rank"] for r in report["ranks"]] == [0, 1]
    assert len({r["pid"] for r in report["ranks"]}) == 2  # two processes, not two devices
    for rank, result in enumerate(report["ranks"]):
        for run in ("reduce_lr_on_plateau", "early_stopping", "backup"):
            pair = result["runs"][run]
            for key in multiprocess.DECIDED:
                assert pair["cbdsl"][key] == pair["keras"][key], (rank, run, key)
        assert result["runs"] == report["ranks"][0]["runs"] or rank == 0
    plateau = report["ranks"][0]["runs"]["reduce_lr_on_plateau"]["keras"]
    stopping = report["ranks"][0]["runs"]["early_stopping"]["keras"]
    assert len(set(plateau["lr"])) > 1  # the policies really acted
    assert len(stopping["epochs"]) < multiprocess.EPOCHS and "early stopping" in stopping[
        "printed"]
    # and as in one process: the same decisions, weights equal up to the order of the sums
    assert multiprocess.problems(report) == []


@pytest.mark.fit
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_files_and_requests_once_per_event_across_the_job(backend, tmp_path_factory):
    report = _report(backend, tmp_path_factory)
    files = report["files"]
    epochs = len(report["ranks"][0]["runs"]["files"]["cbdsl"]["epochs"])
    # write row: one file, one line per epoch, as Keras's CSVLogger on the first process
    assert files["cbdsl-shared.csv"] == files["keras-0.csv"]
    assert len(files["cbdsl-shared.csv"].splitlines()) == epochs + 1
    assert "cbdsl-0.csv" in files and "cbdsl-1.csv" not in files
    assert "keras-1.csv" in files  # Keras's class writes from every process
    # write, append: one line per epoch
    lines = [json.loads(line) for line in files["epochs.log"].splitlines()]
    assert [line["epoch"] for line in lines] == list(range(epochs))
    # post: once per epoch from the rule file; Keras's RemoteMonitor posts from both
    ours = [body for path, body in report["posts"] if path == "/cbdsl"]
    theirs = [body for path, body in report["posts"] if path == "/keras"]
    assert len(ours) == epochs and len(theirs) == 2 * epochs
    assert sorted(ours * 2) == sorted(theirs)
    # save model: every process saves, the same models as Keras's ModelCheckpoint
    for rank in (0, 1):
        keras_saved = {k.split("/")[1]: v for k, v in files.items()
                       if k.startswith(f"keras-ckpt-{rank}/")}
        assert keras_saved and keras_saved == {
            k.split("/")[1]: v for k, v in files.items() if k.startswith(f"cbdsl-ckpt-{rank}/")}


@pytest.mark.fit
@pytest.mark.slow
def test_a_killed_worker_resumes_as_keras_class_with_the_rules_state(tmp_path_factory):
    report = _report("tensorflow", tmp_path_factory)
    fault = report["fault"]
    for rank in (0, 1):
        uninterrupted = report["ranks"][rank]["runs"]["backup"]["cbdsl"]
        resumed = fault["cbdsl"]["ranks"][rank]["runs"]["backup"]["cbdsl"]
        keras_resumed = fault["keras"]["ranks"][rank]["runs"]["backup"]["keras"]
        # killed in epoch KILL_AT: both resume at its start
        assert resumed["epochs"][0] == keras_resumed["epochs"][0] == multiprocess.KILL_AT
        assert fault["cbdsl"]["first_epochs"][rank] == multiprocess.KILL_AT
        # the rules' state at the resumed epoch's start is the uninterrupted job's
        at = uninterrupted["epochs"].index(multiprocess.KILL_AT)
        assert resumed["begin_state"][0] == uninterrupted["begin_state"][at]
        assert any(s.get("cooldown_counter") or s.get("wait")
                   for s in resumed["begin_state"][0])  # there was state to give back
        # and the learning-rate and stop trace is the uninterrupted job's
        assert resumed["lr"] == uninterrupted["lr"][at:]
        assert resumed["epochs"] == uninterrupted["epochs"][at:]
    assert multiprocess.problems(report) == []


def test_the_multi_process_jobs_run_in_the_full_suite_not_in_quick():
    full = {c.key: s for c, s, _ in plan_columns(SuiteOptions())}
    assert "distributed" in full["tensorflow/cpu"] and "distributed" not in full["jax/gpu"]
    for column, sections, not_run in plan_columns(SuiteOptions(quick=True)):
        assert "distributed" not in sections
        if column.device == "cpu":
            assert "--quick" in not_run["distributed"]


def test_a_backend_without_multi_process_jobs_says_why():
    assert "torch" in multiprocess.cannot_run("torch")
    assert multiprocess.problems({"backend": "torch", "skipped": "why"}) == []


def test_free_ports_are_distinct_and_bindable():
    import socket

    ports = multiprocess.free_ports(2)
    assert len(set(ports)) == 2
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
