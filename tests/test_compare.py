"""The fast improvement check agrees with each backend's own `ops.less`/`ops.greater`."""

from __future__ import annotations

from pathlib import Path

import pytest
from backend_run import run_on_backend

from cbdsl.runtime import monitor as runtime

WORKER = Path(__file__).with_name("compare_worker.py")


@pytest.mark.parametrize("backend", ("tensorflow", "jax", "torch"))
def test_fast_comparison_matches_backend_ops_on_edge_values(backend):
    result = run_on_backend([str(WORKER)], backend, timeout=300)
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
