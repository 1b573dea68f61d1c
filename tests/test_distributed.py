"""Compiled rules under data-parallel training decide as Keras's classes do and write files once."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types

import pytest

import cbdsl
from cbdsl import runtime

pytestmark = pytest.mark.fit


def _run(backend: str) -> dict:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "cbdsl.conformance.distributed"], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_rules_decide_as_keras_under_two_replicas_and_write_once_per_epoch(backend):
    report = _run(backend)
    assert report["replicas"] == 2 and len(report["devices"]) == 2
    for name, pair in report["results"].items():
        assert pair["cbdsl"] == pair["keras"], name
    plateau, stopping = report["results"]["reduce_lr_on_plateau"], report["results"][
        "early_stopping"]
    if backend == "jax":  # the weights really are laid out over both devices
        assert "'batch': 2" in plateau["keras"]["device"]
    # the policies really acted: the rate was cut, training stopped early
    assert len(set(plateau["keras"]["lr"])) > 1
    assert stopping["keras"]["epochs_run"] < 12 and "early stopping" in stopping["keras"][
        "printed"]
    # one line per epoch, not one per replica, holding the epoch's logged loss
    lines = [json.loads(line) for line in report["lines"]]
    assert [line["epoch"] for line in lines] == list(range(report["epochs_run"]))
    assert [line["loss"] for line in lines] == pytest.approx(report["history_loss"], rel=1e-6)


@pytest.mark.parametrize(("count", "index", "writes"), [(1, 0, True), (2, 0, True),
                                                         (2, 1, False)])
def test_only_the_first_process_of_a_multi_process_job_writes(tmp_path, monkeypatch, count,
                                                              index, writes):
    path = tmp_path / "log.jsonl"
    (cb,) = cbdsl.compile('callback c(path = "x") { on epoch_end do append "line" to path }',
                          path=str(path))
    fake = types.SimpleNamespace(process_count=lambda: count, process_index=lambda: index)
    monkeypatch.setitem(sys.modules, "jax", fake)
    assert runtime.is_writer() is writes
    cb.on_epoch_end(0, {})
    assert path.exists() is writes


def test_only_the_first_process_of_a_multi_process_job_posts(monkeypatch):
    sent = []
    requests = types.SimpleNamespace(
        post=lambda url, *args, **kwargs: sent.append(url),
        exceptions=types.SimpleNamespace(RequestException=OSError))
    monkeypatch.setitem(sys.modules, "requests", requests)
    for index in (0, 1):
        monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(
            process_count=lambda: 2, process_index=lambda index=index: index))
        assert runtime.post(f"http://127.0.0.1:9/{index}", {}, kind="json", headers=None,
                            timeout=1.0, owner="RemoteMonitor")
    assert sent == ["http://127.0.0.1:9/0"]
