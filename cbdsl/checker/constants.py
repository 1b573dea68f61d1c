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
