"""Running a scenario: one factory's artifact, and Keras's class and a candidate side by side."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.compare import divergence
from cbdsl.conformance.artifacts.registry import ARTIFACT_SPECS
from cbdsl.conformance.artifacts.spec import (
    SEED,
    Artifact,
    Factory,
    Run,
    Scenario,
    ScenarioResult,
)
from cbdsl.conformance.factories import Named

# not compared: the libraries' deprecations, and ResourceWarning, which garbage collection
# raises whenever it gets to an unclosed file (Keras's CSVLogger leaves one when a fit fails)
QUIET = (DeprecationWarning, PendingDeprecationWarning, ResourceWarning)


def run_scenario(scenario: Scenario, factory: Factory,
                 folder: str | os.PathLike[str] | None = None) -> Artifact:
    """Run one scenario with one factory and return its artifact, normalised.

    Args:
        scenario: what to run.
        factory: builds the callback (called with keyword arguments only).
        folder: where to work (made if missing; a temporary folder, removed after, when None).

    Returns:
        `error` (None, or `type`, `bases`, `message`), the scenario's own keys, `printed`
        (standard output during the run) and `warnings` (`Category: message`, but those of
        `QUIET`); the working folder's path reads `WORKDIR`, a server's address `ROOT`.
    """
    return _execute(scenario, factory, folder)[0]


def _execute(scenario: Scenario, factory: Factory,
             folder: str | os.PathLike[str] | None) -> tuple[Artifact, list[dict[str, Any]]]:
    import keras

    with contextlib.ExitStack() as stack:
        if folder is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cbdsl-art-")))
        else:
            root = Path(folder)
            root.mkdir(parents=True, exist_ok=True)
        run = Run(factory, root)
        keras.utils.set_random_seed(SEED)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            own = run.attempt(lambda: scenario.function(run, **scenario.params)) or {}
        artifact = {"error": run.error, **own, "printed": printed.getvalue(),
                    "warnings": [f"{w.category.__name__}: {w.message}" for w in seen
                                 if not issubclass(w.category, QUIET)]}
        return _normalise(artifact, run.aliases), _normalise(run.calls, run.aliases)


def _normalise(value: Any, aliases: Mapping[str, str]) -> Any:
    """JSON-ready data with each alias's text replaced (longest first)."""
    order = sorted(aliases, key=len, reverse=True)

    def text(s: str) -> str:
        for original in order:
            s = s.replace(original, aliases[original])
        return s

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return text(v)
        if isinstance(v, Mapping):
            return {text(str(k)): walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        if isinstance(v, np.generic):
            return walk(v.item())
        if isinstance(v, bytes):
            return text(v.decode("utf-8", "backslashreplace"))
        return v

    return walk(value)


def check(spec: str, scenario: str | Scenario, candidate: Factory | None = None, *,
          folder: str | os.PathLike[str] | None = None,
          reference: Factory | None = None) -> ScenarioResult:
    """Run a scenario with Keras's class and with `candidate` (the drop-in by default),
    each in a fresh folder, and compare the artifacts.

    Args:
        spec: the artifact spec's name (`csv_logger`).
        scenario: one of its scenarios, or its name.
        candidate: the factory under test; the cbdsl drop-in when None. A scenario that
            trains in a subprocess builds it there from its name (`factory_name`): a
            class or function at a module's top level, a `RuleFile`, or a `Named`.
        folder: where to keep the two runs' folders (`keras/` and `candidate/`); temporary
            folders when None.
        reference: the expectation's factory; Keras's class when None.
    """
    owner = ARTIFACT_SPECS[spec]
    chosen = owner.scenario(scenario) if isinstance(scenario, str) else scenario
    why = chosen.skip_reason()
    if why:
        return ScenarioResult(spec, chosen.name, "skipped", reason=why)
    base = Path(folder) if folder is not None else None
    # named for a scenario that builds the callback in a subprocess (the drop-in may be a
    # generated class, whose own module and name lead nowhere)
    reference = reference or Named(owner.reference(), f"keras.callbacks:{owner.keras_name}")
    candidate = candidate or Named(owner.cbdsl(), f"cbdsl.callbacks:{owner.keras_name}")
    expected, calls = _execute(chosen, reference, base / "keras" if base else None)
    actual, _ = _execute(chosen, candidate, base / "candidate" if base else None)
    found = divergence(expected, actual)
    if found is None:
        return ScenarioResult(spec, chosen.name, "pass", expected=expected, actual=actual)
    built = "; ".join(f"{owner.keras_name}({', '.join(f'{k}={v!r}' for k, v in c.items())})"
                      for c in calls) or "nothing (the scenario failed before building)"
    text = (f"scenario {spec}/{chosen.name}: {chosen.description}\nbuilt with {built}\n"
            f"differences, expected (Keras's {owner.keras_name}) against actual:\n{found}")
    return ScenarioResult(spec, chosen.name, "fail", divergence=text, expected=expected,
                          actual=actual)
