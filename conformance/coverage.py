"""Which language features each case exercises: the coverage matrix of `cbdsl conform --json`."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from cbdsl.syntax import nodes

# Plumbing of the syntax tree rather than features a rule writer uses.
PLUMBING = {"Node", "Ident", "Program", "Keyword", "Number", "String", "Bool", "NoneLit",
            "Name", "Option"}

HOW = ("A language case covers the syntax, events and functions of its source, and the "
       "diagnostic it expects. A runtime case, run against the spec's rule file, covers the "
       "rule file's declarations (callback, parameters, variables, requirements) and "
       "everything in the rules that fired during the case.")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def universe() -> list[str]:
    """Every feature, as `kind:name`: syntax (node kinds), events, functions, diagnostics."""
    from cbdsl import language
    from cbdsl.diagnostics import CODES

    kinds = sorted(_snake(k.__name__) for k in vars(nodes).values()
                   if isinstance(k, type) and issubclass(k, nodes.Node)
                   and k.__module__ == nodes.__name__ and k.__name__ not in PLUMBING)
    codes = [c for c in CODES if c[1] in "1234"]  # E5xx belong to `cbdsl replay`
    return ([f"syntax:{k}" for k in kinds] + [f"event:{e}" for e in language.EVENTS]
            + [f"function:{f}" for f in language.FUNCTIONS] + [f"diagnostic:{c}" for c in codes])


def features(node: Any) -> set[str]:
    """The features one syntax-tree node (and everything under it) uses."""
    from cbdsl import language

    found: set[str] = set()
    for item in _walk(node):
        kind = type(item).__name__
        if kind not in PLUMBING:
            found.add(f"syntax:{_snake(kind)}")
        if isinstance(item, nodes.Rule):
            for event in item.events:
                name = language.EVENT_ALIASES.get(event.name, event.name)
                if name in language.EVENTS:  # a misspelt event is a diagnostic's case
                    found.add(f"event:{name}")
        if isinstance(item, nodes.Call):
            func = getattr(item, "func", None)
            name = getattr(func, "name", None) if func is not None else None
            if isinstance(name, str) and name in language.FUNCTIONS:
                found.add(f"function:{name}")
    return found


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, nodes.Node):
        yield node
        for field in dataclasses.fields(node):
            if field.name not in ("span", "path", "source"):
                yield from _walk(getattr(node, field.name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)


def language_case(case: dict[str, Any]) -> set[str]:
    """The features a parse, check or compile case covers."""
    import cbdsl
    from cbdsl.diagnostics import CbdslError

    covered: set[str] = set()
    error = case.get("expected", {}).get("error")
    if error and error.get("code"):
        covered.add(f"diagnostic:{error['code']}")
    with contextlib.suppress(CbdslError):  # a parse case: its diagnostic is what it covers
        covered |= features(cbdsl.parse(case["source"]))
    return covered


def runtime_case(case: dict[str, Any]) -> set[str]:
    """The features a runtime case covers when run against its spec's rule file."""
    from cbdsl.callbacks import _checked
    from cbdsl.conformance.runner import run_trace
    from cbdsl.conformance.specs import SPECS

    built: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        built.append(SPECS[case["spec"]].cbdsl()(**kwargs))
        return built[-1]

    run_trace(case, factory)
    program = _checked(case["spec"]).program
    covered: set[str] = set()
    fired = {f.rule for cb in built for f in getattr(cb, "timeline", [])}
    for item in _walk(program):
        if isinstance(item, nodes.CallbackDef):
            covered.add("syntax:callback_def")
            for part in (*item.params, *(b for b in item.body if not isinstance(b, nodes.Rule))):
                covered |= features(part)
        elif isinstance(item, nodes.Rule):
            label = item.label.name if item.label else f"rule@{item.span.line}"
            if label in fired:
                covered |= features(item)
    return covered


def matrix(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The coverage matrix of `cases` (loaded case files), rows features, columns cases.

    Returns:
        `{"how", "features", "cases", "matrix", "covered_by", "uncovered"}`: `matrix[i][j]`
        is 1 when case `j` covers feature `i`; `covered_by` maps each feature to its cases;
        `uncovered` lists the features no case covers.
    """
    names = [f"{c['spec']}/{c['name']}" for c in cases]
    sets = [language_case(c) if c["spec"] == "language" else runtime_case(c) for c in cases]
    all_features = universe()
    all_features += sorted(set().union(*sets) - set(all_features))
    grid = [[int(f in s) for s in sets] for f in all_features]
    covered_by = {f: [n for n, s in zip(names, sets, strict=True) if f in s]
                  for f in all_features}
    return {"how": HOW, "features": all_features, "cases": names, "matrix": grid,
            "covered_by": covered_by,
            "uncovered": [f for f in all_features if not covered_by[f]]}
