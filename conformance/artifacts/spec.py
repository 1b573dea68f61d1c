"""What an artifact spec is made of: the spec, its scenarios, a scenario's run and result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Factory = Callable[..., Any]
Artifact = dict[str, Any]

SEED = 3  # keras.utils.set_random_seed before each scenario (and each model)


def describe_error(error: BaseException) -> dict[str, Any]:
    """An exception as data: `type`, its `bases` (the MRO's names) and `message`: `str(error)`,
    or for a `KeyError` (whose `str` is its argument's repr) the one string it carries."""
    args = error.args
    message = (args[0] if isinstance(error, KeyError) and len(args) == 1
               and isinstance(args[0], str) else str(error))
    return {"type": type(error).__name__,
            "bases": [k.__name__ for k in type(error).__mro__ if k is not object],
            "message": message}


class Run:
    """What a scenario function gets: the factory, a fresh working folder, and helpers.

    Attributes:
        workdir: the working folder, empty at the start; its path reads as `WORKDIR` in
            the artifact.
        scratch: a second folder, outside `workdir`, for the scenario's own copies.
        error: the exception that `attempt` caught, as `describe_error` gives it.
        calls: the keyword arguments of each `build`.
    """

    def __init__(self, factory: Factory, root: Path) -> None:
        self.factory = factory
        self.workdir = root / "work"
        self.scratch = root / "scratch"
        self.workdir.mkdir(parents=True)
        self.scratch.mkdir()
        self.error: dict[str, Any] | None = None
        self.calls: list[dict[str, Any]] = []
        self.aliases: dict[str, str] = {}
        for folder, name in ((self.workdir, "WORKDIR"), (self.scratch, "SCRATCH")):
            self.aliases[str(folder)] = self.aliases[str(folder.resolve())] = name

    def path(self, name: str) -> str:
        """`name` inside the working folder (an absolute `name` is kept as it is)."""
        return str(self.workdir / name) if name else str(self.workdir)

    def alias(self, text: str, name: str) -> None:
        """Write `text` (a server's address) as `name` in the artifact."""
        self.aliases[text] = name

    def build(self, **arguments: Any) -> Any:
        """The callback under test, built with `factory(**arguments)`."""
        self.calls.append(dict(arguments))
        return self.factory(**arguments)

    def attempt(self, work: Callable[[], Any]) -> Any:
        """`work()`, or None with the exception it raised kept as the artifact's `error`."""
        try:
            return work()
        except Exception as error:  # refusing, or failing in a fit, is behaviour too
            self.error = describe_error(error)
            return None


@dataclass(frozen=True)
class Scenario:
    """One scenario of an artifact spec.

    Attributes:
        name: unique within the spec (`separator_tab`).
        description: what it shows, in one sentence.
        function: `function(run, **params)`, returning the artifact's own keys.
        params: the function's keyword arguments.
        quick: part of the subset `--quick` runs.
        needs: returns why the scenario cannot run here (a reason to skip), or None.
    """

    name: str
    description: str
    function: Callable[..., Artifact]
    params: Mapping[str, Any] = field(default_factory=dict)
    quick: bool = False
    needs: Callable[[], str | None] | None = None

    def skip_reason(self) -> str | None:
        return self.needs() if self.needs is not None else None


@dataclass(frozen=True)
class ArtifactSpec:
    """A callback judged by its artifacts.

    Attributes:
        name: the rule file's name (`csv_logger`).
        keras_name: the class name in `keras.callbacks` and `cbdsl.callbacks`.
        scenarios: what to run, in order.
        known: the drop-in's known differences from Keras, `{scenario: reason}`: where it
            diverges the suite counts an expected failure, and where it stops diverging a
            failure, so the list stays true.
    """

    name: str
    keras_name: str
    scenarios: tuple[Scenario, ...]
    known: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: scenario names repeat: {names}")
        if set(self.known) - set(names):
            raise ValueError(f"{self.name}: known differences of no scenario: "
                             f"{sorted(set(self.known) - set(names))}")

    def reference(self) -> Factory:
        """Keras's class, or raise `LookupError` saying why it is not there."""
        import keras

        found = getattr(keras.callbacks, self.keras_name, None)
        if found is None:
            raise LookupError(f"keras {keras.__version__} has no callbacks.{self.keras_name}")
        return found

    def cbdsl(self) -> Factory:
        """The drop-in built from the rule file of the same name."""
        from cbdsl import callbacks

        return getattr(callbacks, self.keras_name)

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(f"{self.name} has no scenario {name!r}")

    def selected(self, quick: bool = False) -> list[Scenario]:
        """Every scenario, or the `--quick` subset."""
        return [s for s in self.scenarios if s.quick or not quick]


@dataclass
class ScenarioResult:
    """The Keras class and a candidate on one scenario.

    Attributes:
        status: `pass`, `fail` or `skipped`.
        divergence: where the candidate's artifact differs, with the scenario and the
            arguments it built the callback with; empty when it passed.
        reason: why it was skipped.
        expected, actual: the two artifacts (None when skipped).
    """

    spec: str
    name: str
    status: str
    divergence: str = ""
    reason: str = ""
    expected: Artifact | None = None
    actual: Artifact | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"
