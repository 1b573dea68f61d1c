"""Comparing two artifacts: where the candidate's differs from Keras's, as lines to read."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterator
from typing import Any

from cbdsl.conformance.artifacts.spec import Artifact

MAX_DIFFERENCES = 8  # a divergence lists at most this many differences


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
