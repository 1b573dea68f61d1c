"""Scopes and types: what each name means inside one definition, and the type of each expression."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cbdsl import language
from cbdsl.checker.definitions import (
    Definition,
)
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

if TYPE_CHECKING:
    from cbdsl.checker.program import Checker


class Scope:
    """What names mean inside one definition: parameters, variables, trackers."""

    def __init__(self, definition: Definition, checker: Checker | None):
        self.definition = definition
        self.params = definition.params
        self.variables: dict[str, str] = {}
        self.trackers: dict[str, n.Stalls | n.Improves] = {}
        self.locals: set[str] = set()  # the names a `for` binds, while its body is checked

    def collect_trackers(self, rule: n.Rule, checker: Checker) -> None:
        for node in walk(rule.condition):
            if isinstance(node, n.Stalls | n.Improves) and node.alias is not None:
                name = node.alias.name
                if name in self.trackers or name in self.params or name in self.variables:
                    checker.report("E209", f"'{name}' is already defined", node.alias.span,
                                   checker.origin(rule, self.definition))
                else:
                    self.trackers[name] = node

    def infer(self, expr: n.Expr, checker: Checker, event: language.Event | None) -> str:
        """The type of `expr`: int, float, number, bool, str, table, none or any."""
        t = type(expr)
        if t is n.Number:
            return "int" if isinstance(expr.value, int) else "float"
        if t is n.String:
            return "str"
        if t is n.Bool:
            return "bool"
        if t is n.NoneLit:
            return "none"
        if t is n.Table:
            return "table"
        if t is n.Name:
            if expr.id in self.locals:
                return "any"
            if expr.id in self.params:
                return self.params[expr.id].type
            if expr.id in self.variables:
                return self.variables[expr.id]
            if expr.id in ("epoch", "batch", "step", "epochs", "verbose", "iterations"):
                return "int"
            if expr.id == "logs":
                return "table"
            return "any" if expr.id in ("steps", "metrics", "available", "missing") \
                else "number"
        if t is n.Attribute:
            return "any" if expr.attr.name == "best" else "number"
        if t in (n.Compare, n.BoolOp, n.Stalls, n.Improves, n.IsNan, n.IsFinite):
            return "bool"
        if t is n.Unary:
            return "bool" if expr.op == "not" else self.infer(expr.operand, checker, event)
        if t is n.BinOp:
            left = self.infer(expr.left, checker, event)
            right = self.infer(expr.right, checker, event)
            if expr.op == "+" and "str" in (left, right) and {left, right} <= {"str", "any"}:
                return "str"  # a string joined with a string, or with what may be one
            if left == right == "int" and expr.op in ("+", "-", "*", "//", "%", "**"):
                return "int"
            return "number"
        if t is n.Conditional:
            a, b = self.infer(expr.then, checker, event), self.infer(expr.orelse, checker, event)
            return a if a == b else "any"
        if t is n.Call:
            function = language.FUNCTIONS.get(expr.func.name)
            if function is None or expr.func.name in self.params:  # a Python hook or schedule
                return "number"
            return function.result
        return "any"
