"""The `cbdsl` command: `check` rule files, and `demo` a policy on a small model."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from importlib import resources

EXIT_CLEAN, EXIT_DIAGNOSTICS, EXIT_USAGE = 0, 1, 2
DEMO_POLICY = "demo.cbd"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cbdsl", description="Training policies as rules, compiled into Keras callbacks.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check", help="check rule files and print every diagnostic",
        description="Check rule files. Exit status: 0 clean (warnings allowed), 1 when a file "
                    "has errors (or warnings, with --strict), 2 on usage errors.")
    check.add_argument("files", nargs="+", metavar="FILE", help="rule files (.cbd)")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text for people, json for editors and CI")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    demo = commands.add_parser(
        "demo", help="train a small model under a policy and show which rule fired when",
        description="Train a small Keras model on data made on the spot (no downloads) under "
                    "a policy file, with a progress bar, then print the timeline of rules "
                    "that fired.")
    demo.add_argument("--policy", metavar="FILE",
                      help="the policy to train under (default: the shipped demo policy)")
    demo.add_argument("--epochs", type=int, default=40, help="the most epochs to run (40)")
    demo.add_argument("--seed", type=int, default=7, help="seed for data and weights (7)")
    demo.add_argument("--show-policy", action="store_true", help="print the policy first")
    return parser


def _version() -> str:
    from cbdsl import __version__

    return f"cbdsl {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    if args.command == "check":
        return run_check(args.files, args.format, args.strict)
    if args.command == "demo":
        return run_demo(args.policy, args.epochs, args.seed, args.show_policy)
    parser.print_help()
    return EXIT_USAGE


# ------------------------------------------------------------------- check


def run_check(files: Sequence[str], fmt: str = "text", strict: bool = False) -> int:
    """`cbdsl check`: every diagnostic of every file; 0 clean, 1 diagnostics, 2 usage."""
    from cbdsl import api
    from cbdsl.diagnostics import CbdslError

    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        for name in missing:
            print(f"cbdsl check: no such file: {name}", file=sys.stderr)
        return EXIT_USAGE
    report = []
    for name in files:
        try:
            checked = api.check(api.parse(pathlib.Path(name)))
            diagnostics = checked.diagnostics
        except CbdslError as exc:
            diagnostics = exc.diagnostics
        report.append((name, diagnostics))
    errors = sum(d.severity == "error" for _, ds in report for d in ds)
    warnings = sum(d.severity == "warning" for _, ds in report for d in ds)
    if fmt == "json":
        print(json.dumps({
            "files": [{"path": name, "diagnostics": [d.to_dict() for d in ds]}
                      for name, ds in report],
            "errors": errors, "warnings": warnings,
        }, indent=2))
    else:
        for _, diagnostics in report:
            for diagnostic in diagnostics:
                print(diagnostic.render())
                print()
        summary = f"{len(files)} file{'s' * (len(files) != 1)} checked: {errors} error" \
                  f"{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        print(summary, file=sys.stderr)
    failed = errors or (strict and warnings)
    return EXIT_DIAGNOSTICS if failed else EXIT_CLEAN


# -------------------------------------------------------------------- demo


def demo_policy_text() -> str:
    """The shipped demo policy (package data, so it works from a wheel)."""
    return resources.files("cbdsl").joinpath("data", DEMO_POLICY).read_text("utf-8")


def make_data(seed: int, samples: int = 1200):
    """A noisy regression problem made on the spot: no download, a few KB."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 10)).astype("float32")
    w = rng.normal(size=(10, 1)).astype("float32")
    y = np.tanh(x @ w) + 0.3 * np.sin(3 * x[:, :1]) + rng.normal(scale=0.2, size=(samples, 1))
    return x, y.astype("float32")


def make_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.06, momentum=0.9), loss="mse")
    return model


def pick_backend() -> str | None:
    """Keep KERAS_BACKEND when set; else the first installed of tensorflow, jax, torch."""
    import importlib.util

    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return os.environ.get("KERAS_BACKEND")
    for name in ("tensorflow", "jax", "torch"):
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            return name
    return None


def run_demo(policy: str | None, epochs: int, seed: int, show_policy: bool) -> int:
    """`cbdsl demo`: train under a policy, with a progress bar and a timeline of firings."""
    if pick_backend() is None and "keras" not in sys.modules:
        print("cbdsl demo: no Keras backend is installed; install one, e.g. "
              "pip install 'cbdsl[tensorflow]'", file=sys.stderr)
        return EXIT_USAGE
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.table import Table

    import cbdsl
    from cbdsl.diagnostics import CbdslError
    from cbdsl.runtime import read_lr

    console = Console()
    name = policy or f"cbdsl/data/{DEMO_POLICY} (shipped)"
    try:
        text = pathlib.Path(policy).read_text("utf-8") if policy else demo_policy_text()
    except OSError as exc:
        print(f"cbdsl demo: cannot read {policy}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        callbacks = cbdsl.compile(cbdsl.parse(policy) if policy else text)
    except CbdslError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_DIAGNOSTICS
    if show_policy:
        console.print(Syntax(text, "python", theme="ansi_dark", line_numbers=True))
    import keras

    console.print(f"[bold]cbdsl demo[/] policy [cyan]{name}[/] on Keras {keras.__version__} "
                  f"({keras.backend.backend()} backend)")
    x, y = make_data(seed)
    model = make_model(seed)
    progress = _progress_callback(console, epochs)
    start = time.perf_counter()
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.25, verbose=0,
                        callbacks=[*callbacks, progress])
    progress.close()
    seconds = time.perf_counter() - start
    ran = len(history.history.get("loss", []))
    table = Table(title="Timeline: which rule fired, when, and why")
    for column in ("epoch", "rule", "did", "because"):
        table.add_column(column)
    firings = sorted((f for cb in callbacks for f in cb.timeline),
                     key=lambda f: (-1 if f.epoch is None else f.epoch, f.event != "epoch_begin"))
    for f in firings:
        epoch = "-" if f.epoch is None else str(f.epoch + 1)
        table.add_row(epoch, f.rule, ", ".join(f.actions), "; ".join(f.reasons)
                      or f"{f.event}")
    console.print(table)
    best = min(history.history["val_loss"])
    console.print(f"ran {ran} of {epochs} epochs in {seconds:.1f}s; best val_loss {best:.4f}; "
                  f"final learning rate {read_lr(model):.3g}")
    return EXIT_CLEAN


def _progress_callback(console, epochs: int):
    """A per-epoch rich progress bar (epoch hooks only, so batches stay asynchronous)."""
    import keras
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    class ProgressBar(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.bar = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                                TextColumn("{task.fields[info]}"), console=console)
            self.task = self.bar.add_task("fit", total=epochs, info="")
            self.bar.start()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            info = "  ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())
                             if isinstance(v, float))
            self.bar.update(self.task, completed=epoch + 1, info=info)

        def close(self):
            self.bar.stop()

    return ProgressBar()
