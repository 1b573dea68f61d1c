"""What a definition's expressions read and hold: log metrics, the learning rate, None."""

from __future__ import annotations

from cbdsl import language
from cbdsl.checker.templates import template_fields
from cbdsl.checker.trackers import trackers_of
from cbdsl.pythonize.code import py_str
from cbdsl.pythonize.names import RESERVED_LOCALS, Scope, identifier
from cbdsl.pythonize.tree import action_exprs, children
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk


class Analysis:
    """Questions the writer asks before it writes: which metrics an expression reads from the
    logs (and whether on every path), whether it reads the learning rate, and what kind of
    value (a table, a list, a string, maybe None) it holds.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def key_code(self, key: str, scope: Scope) -> str:
        if key.startswith("@"):
            return key[1:] if scope.quote == '"' else key[1:].replace('"', "'")
        return py_str(key, scope.quote)

    def metric_local(self, key: str, scope: Scope) -> str:
        taken = {*RESERVED_LOCALS, *scope.metric_locals.values(), *scope.locals.values()}
        if key.startswith("@"):
            return identifier("current", taken)
        return identifier(key, taken)

    def metric_key(self, node: n.Node, scope: Scope) -> str | None:
        """The read a node makes of the logs, as a key (`val_loss`, `@self.monitor`), or None."""
        if isinstance(node, n.Name):
            if self.is_metric_name(node.id, scope):
                return node.id
            return None
        if isinstance(node, n.Call) and node.func.name == "metric" and \
                node.func.name not in self.params:
            arg = node.args[0]
            if isinstance(arg, n.String):
                return arg.value
            return "@" + self.expr(arg, scope.inner(quote='"')).text
        return None

    def is_metric_name(self, name: str, scope: Scope) -> bool:
        return not (name in scope.locals or name in self.params or name in self.variables
                    or name in language.BUILTIN_NAMES)

    def metric_reads(self, expr: n.Expr | None, scope: Scope) -> tuple[list[str], list[n.Node]]:
        """The metrics `expr` reads on every evaluation (in order), and the reads that happen
        only on some paths without a `has(...)` guard."""
        always: list[str] = []
        sometimes: list[n.Node] = []

        def has_keys(e, positive: bool) -> set[str]:
            if positive and isinstance(e, n.Call) and e.func.name == "has":
                return {self.has_key(e, scope)}
            if positive and isinstance(e, n.BoolOp) and e.op == "and":
                return has_keys(e.left, True) | has_keys(e.right, True)
            if not positive and isinstance(e, n.Unary) and e.op == "not":
                return has_keys(e.operand, True)
            if not positive and isinstance(e, n.BoolOp) and e.op == "or":
                return has_keys(e.left, False) | has_keys(e.right, False)
            return set()

        def visit(e, conditional: bool, guards: frozenset[str]) -> None:
            # dispatches on every expression kind that holds others
            if e is None:
                return
            key = self.metric_key(e, scope)
            if key is not None:
                if key in guards:
                    pass
                elif conditional:
                    sometimes.append(e)
                elif key not in always:
                    always.append(key)
                if isinstance(e, n.Call):
                    for arg in e.args:
                        visit(arg, conditional, guards)
                return
            if isinstance(e, n.BoolOp):
                visit(e.left, conditional, guards)
                visit(e.right, True, guards | has_keys(e.left, e.op == "and"))
            elif isinstance(e, n.Conditional):
                visit(e.cond, conditional, guards)
                visit(e.then, True, guards | has_keys(e.cond, True))
                visit(e.orelse, True, guards | has_keys(e.cond, False))
            elif isinstance(e, n.Compare):
                visit(e.first, conditional, guards)
                for i, (_, right) in enumerate(e.rest):
                    visit(right, conditional or i > 0, guards)
            elif isinstance(e, n.Stalls | n.Improves):
                return  # its subject is read before the condition
            elif isinstance(e, n.Unary):
                visit(e.operand, conditional, guards)
            elif isinstance(e, n.BinOp):
                visit(e.left, conditional, guards)
                visit(e.right, conditional, guards)
            elif isinstance(e, n.Call):
                for arg in (*e.args, *(k.value for k in e.keywords)):
                    visit(arg, conditional, guards)
            elif isinstance(e, n.Table):
                for k, v in e.entries:
                    visit(k, conditional, guards)
                    visit(v, conditional, guards)
            elif isinstance(e, n.Index):
                visit(e.value, conditional, guards)
                visit(e.key, conditional, guards)
            elif isinstance(e, n.IsNan | n.IsFinite):
                visit(e.subject, conditional, guards)

        visit(expr, False, scope.guards)
        return always, sometimes

    def has_key(self, call: n.Call, scope: Scope) -> str:
        arg = call.args[0]
        if isinstance(arg, n.String):
            return arg.value
        return "@" + self.expr(arg, scope.inner(quote='"')).text

    def raw_metric_keys(self, rule: n.Rule, scope: Scope) -> set[str]:
        """Metrics a rule reads as logged (not as its trackers' float values): in its
        condition outside the trackers' subjects, and in its actions."""
        keys: set[str] = set()
        stack = [rule.condition]
        while stack:
            node = stack.pop()
            if node is None or isinstance(node, n.Stalls | n.Improves):
                continue
            key = self.metric_key(node, scope)
            if key is not None:
                keys.add(key)
            stack += children(node)
        for expr in action_exprs(rule.actions):
            for node in walk(expr):
                key = self.metric_key(node, scope)
                if key is not None:
                    keys.add(key)
                if isinstance(node, n.String):
                    keys |= set(template_fields(node.value))
        return keys

    def reads_logs(self, expr: n.Expr, scope: Scope) -> bool:
        """Whether an argument of a Python hook reads the logs other than passing them."""
        return any(self.metric_key(node, scope) is not None or (
            isinstance(node, n.Call) and node.func.name == "has") for node in walk(expr))

    def reads_lr_in(self, expr) -> bool:
        for node in walk(expr):
            if isinstance(node, n.Name) and node.id in ("lr", "learning_rate") and \
                    node.id not in self.params and node.id not in self.variables:
                return True
            if isinstance(node, n.String) and any(
                    f in ("lr", "learning_rate") and f not in self.params and
                    f not in self.variables for f in template_fields(node.value)):
                return True
        return False

    def reads_lr(self, rule: n.Rule) -> bool:
        if self.reads_lr_in(rule.condition) or any(self.reads_lr_in(t.subject)
                                                   for t in trackers_of(rule)):
            return True
        return any(self.reads_lr_in(e) for e in action_exprs(rule.actions)) or any(
            isinstance(a, n.Assign) and a.op != "=" for a in flat_actions(rule.actions))

    def iterable_kind(self, expr: n.Expr) -> str | None:
        if isinstance(expr, n.Table):
            return "dict"
        if isinstance(expr, n.Call) and expr.func.name in ("keys", "sorted"):
            return "list"
        if isinstance(expr, n.Name):
            if expr.id in self.params:
                return "dict" if self.params[expr.id].type == "table" else None
            if expr.id in self.variables:
                value = self.variables[expr.id].value
                if isinstance(value, n.Table):
                    return "dict"
                if isinstance(value, n.Call) and value.func.name == "keys":
                    return "list"
                return None
            if expr.id == "logs":
                return "dict"
            if expr.id == "metrics":
                return "list"
        return None

    def may_be_none(self, expr: n.Expr) -> bool:
        """Whether a value may be None at run time (then `<` and `in` need a guard)."""
        if isinstance(expr, n.NoneLit):
            return True
        if isinstance(expr, n.Attribute):
            return expr.attr.name in ("best", "value")
        if isinstance(expr, n.Name):
            if expr.id in self.params:
                info = self.params[expr.id]
                return info.default is None or info.type in ("python", "schedule", "none")
            if expr.id in self.variables:
                var = self.variables[expr.id]
                if isinstance(var.value, n.NoneLit):
                    return True
                return any(isinstance(a, n.Set) and a.var.name == expr.id and isinstance(
                    a.value, n.NoneLit) for _, r in self.rules for a in flat_actions(r.actions))
            return expr.id in ("steps", "metrics")
        return isinstance(expr, n.Call) and expr.func.name in ("lookup", "piecewise")

    def is_str(self, expr: n.Expr) -> bool:
        if isinstance(expr, n.String):
            return True
        if isinstance(expr, n.Call) and expr.func.name == "json":
            return True
        if isinstance(expr, n.Name) and expr.id in self.params:
            return self.params[expr.id].type == "str"
        return False
