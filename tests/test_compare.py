"""The fast improvement check agrees with each backend's own `ops.less`/`ops.greater`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cbdsl.runtime import monitor as runtime

WORKER = Path(__file__).with_name("compare_worker.py")


@pytest.mark.parametrize("backend", ("tensorflow", "jax", "torch"))
def test_fast_comparison_matches_backend_ops_on_edge_values(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed (pip install 'cbdsl[{backend}]')")
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(WORKER)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    assert result["checked"] > 6000
    assert result["mismatches"] == []


def test_normal_values_never_reach_the_backend(monkeypatch):
    def refuse(*args):
        raise AssertionError(f"backend op called for {args}")

    monkeypatch.setattr(runtime, "_backend_compare", refuse)
    assert runtime.is_improvement(0.5, 0.6, "min", 0.0)
    assert not runtime.is_improvement(0.6, 0.6, "min", 0.0)
    assert runtime.is_improvement(0.7, 0.6, "max", 0.05)
    assert not runtime.is_improvement(0.65, 0.6, "max", 0.05)


def test_subnormals_go_to_the_backend(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "_backend_compare", lambda *a: calls.append(a) or False)
    runtime.is_improvement(1e-40, 0.0, "min", 0.0)
    runtime.is_improvement(float("nan"), 1.0, "min", 0.0)
    assert len(calls) == 2
