"""The `cbdsl conform` command: its arguments checked, then the suite or --impl run."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from cbdsl.conformance.conform.impl import load_implementation, run_impl
from cbdsl.conformance.conform.options import (
    BACKENDS,
    DEVICES,
    EXAMPLES,
    EXIT_USAGE,
    QUICK_EXAMPLES,
    SuiteOptions,
    UsageError,
)
from cbdsl.conformance.conform.suite import run_suite
from cbdsl.conformance.conform.tables import render_impl, render_suite
from cbdsl.conformance.conform.xfail import read_xfail


def main(args: Any) -> int:
    """`cbdsl conform` with parsed arguments (see `cbdsl.cli`); returns the exit status."""
    from rich.console import Console

    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.specs import SPECS

    console = Console()
    try:
        for spec in args.spec or []:
            if spec not in SPECS and spec not in ARTIFACT_SPECS:
                raise UsageError(f"unknown spec {spec!r}; specs: "
                                 f"{', '.join([*SPECS, *ARTIFACT_SPECS])}")
        if args.json and not Path(args.json).resolve().parent.is_dir():
            raise UsageError(f"--json {args.json}: no such folder")
        if args.examples is not None and args.examples < 0:
            raise UsageError("--examples must be 0 or more")
        if args.jobs < 1:
            raise UsageError("--jobs must be 1 or more")
        examples = args.examples if args.examples is not None else (
            QUICK_EXAMPLES if args.quick else EXAMPLES)
        seed = args.seed if args.seed is not None else random.randrange(2**31)
        if args.impl:
            data = _impl_command(args, examples, seed, console)
        else:
            if args.xfail:
                raise UsageError("--xfail goes with --impl")
            for backend in args.backend or []:
                if backend not in BACKENDS:
                    raise UsageError(f"unknown backend {backend!r}; backends: "
                                     f"{', '.join(BACKENDS)}")
            options = SuiteOptions(
                backends=tuple(args.backend or BACKENDS),
                devices=DEVICES if args.device == "all" else (args.device,),
                specs=tuple(args.spec or ()), examples=examples, quick=args.quick,
                jobs=args.jobs, seed=seed)
            data = run_suite(options, console)
            render_suite(data, console)
    except UsageError as error:
        print(f"cbdsl conform: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        console.print(f"report: {args.json}")
    return data["exit_status"]


def _impl_command(args: Any, examples: int, seed: int, console: Any) -> dict[str, Any]:
    from cbdsl.diagnostics import CbdslError

    if not args.spec or len(args.spec) != 1:
        raise UsageError("--impl needs one --spec to run (e.g. --spec early_stopping)")
    (spec,) = args.spec
    if args.device != "all":
        raise UsageError("--device goes with the whole suite; --impl runs in this process, "
                         "on the device its backend picks")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.backend:
        if len(args.backend) != 1 or args.backend[0] not in BACKENDS:
            raise UsageError(f"--impl runs on one backend of {', '.join(BACKENDS)}")
        if "keras" in sys.modules:
            import keras

            if keras.backend.backend() != args.backend[0]:
                raise UsageError(f"Keras is already running {keras.backend.backend()}")
        os.environ["KERAS_BACKEND"] = args.backend[0]
    try:
        implementation = load_implementation(args.impl)
    except CbdslError as error:
        raise UsageError(f"--impl {args.impl} does not check:\n{error.render()}") from None
    xfail = read_xfail(args.xfail, spec) if args.xfail else {}
    data = run_impl(implementation, spec, xfail=xfail, examples=examples, seed=seed,
                    quick=args.quick, console=console)
    data["xfail_file"] = args.xfail
    render_impl(data, console)
    return data
