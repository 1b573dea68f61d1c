"""Functions as data: one object per safe built-in function, read by every stage.

Each entry gives the function's signature (argument types, how many are optional, whether
the last repeats), its result type, its implementation (none for the few that read the
event: the compiler gives those their context), its one-line meaning, and how
`cbdsl explain --python` writes a call of it. The checker types calls from here, the
compiler runs them from here, `explain` and `cbdsl list` describe them from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cbdsl.language import types
from cbdsl.language.types import type_of_value


@dataclass(frozen=True)
class Arg:
    """One argument of a function: its type and, where the plain word misleads, how to ask.

    Attributes:
        type: `number`, `str`, `numeric` (a number, or a string that writes one: `"3"`),
            `table`, `iterable` (a table, a list or none), `sized` (a
            table, a list, a string or none), or `any`.
        needs: how an error names what was due (`numbers`, `a table first`).
        hint: a hint for the error, when one helps.
    """

    type: str
    needs: str = ""
    hint: str | None = None


# The inferred types each argument type accepts ("any": a value only the run knows).
ARG_ACCEPTS: dict[str, frozenset[str]] = {
    "number": frozenset({"int", "float", "number", "any"}),
    "str": frozenset({"str", "any"}),
    "numeric": frozenset({"int", "float", "number", "str", "any"}),
    "table": frozenset({"table", "any"}),
    "iterable": frozenset({"table", "list", "none", "any"}),
    "sized": frozenset({"table", "list", "str", "none", "any"}),
    "any": frozenset({"int", "float", "number", "str", "bool", "table", "list", "none", "any"}),
}
_NEEDS = {"number": "numbers", "str": "strings", "numeric": "a number or a string of one",
          "table": "a table", "iterable": "a table or a list",
          "sized": "a list, a table or a string", "any": ""}


@dataclass(frozen=True)
class Function:
    """A safe built-in function.

    Attributes:
        name: as written in rule files.
        args: the positional arguments, in order.
        result: the type of the result: `int`, `float`, `number`, `bool`, `str`, `table`,
            `list` or `any`.
        doc: what it returns, in one sentence.
        impl: the pure implementation; None for a function that reads the event (`metric`,
            `has`, `fill`), which the compiler builds with the event's context.
        optional: how many of the trailing `args` may be left out.
        variadic: whether the last argument may repeat (`max(a, b, c)`).
        python: how `explain --python` writes a call: a format string over the arguments'
            code (`{0}`; `{0:atom}` where it must bind as an atom, a method's receiver;
            `{0:ternary+}` inside a conditional; `{args}` all of them joined, `{rest}` all
            but the first), or None where the Python writer has a method of its own
            (`call_NAME`) or refuses the function (E601).
        python_imports: modules the written call needs (`math`, `numpy`, `json`, ...).
        python_helpers: helper functions the written module needs (`piecewise`).
        python_precedence: the precedence of the written call when it is not an atom
            (`ternary`).
        result_of: the result's type from the arguments' types, where it depends on them
            (`keys` of a `table[str, float]` is a `list[str]`); else `result` is the type.
    """

    name: str
    args: tuple[Arg, ...]
    result: str
    doc: str
    impl: Callable[..., Any] | None = None
    optional: int = 0
    variadic: bool = False
    python: str | None = None
    python_imports: tuple[str, ...] = ()
    python_helpers: tuple[str, ...] = ()
    python_precedence: str | None = None
    result_of: Callable[[tuple[str, ...]], str] | None = None

    def result_type(self, args: tuple[str, ...]) -> str:
        """The type of a call's result, given its arguments' types (the plain result for a
        call of the wrong arity, which the checker refuses on its own)."""
        fits = self.min_args <= len(args) and (self.max_args is None or len(args) <= self.max_args)
        return self.result_of(args) if self.result_of is not None and fits else self.result

    @property
    def reads_event(self) -> bool:
        """Whether a call needs the event's context (logs, fields): no pure implementation."""
        return self.impl is None

    @property
    def min_args(self) -> int:
        return len(self.args) - self.optional

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.args)

    def arg(self, index: int) -> Arg:
        """The argument at `index` (the last one again for a repeating argument)."""
        return self.args[min(index, len(self.args) - 1)]

    def needs(self, index: int) -> str:
        """How an error names what argument `index` takes."""
        arg = self.arg(index)
        return arg.needs or _NEEDS[arg.type]

    def signature(self) -> str:
        names = [f"{a.type}" for a in self.args]
        if self.optional:
            names[-self.optional:] = [f"[{x}]" for x in names[-self.optional:]]
        if self.variadic:
            names[-1] += ", ..."
        return f"{self.name}({', '.join(names)}) -> {self.result}"


def _lookup(table: dict, key: Any, default: Any = None) -> Any:
    return table.get(key, default)


def _piecewise(table: dict, x: float, default: Any = None) -> Any:
    # the value of the largest key not above x: a step schedule
    best = None
    for key in sorted(table):
        if key <= x:
            best = key
    return default if best is None else table[best]


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _file_empty(path: str) -> bool:
    # as Keras's CSVLogger reads an existing file in append mode: its first line
    import os

    if not os.path.exists(path):
        return True
    with open(path) as f:
        return not f.readline()


def _item(value: Any) -> Any:
    import numpy as np

    return value.item() if isinstance(value, np.ndarray | np.generic) else value


def _endswith(text: str, suffix: str) -> bool:
    if not isinstance(text, str) or not isinstance(suffix, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(suffix)}")
    return text.endswith(suffix)


def _format(value: Any, spec: str) -> str:
    if not isinstance(spec, str):
        raise ValueError(f"the format spec must be a string, got {type_of_value(spec)}")
    try:
        return format(value, spec)
    except TypeError as exc:  # a spec the value's type does not take
        raise ValueError(str(exc)) from None


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _profiler_available() -> bool:
    # as Keras's TensorBoard decides: TensorFlow, or JAX on Python 3.12 or later
    import sys

    backend = _backend()
    return backend == "tensorflow" or (backend == "jax" and sys.version_info >= (3, 12))


def _now() -> float:
    import time

    return time.time()


def _path(*parts: Any) -> str:
    import os

    if not all(isinstance(p, str) for p in parts):
        raise ValueError("needs strings, got " + ", ".join(type_of_value(p) for p in parts))
    return os.path.join(*parts)


def _split(text: str, separator: str) -> list[str]:
    if not isinstance(text, str) or not isinstance(separator, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(separator)}")
    return text.split(separator)


def _removeprefix(text: str, prefix: str) -> str:
    if not isinstance(text, str) or not isinstance(prefix, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(prefix)}")
    return text.removeprefix(prefix)


def _len(value: Any) -> int:
    if not isinstance(value, str | list | tuple | dict):
        raise ValueError(f"needs a list, a table or a string, got {type_of_value(value)}")
    return len(value)


def _round(x: float, ndigits: Any = None) -> float:
    if ndigits is None:
        return round(x)
    if isinstance(ndigits, float) and ndigits.is_integer():
        ndigits = int(ndigits)
    if not isinstance(ndigits, int) or isinstance(ndigits, bool):
        raise ValueError(f"the number of digits must be an integer, got {ndigits!r}")
    return round(x, ndigits)


def _min(*values: Any) -> Any:
    # one argument is its own smallest, as in `min(a, b)` with more (Python's min(x) would
    # iterate x)
    return min(values)


def _max(*values: Any) -> Any:
    return max(values)


def _startswith(text: str, prefix: str) -> bool:
    if not isinstance(text, str) or not isinstance(prefix, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(prefix)}")
    return text.startswith(prefix)



_N, _S, _A = Arg("number"), Arg("str"), Arg("any")


def _found(args: tuple[str, ...]) -> str:
    """`lookup` and `piecewise`: a value of the table, the default's, or none without one."""
    if types.base_type(args[0]) != "table":
        return "any"  # not known to be a table: what the run gives, checked there
    value = types.contents(args[0])[1]
    if len(args) > 2:
        return types.join(value, args[2])
    return "any?" if value in ("any", "nothing") else types.optional(value)


def _items(args: tuple[str, ...]) -> str:
    """`keys` and `sorted`: a table's keys or a list's items, as a list."""
    return types.list_of(types.contents(args[0])[0] if args else "any")

_TABLE_FIRST = Arg("table", "a table first", "a table is written {3: 0.05, 6: 0.01}")
_NUMERIC = Arg("numeric")
_METRIC_NAME = Arg("str", "a metric name (a string)")


def _math(name: str, arity: int, doc: str, impl: Callable[..., Any], result: str = "number",
          optional: int = 0) -> Function:
    return Function(name, (_N,) * arity, result, doc, impl, optional,
                    python=f"math.{name}({{args}})", python_imports=("math",))


def _own(name: str, args: tuple[Arg, ...], result: str, doc: str, impl: Callable[..., Any],
         optional: int = 0, variadic: bool = False) -> Function:
    """A function that Python has under the same name."""
    return Function(name, args, result, doc, impl, optional, variadic, python=f"{name}({{args}})")


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        _own("min", (_N,), "number", "the smallest argument", _min, variadic=True),
        _own("max", (_N,), "number", "the largest argument", _max, variadic=True),
        _own("abs", (_N,), "number", "absolute value", abs),
        _math("exp", 1, "e to the power x", math.exp),
        _math("log", 2, "natural logarithm, or log(x, base)", math.log, optional=1),
        _math("sqrt", 1, "square root", math.sqrt),
        _math("floor", 1, "largest integer not above x", math.floor, result="int"),
        _math("ceil", 1, "smallest integer not below x", math.ceil, result="int"),
        _own("round", (_N, _N), "number", "round to an integer, or to n digits", _round,
             optional=1),
        _math("cos", 1, "cosine (radians)", math.cos),
        _math("sin", 1, "sine (radians)", math.sin),
        _math("tanh", 1, "hyperbolic tangent", math.tanh),
        _math("pow", 2, "x to the power y", math.pow),
        Function("clip", (_N, _N, _N), "number", "x limited to [lo, hi]",
                 lambda x, lo, hi: min(max(x, lo), hi), python="min(max({0}, {1}), {2})"),
        _own("float", (_NUMERIC,), "number", "as a float (of a number, or of a string that "
             "writes one)", float),
        Function("float32", (_N,), "number",
                 "rounded to the nearest float32, as the optimizer stores the learning rate",
                 lambda x: float(np.float32(x)), python="float(np.float32({0}))",
                 python_imports=("numpy",)),
        _own("int", (_NUMERIC,), "int", "truncated to an integer (of a number), or the integer "
             "a string writes (\"3\")", int),
        Function("lookup", (_TABLE_FIRST, _A, _A), "any",
                 "table[key], or the default when key is absent", _lookup, optional=1,
                 python="{0:atom}.get({rest})", result_of=_found),
        Function("piecewise", (_TABLE_FIRST, _A, _A), "any",
                 "the value of the largest key not above x (a step schedule)", _piecewise,
                 optional=1, python="piecewise({args})", python_helpers=("piecewise",),
                 result_of=_found),
        Function("metric", (_METRIC_NAME,), "any", "the log value named by a string"),
        Function("json", (_A,), "str", "the value as JSON text (Python's json.dumps)", _json,
                 python="json.dumps({0})", python_imports=("json",)),
        Function("keys", (Arg("iterable"),), "list", "the keys of a table, as a list",
                 lambda t: list(t or ()), result_of=_items),
        Function("item", (_A,), "any", "a NumPy scalar or one-item array as a Python value "
                 "(`.item()`, as Keras's RemoteMonitor sends logs); anything else as it is",
                 _item, python="{0:atom}.item() if isinstance({0}, np.ndarray | np.generic) "
                 "else {0:ternary+}", python_imports=("numpy",), python_precedence="ternary"),
        Function("has", (_METRIC_NAME,), "bool", "whether the logs hold the named metric"),
        Function("sorted", (Arg("iterable"),), "list",
                 "the items of a list (or a table's keys), sorted", sorted, result_of=_items),
        Function("startswith", (_S, _S), "bool", "whether a string starts with another",
                 _startswith, python="{0:atom}.startswith({1})"),
        Function("file_empty", (_S,), "bool",
                 "whether no file is at a path or the file there holds no text", _file_empty,
                 python="file_empty({0})", python_helpers=("file_empty",)),
        Function("endswith", (_S, _S), "bool", "whether a string ends with another",
                 _endswith),
        Function("type", (_A,), "str",
                 "the type of a value as parameters name it: int, float, str, bool, table, "
                 "none (a list is list)", lambda value: type_of_value(value)),
        Function("format", (_A, Arg("str", "a format spec (a string)")), "str",
                 "a value as text by a format spec, as Python's format(x, \".5f\")", _format),
        Function("backend", (), "str", "the Keras backend: tensorflow, jax, torch or numpy",
                 _backend, python="keras.backend.backend()"),
        Function("profiler_available", (), "bool",
                 "whether Keras's TensorBoard can profile here: on TensorFlow, or on JAX with "
                 "Python 3.12 or later", _profiler_available,
                 python='(keras.backend.backend() == "tensorflow" or (keras.backend.backend() '
                        '== "jax" and sys.version_info >= (3, 12)))', python_imports=("sys",)),
        Function("now", (), "number", "the wall-clock time in seconds (Python's time.time())",
                 _now, python="time.time()", python_imports=("time",)),
        Function("path", (_S,), "str", "strings joined as a file path (os.path.join)", _path,
                 variadic=True, python="os.path.join({args})", python_imports=("os",)),
        Function("split", (_S, _S), "list[str]", "a string cut at each separator, as a list",
                 _split, python="{0:atom}.split({1})"),
        Function("removeprefix", (_S, _S), "str",
                 "a string without the prefix it starts with (as it is when it does not)",
                 _removeprefix, python="{0:atom}.removeprefix({1})"),
        Function("len", (Arg("sized"),), "int", "the number of items of a list or table, or "
                 "of characters of a string", _len, python="len({0})"),
        Function("fill", (_S,), "str", "a template's fields filled in, as `print` and `save` "
                 "fill theirs (1-based {epoch} and {batch}, metrics, parameters)"),
    ]
}
