"""Scopes and types: what each name means inside one definition, and the type of each expression."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value, folded
from cbdsl.checker.definitions import Definition
from cbdsl.language import types, values
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import children, walk

if TYPE_CHECKING:
    from cbdsl.checker.program import Checker


class Scope:
    """What names mean inside one definition: parameters, variables, trackers."""

    def __init__(self, definition: Definition, checker: Checker | None):
        self.definition = definition
        self.params = definition.params
        self.variables: dict[str, str] = {}
        self.trackers: dict[str, n.Stalls | n.Improves] = {}
        self.locals: dict[str, str] = {}  # the names a `for` binds, while its body is checked
        self.guards: dict[int, frozenset[str]] = {}  # node id -> names known not to be none

    def collect_trackers(self, rule: n.Rule, checker: Checker) -> None:
        for node in walk(rule.condition):
            if isinstance(node, n.Stalls | n.Improves) and node.alias is not None:
                name = node.alias.name
                if name in self.trackers or name in self.params or name in self.variables:
                    checker.report("E209", f"'{name}' is already defined", node.alias.span,
                                   checker.origin(rule, self.definition))
                else:
                    self.trackers[name] = node

    def infer(self, expr: n.Expr, checker: Checker | None = None,
              event: language.Event | None = None) -> str:
        """The plain kind of `expr`: int, float, number, bool, str, table, list, none or any
        (a value only the run knows); `type_of` gives its full type."""
        return types.base_type(self.type_of(expr))

    def type_of(self, expr: n.Expr | None) -> str:
        """The full type of `expr` (`table[str, float]`, `number?`; see `language.types`), as
        the guards in force where it is written narrow it; `type_<Node>` gives each node's."""
        method = getattr(self, f"type_{type(expr).__name__}", None)
        return method(expr) if method is not None else "any"

    def type_Number(self, expr: n.Number) -> str:
        return "int" if isinstance(expr.value, int) else "float"

    def type_String(self, expr: n.String) -> str:
        return "str"

    def type_Bool(self, expr: n.Bool) -> str:
        return "bool"

    def type_NoneLit(self, expr: n.NoneLit) -> str:
        return "none"

    def type_Table(self, expr: n.Table) -> str:
        key = value = "nothing"
        for k, v in expr.entries:
            key, value = types.join(key, self.type_of(k)), types.join(value, self.type_of(v))
        return types.table_of(key, value)

    def type_Index(self, expr: n.Index) -> str:
        container = types.present(self.type_of(expr.value))
        plain = types.base_type(container)
        if plain == "str":
            return "str"
        if plain == "table":
            return _held(types.contents(container)[1])
        if plain == "list":
            return _held(types.contents(container)[0])
        return "any"

    def type_Name(self, expr: n.Name) -> str:
        if expr.id in self.locals:
            return self.narrowed(expr, expr.id, self.locals[expr.id])
        if expr.id in self.params:
            kind = self.param_type(expr.id)
        elif expr.id in self.variables:
            kind = self.variables[expr.id]
        else:
            return language.BUILTIN_TYPES.get(expr.id, "number")  # else a log metric
        return self.narrowed(expr, expr.id, kind)

    def type_Attribute(self, expr: n.Attribute) -> str:
        kind = language.TRACKER_FIELD_TYPES.get(expr.attr.name, "number")
        return self.narrowed(expr, f"{expr.value.name}.{expr.attr.name}", kind)

    def param_type(self, name: str) -> str:
        """A parameter's type: as declared, and optional where its default is none."""
        info = self.params[name]
        if info.type in ("none", "python", "schedule", "keywords"):
            return "any" if info.type == "none" else info.type
        return types.optional(info.type) if info.default is None else info.type

    def narrowed(self, expr: n.Expr, key: str, kind: str) -> str:
        """`kind`, present where a guard in force at `expr` says it is not none."""
        return types.present(kind) if key in self.guards.get(id(expr), ()) else kind

    def type_Compare(self, expr: n.Expr) -> str:
        return "bool"

    type_BoolOp = type_Stalls = type_Improves = type_IsNan = type_IsFinite = type_Compare

    def type_Unary(self, expr: n.Unary) -> str:
        return "bool" if expr.op == "not" else types.present(self.type_of(expr.operand))

    def type_BinOp(self, expr: n.BinOp) -> str:
        left, right = self.infer(expr.left), self.infer(expr.right)
        if expr.op == "+" and "str" in (left, right) and {left, right} <= {"str", "any"}:
            return "str"  # a string joined with a string, or with what may be one
        if left == right == "int" and expr.op in ("+", "-", "*", "//", "%", "**"):
            return "int"
        return "number"

    def type_Conditional(self, expr: n.Conditional) -> str:
        return types.join(self.type_of(expr.then), self.type_of(expr.orelse))

    def type_Call(self, expr: n.Call) -> str:
        function = language.FUNCTIONS.get(expr.func.name)
        if function is None or expr.func.name in self.params:  # a Python hook or schedule
            return "number"
        result = function.result_type(tuple(self.type_of(arg) for arg in expr.args))
        if expr.func.name == "piecewise" and len(expr.args) == 2 and self._covered(*expr.args):
            return types.present(result)
        return result

    def _covered(self, table: n.Expr, x: n.Expr) -> bool:
        """Whether `piecewise(table, x)` always finds a step: a constant table whose smallest
        key is not above the least `x` can be (a counter is never below 0)."""
        try:
            keys = list(const_value(table, self.params))
        except (NotConstant, TypeError):
            return False
        least = 0 if isinstance(x, n.Name) and x.id in _COUNTERS and x.id not in self.params \
            and x.id not in self.variables else folded(x, self.params)
        return bool(keys) and all(values.is_number(k) for k in keys) and \
            values.is_number(least) and min(keys) <= least

    def loop_types(self, loop: n.For) -> list[str]:
        """The types of the names a `for` binds: a table's keys (and entries), a list's or a
        string's items (with their 0-based positions)."""
        over = types.present(self.type_of(loop.iterable))
        plain = types.base_type(over)
        if plain == "table":
            held = [_held(kind) for kind in types.contents(over)]
        elif plain in ("list", "str"):
            item = _held(types.contents(over)[0]) if plain == "list" else "str"
            held = [item] if len(loop.names) == 1 else ["int", item]
        else:
            held = ["any", "any"]
        return held[:len(loop.names)]

    # -- state variables and guards
    def guard_definition(self, definition: Definition) -> None:
        """Record the guards of every expression of `definition` (see `guard`)."""
        for var in definition.variables:
            self.guard(var.value)
        for exposure in definition.exposures:
            self.guard(exposure.value)
        for rule in definition.rules:
            self.guard(rule.condition)
            facts = self.facts(rule.condition, True)
            for action in rule.actions:
                self.guard(action, facts)
                facts -= _reset(action)  # `set x = ...` may undo a guard on x for the rest

    def type_variables(self, definition: Definition) -> None:
        """Each state variable's type: of its initial value joined with every value a `set`
        gives it (a table's with every key and entry set), until nothing changes."""
        actions = [action for rule in definition.rules for action in rule.actions]
        for _ in range(_ROUNDS):
            if not self._join_sets(actions):
                return
        for name, kind in self.variables.items():  # a type that keeps growing: its kind only
            self.variables[name] = types.base_type(kind)

    def _join_sets(self, nodes: Iterable[n.Node]) -> bool:
        """Join each variable's type with the values the `set`s under `nodes` give it, with
        the names of the loops around each bound; True if a type changed."""
        changed = False
        for node in nodes:
            if isinstance(node, n.For):
                outer = dict(self.locals)
                self.locals.update(zip([i.name for i in node.names], self.loop_types(node),
                                       strict=True))
                try:
                    changed |= self._join_sets(node.actions)
                finally:
                    self.locals = outer
            elif isinstance(node, n.Set) and node.var.name in self.variables:
                old = self.variables[node.var.name]
                new = types.join(old, self._set_type(node, old))
                if new != old:
                    self.variables[node.var.name], changed = new, True
            else:
                changed |= self._join_sets(children(node))
        return changed

    def _set_type(self, action: n.Set, old: str) -> str:
        value = self.type_of(action.value)
        if action.op != "=":
            value = self._updated(old if action.index is None else
                                  types.contents(old)[1] if types.base_type(old) == "table"
                                  else "any", action.op[:-1], value)
        if action.index is None:
            return value
        if types.base_type(old) != "table":
            return old  # an entry of what is not a table: reported by the action's check
        return types.table_of(self.type_of(action.index), value)

    def _updated(self, old: str, op: str, value: str) -> str:
        old, value = types.base_type(old), types.base_type(value)
        if op == "+" and "str" in (old, value):
            return "str"
        return "int" if old == value == "int" and op in ("+", "-", "*", "//", "%", "**") \
            else "number"

    def guard(self, root: n.Node | None, facts: frozenset[str] = frozenset()) -> None:
        """Record the guards in force at each node under `root`: `x != none` on the left of
        `and` holds on its right, in a conditional's `then` and in the rule's actions; a
        tracker's own predicate being true makes its `best` and `value` present."""
        stack = [(root, facts)]
        while stack:
            node, held = stack.pop()
            if node is None:
                continue
            if held:
                self.guards[id(node)] = held
            if isinstance(node, n.BoolOp):
                stack.append((node.left, held))
                stack.append((node.right, held | self.facts(node.left, node.op == "and")))
            elif isinstance(node, n.For):
                stack.append((node.iterable, held))
                stack.append((node.condition, held))
                inside = held | self.facts(node.condition, True)
                for action in node.actions:
                    stack.append((action, inside))
                    inside -= _reset(action)
            elif isinstance(node, n.Conditional):
                stack.append((node.cond, held))
                stack.append((node.then, held | self.facts(node.cond, True)))
                stack.append((node.orelse, held | self.facts(node.cond, False)))
            else:
                stack.extend((child, held) for child in children(node))

    def facts(self, expr: n.Expr | None, truth: bool) -> frozenset[str]:
        """What is known not to be none where `expr` is `truth`."""
        found: set[str] = set()
        stack = [(expr, truth)]
        while stack:
            node, holds = stack.pop()
            if isinstance(node, n.BoolOp) and (node.op == "and") == holds:
                stack += [(node.left, holds), (node.right, holds)]
            elif isinstance(node, n.Unary) and node.op == "not":
                stack.append((node.operand, not holds))
            elif isinstance(node, n.Compare) and len(node.rest) == 1:
                op, right = node.rest[0]
                if (op == "!=") == holds and op in ("==", "!="):
                    for side, other in ((node.first, right), (right, node.first)):
                        if isinstance(other, n.NoneLit) and (key := _key(side)):
                            found.add(key)
            elif isinstance(node, n.Stalls | n.Improves) and holds and node.alias is not None:
                found.update(f"{node.alias.name}.{field}" for field in ("best", "value",
                                                                         "direction"))
        return frozenset(found)


_COUNTERS = frozenset({"epoch", "batch", "step", "epochs", "iterations", "stopped_epoch"})
_ROUNDS = 8  # how often the variables' types are joined with their `set`s before widening


def _held(kind: str) -> str:
    """The type of an entry read from a collection holding `kind`: nothing read yet is any."""
    return "any" if kind == "nothing" else kind


def _reset(action: n.Node) -> frozenset[str]:
    """The variables an action sets to what may be none: a guard on them ends there."""
    literal = n.Number | n.String | n.Bool | n.Table
    return frozenset(node.var.name for node in walk(action) if isinstance(node, n.Set)
                     and node.index is None and node.op == "="
                     and not isinstance(node.value, literal))


def _key(expr: n.Expr) -> str | None:
    """The name a guard keeps for a name or a tracker field."""
    if isinstance(expr, n.Name):
        return expr.id
    if isinstance(expr, n.Attribute):
        return f"{expr.value.name}.{expr.attr.name}"
    return None
