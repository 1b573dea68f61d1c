"""Benchmark: `cbdsl replay` of one run (start to finish), and a sweep over many recorded runs.

Run: python bench/replay.py [--runs 1000] [--epochs 100] [--settings 20] [--jobs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

POLICY = """
param patience = 10
use keras.reduce_lr_on_plateau(patience = 4, factor = 0.5)
use keras.early_stopping(patience = patience, restore_best_weights = true)
"""
GOALS = {"one_run_s": 1.0, "sweep_s": 20.0}


def write_runs(folder: Path, runs: int, epochs: int, seed: int = 0) -> None:
    """CSVLogger files of `runs` noisy training curves that level off and turn up."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)
    for r in range(runs):
        floor, rate, turn = rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.8), rng.uniform(0.3, 1.0)
        val = floor + np.exp(-rate * t / 10) + (t / epochs) ** 2 * turn * 0.2 \
            + rng.normal(0, 0.01, epochs)
        lines = ["epoch,learning_rate,loss,val_loss"] + [
            f"{e},0.01,{0.9 * v:.6f},{v:.6f}" for e, v in enumerate(val)]
        (folder / f"run{r:04d}.csv").write_text("\n".join(lines) + "\n")


def one_run(folder: Path, policy: Path, repeats: int) -> list[float]:
    """Wall time of `cbdsl replay POLICY --log RUN` in a fresh interpreter, and what it loaded."""
    times = []
    code = ("import sys; from cbdsl.cli import main; "
            f"main(['replay', {str(policy)!r}, '--log', {str(folder / 'run0000.csv')!r}]); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') "
            "if m in sys.modules), file=sys.stderr)")
    loaded = ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
        times.append(time.perf_counter() - start)
        loaded = done.stderr.strip().splitlines()[-1]
    return times, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--settings", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    from cbdsl.replay import read_runs, settings_of, sweep

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        policy = folder / "policy.cbd"
        policy.write_text(POLICY)
        write_runs(folder, args.runs, args.epochs)
        one, loaded = one_run(folder, policy, args.repeats)
        start = time.perf_counter()
        runs, unreadable = read_runs([folder])
        read_s = time.perf_counter() - start
        grid = settings_of({"patience": list(range(1, args.settings + 1))})
        start = time.perf_counter()
        result = sweep(policy, runs, grid, jobs=args.jobs)
        sweep_s = time.perf_counter() - start
    epochs_run = sum(s.epochs_run for s in result.settings)
    report = {
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "one_run_s": min(one), "one_run_all_s": one, "one_run_loaded": loaded,
        "runs": len(runs), "epochs": args.epochs, "settings": len(grid),
        "read_s": read_s, "replay_s": sweep_s, "sweep_s": read_s + sweep_s,
        "epochs_replayed": epochs_run,
        "us_per_epoch_replayed": 1e6 * sweep_s / max(epochs_run, 1),
        "unreadable": len(unreadable),
    }
    print(f"one run, `cbdsl replay` start to finish: {min(one):.2f} s (best of {len(one)}; "
          f"goal under {GOALS['one_run_s']:.0f} s); backends loaded: {loaded}")
    print(f"{len(runs)} runs x {args.epochs} epochs x {len(grid)} settings on "
          f"{report['cpus']} CPUs: {report['sweep_s']:.1f} s (read {read_s:.1f} s, replay "
          f"{sweep_s:.1f} s; goal under {GOALS['sweep_s']:.0f} s)")
    print(f"  {epochs_run:,} epochs replayed ({report['us_per_epoch_replayed']:.1f} us each, "
          f"wall over all processes)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
