"""One implementation (`--impl`) on one spec: loading it, running the spec's cases on it."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cbdsl.conformance.conform.options import EXAMPLES, EXIT_FAIL, EXIT_PASS, UsageError
from cbdsl.conformance.factories import Named, RuleFile


@dataclass
class Implementation:
    """A callback class or factory to run a spec's cases on.

    Attributes:
        factory: builds the callback from a case's arguments.
        label: how the report names it.
        python_functions: whether it takes Python functions only (see `run_case`).
        name: how another process builds it again (`module:name`, or the rule file's
            absolute path; see `cbdsl.conformance.factories`); the label when empty.
    """

    factory: Callable[..., Any]
    label: str
    python_functions: bool = True
    name: str = ""

    def portable(self) -> Named:
        """The factory, carrying the name a subprocess builds it from (a scenario that
        trains in a subprocess, as `backup_and_restore`'s, passes the name, never the
        factory itself)."""
        return Named(self.factory, self.name or self.label)


def load_implementation(text: str) -> Implementation:
    """`package.module:Factory` (imported; the current folder is searched first, as
    `python -m` does) or a rule file `FILE.cbd` (checked, then compiled for each case).

    Raises:
        UsageError: the module, the name or the file is not there, or is not callable.
    """
    if text.endswith(".cbd"):
        return _rule_file(text)
    module_name, sep, name = text.partition(":")
    if not sep:
        module_name, _, name = text.rpartition(".")
    if not module_name or not name or not all(
            part.isidentifier() for part in [*module_name.split("."), *name.split(".")]):
        raise UsageError(f"--impl takes MODULE:NAME (e.g. mypackage.callbacks:EarlyStopping)"
                         f" or a rule file FILE.cbd, got {text!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageError(f"--impl {text}: no module named {error.name!r}") from None
        raise UsageError(f"--impl {text}: importing {module_name!r} failed: "
                         f"ModuleNotFoundError: {error}") from None
    except Exception as error:
        raise UsageError(f"--impl {text}: importing {module_name!r} failed: "
                         f"{type(error).__name__}: {error}") from None
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise UsageError(f"--impl {text}: {module_name!r} has no attribute {name!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"--impl {text}: {name} is a {type(target).__name__}, not a "
                         f"callback class or factory")
    return Implementation(target, f"{module_name}:{name}", python_functions=True)


def _rule_file(path: str) -> Implementation:
    if not os.path.isfile(path):
        raise UsageError(f"--impl: no such rule file: {path}")
    factory = RuleFile(path)  # a CbdslError here is reported with its diagnostics
    return Implementation(factory, path, python_functions=False, name=factory.path)


def run_impl(implementation: Implementation, spec: str, *, xfail: dict[str, str] | None = None,
             examples: int = EXAMPLES, seed: int | None = None, quick: bool = False,
             console: Any = None) -> dict[str, Any]:
    """Run a spec's recorded cases, and `examples` generated traces against Keras's class,
    on one implementation; for an artifact spec, its scenarios against Keras's class.

    Args:
        implementation: what `load_implementation` returns.
        spec: the spec's name (`early_stopping`, `csv_logger`).
        xfail: the expected failures (`read_xfail`): a listed case that fails is `xfail`,
            one that passes is `xpass` and fails the run, as in a strict pytest xfail.
        examples: generated traces (0 runs the recorded cases only).
        seed: hypothesis's seed; random when None.
        quick: an artifact spec's quick subset of scenarios only.
        console: a `rich.console.Console` for a progress bar.

    Returns:
        The report: `results` (name, status, description, divergence), `summary`,
        `exit_status`.
    """
    import keras

    from cbdsl.conformance.artifacts import ARTIFACT_SPECS

    xfail = xfail or {}
    started = time.perf_counter()
    results: list[dict[str, Any]] = []

    def verdict(name: str, passed: bool, divergence: str, description: str) -> None:
        listed = name in xfail
        status = ("xpass" if listed else "pass") if passed else ("xfail" if listed else "fail")
        entry = {"name": name, "status": status, "description": description,
                 "divergence": divergence}
        if listed:
            entry["xfail_reason"] = xfail[name]
        results.append(entry)

    if spec in ARTIFACT_SPECS:
        _run_scenarios(implementation, spec, quick, verdict, results, console)
        examples = 0
    else:
        _run_cases(implementation, spec, examples, seed, verdict, results, console)
    summary = {s: sum(r["status"] == s for r in results)
               for s in ("pass", "fail", "xfail", "xpass", "skipped")}
    return {"kind": "impl", "impl": implementation.label, "spec": spec,
            "backend": keras.backend.backend(), "keras": keras.__version__,
            "examples": examples, "seed": seed, "xfail": xfail, "results": results,
            "summary": summary, "wall_s": round(time.perf_counter() - started, 2),
            "exit_status": EXIT_FAIL if summary["fail"] or summary["xpass"] else EXIT_PASS}


def _run_scenarios(implementation: Implementation, spec: str, quick: bool,
                   verdict: Callable[[str, bool, str, str], None],
                   results: list[dict[str, Any]], console: Any) -> None:
    """An artifact spec's scenarios: the implementation's artifacts against Keras's."""
    from cbdsl.conformance import artifacts

    chosen = artifacts.ARTIFACT_SPECS[spec].selected(quick)
    with _progress(console, len(chosen)) as advance:
        for scenario in chosen:
            result = artifacts.check(spec, scenario, implementation.portable())
            if result.status == "skipped":
                results.append({"name": scenario.name, "status": "skipped",
                                "description": scenario.description, "divergence": "",
                                "reason": result.reason})
            else:
                verdict(scenario.name, result.passed, result.divergence,
                        scenario.description)
            advance(1)


def _run_cases(implementation: Implementation, spec: str, examples: int, seed: int | None,
               verdict: Callable[[str, bool, str, str], None],
               results: list[dict[str, Any]], console: Any) -> None:
    """A decision spec's recorded cases, then the generated traces against Keras's class."""
    from cbdsl.conformance.differential import search
    from cbdsl.conformance.runner import case_paths, load_case, run_case
    from cbdsl.conformance.specs import SPECS

    factory = _for_spec(implementation.factory, SPECS[spec].rule_file_arguments)
    paths = case_paths(spec)
    with _progress(console, len(paths) + (examples > 0)) as advance:
        for path in paths:
            case = load_case(path)
            result = run_case(case, factory, python_functions=implementation.python_functions)
            divergence = result.divergence and (
                f"case file {path}\nparams {case.get('params', {})}\n{result.divergence}")
            verdict(case["name"], result.passed, divergence, case.get("description", ""))
            advance(1)
        if examples > 0:
            description = f"{examples} generated traces against Keras's class (seed {seed})"
            try:
                reference = SPECS[spec].reference()
            except LookupError as why:
                results.append({"name": "generated", "status": "skipped",
                                "description": description, "divergence": "",
                                "reason": str(why)})
            else:
                found = search(spec, factory, examples=examples, seed=seed,
                               reference=reference,
                               python_functions=implementation.python_functions,
                               )
                verdict("generated", found is None, found or "", description)
            advance(1)


def _for_spec(factory: Callable[..., Any],
              adapt: Callable[[dict[str, Any]], dict[str, Any]] | None) -> Callable[..., Any]:
    """A rule file's factory given the class's arguments as the rule file takes them
    (`Spec.rule_file_arguments`); any other factory as it is."""
    if not isinstance(factory, RuleFile) or adapt is None:
        return factory
    rule_file, convert = factory, adapt

    def adapted(**params: Any) -> Any:
        return rule_file(**convert(params))

    return adapted


@contextlib.contextmanager
def _progress(console: Any, total: int):
    if console is None:
        yield lambda amount: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("cases"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("cases", total=total)
        yield lambda amount: progress.advance(task, amount)
