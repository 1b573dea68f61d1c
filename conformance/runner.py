"""Runs cases against any implementation and reports the first divergence side by side."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cbdsl.conformance.driver import StubModel, drive, equal, plain
from cbdsl.conformance.specs import SPECS, arguments

Factory = Callable[..., Any]


def cases_dir() -> Path:
    """The folder of case files (`conformance/cases`, installed as `cbdsl.conformance`)."""
    return Path(str(resources.files("cbdsl.conformance").joinpath("cases")))


def case_paths(spec: str | None = None) -> list[Path]:
    """Every case file, or those of one spec, in a stable order."""
    root = cases_dir()
    folders = [root / spec] if spec else sorted(p for p in root.iterdir() if p.is_dir())
    return sorted(p for folder in folders for p in folder.glob("*.json"))


def load_case(path: Path | str) -> dict[str, Any]:
    """Read one case file (JSON; NaN and Infinity are written as Python's json writes them)."""
    case = json.loads(Path(path).read_text(encoding="utf-8"))
    case["path"] = str(path)
    case.setdefault("name", Path(path).stem)
    return case


def run_trace(case: dict[str, Any], factory: Factory, *, for_reference: bool = False,
              attributes: list[str] | str | None = None) -> dict[str, Any]:
    """Build the callback a case describes with `factory`, drive it, return the outcome.

    An error raised while building (Keras's `ValueError` for `factor >= 1`) is the outcome.
    `attributes` names the attributes to read after the run (see `cbdsl.dryrun.drive`).
    """
    calls: list = []
    model_spec = case.get("model", {})
    model = StubModel(model_spec.get("learning_rate", 0.1), model_spec.get("metrics"),
                      model_spec.get("schedule", False))
    kwargs = arguments(case["spec"], case.get("params", {}), calls,
                       for_reference=for_reference)
    try:
        callback = factory(**kwargs)
    except Exception as error:  # refusing the arguments is behaviour too
        return plain({"events": [], "final": {}, "error": _renamed({
            "type": type(error).__name__, "bases": [k.__name__ for k in type(error).__mro__],
            "message": str(error), "at": "construction"}, factory, case["spec"])})
    fit_params = {"epochs": len(case["trace"]), "steps": case.get("steps"), "verbose": 0,
                  **case.get("fit_params", {})}
    outcome = drive(callback, case["trace"], model=model, fit_params=fit_params,
                    calls=calls, attributes=attributes).to_json()
    if outcome["error"]:
        outcome["error"] = _renamed(outcome["error"], type(callback), case["spec"])
    return outcome


def _renamed(error: dict[str, Any], implementation: Any, spec: str) -> dict[str, Any]:
    """An error with its message compared under the reference's class name (`_own_name`);
    the message as raised is kept under `as_raised` when that changed it, for reports."""
    message = _own_name(error["message"], implementation, spec)
    if message == error["message"]:
        return error
    return {**error, "message": message, "as_raised": error["message"]}


def _own_name(message: str, implementation: Any, spec: str) -> str:
    """A message with the implementation's class name read as the reference's: Keras words
    some errors with `self.__class__.__name__`, and a class's own name is not behaviour."""
    name = getattr(implementation, "__name__", None)
    keras_name = SPECS[spec].keras_name if spec in SPECS else None
    if not isinstance(name, str) or not keras_name or name == keras_name:
        return message
    return re.sub(rf"\b{re.escape(name)}\b", keras_name, message)


@dataclass
class CaseResult:
    """The verdict on one case.

    Attributes:
        name: the case's name (`tie_at_min_delta`).
        spec: the spec's name.
        passed: whether the implementation did what the reference did.
        divergence: where it did not, the first difference rendered side by side.
        listed: whether the case was listed as an expected failure (`run_spec`'s `xfail`).
    """

    name: str
    spec: str
    passed: bool
    divergence: str = ""
    listed: bool = False

    @property
    def status(self) -> str:
        """`pass`, `fail`, `xfail` (listed and failed) or `xpass` (listed, yet passed), as
        `cbdsl conform` reports them."""
        if self.listed:
            return "xpass" if self.passed else "xfail"
        return "pass" if self.passed else "fail"

    @property
    def xfail(self) -> bool:
        """Whether the case failed as its listing expected."""
        return self.status == "xfail"

    @property
    def ok(self) -> bool:
        """Whether the verdict is as expected: a pass, or a listed case that failed (an
        unexpected pass is not ok, as in `cbdsl conform` and pytest's strict xfail)."""
        return self.status in ("pass", "xfail")

    def __str__(self) -> str:
        verdict = {"pass": "pass", "fail": "FAIL", "xfail": "xfail",
                   "xpass": "XPASS (listed as an expected failure, but passed)"}[self.status]
        return f"{self.spec}/{self.name}: {verdict}" + (
            f"\n{self.divergence}" if self.divergence else "")


def run_case(case: dict[str, Any], factory: Factory, *, tolerance: float | None = None,
             python_functions: bool = False) -> CaseResult:
    """Run one case against `factory` and compare with the case's recorded `expected`.

    Args:
        case: a loaded case (`load_case`).
        factory: builds the callback under test from the case's arguments
            (a Keras class, `cbdsl.callbacks.EarlyStopping`, or anyone's own).
        tolerance: relative tolerance for floats; default the case's own, else exact.
        python_functions: give function-valued arguments as Python functions whatever the
            case's `schedule_as` says, as the reference gets them: for implementations that,
            like Keras's classes, take only Python callables (a schedule given as a table or
            as expression text is cbdsl's own).
    """
    actual = run_trace(case, factory, for_reference=python_functions)
    tol = tolerance if tolerance is not None else case.get("tolerance")
    divergence = first_divergence(case["expected"], actual, tol)
    return CaseResult(case["name"], case["spec"], divergence is None, divergence or "")


def run_spec(spec: str, factory: Factory, *,
             xfail: str | os.PathLike[str] | Iterable[str] | None = None,
             python_functions: bool = False) -> list[CaseResult]:
    """Run every recorded case of a spec against `factory`.

    Args:
        spec: the spec's name (`early_stopping`).
        factory: builds the callback under test from a case's arguments.
        xfail: the cases expected to fail, kept by the implementer (as test262's
            expectations files): an xfail file's path, or a list of names as its lines name
            them (see `cbdsl conform --xfail`). A listed case that fails is `xfail`; one that
            passes is `xpass`, an unexpected pass (`CaseResult.ok` is False), as the command
            reports it.
        python_functions: as in `run_case`.

    Returns:
        One `CaseResult` per case, in a stable order.

    Raises:
        ValueError: an unknown spec, or `xfail` names a case the spec does not have
            (`cbdsl.conformance.conform.UsageError`), or its file cannot be read.
    """
    from cbdsl.conformance.conform.xfail import expected_failures

    if spec not in SPECS:
        raise ValueError(f"no recorded cases for spec {spec!r} (an artifact spec's scenarios "
                         f"run with `cbdsl.conformance.artifacts.check`); specs with cases: "
                         f"{', '.join(SPECS)}")
    known = expected_failures(xfail, spec)
    results = []
    for path in case_paths(spec):
        result = run_case(load_case(path), factory, python_functions=python_functions)
        result.listed = result.name in known
        results.append(result)
    return results


# ----------------------------------------------------------------- comparison


def first_divergence(expected: dict[str, Any], actual: dict[str, Any],
                     tolerance: float | None = None) -> str | None:
    """None when two outcomes agree; otherwise the first difference, rendered side by side."""
    exp_events, act_events = expected.get("events", []), actual.get("events", [])
    e_err, a_err = expected.get("error"), actual.get("error")
    for i, (e, a) in enumerate(zip(exp_events, act_events, strict=False)):
        if not _close(e, a, tolerance):
            return _side_by_side(expected, actual, i, f"event {i} differs")
    if len(exp_events) != len(act_events):
        i = min(len(exp_events), len(act_events))
        return _side_by_side(expected, actual, i, f"{len(exp_events)} events expected, "
                             f"{len(act_events)} happened{_ended_by(e_err, a_err)}")
    if (e_err is None) != (a_err is None) or (e_err and not (
            e_err["type"] in a_err["bases"] and e_err["message"] == a_err["message"]
            and e_err["at"] == a_err["at"])):
        return "the error differs" + _errors(e_err, a_err, exp_events, act_events)
    e_fin, a_fin = expected.get("final", {}), actual.get("final", {})
    for key in e_fin:
        if key not in a_fin or not _close(e_fin[key], a_fin[key], tolerance):
            return _pair(f"after training, {key}", e_fin[key], a_fin.get(key, "<missing>"))
    return None


def _close(a: Any, b: Any, tolerance: float | None) -> bool:
    if tolerance and isinstance(a, float) and isinstance(b, float):
        return equal(a, b) or abs(a - b) <= tolerance * max(abs(a), abs(b))
    if tolerance and isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if tolerance and isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b,
                                                                                strict=True))
    return equal(a, b)


def _pair(what: str, expected: Any, actual: Any) -> str:
    return f"{what}\n  expected: {_show(expected)}\n  actual:   {_show(actual)}"


def _side_by_side(expected: dict[str, Any], actual: dict[str, Any], at: int,
                  headline: str) -> str:
    """The events around the first difference in two columns, the differing one marked, then
    the errors that ended either run, with their types and messages."""
    width = 58
    exp_events, act_events = expected.get("events", []), actual.get("events", [])
    e_err, a_err = expected.get("error"), actual.get("error")
    lines = [headline, f"  {'#':>3}  {'expected (reference)':<{width}}  actual"]
    for i in range(max(0, at - 3), min(max(len(exp_events), len(act_events)), at + 2)):
        left = _event(exp_events[i], e_err, i) if i < len(exp_events) else "-"
        right = _event(act_events[i], a_err, i) if i < len(act_events) else "-"
        mark = ">" if i == at else " "
        lines.append(f"{mark} {i:>3}  {left:<{width}}  {right}")
    if at < len(exp_events) and at < len(act_events):
        for key in sorted(set(exp_events[at]) | set(act_events[at])):
            e, a = exp_events[at].get(key, "<none>"), act_events[at].get(key, "<none>")
            if not equal(e, a):
                lines.append(f"      {key}: expected {_show(e)}, actual {_show(a)}")
    return "\n".join(lines) + (_errors(e_err, a_err, exp_events, act_events)
                               if e_err or a_err else "")


def _event(record: dict[str, Any], error: dict[str, Any] | None = None,
           position: int | None = None) -> str:
    index = "" if record.get("index") is None else f" {record['index']}"
    text = f"{record['event']}{index} lr={record['lr']!r} stop={record['stop']}"
    raised = error is not None and error.get("at") == position
    return text + (" +logs" if "logs" in record else "") + (
        " +print" if "printed" in record else "") + (
        " +warn" if "warnings" in record else "") + (f" !{error['type']}" if raised else "")


def _ended_by(expected: dict[str, Any] | None, actual: dict[str, Any] | None) -> str:
    """Why the event counts differ, when an error (or its absence) says it."""
    if actual and actual.get("at") == "construction" and not (
            expected and expected.get("at") == "construction"):
        return f": building the callback raised {actual['type']}"
    if actual and not expected:
        return f": the callback raised {actual['type']}"
    if expected and not actual:
        return f": {expected['type']} expected, none raised"
    return ""


def _errors(expected: dict[str, Any] | None, actual: dict[str, Any] | None,
            exp_events: list, act_events: list) -> str:
    """The two errors, each with where it was raised, its type and its message."""
    return (f"\n      error: expected {_error(expected, exp_events)}"
            f"\n             actual   {_error(actual, act_events)}")


def _error(error: dict[str, Any] | None, events: list) -> str:
    if error is None:
        return "none (the run ended normally)"
    at = error.get("at")
    if at == "construction":
        where = "while building the callback"
    elif isinstance(at, int) and 0 <= at < len(events):
        index = events[at].get("index")
        where = f"in {events[at]['event']}{'' if index is None else f' {index}'} (event {at})"
    else:
        where = f"at {at}"
    message = error.get("as_raised", error.get("message", ""))
    if len(message) > 500:
        message = message[:497] + "..."
    return f"{error['type']} {where}: {message}"


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------ language cases


def run_language_case(case: dict[str, Any],
                      implementation: Callable[[str, str, dict[str, Any]], Any] | None = None
                      ) -> CaseResult:
    """Run a parse, check or compile case of the language itself.

    Args:
        case: a loaded case with `source`, `phase`, optional `params`, and `expected`:
            `{"ok": true}` or `{"error": {"code", "line", "col"}}`.
        implementation: `f(source, phase, params)` that raises an error with `code` and
            `diagnostics[0].span` (`line`, `column`); default: cbdsl's own parse, check
            and compile.
    """
    run = implementation or _cbdsl_phases
    expected = case["expected"]
    try:
        run(case["source"], case["phase"], case.get("params", {}))
    except Exception as error:
        code = getattr(error, "code", type(error).__name__)
        span = error.diagnostics[0].span if getattr(error, "diagnostics", None) else None
        got = {"code": code, "line": span.line if span else None,
               "col": span.column if span else None}
        want = expected.get("error")
        passed = want is not None and all(got[k] == v for k, v in want.items())
        return CaseResult(case["name"], "language", passed,
                          "" if passed else _pair("error", want, got))
    passed = "error" not in expected
    return CaseResult(case["name"], "language", passed,
                      "" if passed else _pair("error", expected["error"], None))


def _cbdsl_phases(source: str, phase: str, params: dict[str, Any]) -> None:
    import cbdsl

    program = cbdsl.parse(source)
    if phase in ("check", "compile"):
        checked = cbdsl.check(program)
        if phase == "compile":
            cbdsl.compile(checked, **params)
