"""Constants, in the language's two senses, each defined once here.

A value *known at check time* (`const_value`): literals, tables of them, `inf`, and the
defaults of parameters; `cbdsl check` reads these (patience, priorities, modes). An expression
*known before training* (`training_only` finds none in it): anything computed from parameters
and constants, functions included, which the compiler evaluates when it builds a callback
(state variables' initial values, filter counts, tracker options, `use` arguments); the
checker refuses, with E219, what only a training run can give.
"""

from __future__ import annotations

from typing import Any

from cbdsl import language
from cbdsl.checker.definitions import (
    INVALID,
    REQUIRED,
    ParamInfo,
)
from cbdsl.diagnostics import Span
from cbdsl.language import values
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk


class NotConstant(Exception):
    def __init__(self, span: Span):
        self.span = span


def const_value(expr: n.Expr | None, params: dict[str, ParamInfo] | None = None) -> Any:
    """The value of a constant expression (literals, tables, params' defaults), else NotConstant."""
    t = type(expr)
    if t in (n.Number, n.String, n.Bool):
        return expr.value
    if t is n.NoneLit:
        return None
    if t is n.Name and expr.id == "inf":
        return float("inf")
    if t is n.Name and params and expr.id in params and \
            params[expr.id].default is not REQUIRED and params[expr.id].default is not INVALID:
        return params[expr.id].default
    if t is n.Unary and expr.op in "+-":
        value = const_value(expr.operand, params)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if expr.op == "-" else value
    if t is n.Table:
        table = {}
        for k, v in expr.entries:
            key = const_value(k, params)
            if isinstance(key, dict):  # a table is no key
                raise NotConstant(k.span)
            table[key] = const_value(v, params)
        return table
    raise NotConstant(expr.span if expr is not None else Span(0, 0, 0, 0))


UNKNOWN = object()  # what `folded` gives for an expression the check cannot compute


def folded(expr: n.Expr | None, params: dict[str, ParamInfo] | None = None) -> Any:
    """The value of an expression of constants and arithmetic on them, computed as the run
    computes it (within the language's bounds), else UNKNOWN."""
    if isinstance(expr, n.BinOp):
        left, right = folded(expr.left, params), folded(expr.right, params)
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        try:
            return values.arithmetic(expr.op, left, right)
        except ValueError:
            return UNKNOWN
    if isinstance(expr, n.Unary) and expr.op == "-":
        operand = folded(expr.operand, params)
        return -operand if values.is_number(operand) else UNKNOWN
    try:
        return const_value(expr, params)
    except NotConstant:
        return UNKNOWN


# Functions whose value depends on the machine or the moment: never computed at check time.
ENVIRONMENT = frozenset({"backend", "profiler_available", "now", "file_empty"})


def evaluate(expr: n.Expr | None, bound: dict[str, Any]) -> Any:
    """The value of an expression of constants and the `bound` parameter values, computed as
    the run computes it (`require` conditions at a `use` line), else UNKNOWN: a parameter not
    bound, a function of the machine (`backend()`), or a value outside a function's domain."""
    t = type(expr)
    if t in (n.Number, n.String, n.Bool):
        return expr.value
    if t is n.NoneLit:
        return None
    if t is n.Name:
        if expr.id in bound:
            return bound[expr.id]
        return float("inf") if expr.id == "inf" else UNKNOWN
    if t is n.Table:
        table = {}
        for k, v in expr.entries:
            key, value = evaluate(k, bound), evaluate(v, bound)
            if key is UNKNOWN or value is UNKNOWN or isinstance(key, dict | list):
                return UNKNOWN
            table[key] = value
        return table
    if t is n.Unary:
        operand = evaluate(expr.operand, bound)
        if operand is UNKNOWN:
            return UNKNOWN
        if expr.op == "not":
            return not operand
        return _or_unknown(values.negate, operand) if expr.op == "-" else operand
    if t is n.BinOp:
        left, right = evaluate(expr.left, bound), evaluate(expr.right, bound)
        if left is UNKNOWN or right is UNKNOWN:
            return UNKNOWN
        return _or_unknown(values.arithmetic, expr.op, left, right)
    if t is n.BoolOp:
        left = evaluate(expr.left, bound)
        if left is UNKNOWN or (expr.op == "and" and not left) or (expr.op == "or" and left):
            return left if left is UNKNOWN else bool(left)
        right = evaluate(expr.right, bound)
        return right if right is UNKNOWN else bool(right)
    if t is n.Conditional:
        cond = evaluate(expr.cond, bound)
        if cond is UNKNOWN:
            return UNKNOWN
        return evaluate(expr.then if cond else expr.orelse, bound)
    if t is n.Compare:
        left = evaluate(expr.first, bound)
        for op, node in expr.rest:
            right = evaluate(node, bound)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            held = _or_unknown(values.compare, op, left, right)
            if held is UNKNOWN or not held:
                return held
            left = right
        return True
    if t is n.Call:
        function = language.FUNCTIONS.get(expr.func.name)
        if function is None or function.reads_event or expr.func.name in ENVIRONMENT \
                or expr.func.name in bound or expr.keywords:
            return UNKNOWN
        args = [evaluate(a, bound) for a in expr.args]
        if any(a is UNKNOWN for a in args) or not all(
                values.matches(function.arg(i).type, a) for i, a in enumerate(args)):
            return UNKNOWN
        return _or_unknown(function.impl, *args)
    return UNKNOWN


def _or_unknown(fn, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # outside the domain: the run reports it, with its values
        return UNKNOWN


def _const_ok(expr, params) -> bool:
    try:
        const_value(expr, params)
    except NotConstant:
        return False
    return True


def training_only(expr: n.Expr | None, params: dict[str, ParamInfo]) -> n.Node | None:
    """The first node of `expr` that only a training run gives a value: a log metric or
    counter, a tracker, a function of the event, a schedule; None when the whole expression
    is known once the callback is built (from constants and parameters)."""
    for node in walk(expr):
        if isinstance(node, n.Name) and node.id not in params and node.id != "inf":
            return node
        if isinstance(node, n.Attribute | n.Stalls | n.Improves):
            return node
        if isinstance(node, n.Call):
            info = params.get(node.func.name)
            if info is not None:
                if info.type == "schedule":  # called with the event's epoch and rate
                    return node
                continue
            function = language.FUNCTIONS.get(node.func.name)
            if function is not None and function.reads_event:
                return node
    return None
