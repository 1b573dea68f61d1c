"""The benchmark script's compile step still compiles every shipped rule file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_compiles_every_rule_file():
    spec = importlib.util.spec_from_file_location("overhead", ROOT / "bench" / "overhead.py")
    overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overhead)
    report = overhead.compile_times(repeats=1)
    assert report["from_rules_dir"]
    assert report["files"] == sorted(p.name for p in (ROOT / "rules").glob("*.cbd"))
    assert report["total_ms"] > 0


def test_the_replay_benchmark_runs_on_a_small_sweep(tmp_path):
    spec = importlib.util.spec_from_file_location("replay_bench", ROOT / "bench" / "replay.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.write_runs(tmp_path, runs=3, epochs=30)
    assert len(list(tmp_path.glob("run*.csv"))) == 3
    (tmp_path / "policy.cbd").write_text(bench.POLICY)
    times, loaded = bench.one_run(tmp_path, tmp_path / "policy.cbd", repeats=1)
    assert loaded == "[]" and times[0] > 0
