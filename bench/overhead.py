"""Benchmark: callback overhead of compiled rules vs Keras's own, compile time, import time.

Run: python bench/overhead.py [--repeats N] [--backends tensorflow,jax,torch] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = """
on epoch_end when val_loss stalls 5 do lr *= 0.2
on epoch_end when val_loss stalls 12 and epoch > 0 do stop
"""
FALLBACK_POLICIES = [
    POLICY,
    "on train_batch_end when loss is not finite do stop",
    'on epoch_end every 5 do save model "ckpt/e{epoch:03d}.keras"',
    "callback c(monitor = \"val_loss\", patience = 3, factor = 0.5) {\n"
    "  on epoch_end when metric(monitor) stalls patience do lr *= factor\n}\nuse c()",
]


def fit_worker(repeats: int) -> dict:
    """In a subprocess with KERAS_BACKEND set: paired, rotated fits of the three configurations."""
    import keras
    import numpy as np

    import cbdsl

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 8)).astype("float32")
    y = rng.normal(size=(2048, 1)).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")

    configs = {
        "none": lambda: [],
        "native": lambda: [
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=5,
                                              min_delta=0),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=12)],
        "compiled": lambda: cbdsl.compile(POLICY),
    }

    fit = model_fit(model, x, y)

    def once(name: str) -> float:
        callbacks = configs[name]()
        start = time.perf_counter()
        fit(callbacks)
        return time.perf_counter() - start

    for name in configs:  # warm-up: tracing and compilation are not timed
        once(name)
    times: dict[str, list[float]] = {name: [] for name in configs}
    order = list(configs)
    for r in range(repeats):
        for name in order[r % 3:] + order[:r % 3]:
            times[name].append(once(name))
    batch_hooks = [k for k in type(cbdsl.compile(POLICY)[0]).__dict__ if "batch" in k]
    paired = {  # ratio within each round of three back-to-back fits: drift cancels out
        "compiled_over_native": statistics.median(
            c / n for c, n in zip(times["compiled"], times["native"], strict=True)),
        "compiled_over_none": statistics.median(
            c / n for c, n in zip(times["compiled"], times["none"], strict=True))}
    return {"backend": keras.backend.backend(), "median_s": {
        k: statistics.median(v) for k, v in times.items()}, "paired": paired,
        "batch_hooks": batch_hooks,
        "hook_ms": {name: hook_time(configs[name], fit, repeats)
                    for name in ("native", "compiled")}}


def model_fit(model, x, y):
    def fit(callbacks) -> None:
        model.optimizer.learning_rate = 0.01
        model.fit(x, y, batch_size=16, epochs=4, validation_split=0.25, verbose=0,
                  callbacks=callbacks)
    return fit


def hook_time(make, fit, repeats: int) -> float:
    """Median milliseconds per fit spent inside the callbacks' own hook methods."""
    runs = []
    for _ in range(repeats):
        spent = [0.0]
        callbacks = make()
        for cb in callbacks:
            for name in dir(cb):
                if name.startswith("on_") and _overridden(cb, name):
                    setattr(cb, name, _timed(getattr(cb, name), spent))
        fit(callbacks)
        runs.append(spent[0] * 1000)
    return statistics.median(runs)


def _overridden(cb, name: str) -> bool:
    """Whether the hook is defined below `keras.callbacks.Callback` (the base does nothing)."""
    import keras

    owner = next(k for k in type(cb).__mro__ if name in vars(k))
    return owner is not keras.callbacks.Callback


def _timed(method, spent: list[float]):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
    return timed


# The arguments that rule files without a default need (compiling writes nothing).
REQUIRED_ARGUMENTS = {"csv_logger.cbd": {"filename": "training.csv"},
                      "model_checkpoint.cbd": {"filepath": "checkpoint.keras"},
                      "backup_and_restore.cbd": {"backup_dir": "backup"}}


def compile_times(repeats: int = 20) -> dict:
    import cbdsl

    files = sorted((ROOT / "rules").glob("*.cbd"))
    sources = [(f.name, f) for f in files] or [(f"policy {i}", t)
                                                for i, t in enumerate(FALLBACK_POLICIES)]

    def all_once() -> float:
        start = time.perf_counter()
        for name, source in sources:
            cbdsl.compile(cbdsl.check(cbdsl.parse(source)), **REQUIRED_ARGUMENTS.get(name, {}))
        return time.perf_counter() - start

    all_once()  # warm: the parser is built once per process
    total = statistics.median(all_once() for _ in range(repeats))
    return {"files": [name for name, _ in sources], "from_rules_dir": bool(files),
            "total_ms": total * 1000}


def import_time(repeats: int = 5) -> dict:
    code = ("import sys, time; t = time.perf_counter(); import cbdsl; "
            "print(time.perf_counter() - t, 'keras' in sys.modules)")
    runs = []
    keras_loaded = False
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        runs.append(float(out[0]))
        keras_loaded |= out[1] == "True"
    return {"median_ms": statistics.median(runs) * 1000, "imports_keras": keras_loaded}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(fit_worker(args.repeats)))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 130))
    report: dict = {"fit": [], "compile": compile_times(), "import": import_time()}
    table = Table(title="model.fit median seconds (small model, 96 steps/epoch, 4 epochs)")
    for column in ("backend", "none s", "keras RLROP+ES s", "compiled rules s",
                   "compiled/native (goal <= 1.00)", "compiled/none (goal <= 1.02)",
                   "ms in hooks per fit: keras vs compiled", "batch hooks"):
        table.add_column(column)
    for backend in args.backends.split(","):
        if importlib.util.find_spec(backend) is None:
            table.add_row(backend, "skipped: not installed", "", "", "", "", "", "")
            continue
        env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "",
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, __file__, "--worker", backend, "--repeats",
                               str(args.repeats)], env=env, capture_output=True, text=True)
        if done.returncode:
            table.add_row(backend, f"failed: {done.stderr.strip().splitlines()[-1]}", "", "",
                          "", "", "", "")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        m, h = result["median_s"], result["hook_ms"]
        # Exact figures from time inside the hooks; wall-clock ratios carry the machine's noise.
        result["hook_compiled_over_native"] = h["compiled"] / h["native"]
        result["hook_compiled_over_none"] = 1 + h["compiled"] / 1000 / m["none"]
        report["fit"].append(result)
        table.add_row(backend, f"{m['none']:.3f}", f"{m['native']:.3f}", f"{m['compiled']:.3f}",
                      f"wall {result['paired']['compiled_over_native']:.3f}\n"
                      f"hooks {result['hook_compiled_over_native']:.3f}",
                      f"wall {result['paired']['compiled_over_none']:.3f}\n"
                      f"hooks {result['hook_compiled_over_none']:.4f}",
                      f"{h['native']:.2f} vs {h['compiled']:.2f}",
                      ", ".join(result["batch_hooks"]) or "none")
    console.print(table)
    console.print("wall: median over rounds of the ratio between back-to-back fits, machine noise "
                  "included; hooks: time spent inside the callbacks' hook methods (compiled vs "
                  "Keras), and 1 + that time over the fit time with no callbacks.")
    c = report["compile"]
    where = "rules/*.cbd" if c["from_rules_dir"] else "built-in sample policies (rules/ is empty)"
    console.print(f"parse + check + compile of {len(c['files'])} files from {where}: "
                  f"{c['total_ms']:.1f} ms warm (goal < 100 ms)")
    i = report["import"]
    console.print(f"import cbdsl: {i['median_ms']:.0f} ms (median, fresh interpreter); "
                  f"imports keras: {i['imports_keras']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
