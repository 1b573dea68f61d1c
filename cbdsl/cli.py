"""The `cbdsl` command: `check`, `demo`, `explain`, `replay` a policy over a log, `list`, `lsp`."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any

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
    listing = commands.add_parser(
        "list", help="list every rule library and rule, with parameters and description",
        description="List the rule libraries `use LIBRARY.RULE(...)` can name: folders next "
                    "to the current folder, on CBDSL_PATH, installed packages (entry-point "
                    "group cbdsl.rules) and the built-in keras library.")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument("--dir", metavar="DIR", help="look from DIR instead of the current "
                         "folder")
    explain = commands.add_parser(
        "explain", help="say in plain English what each rule does and when",
        description="For each rule of a file, one sentence saying what it does and when.")
    explain.add_argument("file", metavar="FILE", help="a rule file (.cbd)")
    explain.add_argument("--python", action="store_true",
                         help="print the equivalent hand-written Keras callback code instead")
    replay = commands.add_parser(
        "replay", help="dry-run a policy over recorded training runs",
        description="Drive a policy's compiled callbacks over recorded runs (CSVLogger "
                    "files, History JSON dumps, TensorBoard log directories). Over one run, "
                    "print what would fire at each epoch and why; over many, or with "
                    "--sweep, report per setting the epochs saved and the quality lost. A dry "
                    "run: nothing is written or sent; the files the policy would write, the "
                    "requests it would send and the effects it would run are shown as what "
                    "they would have done. Exit status: 0, 1 on diagnostics, 2 on usage "
                    "errors.")
    replay.add_argument("file", metavar="FILE", help="the policy (.cbd)")
    replay.add_argument("--log", required=True, action="append", metavar="PATH",
                        help="a recorded run or runs (repeatable): training.csv "
                             "(CSVLogger), history.json (History), a TensorBoard log "
                             "directory, a folder holding them, or a glob pattern "
                             "('runs/**/*.csv')")
    replay.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="values of one of the policy's parameters to try (repeatable; "
                             "A..B for the integers from A to B); every combination is "
                             "replayed on every run")
    replay.add_argument("--monitor", metavar="METRIC",
                        help="the metric to judge the quality kept by (default: the one "
                             "the policy watches)")
    replay.add_argument("--json", action="store_true",
                        help="print the report as JSON instead of a table")
    replay.add_argument("--jobs", type=int, metavar="N",
                        help="processes to replay in (default: one per CPU for large sweeps)")
    replay.add_argument("--lr", type=float, metavar="RATE",
                        help="the starting learning rate (default: the log's, else 0.001)")
    replay.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a value for one of the policy's parameters (repeatable)")
    replay.add_argument("--plot", metavar="IMAGE",
                        help="also save a figure: over one run, metrics, learning rate and "
                             "firings; over many, epochs saved against regret per setting")
    replay.add_argument("--metric", action="append", default=[], metavar="NAME",
                        help="a metric to plot (repeatable; default: the monitored ones)")
    fmt = commands.add_parser(
        "fmt", help="lay rule files out in the one canonical layout",
        description="Rewrite rule files in the canonical layout, keeping every comment. "
                    "Folders are searched for *.cbd; `-` reads standard input and writes "
                    "standard output. Exit status: 0 done (or, with --check, nothing to "
                    "change), 1 when --check finds files to change or a file has syntax "
                    "errors, 2 on usage errors.")
    fmt.add_argument("paths", nargs="+", metavar="PATH", help="rule files or folders, or -")
    fmt.add_argument("--check", action="store_true",
                     help="change nothing; list the files that would change (for CI)")
    fmt.add_argument("--diff", action="store_true",
                     help="change nothing; print what would change as a unified diff")
    commands.add_parser(
        "lsp", help="run the language server over stdio (for editors)",
        description="Run the Language Server Protocol server over standard input and output: "
                    "diagnostics as you type, hover, completion, go-to-definition, symbols, "
                    "quick fixes and formatting for rule files (docs/lsp.md). Needs the lsp "
                    "extra: pip install \"cbdsl[lsp]\".")
    conform = commands.add_parser(
        "conform", help="run the conformance suite, or one spec against your own callback",
        description="Run the conformance suite: the language's parse, check and compile "
                    "cases, each built-in rule file's recorded cases, generated traces and "
                    "real model.fit runs against the Keras class, per backend (each in its "
                    "own process) and device. With --impl, run one spec's cases against any "
                    "callback class or factory. Exit status: 0 pass, 1 a failure, 2 on usage "
                    "errors.")
    conform.add_argument("--impl", metavar="MODULE:NAME",
                         help="a callback class or factory to test (or a rule file FILE.cbd)")
    conform.add_argument("--spec", action="append", metavar="SPEC",
                         help="the spec to run (repeatable; one with --impl)")
    conform.add_argument("--xfail", metavar="FILE",
                         help="with --impl: the cases expected to fail, one name a line")
    conform.add_argument("--backend", action="append", metavar="NAME",
                         help="tensorflow, jax or torch (repeatable; default: all three)")
    conform.add_argument("--device", choices=("cpu", "gpu", "all"), default="all",
                         help="the devices to run on (all)")
    conform.add_argument("--quick", action="store_true",
                         help="25 generated traces per rule file, real fits on one backend")
    conform.add_argument("--examples", type=int, metavar="N",
                         help="generated traces per rule file (1000; 25 with --quick)")
    conform.add_argument("--seed", type=int, help="seed of the generated traces")
    conform.add_argument("--jobs", type=int, default=2, metavar="N",
                         help="backend processes run at once (2)")
    conform.add_argument("--json", metavar="PATH", help="also write the report as JSON")
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
    if args.command == "explain":
        return run_explain(args.file, args.python)
    if args.command == "list":
        return run_list(args.format, args.dir)
    if args.command == "replay":
        if len(args.log) == 1 and not args.sweep and not args.json and args.jobs is None \
                and args.monitor is None and not any(c in args.log[0] for c in "*?["):
            return run_replay(args.file, args.log[0], args.lr, args.set, args.plot,
                              args.metric)
        return run_replay_sweep(args.file, args.log, args.sweep, args.set, args.lr,
                                args.monitor, args.json, args.plot, args.jobs)
    if args.command == "fmt":
        return run_fmt(args.paths, args.check, args.diff)
    if args.command == "conform":
        return run_conform(args)
    if args.command == "lsp":
        return run_lsp()
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
    console.print(timeline_table(f for cb in callbacks for f in cb.timeline))
    best = min(history.history["val_loss"])
    console.print(f"ran {ran} of {epochs} epochs in {seconds:.1f}s; best val_loss {best:.4f}; "
                  f"final learning rate {read_lr(model):.3g}")
    return EXIT_CLEAN


def timeline_table(firings, title: str = "Timeline: which rule fired, when, and why"):
    """A rich table of rule firings, by epoch (1-based, as Keras prints them)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("epoch", "rule", "did", "because"):
        table.add_column(column)
    for f in sorted(firings, key=lambda f: (-1 if f.epoch is None else f.epoch,
                                            f.event != "epoch_begin")):
        epoch = "-" if f.epoch is None else str(f.epoch + 1)
        table.add_row(epoch, f.rule, ", ".join(f.actions), "; ".join(f.reasons) or f.event)
    return table


def run_explain(path: str, python: bool = False) -> int:
    """`cbdsl explain`: the file's rules, one plain-English sentence each (the file must
    check, so that the sentences describe a policy that runs); with `python`, the same
    policy as plain Keras callback classes (1 when a rule cannot be written so, E601)."""
    import cbdsl
    from cbdsl.diagnostics import CbdslError
    from cbdsl.explain import explain
    from cbdsl.pythonize import pythonize

    try:
        program = cbdsl.parse(path)
        checked = cbdsl.check(program)
        if python:
            sys.stdout.write(pythonize(checked))
            return EXIT_CLEAN
    except CbdslError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except OSError as exc:
        print(f"cbdsl explain: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(explain(program, checked)))
    return EXIT_CLEAN


def run_list(fmt: str = "text", base: str | None = None) -> int:
    """`cbdsl list`: every library and rule, with its parameters and one-line description,
    and the package (and version) or folder each library comes from."""
    from dataclasses import asdict

    from cbdsl.libraries import catalog, provider

    rules = catalog(base)
    folders = [str(pathlib.Path(r.path).parent) for r in rules]
    sources = {folder: provider(folder) for folder in set(folders)}
    status = EXIT_CLEAN if not any(r.error for r in rules) else EXIT_DIAGNOSTICS
    if fmt == "json":
        print(json.dumps([{**asdict(r), **sources[folder]}
                          for r, folder in zip(rules, folders, strict=True)], indent=2))
        return status
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    print(_wrapped('Rule libraries: use LIBRARY.RULE(...) in a rule file; from Python, '
                   'cbdsl.callback_class("LIBRARY.RULE") is its class', width, ""))
    shown = None
    for r, folder in zip(rules, folders, strict=True):
        if (r.library, folder) != shown:
            shown = (r.library, folder)
            source = sources[folder]
            origin = (f"{source['package']} {source['version']}".strip()
                      if source["package"] else "folder")
            print(f"\n{r.library}  ({origin}: {folder})")
        print(f"  {r.library}.{r.rule}" + ("  does not check:" if r.error else ""))
        if r.error:
            print(_wrapped(r.error.splitlines()[0], width, "    "))
        for name, sig, doc in r.callbacks:
            print(_wrapped_signature(name, sig, width, "    "))
            if doc:
                print(_wrapped(doc, width, "      "))
    return status


def _wrapped(text: str, width: int, indent: str) -> str:
    """Text filled to `width`, never breaking a word or a name."""
    import textwrap

    return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def _wrapped_signature(name: str, signature: str, width: int, indent: str) -> str:
    """`Name(a = 1, b: str)`, broken only between parameters, aligned after the bracket."""
    parts = signature[1:-1].split(", ") if signature != "()" else [""]
    head, lines = f"{indent}{name}(", []
    line = head
    for i, part in enumerate(parts):
        piece = part + (", " if i < len(parts) - 1 else ")")
        if line != head and line.strip() and len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = " " * len(head)
        line += piece
    lines.append(line.rstrip())
    return "\n".join(lines)


def run_replay(policy: str, log: str, lr: float | None, settings: Sequence[str],
               image: str | None, metrics: Sequence[str]) -> int:
    """`cbdsl replay`: what a policy would have done over a recorded training log."""
    from rich.console import Console

    import cbdsl
    from cbdsl.diagnostics import CbdslError
    from cbdsl.replay import plot, read_log, replay

    params = _settings(settings)
    if params is None:
        return EXIT_USAGE
    console = Console()
    try:
        epochs = read_log(log)
        with _without_keras():
            result = replay(cbdsl.compile(policy, **params), epochs, lr, policy=policy)
    except CbdslError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except OSError as exc:
        print(f"cbdsl replay: cannot read {policy}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    table = timeline_table(result.firings, f"Replay of {policy} over {log}")
    table.caption = "epochs counted from 1, as Keras prints them"
    console.print(table)
    ran = len(result.learning_rates)
    end = (f"stops at epoch {result.stopped_at + 1} of {len(epochs)}"
           if result.stopped_at is not None else f"runs all {len(epochs)} epochs")
    console.print(f"the policy {end}; learning rate {result.learning_rates[0]:.3g} -> "
                  f"{result.learning_rates[-1]:.3g}" if ran else "the log has no epochs")
    for epoch, said in result.warnings:
        console.print(f"[yellow]epoch {'-' if epoch is None else epoch + 1}: {said}[/]")
    for metric, direction in result.assumed.items():
        console.print(_assumed(metric, direction))
    withheld = len(result.withheld)
    console.print("dry run: nothing was written or sent" + (
        f"; {withheld} actions are shown as what they would have done" if withheld else ""))
    if result.skipped_events:
        console.print(f"[yellow]not replayed (the log has epochs only): "
                      f"{', '.join(result.skipped_events)}[/]")
    if image:
        console.print(f"plot: {plot(result, image, list(metrics) or None)}")
    return EXIT_CLEAN


def _without_keras():
    """Replay on Keras-free stand-ins (no backend imported) unless Keras is already loaded."""
    import contextlib

    from cbdsl.runtime import standin

    return standin.using() if "keras" not in sys.modules else contextlib.nullcontext()


def _assumed(metric: str, direction: str) -> str:
    way = "minimised" if direction == "min" else "maximised"
    return (f'mode "auto": {metric} assumed to be {way} ("{direction}"), as Keras decides '
            "from its name; write `with mode = ...` in the rule to say otherwise")


def run_replay_sweep(policy: str, logs: Sequence[str], sweeps: Sequence[str],
                     settings: Sequence[str], lr: float | None, monitor: str | None,
                     as_json: bool, image: str | None, jobs: int | None) -> int:
    """`cbdsl replay` over many runs and settings: epochs saved against quality lost."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from cbdsl.diagnostics import CbdslError
    from cbdsl.replay import parse_sweep, plot_sweep, read_runs, settings_of, sweep, sweep_table

    fixed = _settings(settings)
    if fixed is None:
        return EXIT_USAGE
    if jobs is not None and jobs < 1:
        print(f"cbdsl replay: --jobs takes a positive number, got {jobs}", file=sys.stderr)
        return EXIT_USAGE
    console, errors = Console(), Console(stderr=True)
    try:
        grid = settings_of(parse_sweep(sweeps), fixed)
        runs, unreadable = read_runs(logs)
        for path, why in unreadable:
            errors.print(f"cannot read {path}: {why}", style="yellow", **_VERBATIM)
        if not runs:
            print("cbdsl replay: error E501: no run could be read", file=sys.stderr)
            return EXIT_DIAGNOSTICS
        bar = Progress("replaying", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=errors, transient=True,
                       disable=as_json or len(runs) * len(grid) < 200)
        with bar:
            task = bar.add_task("replay", total=len(runs) * len(grid))
            result = sweep(policy, runs, grid, monitor=monitor, learning_rate=lr, jobs=jobs,
                           unreadable=unreadable,
                           progress=lambda n: bar.advance(task, n))
    except CbdslError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except OSError as exc:
        print(f"cbdsl replay: cannot read {policy}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        console.print(sweep_table(result, f"Replay of {policy} over {len(runs)} runs"))
        for metric, direction in result.assumed.items():
            console.print(_assumed(metric, direction))
        failed = {r.path: r.error for s in result.settings for r in s.runs if r.error}
        for path, why in failed.items():
            errors.print(f"{path}: {why}", style="yellow", **_VERBATIM)
    if image:
        where = plot_sweep(result, image)
        (errors if as_json else console).print(f"plot: {where}", **_VERBATIM)
    return EXIT_CLEAN


# a line naming files, printed as it is: no markup read in a path, no path cut at the width
_VERBATIM = {"markup": False, "highlight": False, "soft_wrap": True}


def _settings(items: Sequence[str]) -> dict[str, Any] | None:
    """`--set NAME=VALUE` options as parameters, or None (said on stderr) for a malformed one."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            print(f"cbdsl replay: --set takes NAME=VALUE, got {item!r}", file=sys.stderr)
            return None
        params[name] = _literal(value)
    return params


def _literal(text: str):
    """A --set value: a number, true/false/none, or else the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


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


# --------------------------------------------------------------------- fmt


def run_fmt(paths: Sequence[str], check: bool = False, diff: bool = False) -> int:
    """`cbdsl fmt`: rewrite files in place (atomically), or with --check/--diff only report."""
    import difflib
    import tempfile

    from cbdsl.diagnostics import CbdslError
    from cbdsl.fmt import format_source
    from cbdsl.syntax.parser import decode, read_source

    files: list[str] = []
    for path in paths:
        if path == "-" or os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            files.extend(sorted(str(p) for p in pathlib.Path(path).rglob("*.cbd")
                                if p.is_file()))
        else:
            print(f"cbdsl fmt: no such file or folder: {path}", file=sys.stderr)
            return EXIT_USAGE
    status = EXIT_CLEAN
    for name in files:
        try:
            text = decode(sys.stdin.buffer.read(), "<stdin>") if name == "-" \
                else read_source(name)
            formatted = format_source(text, "<stdin>" if name == "-" else name)
        except CbdslError as exc:
            print(exc.render(), file=sys.stderr)
            status = EXIT_DIAGNOSTICS
            continue
        if name == "-" and not (check or diff):
            sys.stdout.write(formatted)
            continue
        if formatted == text:
            continue
        if diff:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                f"{name} (as written)", f"{name} (formatted)"))
        if check or diff:
            if check:
                print(f"would reformat {name}", file=sys.stderr)
            status = EXIT_DIAGNOSTICS
            continue
        # write next to the file and rename over it: an interrupted write loses nothing
        folder = os.path.dirname(os.path.abspath(name))
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=folder,
                                         prefix=".cbdsl-fmt-", delete=False) as handle:
            handle.write(formatted)
        os.chmod(handle.name, os.stat(name).st_mode & 0o7777)
        os.replace(handle.name, name)
        print(f"reformatted {name}", file=sys.stderr)
    return status


# ----------------------------------------------------------------- conform


def run_lsp() -> int:
    """`cbdsl lsp`: the language server over stdio; 2 when pygls is not installed."""
    try:
        from cbdsl.lsp.server import serve
    except ImportError as exc:
        missing = (exc.name or "pygls").split(".")[0]
        print(f"cbdsl lsp: the language server needs {missing}, which is not installed: "
              'pip install "cbdsl[lsp]"', file=sys.stderr)
        return EXIT_USAGE
    serve()
    return EXIT_CLEAN


def run_conform(args: argparse.Namespace) -> int:
    """`cbdsl conform`: the conformance suite (see `cbdsl.conformance.conform`)."""
    from cbdsl.conformance.conform import main as conform

    return conform(args)
