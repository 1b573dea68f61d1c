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
