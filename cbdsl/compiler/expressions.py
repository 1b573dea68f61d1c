"""Expressions to closures over the event's context; nothing is ever `eval`-ed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from cbdsl import language, runtime
from cbdsl.checker.templates import template_fields, template_problem
from cbdsl.compiler.schedule import parse_schedule
from cbdsl.diagnostics import (
    CbdslError,
    CbdslRuntimeError,
    Diagnostic,
    keras_worded,
)
from cbdsl.language import values
from cbdsl.runtime.rules import Context, Fn, _short
from cbdsl.runtime.state import MissingMetric, TrackerState
from cbdsl.syntax import nodes as n


class ExprCompiler:
    """Turns expression nodes into closures over a `Context`; nothing is ever `eval`-ed."""

    def __init__(self, params: dict[str, Any], variables: set[str], trackers: dict[int, str],
                 where: str = "", schedules: frozenset[str] = frozenset(),
                 local_names: frozenset[str] = frozenset(),
                 origin: tuple[str, str | None] = ("<string>", None)):
        self.params, self.variables, self.trackers, self.where = params, variables, trackers, where
        self.schedules = schedules  # parameters of type `schedule`: Keras's calling convention
        self.local_names = local_names  # names bound by enclosing `for` loops
        self.origin = origin  # the file the expressions are written in, and its text
        # a template field's value at an event, as `print` fills it (set by the rule's compiler)
        self.fields: Callable[[str, Context], Any] | None = None

    def inner(self, names: Iterable[str]) -> ExprCompiler:
        """The compiler for a loop's body: the same scope plus the loop's names."""
        inner = ExprCompiler(self.params, self.variables, self.trackers, self.where,
                             self.schedules, self.local_names | frozenset(names), self.origin)
        inner.fields = self.fields
        return inner

    def error(self, node: n.Node, message: str, code: str = "E221",
              like: type[Exception] | None = None) -> CbdslRuntimeError:
        """A run-time error at `node`: `path:line:col`, the rule, and the values involved.

        `like`: the Python error Keras's class raises in the same place (`TypeError`); the
        error is one too, with `message` alone as its text, as Keras words it."""
        path, source = self.origin
        if like is not None:
            return keras_worded(like)(Diagnostic(code, message, node.span, path, source,
                                                 hint=self.where))
        return CbdslRuntimeError(Diagnostic(code, f"{self.where}: {message}", node.span, path,
                                            source))

    def compile(self, expr: n.Expr) -> Fn:
        return getattr(self, f"visit_{type(expr).__name__}")(expr)

    def visit_Number(self, node: n.Number) -> Fn:
        value = node.value
        return lambda c: value

    visit_String = visit_Bool = visit_Number

    def visit_NoneLit(self, node: n.NoneLit) -> Fn:
        return lambda c: None

    def visit_Table(self, node: n.Table) -> Fn:
        pairs = [(self.compile(k), self.compile(v)) for k, v in node.entries]
        return lambda c: {k(c): v(c) for k, v in pairs}

    def visit_Name(self, node: n.Name) -> Fn:
        name = node.id
        if name in self.local_names:
            return lambda c: c.locals[name]
        if name in self.params:
            value = self.params[name]
            return lambda c: value
        if name in self.variables:
            return lambda c: c.cb.state.variables[name]
        return name_reader(name)

    def visit_Index(self, node: n.Index) -> Fn:
        value, key = self.compile(node.value), self.compile(node.key)

        def index(c):
            container, k = value(c), key(c)
            if isinstance(container, list | tuple | str) and not (
                    values.is_number(k) and float(k).is_integer()):
                raise self.error(node, f"a list is indexed by an integer, got {_short(k)}")
            try:
                return container[int(k) if isinstance(container, list | tuple | str) else k]
            except (KeyError, IndexError, TypeError, ValueError, OverflowError):
                raise self.error(node, f"no entry {_short(k)} in {_short(container)}") \
                    from None
        return index

    def visit_Attribute(self, node: n.Attribute) -> Fn:
        tracker, attr = node.value.name, node.attr.name
        fresh = TrackerState()  # a tracker whose rule is not built (a hook not given) never checks
        return lambda c: getattr(c.cb.state.trackers.get(tracker, fresh), attr)

    def visit_Call(self, node: n.Call) -> Fn:
        name = node.func.name
        args = [self.compile(a) for a in node.args]
        if name in self.params:
            return self.param_call(name, args)
        if name == "metric":
            (arg,) = args
            return lambda c: c.metric(str(arg(c)))
        if name == "has":
            (arg,) = args
            return lambda c: c.logs is not None and c.logs.get(str(arg(c))) is not None
        if name == "fill":
            return self.fill(args[0])
        function = language.FUNCTIONS[name]
        impl, kinds = function.impl, [function.arg(i).type for i in range(len(args))]

        def call(c):
            given = [a(c) for a in args]
            for i, (kind, value) in enumerate(zip(kinds, given, strict=True)):
                if not values.matches(kind, value):
                    raise self.error(node.args[i], f"{name}() needs {function.needs(i)}, got "
                                     f"{values.describe(value)}")
            try:
                return values.check_text(values.bounded(impl(*given)))
            except (CbdslError, MissingMetric):
                raise
            except OSError as exc:  # file_empty() of a folder: Keras's error, as it has it
                raise self.error(node, str(exc), "E406", like=type(exc)) from None
            except Exception as exc:  # a value outside the function's domain: log(-1)
                shown = ", ".join(_short(v) for v in given)
                raise self.error(node, f"{name}({shown}) failed: {exc}") from None
        return call

    def fill(self, arg: Fn) -> Fn:
        """`fill(text)`: the text's template fields filled in at the event, as `print` fills its
        own; a field that is not a plain name or TRACKER.field is refused (E215)."""
        fields, where = self.fields, self.where

        def fill(c):
            if fields is None or c is None:
                raise TypeError("fill() reads the fields of an event")
            text = str(arg(c))
            problem = template_problem(text)
            if problem:
                raise CbdslRuntimeError(Diagnostic("E215", f"{where}: {problem}"))
            values = {name: fields(name, c) for name in template_fields(text)}
            return runtime.render(text, values, where)
        return fill

    def param_call(self, name: str, args: list[Fn]) -> Fn:
        """A call of a `python` or `schedule` parameter: `schedule(epoch, lr)`."""
        value, where = self.params[name], self.where
        if isinstance(value, dict):  # a step schedule: the entry of the largest key not above x
            def table(c):
                x, *rest = [a(c) for a in args]
                return language.FUNCTIONS["piecewise"].impl(value, x, rest[0] if rest else None)
            return table
        if isinstance(value, str):
            expr = parse_schedule(value, f"{where}: {name}")
            body = ExprCompiler({}, set(), {}, where).compile(expr)

            def expression(c):  # `epoch` and `lr` in the text are the call's arguments
                epoch, *lr = [a(c) for a in args]
                bound = Context(c.cb, c.logs, epoch, c.batch)
                if lr:
                    bound._lr = lr[0]
                return body(bound)
            return expression
        if value is None:
            return lambda c: None
        if name in self.schedules:
            return lambda c: runtime.call_schedule(value, [a(c) for a in args], name)
        return lambda c: value(*[a(c) for a in args])  # the caller's own Python function

    def visit_Unary(self, node: n.Unary) -> Fn:
        operand = self.compile(node.operand)
        if node.op == "not":
            return lambda c: not operand(c)
        if node.op == "-":
            def negate(c):
                try:
                    return values.negate(operand(c))
                except ValueError as exc:
                    raise self.error(node, str(exc)) from None
            return negate
        return operand

    def visit_BinOp(self, node: n.BinOp) -> Fn:
        left, right, op = self.compile(node.left), self.compile(node.right), node.op

        def binop(c):
            try:  # x / 0 is NaN, an overflow inf: a rule never ends training on arithmetic
                return values.arithmetic(op, left(c), right(c))
            except ValueError as exc:
                raise self.error(node, str(exc)) from None
        return binop

    def visit_Compare(self, node: n.Compare) -> Fn:
        first = self.compile(node.first)
        rest = [(op, self.compile(e)) for op, e in node.rest]

        def compare(c):
            left = first(c)
            for op, fn in rest:
                right = fn(c)
                try:
                    if not values.compare(op, left, right):
                        return False
                except ValueError as exc:
                    raise self.error(node, str(exc)) from None
                left = right
            return True
        return compare

    def visit_BoolOp(self, node: n.BoolOp) -> Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        if node.op == "and":
            return lambda c: bool(left(c)) and bool(right(c))
        return lambda c: bool(left(c)) or bool(right(c))

    def visit_Conditional(self, node: n.Conditional) -> Fn:
        then, cond, orelse = (self.compile(node.then), self.compile(node.cond),
                              self.compile(node.orelse))
        return lambda c: then(c) if cond(c) else orelse(c)

    def visit_Stalls(self, node: n.Stalls | n.Improves) -> Fn:
        slot = id(node)
        return lambda c: c.results.get(slot, False)

    visit_Improves = visit_Stalls

    def visit_IsNan(self, node: n.IsNan) -> Fn:
        subject, negated = self.compile(node.subject), node.negated
        return lambda c: _isnan(subject(c)) != negated

    def visit_IsFinite(self, node: n.IsFinite) -> Fn:
        subject, negated = self.compile(node.subject), node.negated
        return lambda c: _isfinite(subject(c)) != negated


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _isfinite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False


def name_reader(name: str) -> Fn:
    """A closure reading a built-in name or, for any other name, a log metric."""
    if name == "epoch":
        return lambda c: c.epoch
    if name == "batch":
        return lambda c: c.batch
    if name == "step":
        return lambda c: c.cb.step_index(c.batch)
    if name in ("lr", "learning_rate"):
        return lambda c: c.lr()
    if name in ("epochs", "steps", "verbose"):
        return lambda c: (c.cb.params or {}).get(name)
    if name == "inf":
        return lambda c: math.inf
    if name == "logs":
        return lambda c: c.logs
    if name == "available":
        return lambda c: ",".join(c.logs or {})
    if name == "stopped_epoch":
        return lambda c: c.cb.state.stopped_epoch
    if name == "metrics":
        return lambda c: (c.cb.params or {}).get("metrics")
    if name == "missing":
        return lambda c: c.missing
    if name == "iterations":
        return lambda c: runtime.read_iterations(c.cb.model)
    return lambda c: c.metric(name)
