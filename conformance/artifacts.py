"""Artifact specs: callbacks judged by what they leave behind on real fits.

CSVLogger writes a file, ModelCheckpoint saves models, RemoteMonitor posts requests: what they
do is the artifact, not a trace of decisions. An `ArtifactSpec` names the rule file, the Keras
class and the scenarios. A scenario builds the callback with a factory (the Keras class, the
cbdsl drop-in, or any `--impl`), runs a small real `model.fit` in a fresh working folder, and
returns the artifact as plain JSON-ready data: file contents as text, each saved file with the
weights it holds, each request a server on 127.0.0.1 received; with the error that ended the
run, what was printed and the warnings raised. The Keras class's artifact on the same scenario
is the expectation; `divergence` lists where the two differ, and `check` runs both.

Adding a spec is one `ArtifactSpec` in `ARTIFACT_SPECS` and its scenario functions: a function
`f(run, **params)` that builds the callback with `run.build(**arguments)` inside
`run.attempt(...)` and returns the artifact's own keys.

Keras is imported only when a scenario runs, so that importing this module leaves the choice
of backend open.
"""

from __future__ import annotations

import contextlib
import difflib
import http.server
import importlib.util
import io
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Factory = Callable[..., Any]
Artifact = dict[str, Any]

SEED = 3  # keras.utils.set_random_seed before each scenario (and each model)
MAX_DIFFERENCES = 8  # a divergence lists at most this many differences
MAX_REQUESTS = 100  # a server records at most this many requests; more are counted
SERVER_TIMEOUT = 5.0  # seconds a server waits on a client that stopped sending
# not compared: the libraries' deprecations, and ResourceWarning, which garbage collection
# raises whenever it gets to an unclosed file (Keras's CSVLogger leaves one when a fit fails)
QUIET = (DeprecationWarning, PendingDeprecationWarning, ResourceWarning)


# ------------------------------------------------------------------ running a scenario


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


# ------------------------------------------------------------------ specs and scenarios


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


def check(spec: str, scenario: str | Scenario, candidate: Factory | None = None, *,
          folder: str | os.PathLike[str] | None = None,
          reference: Factory | None = None) -> ScenarioResult:
    """Run a scenario with Keras's class and with `candidate` (the drop-in by default),
    each in a fresh folder, and compare the artifacts.

    Args:
        spec: the artifact spec's name (`csv_logger`).
        scenario: one of its scenarios, or its name.
        candidate: the factory under test; the cbdsl drop-in when None.
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
    expected, calls = _execute(chosen, reference or owner.reference(),
                               base / "keras" if base else None)
    actual, _ = _execute(chosen, candidate or owner.cbdsl(),
                         base / "candidate" if base else None)
    found = divergence(expected, actual)
    if found is None:
        return ScenarioResult(spec, chosen.name, "pass", expected=expected, actual=actual)
    built = "; ".join(f"{owner.keras_name}({', '.join(f'{k}={v!r}' for k, v in c.items())})"
                      for c in calls) or "nothing (the scenario failed before building)"
    text = (f"scenario {spec}/{chosen.name}: {chosen.description}\nbuilt with {built}\n"
            f"differences, expected (Keras's {owner.keras_name}) against actual:\n{found}")
    return ScenarioResult(spec, chosen.name, "fail", divergence=text, expected=expected,
                          actual=actual)


# ------------------------------------------------------------------ comparing artifacts


def divergence(expected: Artifact, actual: Artifact) -> str | None:
    """None when the artifacts are equal; else their differences, one per line (a text of
    several lines as a line diff), at most `MAX_DIFFERENCES` of them.

    Everything is compared exactly, with one rule for errors, as for the recorded cases:
    the reference's exception type must be among the candidate's bases (a subclass
    passes), and the messages must be equal.
    """
    expected, actual = _errors_by_kind(expected, actual)
    found = list(_differences(expected, actual, ""))
    if not found:
        return None
    shown = found[:MAX_DIFFERENCES]
    if len(found) > MAX_DIFFERENCES:
        shown.append(f"... and {len(found) - MAX_DIFFERENCES} more differences")
    return "\n".join(shown)


def _errors_by_kind(expected: Artifact, actual: Artifact) -> tuple[Artifact, Artifact]:
    expected, actual = dict(expected), dict(actual)
    theirs, ours = expected.get("error"), actual.get("error")
    if isinstance(theirs, dict):
        expected["error"] = {k: v for k, v in theirs.items() if k != "bases"}
    if isinstance(ours, dict):
        ours = {k: v for k, v in ours.items() if k != "bases"}
        if isinstance(theirs, dict) and theirs.get("type") in actual["error"].get("bases", []):
            ours["type"] = theirs["type"]
        actual["error"] = ours
    return expected, actual


def _differences(expected: Any, actual: Any, path: str) -> Iterator[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            where = _join(path, key)
            if key not in actual:
                yield f"{where}: missing (expected {_short(value)})"
            else:
                yield from _differences(value, actual[key], where)
        for key, value in actual.items():
            if key not in expected:
                yield f"{_join(path, key)}: not expected (actual {_short(value)})"
    elif (isinstance(expected, list) and isinstance(actual, list) and expected and actual
          and _numeric(expected) and _numeric(actual)):
        # an array of numbers (weights): one line, at the first number that differs
        flat_e, flat_a = list(_leaves(expected, "")), list(_leaves(actual, ""))
        if [i for i, _ in flat_e] != [i for i, _ in flat_a]:
            yield (f"{path}: shape {_shape(actual)}, expected {_shape(expected)}")
            return
        differing = [(i, e, a) for (i, e), (_, a) in zip(flat_e, flat_a, strict=True)
                     if not _same(e, a)]
        if differing:
            where, e, a = differing[0]
            yield (f"{path}: {len(differing)} of {len(flat_e)} numbers differ; the first, "
                   f"{path}{where}: expected {e!r}, actual {a!r}")
    elif isinstance(expected, list) and isinstance(actual, list):
        for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
            yield from _differences(e, a, f"{path}[{index}]")
        if len(expected) != len(actual):
            longer, word = ((expected, "missing") if len(expected) > len(actual)
                            else (actual, "not expected"))
            extra = longer[min(len(expected), len(actual)):]
            yield (f"{path or 'artifact'}: {len(actual)} items, expected {len(expected)}; "
                   f"{word}: {_short(extra)}")
    elif (isinstance(expected, str) and isinstance(actual, str) and expected != actual
          and ("\n" in expected or "\n" in actual)):
        yield f"{path} differs (- expected, + actual):\n" + "\n".join(
            _line_diff(expected, actual))
    elif not _same(expected, actual):
        yield f"{path}: expected {_short(expected)}, actual {_short(actual)}"


def _numeric(value: Any) -> bool:
    """A list (of lists) holding numbers only."""
    if isinstance(value, list):
        return all(_numeric(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _leaves(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{where}[{index}]")
    else:
        yield where, value


def _shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def _same(expected: Any, actual: Any) -> bool:
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    return expected == actual


def _join(path: str, key: Any) -> str:
    key = str(key)
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _short(value: Any, limit: int = 240) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _line_diff(expected: str, actual: str) -> list[str]:
    """A unified diff of two texts, each line with its end and tabs shown (`\\r\\n`, `\\t`)."""
    lines = difflib.unified_diff(expected.splitlines(keepends=True),
                                 actual.splitlines(keepends=True), n=1, lineterm="")
    shown = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            shown.append(f"    {line}")
        else:
            shown.append(f"    {line[0]} {line[1:].encode('unicode_escape').decode('ascii')}")
    return shown


# ------------------------------------------------------------------ models and data


REUSE_MODELS = True  # False makes a new model for every fit (slower; the same artifacts)
_MODELS: dict[tuple[Any, ...], tuple[Any, str, list, list]] = {}


def _reused(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """The model `make()` returns, made once per process and key, and put back before each
    use to the weights and optimizer state it was made with: a fit of it is a fresh
    model's fit, without tracing the training step again (most of a small fit's time on
    TensorFlow and JAX). A model whose configuration changed is made again: saving as
    legacy `.h5` takes the optimizer out of the model's compile config, for one."""
    import keras

    if not REUSE_MODELS:
        return make()
    key = (keras.backend.backend(), *key)
    kept = _MODELS.get(key)
    if kept is not None:
        model, fingerprint, weights, state = kept
        if _fingerprint(model) == fingerprint:
            model.set_weights(weights)
            for variable, value in zip(model.optimizer.variables, state, strict=True):
                variable.assign(value)
            keras.utils.set_random_seed(SEED)
            return model
    model = make()
    _MODELS[key] = (model, _fingerprint(model), model.get_weights(),
                    [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])
    return model


def _fingerprint(model: Any) -> str:
    return json.dumps([model.get_config(), model.get_compile_config(), id(model.optimizer),
                       [v.path for v in model.weights],
                       [v.path for v in model.optimizer.variables]], sort_keys=True,
                      default=repr)


def regression_model(seed: int = SEED) -> Any:
    """A compiled Dense(1) regression model with seeded weights (SGD, MSE, MAE metric)."""
    return _reused(("regression", seed), lambda: _make_regression(seed))


def _make_regression(seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mean_squared_error", metrics=["mean_absolute_error"])
    return model


def regression_data() -> tuple[np.ndarray, np.ndarray]:
    """48 seeded samples of 4 features and a noisy sum as the target."""
    rng = np.random.default_rng(0)
    x = rng.random((48, 4)).astype("float32")
    y = (x.sum(axis=1) + rng.normal(size=48)).astype("float32")
    return x, y


def fit_regression(model: Any, callbacks: list, *, epochs: int = 3,
                   validation: bool = True) -> Any:
    """Fit the regression model: 16 samples a batch, the last quarter for validation."""
    x, y = regression_data()
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                     validation_split=0.25 if validation else 0.0, callbacks=callbacks)


CLASSIFIER_BATCHES = 4  # per epoch: 48 samples, validation_split 0.25, batch_size 9


def classifier_model(steps_per_execution: int = 1) -> Any:
    """A compiled two-layer binary classifier with seeded weights (SGD 0.5, accuracy)."""
    return _reused(("classifier", steps_per_execution),
                   lambda: _make_classifier(steps_per_execution))


def _make_classifier(steps_per_execution: int = 1) -> Any:
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return model


def classifier_data() -> tuple[np.ndarray, np.ndarray]:
    """48 seeded samples of 4 features; the label mostly follows the first."""
    rng = np.random.default_rng(0)
    x = rng.random((48, 4)).astype("float32")
    y = ((x[:, 0] + rng.normal(scale=0.3, size=48)) > 0.5).astype("float32")
    return x, y


def fit_classifier(model: Any, callbacks: list, *, epochs: int = 4,
                   validation: bool = True) -> Any:
    """Fit the classifier: 9 samples a batch (4 batches an epoch with validation)."""
    x, y = classifier_data()
    return model.fit(x, y, batch_size=9, epochs=epochs, verbose=0, shuffle=False,
                     validation_split=0.25 if validation else 0.0, callbacks=callbacks)


def _edit_logs(edit: Callable[[int, dict], None] | None) -> list:
    """A LambdaCallback placed before the callback under test, changing the logs it sees."""
    if edit is None:
        return []
    import keras

    return [keras.callbacks.LambdaCallback(on_epoch_end=edit)]


# ------------------------------------------------------------------ files


def folder_contents(folder: Path) -> dict[str, Any]:
    """`files`: each file under `folder` (subfolders too) and its text; `folders`: each
    subfolder."""
    files, folders = {}, []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir():
            folders.append(name + "/")
        else:
            files[name] = path.read_bytes().decode("utf-8", "backslashreplace")
    return {"files": files, "folders": folders}


# ------------------------------------------------------------------ CSVLogger


def csv_logger(run: Run, *, epochs: int = 3, fits: int = 1, validation: bool = True,
               edit_logs: Callable[[int, dict], None] | None = None,
               existing: Mapping[str, str] | None = None, filename: str = "log.csv",
               lock: str | None = None, **arguments: Any) -> Artifact:
    """Fit the regression model `fits` times with one logger; the working folder after.

    Args:
        edit_logs: changes the logs before the logger sees them (`on_epoch_end`).
        existing: files to write first (`{name: text}`).
        filename: the logger's file, in the working folder ("" is the folder itself).
        lock: a folder to make first and leave unwritable during the fit.
        arguments: the logger's other arguments (`separator`, `append`).
    """
    for name, text in (existing or {}).items():
        path = run.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    locked = run.workdir / lock if lock else None
    if locked is not None:
        locked.mkdir()
        locked.chmod(0o500)
    model = regression_model()

    def work() -> None:
        logger = run.build(filename=run.path(filename), **arguments)
        for _ in range(fits):
            fit_regression(model, [*_edit_logs(edit_logs), logger], epochs=epochs,
                           validation=validation)

    try:
        run.attempt(work)
    finally:
        if locked is not None:
            locked.chmod(0o700)
    return folder_contents(run.workdir)


def _early_and_late(epoch: int, logs: dict) -> None:
    if epoch == 0:
        logs["early"] = 0.5  # only in the first epoch: NA afterwards
    if epoch >= 1:
        logs["late"] = epoch * 1.5  # not a column: never written


def _values_of_every_kind(epoch: int, logs: dict) -> None:
    logs["as_list"] = [epoch, 0.25]
    logs["as_array"] = np.arange(3, dtype="float32") + epoch
    logs["scalar_array"] = np.array(epoch * 0.5, dtype="float32")
    logs["text"] = f'say "hi", epoch {epoch}\n'
    logs["none"] = None


def _user_cannot_write() -> str | None:
    if os.name != "posix":
        return "needs POSIX permissions"
    if os.geteuid() == 0:
        return "runs as root, whom folder permissions do not stop"
    return None


def _system_folder_refuses() -> str | None:
    if os.name != "posix" or not os.path.isdir("/sys"):
        return "needs a POSIX /sys"
    if os.path.exists("/sys/cbdsl.csv"):
        return "/sys/cbdsl.csv exists"
    try:
        open("/sys/cbdsl.csv", "w").close()
    except PermissionError:
        return None
    except OSError as error:
        return f"/sys refuses a new file with {type(error).__name__}, not PermissionError"
    return "/sys took a new file"


CSV = "csv_logger"
CSV_SCENARIOS = (
    Scenario("three_epochs", "three epochs with validation: the header, then a line an epoch",
             csv_logger, quick=True),
    Scenario("five_epochs", "five epochs", csv_logger, {"epochs": 5}),
    Scenario("separator_semicolon", "separator=';'", csv_logger, {"separator": ";"}),
    Scenario("separator_tab", "separator='\\t'", csv_logger, {"separator": "\t"}),
    Scenario("separator_space", "separator=' '", csv_logger, {"separator": " "}),
    Scenario("no_validation", "no validation data: a val_ column of NA for each metric",
             csv_logger, {"validation": False}),
    Scenario("keys_change", "a key only in the first epoch's logs (NA after), and one "
             "appearing later (never written)", csv_logger,
             {"epochs": 4, "edit_logs": _early_and_late}, quick=True),
    Scenario("values_and_quoting", "lists, arrays, a 0-d array, text with quotes and a "
             "newline, and None in the logs", csv_logger, {"edit_logs": _values_of_every_kind}),
    Scenario("overwrite", "an existing file is emptied, and a second fit starts it again",
             csv_logger, {"fits": 2, "existing": {"log.csv": "old line\n"}}),
    Scenario("append_no_file", "append=True with no file yet: a header", csv_logger,
             {"append": True}),
    Scenario("append_empty_file", "append=True to an empty file: a header", csv_logger,
             {"append": True, "existing": {"log.csv": ""}}),
    Scenario("append_to_lines", "append=True to a file with lines: no header", csv_logger,
             {"append": True, "existing": {"log.csv": "epoch,loss\r\n0,1.0\r\n"}},
             quick=True),
    Scenario("append_two_fits", "append=True over two fits: one header, both fits' lines",
             csv_logger, {"append": True, "fits": 2}),
    Scenario("append_two_fits_separator", "append=True over two fits with separator=';'",
             csv_logger, {"append": True, "fits": 2, "separator": ";"}),
    Scenario("braces_in_filename", "a filename with {epoch} in it is used as it is",
             csv_logger, {"filename": "log_{epoch}.csv", "epochs": 2}),
    Scenario("separator_two_characters", "separator='ab': csv's TypeError ends the fit",
             csv_logger, {"separator": "ab", "epochs": 1}),
    Scenario("filename_is_a_folder", "the filename is a folder: IsADirectoryError",
             csv_logger, {"filename": "", "epochs": 1}),
    Scenario("filename_is_a_folder_append", "the filename is a folder, append=True",
             csv_logger, {"filename": "", "epochs": 1, "append": True}),
    Scenario("missing_folder", "the file's folder is missing: FileNotFoundError, and no "
             "folder is made", csv_logger, {"filename": "missing/log.csv", "epochs": 1}),
    Scenario("missing_folder_append", "the file's folder is missing, append=True",
             csv_logger, {"filename": "missing/log.csv", "epochs": 1, "append": True}),
    Scenario("file_as_folder", "a file where the folder should be: NotADirectoryError",
             csv_logger, {"filename": "plain/log.csv", "epochs": 1,
                          "existing": {"plain": "x"}}),
    Scenario("unwritable_folder", "a folder this user cannot write to: PermissionError",
             csv_logger, {"filename": "locked/log.csv", "epochs": 1, "lock": "locked"},
             needs=_user_cannot_write),
    Scenario("read_only_system_folder", "/sys, which refuses new files even to root: "
             "PermissionError", csv_logger, {"filename": "/sys/cbdsl.csv", "epochs": 1},
             needs=_system_folder_refuses),
)


# ------------------------------------------------------------------ ModelCheckpoint


class _Saves:
    """Watches the working folder at every event of a fit: each file written (new or
    changed since the last look) is copied aside, to be loaded after the fit."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.seen: dict[str, tuple[int, int, int]] = {}
        self.saves: list[tuple[str, str, Path]] = []  # (event, file, copy)
        self.fit = 0
        self.epoch = 0

    def callback(self) -> Any:
        import keras

        def epoch_begin(epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            self.look(f"epoch {epoch} begin")

        return keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs=None: self.look("train begin"),
            on_epoch_begin=epoch_begin,
            on_train_batch_end=lambda batch, logs=None: self.look(
                f"epoch {self.epoch} batch {batch} end"),
            on_epoch_end=lambda epoch, logs=None: self.look(f"epoch {epoch} end"),
            on_train_end=lambda logs=None: self.look("train end"))

    def look(self, event: str) -> None:
        if self.fit > 1:
            event = f"fit {self.fit} {event}"
        for path in sorted(self.run.workdir.rglob("*")):
            if not path.is_file():
                continue
            name = path.relative_to(self.run.workdir).as_posix()
            stat = path.stat()
            mark = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if self.seen.get(name) != mark:
                self.seen[name] = mark
                copy = self.run.scratch / str(len(self.saves)) / path.name
                copy.parent.mkdir()
                shutil.copy2(path, copy)
                self.saves.append((event, name, copy))

    def artifact(self) -> list[dict[str, Any]]:
        return [{"at": event, "file": name, "weights": _weights(copy)}
                for event, name, copy in self.saves]


_LOADED: dict[str, Any] = {}  # content digest -> weights, so an identical file loads once


def _weights(path: Path) -> Any:
    """The weights a saved file holds, as lists, loaded as Keras loads it; None for a file
    Keras does not read, the error's text for one it fails to load. A file whose content
    was loaded before in this process (the same bytes; for `.keras`, all but the save time
    in `metadata.json`) gives that load's result again."""
    import keras

    if not (path.name.endswith(".weights.h5") or path.suffix in (".keras", ".h5")):
        return None
    digest = _content_digest(path)
    if digest in _LOADED:
        return _LOADED[digest]
    try:
        if path.name.endswith(".weights.h5"):
            model = _make_classifier()
            model.load_weights(path)
        else:
            model = keras.models.load_model(path)
        weights: Any = [np.asarray(w).tolist() for w in model.get_weights()]
    except Exception as error:
        weights = {"load_error": f"{type(error).__name__}: {error}"}
    if len(_LOADED) > 1000:
        _LOADED.clear()
    _LOADED[digest] = weights
    return weights


def _content_digest(path: Path) -> str:
    import hashlib
    import zipfile

    digest = hashlib.sha256(path.suffix.encode())
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                if name != "metadata.json":
                    digest.update(name.encode() + b"\0" + archive.read(name))
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_checkpoint(run: Run, *, filepath: str, epochs: int = 4, validation: bool = True,
                     steps_per_execution: int = 1, fits: int = 1,
                     folders: tuple[str, ...] = (), **arguments: Any) -> Artifact:
    """Fit the classifier `fits` times with one checkpoint callback.

    Returns:
        `saves`: each file written, at which event (`epoch 0 end`, `epoch 1 batch 2 end`),
        and the weights it held then; `files`: the working folder's files at the end.

    Args:
        filepath: the checkpoint's path, in the working folder.
        folders: folders to make first.
        arguments: the callback's other arguments.
    """
    for name in folders:
        (run.workdir / name).mkdir(parents=True)
    saves = _Saves(run)
    model = classifier_model(steps_per_execution)

    def work() -> None:
        checkpoint = run.build(filepath=run.path(filepath), **arguments)
        for _ in range(fits):
            saves.fit += 1
            fit_classifier(model, [checkpoint, saves.callback()], epochs=epochs,
                           validation=validation)

    run.attempt(work)
    saves.look("after the fit")
    return {"saves": saves.artifact(),
            "files": sorted(p.relative_to(run.workdir).as_posix()
                            for p in run.workdir.rglob("*") if p.is_file())}


def _checkpoint(name: str, description: str, filepath: str, quick: bool = False,
                **params: Any) -> Scenario:
    return Scenario(name, description, model_checkpoint, {"filepath": filepath, **params},
                    quick=quick)


CHECKPOINT = "model_checkpoint"
CHECKPOINT_SCENARIOS = (
    _checkpoint("every_epoch", "every epoch, {epoch} and a metric in the name",
                "m{epoch:02d}-{val_loss:.3f}.keras", quick=True),
    _checkpoint("one_keras_file", "one .keras file, overwritten every epoch", "last.keras"),
    _checkpoint("one_h5_file", "one legacy .h5 file, overwritten every epoch", "last.h5"),
    _checkpoint("weights_only_subfolder", "save_weights_only into a subfolder it makes",
                "sub/w{epoch}.weights.h5", save_weights_only=True),
    _checkpoint("best_min_val_loss", "save_best_only, mode='min' on val_loss",
                "b{epoch}.keras", epochs=6, save_best_only=True, mode="min", quick=True),
    _checkpoint("best_max_val_accuracy", "save_best_only, mode='max' on val_accuracy",
                "b{epoch}.keras", epochs=6, save_best_only=True, monitor="val_accuracy",
                mode="max"),
    _checkpoint("best_max_loss", "save_best_only, mode='max' on loss (the wrong way)",
                "b{epoch}.keras", epochs=6, save_best_only=True, monitor="loss", mode="max"),
    _checkpoint("best_auto_accuracy", "save_best_only, mode='auto' on val_accuracy (max), "
                "weights only", "a{epoch}-{val_accuracy:.3f}.weights.h5", epochs=6,
                save_best_only=True, save_weights_only=True, monitor="val_accuracy"),
    _checkpoint("best_one_file", "save_best_only into one file: the best epoch's weights",
                "best.keras", epochs=6, save_best_only=True, monitor="loss"),
    _checkpoint("threshold_zero", "initial_value_threshold=0 on loss: never beaten",
                "t{epoch}.keras", epochs=5, save_best_only=True, monitor="loss",
                initial_value_threshold=0.0),
    _checkpoint("threshold_between", "initial_value_threshold=0.67 on loss",
                "t{epoch}.keras", epochs=5, save_best_only=True, monitor="loss",
                initial_value_threshold=0.67),
    _checkpoint("threshold_high", "initial_value_threshold=10 on loss", "t{epoch}.keras",
                epochs=5, save_best_only=True, monitor="loss", initial_value_threshold=10.0),
    _checkpoint("save_freq_batches", "save_freq=3 counts batches across epochs",
                "e{epoch}-b{batch}.keras", epochs=3, save_freq=3, quick=True),
    _checkpoint("save_freq_steps_2", "save_freq=3 with steps_per_execution=2",
                "e{epoch}-b{batch}.keras", epochs=3, save_freq=3, steps_per_execution=2),
    _checkpoint("save_freq_steps_3", "save_freq=3 with steps_per_execution=3",
                "e{epoch}-b{batch}.keras", epochs=3, save_freq=3, steps_per_execution=3),
    _checkpoint("save_freq_best_loss", "save_freq=3 and save_best_only on the batch loss",
                "e{epoch}-b{batch}.weights.h5", epochs=3, save_freq=3, save_best_only=True,
                monitor="loss", save_weights_only=True),
    _checkpoint("missing_monitor_epochs", "save_best_only on val_loss without validation "
                "data: a warning, and a save, every epoch", "m{epoch}.keras", epochs=2,
                validation=False, save_best_only=True),
    _checkpoint("missing_monitor_batches", "save_best_only on val_loss every 3 batches "
                "(never in a batch's logs): a warning and a save each time",
                "m{epoch}-{batch}.keras", epochs=2, save_best_only=True, save_freq=3),
    _checkpoint("missing_monitor_not_read", "without save_best_only a missing val_loss is "
                "not read", "m{epoch}.keras", epochs=2, validation=False),
    _checkpoint("verbose_every_epoch", "verbose=1, every epoch: the saving lines",
                "m{epoch}.keras", epochs=5, verbose=1),
    _checkpoint("verbose_best", "verbose=1, save_best_only: improved and did-not-improve "
                "lines", "m{epoch}.keras", epochs=5, verbose=1, save_best_only=True),
    _checkpoint("verbose_best_threshold", "verbose=1, save_best_only on val_accuracy above "
                "initial_value_threshold=0.5", "m{epoch}.keras", epochs=5, verbose=1,
                save_best_only=True, monitor="val_accuracy", initial_value_threshold=0.5),
    _checkpoint("verbose_save_freq", "verbose=1, save_freq=3, weights only",
                "w{epoch}.weights.h5", epochs=5, verbose=1, save_freq=3,
                save_weights_only=True),
    _checkpoint("refuses_h5_weights_suffix", "save_weights_only with a .h5.weights path: "
                "ValueError", "model.h5.weights", save_weights_only=True),
    _checkpoint("refuses_keras_weights_only", "save_weights_only with a .keras path: "
                "ValueError", "model.keras", save_weights_only=True),
    _checkpoint("refuses_weights_suffix", "a .weights path for the whole model: ValueError",
                "model.weights"),
    _checkpoint("refuses_txt", "a .txt path: ValueError", "model.txt"),
    _checkpoint("refuses_save_freq_batch", "save_freq='batch': ValueError", "model.keras",
                save_freq="batch"),
    _checkpoint("refuses_save_freq_float", "save_freq=2.5: ValueError", "model.keras",
                save_freq=2.5),
    _checkpoint("refuses_save_freq_first", "save_freq='batch' and a .txt path: the "
                "save_freq error comes first", "model.txt", save_freq="batch"),
    _checkpoint("path_is_a_folder", "the path is an existing folder: Keras's OSError",
                "d.keras", epochs=1, folders=("d.keras",)),
    _checkpoint("weights_path_is_a_folder", "the weights path is an existing folder",
                "w.weights.h5", epochs=1, folders=("w.weights.h5",), save_weights_only=True),
    _checkpoint("path_field_misspelt", "a field the logs lack ({val_los}) ends the fit",
                "m{val_los:.2f}.keras", epochs=1),
    _checkpoint("path_field_batch_per_epoch", "{batch} when saving every epoch ends the fit",
                "m{batch}.keras", epochs=1),
    _checkpoint("path_field_val_loss_per_batch", "{val_loss} when saving every 2 batches "
                "ends the fit", "m{val_loss}.keras", epochs=1, save_freq=2),
    _checkpoint("best_over_two_fits", "save_best_only over two fits of one callback, on loss "
                "with mode='max': the first fit's best is not beaten in the second",
                "b{epoch}.keras", epochs=2, fits=2, save_best_only=True, monitor="loss",
                mode="max"),
    _checkpoint("save_freq_over_two_fits", "save_freq=3 over two one-epoch fits of one "
                "callback", "f{epoch}-b{batch}.keras", epochs=1, fits=2, save_freq=3),
)


# ------------------------------------------------------------------ RemoteMonitor


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server on an ephemeral port of 127.0.0.1 that answers every POST with 200 and
    records the first `MAX_REQUESTS` of them (`requests`: method, path, headers, body as
    bytes); `dropped` counts the rest. A client that stops sending is dropped after
    `SERVER_TIMEOUT` seconds; leaving the `with` block stops the server."""

    daemon_threads = True

    def __init__(self, max_requests: int = MAX_REQUESTS) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.max_requests = max_requests
        self.requests: list[dict[str, Any]] = []
        self.dropped = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, request: dict[str, Any]) -> None:
        with self.lock:
            if len(self.requests) < self.max_requests:
                self.requests.append(request)
            else:
                self.dropped += 1

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=SERVER_TIMEOUT)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = SERVER_TIMEOUT  # a stuck client cannot hold the server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.keep({"method": self.command, "path": self.path,  # type: ignore[attr-defined]
                          "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


def closed_port_root() -> str:
    """A root URL on a port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def comparable(request: dict[str, Any]) -> dict[str, Any]:
    """A recorded request without what differs between two servers: the Host header (its
    port). Every other header is kept: the HTTP client's own (`User-Agent`, `Accept`,
    `Accept-Encoding`, `Connection`) are what Keras sends too, through `requests`."""
    return {**request, "headers": {k: v for k, v in request["headers"].items() if k != "Host"}}


def _requests_installed() -> str | None:
    if importlib.util.find_spec("requests") is None:
        return "RemoteMonitor posts with the requests library, which is not installed"
    return None


HEADERS = {"X-Api-Key": "s3cret", "X-Run": "tiny-dense"}


def remote_monitor(run: Run, *, epochs: int = 3, reachable: bool = True,
                   edit_logs: Callable[[int, dict], None] | None = None,
                   **arguments: Any) -> Artifact:
    """Fit the regression model with the monitor posting to a server started here (or to a
    closed port when not `reachable`).

    Returns:
        `requests`: what the server received (method, path, headers but Host, body);
        `dropped`: requests past `MAX_REQUESTS`; `history`: what the fit returned (the
        logs each epoch's request reports).
    """
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Recorder()) if reachable else None
        root = server.root if server else closed_port_root()
        run.alias(root, "ROOT")
        model = regression_model(5)
        history = run.attempt(lambda: fit_regression(
            model, [*_edit_logs(edit_logs), run.build(root=root, **arguments)], epochs=epochs))
    return {"requests": [comparable(r) for r in server.requests] if server else [],
            "dropped": server.dropped if server else 0,
            "history": history.history if history is not None else None}


def _numpy_values(epoch: int, logs: dict) -> None:
    logs.update(half=np.float32(0.25), acc=np.array(0.5), steps=np.int64(3), note="x")


def _remote(name: str, description: str, quick: bool = False, **params: Any) -> Scenario:
    return Scenario(name, description, remote_monitor, params, quick=quick,
                    needs=_requests_installed)


REMOTE = "remote_monitor"
REMOTE_SCENARIOS = (
    _remote("json", "send_as_json=True, a path and headers", quick=True,
            path="/runs/tiny/epoch/", headers=HEADERS, send_as_json=True),
    _remote("form", "a form field holding the JSON text, a path and headers", quick=True,
            path="/runs/tiny/epoch/", headers=HEADERS, field="metrics"),
    _remote("defaults", "only root: the default path and field, no headers", epochs=2),
    _remote("numpy_values_form", "NumPy scalars and 0-d arrays in the logs are sent as "
            "plain numbers (form)", epochs=2, edit_logs=_numpy_values),
    _remote("numpy_values_json", "NumPy values in the logs, send_as_json=True", epochs=2,
            edit_logs=_numpy_values, send_as_json=True),
    _remote("unreachable_form", "no server: a warning each epoch, and training goes on",
            reachable=False, headers=HEADERS),
    _remote("unreachable_json", "no server, send_as_json=True", reachable=False,
            headers=HEADERS, send_as_json=True),
)


# ------------------------------------------------------------------ the registry


ARTIFACT_SPECS: dict[str, ArtifactSpec] = {s.name: s for s in [
    ArtifactSpec(CSV, "CSVLogger", CSV_SCENARIOS),
    ArtifactSpec(CHECKPOINT, "ModelCheckpoint", CHECKPOINT_SCENARIOS),
    ArtifactSpec(REMOTE, "RemoteMonitor", REMOTE_SCENARIOS),
]}

# the callbacks built on effects (progress bar, EMA, backups, TensorBoard): their own module
from cbdsl.conformance.artifact_effects import EFFECT_SPECS  # noqa: E402

ARTIFACT_SPECS.update({s.name: s for s in EFFECT_SPECS})
