"""The checker of one rule: events, filters, its condition's expressions and predicates."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cbdsl import language
from cbdsl.checker.actions import ActionChecks
from cbdsl.checker.constants import (
    ENVIRONMENT,
    UNKNOWN,
    NotConstant,
    _const_ok,
    const_value,
    evaluate,
    folded,
    training_only,
)
from cbdsl.checker.definitions import ABBREVIATED_METRICS, COMMON_METRICS
from cbdsl.checker.order import filter_counter
from cbdsl.checker.scope import Scope
from cbdsl.checker.trackers import metric_name_of, mode_of
from cbdsl.diagnostics import did_you_mean
from cbdsl.language import types, values
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

ROW_OPTIONS = language.ACTIONS["WriteRow"].options
POST_OPTIONS = language.ACTIONS["Post"].options

if TYPE_CHECKING:
    from cbdsl.checker.program import Checker


class RuleChecker(ActionChecks):
    """Checks one rule: events, filters, condition, actions."""

    def __init__(self, checker: Checker, scope: Scope, rule: n.Rule):
        self.checker, self.scope, self.rule = checker, scope, rule
        self.definition = scope.definition
        self.where = checker.origin(rule, scope.definition)  # the file the rule is written in
        self.events: list[language.Event] = []

    def report(self, code, message, span, hint=None, related=()):
        self.checker.report(code, message, span, self.where, hint, related)

    def check(self) -> None:
        for ident in self.rule.events:
            event = language.resolve_event(ident.name)
            if event is None:
                names = [*language.EVENTS, *language.EVENT_ALIASES]
                self.report("E201", f"unknown event '{ident.name}'", ident.span,
                            did_you_mean(ident.name, names) or
                            "events: " + ", ".join(language.EVENTS))
            else:
                self.events.append(event)
        if not self.events:
            return
        for f in self.rule.filters:
            self.check_filter(f)
        if self.rule.priority is not None:
            self.check_count(self.rule.priority.value, "priority", allow_negative=True)
        if self.rule.condition is not None:
            self.check_expr(self.rule.condition)
            kind = self.scope.infer(self.rule.condition, self.checker, None)
            if kind in ("str", "table", "list"):
                self.report("E221", f"a condition must be true or false, not a {kind}",
                            self.rule.condition.span)
        for action in self.rule.actions:
            self.check_action(action)

    # -- filters
    def check_filter(self, f: n.Filter) -> None:
        kind = type(f).__name__.lower()
        count = f.at if isinstance(f, n.Once) else f.count
        self.check_count(count, kind, positive=isinstance(f, n.Every))
        unit = f.unit.name if f.unit else None
        for event in self.events:
            counter = filter_counter(unit, event)
            if counter is None:
                span = f.unit.span if f.unit else f.span
                what = f"'{unit}'" if unit else "a counter"
                self.report("E217", f"'{kind}' counts {what}, which {event.name} does not have",
                            span, "epoch counters exist in epoch and train events, batch counters "
                            "in batch events, steps in train batch events")

    def check_known_before_training(self, expr: n.Expr, what: str) -> bool:
        """Report E219 where `expr` reads what only the training run gives; True if so."""
        node = training_only(expr, self.scope.params)
        if node is None:
            return False
        hint = did_you_mean(node.id, self.scope.params) if isinstance(node, n.Name) else None
        self.report("E219", f"{what} must be known before training starts", node.span,
                    hint or "it may read parameters and constants, not metrics, counters or "
                    "trackers")
        return True

    def check_count(self, expr: n.Expr, what: str, positive=False, allow_negative=False,
                    walked=False, before_training=True) -> None:
        """An integer count; `before_training`: one known when the callback is built."""
        if not walked:  # a count inside a condition is checked by the condition's walk
            self.check_expr(expr)
        if before_training and self.check_known_before_training(expr, what):
            return
        try:
            value = const_value(expr, self.scope.params)
        except NotConstant:
            kind = self.scope.infer(expr, self.checker, None)
            if kind not in ("int", "any", "number"):
                self.report("E204", f"{what} must be an integer, not a {kind}", expr.span)
            return
        if isinstance(value, bool) or not isinstance(value, int):
            self.report("E204", f"{what} must be an integer, got {value!r}", expr.span,
                        f"use {int(value)}" if isinstance(value, float) and value.is_integer()
                        and abs(value) < 1e15
                        else None)
        elif positive and value < 1:
            self.report("E204", f"{what} must be at least 1, got {value}", expr.span)
        elif value < 0 and not allow_negative:
            self.report("E204", f"{what} must not be negative, got {value}", expr.span)

    # -- expressions
    def check_expr(self, expr: n.Expr | None) -> None:
        """Check every node of an expression with its `check_<Node>` method, where it has one
        (literals and operators whose operands are checked on their own need none)."""
        for node in walk(expr):
            check = getattr(self, f"check_{type(node).__name__}", None)
            if check is not None:
                check(node)

    def check_BinOp(self, node: n.BinOp) -> None:
        if any(self.check_present(side, f"'{node.op}' needs values")
               for side in (node.left, node.right)):
            return
        for side in (node.left, node.right):
            kind = self.scope.infer(side, self.checker, None)
            if kind in ("str", "table", "list", "bool", "none") and not (
                    node.op == "+" and kind == "str"
                    and self.scope.infer(node.left, self.checker, None) in ("str", "any")
                    and self.scope.infer(node.right, self.checker, None) in ("str", "any")):
                self.report("E221", f"'{node.op}' needs numbers, not a {kind}", side.span)
                return
        self.check_operands(node.op, self.scope.infer(node.left, self.checker, None),
                            self.scope.infer(node.right, self.checker, None), node.span)
        value = folded(node, self.scope.params)
        if values.is_number(value) and math.isinf(value) and all(
                math.isfinite(v) for v in (folded(node.left, self.scope.params),
                                           folded(node.right, self.scope.params))):
            self.report("E223", "this constant is beyond the float range (it would be inf)",
                        node.span, "write inf, or a smaller number")

    def check_operands(self, op: str, left: str, right: str, span) -> None:
        """`a op b` (or `set a op= b`) for operand types the check knows: numbers, or `+` of
        two strings."""
        if "any" in (left, right):
            return
        if op == "+" and "str" in (left, right):
            if left != right:
                self.report("E221", f"'+' joins two strings, got {left} and {right}", span,
                            "make text with a template: fill(\"{x}\")")
            return
        for kind in (left, right):
            if not language.is_number(kind):
                self.report("E221", f"'{op}' needs numbers, not a {kind}", span)
                return

    def check_Index(self, node: n.Index) -> None:
        if self.check_present(node.value, "only tables, lists and strings have entries"):
            return
        container = self.scope.infer(node.value, self.checker, None)
        key = self.scope.infer(node.key, self.checker, None)
        if container == "table":
            self.check_key(node.value, node.key)
        if container in ("int", "float", "number", "bool", "none"):
            self.report("E221", "only tables, lists and strings have entries, not "
                        f"{_a(container)}", node.value.span)
        elif container in ("list", "str") and key in ("str", "table", "list", "bool", "none"):
            self.report("E221", f"{_a(container)} is indexed by an integer, not {_a(key)}",
                        node.key.span)

    def check_Unary(self, node: n.Unary) -> None:
        if node.op in "+-" and self.check_present(node.operand, f"'{node.op}' needs a number"):
            return
        kind = self.scope.infer(node.operand, self.checker, None)
        if node.op in "+-" and kind in ("str", "table", "list", "bool", "none"):
            self.report("E221", f"'{node.op}' needs a number, not a {kind}", node.span)

    def check_Compare(self, node: n.Compare) -> None:
        left = node.first
        for op, right in node.rest:
            if op in ("in", "not in"):
                if self.scope.infer(right, self.checker, None) in ("int", "float", "number",
                                                                   "bool"):
                    self.report("E221", f"'{op}' needs a table or a list on its right",
                                right.span)
            elif op not in ("==", "!=") and any(self.check_present(side, f"'{op}' compares values")
                                                for side in (left, right)):
                pass
            elif op not in ("==", "!="):
                kinds = {self.scope.infer(side, self.checker, None) for side in (left, right)}
                for side in (left, right):
                    if self.scope.infer(side, self.checker, None) in ("table", "list", "bool"):
                        self.report("E221", f"'{op}' compares numbers or strings, not a "
                                    f"{self.scope.infer(side, self.checker, None)}", side.span)
                        break
                else:
                    if "str" in kinds and kinds & language.NUMBER_TYPES:
                        self.report("E221", f"'{op}' compares two numbers or two strings, not "
                                    "a string and a number", node.span)
            left = right

    def check_Name(self, node: n.Name) -> None:
        name = node.id
        if name in self.scope.locals or name in self.scope.params or name in self.scope.variables:
            return
        if name in self.scope.trackers:
            self.report("E221", f"'{name}' is a tracker; read one of its fields",
                        node.span, f"e.g. {name}.best, {name}.wait")
            return
        if name in language.BUILTIN_NAMES:
            for event in self.events:
                why = language.name_available(name, event)
                if why:
                    self.report("E214", f"{why}, not in {event.name}", node.span)
            return
        if name in COMMON_METRICS or name.removeprefix("val_") in COMMON_METRICS:
            return
        known = [*self.scope.params, *self.scope.variables, *language.BUILTIN_NAMES]
        hint = did_you_mean(name, known)
        if hint is None and name in ABBREVIATED_METRICS:
            hint = (f"did you mean '{ABBREVIATED_METRICS[name]}'? Keras logs '{name}' only for "
                    f"a model compiled with metrics=['{name.removeprefix('val_')}']")
        if hint is None and name not in COMMON_METRICS:
            hint = did_you_mean(name, COMMON_METRICS)
        if hint:
            self.checker.report("W201", f"'{name}' is read as a log metric", node.span,
                                self.where, hint)

    def check_Attribute(self, node: n.Attribute) -> None:
        name = node.value.name
        if name not in self.scope.trackers:
            self.report("E206", f"no tracker named '{name}'", node.value.span,
                        did_you_mean(name, self.scope.trackers) or
                        "name one with `X stalls N as NAME`")
        elif node.attr.name not in language.TRACKER_FIELDS:
            self.report("E210", f"trackers have no field '{node.attr.name}'", node.attr.span,
                        did_you_mean(node.attr.name, language.TRACKER_FIELDS) or
                        "fields: " + ", ".join(language.TRACKER_FIELDS))

    def check_Call(self, node: n.Call) -> None:
        """A call: of a Python hook or schedule parameter, or of a function of the language's
        table, with its arity and argument types from that table."""
        name = node.func.name
        function = language.FUNCTIONS.get(name)
        info = self.scope.params.get(name)
        if info is not None and info.type in ("python", "schedule"):
            if info.type == "schedule" and not 1 <= len(node.args) <= 2:
                self.report("E203", f"the schedule '{name}' takes (epoch) or (epoch, lr)",
                            node.span)
            return
        if function is None:
            self.report("E202", f"unknown function '{name}'", node.func.span,
                        did_you_mean(name, language.FUNCTIONS) or
                        "functions: " + ", ".join(language.FUNCTIONS))
            return
        if node.keywords:
            self.report("E203", f"'{name}' takes no keyword arguments", node.keywords[0].span)
        count = len(node.args)
        low, high = function.min_args, function.max_args
        if count < low or (high is not None and count > high):
            want = (f"{low}" if high == low else f"{low} or more" if high is None else
                    f"{low} to {high}")
            noun = "argument" if want == "1" else "arguments"
            self.report("E203", f"'{name}' takes {want} {noun}, {count} given", node.span)
            return
        for index, arg in enumerate(node.args):
            spec = function.arg(index)
            kind = self.scope.infer(arg, self.checker, None)
            if spec.type in ("number", "numeric", "str", "table") and \
                    self.check_present(arg, f"'{name}' needs {function.needs(index)}"):
                continue
            if kind not in language.ARG_ACCEPTS[spec.type]:
                self.report("E203", f"'{name}' needs {function.needs(index)}, got a {kind}",
                            arg.span, spec.hint)
            elif name == "sorted":
                self.check_orderable(arg)
        self.check_constant_call(node, function)

    def check_constant_call(self, node: n.Call, function: language.Function) -> None:
        """A call of constants outside the function's domain (`int("a")`, `log(-1)`) fails
        at every run: reported here, with its values."""
        if evaluate(node, {}) is not UNKNOWN or function.reads_event:
            return
        args = [evaluate(a, {}) for a in node.args]
        if any(a is UNKNOWN for a in args) or not all(
                values.matches(function.arg(i).type, a) for i, a in enumerate(args)) \
                or node.func.name in ENVIRONMENT:
            return
        try:
            values.bounded(function.impl(*args))
        except Exception as exc:  # outside the domain: as the run would report it
            shown = ", ".join(repr(a) for a in args)
            self.report("E221", f"{node.func.name}({shown}) fails: {exc}", node.span)

    def check_orderable(self, arg: n.Expr) -> None:
        """`sorted(x)`: the items (a table's keys) must all be numbers or all strings."""
        held = types.contents(self.scope.type_of(arg))[0]
        mixed = [k for k in types.kinds(held) if k not in ("any", "nothing")]
        numbers = [k for k in mixed if language.is_number(k)]
        if (len(mixed) > 1 and len(numbers) < len(mixed)) or any(
                k in ("table", "list", "bool", "none") for k in mixed):
            what = " and ".join(_plural(k) for k in mixed)
            self.report("E221", f"'sorted' orders numbers or strings, and this holds {what}",
                        arg.span, "keep one kind of key in a table that is sorted")

    def check_key(self, table: n.Expr, key: n.Expr) -> None:
        """`t[k]` where every key set in `t` is a string and `k` a number, or the other way:
        the entry can never be there."""
        held = types.kinds(types.contents(self.scope.type_of(table))[0])
        given = self.scope.infer(key, self.checker, None)
        if len(held) != 1 or given in ("any", "none", "bool"):
            return
        if (held[0] == "str") != (given == "str") and held[0] in ("str", *language.NUMBER_TYPES):
            self.report("E221", f"this table's keys are {_plural(held[0])}, so {_a(given)} key "
                        "is never in it", key.span)

    def check_present(self, expr: n.Expr, what: str) -> bool:
        """Report E221 where `expr` may be none at this point of the rule; True if so."""
        if not types.is_optional(self.scope.type_of(expr)):
            return False
        shown, why, hint = _none_reason(expr, self.scope)
        self.report("E221", f"{what}, and {shown} {why}", expr.span, hint)
        return True

    def check_Stalls(self, node: n.Stalls | n.Improves) -> None:
        kind = "stalls" if isinstance(node, n.Stalls) else "improves"
        if isinstance(node, n.Stalls):
            self.check_count(node.count, "the patience of 'stalls'", walked=True)
        for option in node.options:
            if option.name.name != "only":  # `only` is a condition, checked at each event
                self.check_known_before_training(option.value, f"option '{option.name.name}'")
        for option in self.known_options(node.options, language.TRACKER_OPTIONS[kind],
                                         f"'{kind}'"):
            name = option.name.name
            if name == "mode":
                self.check_mode(option.value, node)
            else:
                kind_given = self.scope.infer(option.value, self.checker, None)
                want = ("bool",) if name in ("weights", "only", "keep") else (
                    "int", "float", "number", "none", "any")
                if kind_given not in (*want, "any"):
                    self.report("E211", f"option '{name}' takes a number, not a {kind_given}"
                                if name not in ("weights", "only", "keep") else
                                f"option '{name}' takes true or false, not a {kind_given}",
                                option.value.span)
        mode = mode_of(node, self.scope.params)
        if mode in ("auto", None) and metric_name_of(node.subject, self.scope.params) is None \
                and not any(o.name.name == "mode" and not _const_ok(o.value, self.scope.params)
                            for o in node.options):
            self.report("E220", "mode 'auto' needs the subject to be a metric name",
                        node.subject.span, "add `with mode = \"min\"` or `\"max\"`")
        for event in self.events:
            if event.level == "run" and event.name != "train_end":
                self.report("E205", f"'{kind}' needs a counter; {event.name} has none",
                            node.span)

    check_Improves = check_Stalls

    def check_mode(self, value: n.Expr, node) -> None:
        try:
            mode = const_value(value, self.scope.params)
        except NotConstant:
            if self.scope.infer(value, self.checker, None) not in ("str", "any"):
                self.report("E211", "mode must be 'min', 'max' or 'auto'", value.span)
            return
        if mode not in language.MODES:
            self.report("E211", f"mode must be 'min', 'max' or 'auto', got {mode!r}", value.span,
                        did_you_mean(str(mode), language.MODES))


def _none_reason(expr: n.Expr, scope: Scope) -> tuple[str, str, str]:
    """How a value that may be none is named, why it may be, and how to guard it."""
    if isinstance(expr, n.Attribute):
        text = f"{expr.value.name}.{expr.attr.name}"
        return (f"'{text}'", "is none until the tracker's first check",
                f"guard it: `when {text} != none and ...`, or write "
                f"`{text} if {text} != none else 0`")
    if isinstance(expr, n.Name):
        why = ("is none unless the callback is given one (its default is none)"
               if expr.id in scope.params else "may be none (a value set to it may be)")
        return f"'{expr.id}'", why, f"guard it: `when {expr.id} != none and ...`"
    if isinstance(expr, n.Call) and expr.func.name in ("lookup", "piecewise"):
        return ("this", "is none where the table has no such entry",
                f"give {expr.func.name} a default as its third argument")
    return "this", "may be none", "guard it with `!= none`"


def _plural(kind: str) -> str:
    """A type's name for many values: `numbers`, `strings`."""
    return {"str": "strings", "int": "integers", "float": "numbers", "number": "numbers",
            "bool": "booleans", "none": "none", "table": "tables", "list": "lists"}.get(
                kind, kind)


def _a(kind: str) -> str:
    """A type's name with its article: `an int`, `a str`."""
    return ("an " if kind[:1] in "aeiou" else "a ") + kind
