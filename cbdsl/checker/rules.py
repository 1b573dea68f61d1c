"""The checker of one rule: events, filters, its condition's expressions and predicates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cbdsl import language
from cbdsl.checker.constants import NotConstant, _const_ok, const_value
from cbdsl.checker.definitions import (
    COMMON_METRICS,
)
from cbdsl.checker.order import (
    filter_counter,
)
from cbdsl.checker.scope import Scope
from cbdsl.checker.templates import template_fields, template_problem
from cbdsl.checker.trackers import metric_name_of, mode_of
from cbdsl.diagnostics import did_you_mean
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

ROW_OPTIONS = language.ACTIONS["WriteRow"].options
POST_OPTIONS = language.ACTIONS["Post"].options

if TYPE_CHECKING:
    from cbdsl.checker.program import Checker


class RuleChecker:
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
            self.check_expr(self.rule.condition, top=True)
            kind = self.scope.infer(self.rule.condition, self.checker, None)
            if kind in ("str", "table"):
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

    def check_count(self, expr: n.Expr, what: str, positive=False, allow_negative=False,
                    walked=False) -> None:
        if not walked:  # a count inside a condition is checked by the condition's walk
            self.check_expr(expr)
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
    def check_expr(self, expr: n.Expr | None, top=False) -> None:
        for node in walk(expr):
            t = type(node)
            if t is n.Name:
                self.check_name(node)
            elif t is n.Attribute:
                self.check_attribute(node)
            elif t is n.Call:
                self.check_call(node)
            elif t in (n.Stalls, n.Improves):
                self.check_tracker(node, top)
            elif t is n.Compare:
                self.check_compare(node)
            elif t is n.BinOp:
                for side in (node.left, node.right):
                    kind = self.scope.infer(side, self.checker, None)
                    if kind in ("str", "table", "bool") and not (
                            node.op == "+" and kind == "str"
                            and self.scope.infer(node.left, self.checker, None) in ("str", "any")
                            and self.scope.infer(node.right, self.checker, None) in ("str",
                                                                                     "any")):
                        self.report("E221", f"'{node.op}' needs numbers, not a {kind}", side.span)

    def check_compare(self, node: n.Compare) -> None:
        left = node.first
        for op, right in node.rest:
            if op in ("in", "not in"):
                if self.scope.infer(right, self.checker, None) in ("int", "float", "number",
                                                                   "bool"):
                    self.report("E221", f"'{op}' needs a table or a list on its right",
                                right.span)
            elif op not in ("==", "!="):
                for side in (left, right):
                    if self.scope.infer(side, self.checker, None) == "table":
                        self.report("E221", f"'{op}' compares numbers, not a table", side.span)
            left = right

    def check_name(self, node: n.Name) -> None:
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
        if hint is None and name not in COMMON_METRICS:
            hint = did_you_mean(name, COMMON_METRICS)
        if hint:
            self.checker.report("W201", f"'{name}' is read as a log metric", node.span,
                                self.where, hint)

    def check_attribute(self, node: n.Attribute) -> None:
        name = node.value.name
        if name not in self.scope.trackers:
            self.report("E206", f"no tracker named '{name}'", node.value.span,
                        did_you_mean(name, self.scope.trackers) or
                        "name one with `X stalls N as NAME`")
        elif node.attr.name not in language.TRACKER_FIELDS:
            self.report("E210", f"trackers have no field '{node.attr.name}'", node.attr.span,
                        did_you_mean(node.attr.name, language.TRACKER_FIELDS) or
                        "fields: " + ", ".join(language.TRACKER_FIELDS))

    def check_call(self, node: n.Call) -> None:
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
            if kind not in language.ARG_ACCEPTS[spec.type]:
                self.report("E203", f"'{name}' needs {function.needs(index)}, got a {kind}",
                            arg.span, spec.hint)

    def check_tracker(self, node: n.Stalls | n.Improves, top: bool) -> None:
        kind = "stalls" if isinstance(node, n.Stalls) else "improves"
        if isinstance(node, n.Stalls):
            self.check_count(node.count, "the patience of 'stalls'", walked=True)
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

    # -- actions
    def check_action(self, action: n.Action) -> None:
        spec = language.ACTIONS[type(action).__name__]
        if spec.events is not None:
            for event in self.events:
                if event.name not in spec.events:
                    self.report("E205", f"'{spec.word}' is not allowed in {event.name}",
                                action.span, spec.hint)
        if isinstance(action, n.Assign):
            if action.target.name not in language.TARGETS:
                hint = did_you_mean(action.target.name, language.TARGETS)
                if action.target.name in self.scope.variables:
                    hint = f"state variables are written with `set {action.target.name} = ...`"
                self.report("E208", f"cannot assign to '{action.target.name}'", action.target.span,
                            hint or "targets: " + ", ".join(language.TARGETS))
            self.check_number(action.value)
        elif isinstance(action, n.Set):
            if action.var.name not in self.scope.variables:
                self.report("E206", f"no state variable named '{action.var.name}'",
                            action.var.span, did_you_mean(action.var.name, self.scope.variables)
                            or f"declare it with `var {action.var.name} = 0`")
            elif action.index is not None and \
                    self.scope.variables[action.var.name] not in ("table", "any"):
                self.report("E221", f"'{action.var.name}' is not a table; only a table has "
                            "entries to set", action.var.span,
                            f"declare it with `var {action.var.name} = {{}}`")
            self.check_expr(action.index)
            self.check_expr(action.value)
        elif isinstance(action, n.Log):
            self.check_expr(action.key_expr)
            self.check_expr(action.value)
        elif isinstance(action, n.For):
            self.check_for(action)
        elif isinstance(action, n.WriteFile):
            self.check_expr(action.text)
            self.check_template(action.path)
        elif isinstance(action, n.WriteRow):
            self.check_write_row(action)
        elif isinstance(action, n.Post):
            self.check_post(action)
        elif isinstance(action, n.Save | n.Print | n.Warn | n.Fail):
            self.check_template(action.path if isinstance(action, n.Save) else action.template)
            if isinstance(action, n.Save) and action.kind == "weights":
                self.check_weights_path(action.path)
        elif isinstance(action, n.Restore):
            self.resolve_restore(action)
        elif isinstance(action, n.Cooldown):
            self.check_count(action.count, "cooldown")
            if not any(isinstance(x, n.Stalls) for x in walk(self.rule.condition)):
                self.report("E205", "'cooldown' needs a 'stalls' predicate in the same rule",
                            action.span)
        elif isinstance(action, n.Effect):
            self.check_effect(action)
        elif isinstance(action, n.CallPython):
            info = self.scope.params.get(action.func.name)
            if info is None or info.type != "python":
                self.report("E216", f"'{action.func.name}' is not a Python hook parameter",
                            action.func.span, "declare it as `NAME: python` in the callback's "
                            "parameters; only the caller's Python code can fill it")
            for arg in (*action.args, *(k.value for k in action.keywords)):
                if not (isinstance(arg, n.Name) and arg.id == "logs"):
                    self.check_expr(arg)

    def check_effect(self, action: n.Effect) -> None:
        """`group.name(args)`: a known effect, its arguments bound and typed, in its events."""
        name = action.full_name
        effect = language.EFFECTS.get(name)
        for arg in (*action.args, *(k.value for k in action.keywords)):
            self.check_expr(arg)
        if effect is None:
            self.report("E222", f"unknown effect '{name}'", action.span,
                        did_you_mean(name, language.EFFECTS)
                        or "effects: " + ", ".join(language.EFFECTS))
            return
        where = f"'{name}'"
        if len(action.args) > len(effect.params):
            self.report("E203", f"{where} takes at most {len(effect.params)} positional "
                        f"argument{'s' if len(effect.params) != 1 else ''}, "
                        f"{len(action.args)} given", action.span, effect.signature())
            return
        bound = dict(zip((p.name for p in effect.params), action.args, strict=False))
        params = {p.name: p for p in effect.params}
        for keyword in action.keywords:
            key = keyword.name.name
            if key not in params:
                self.report("E203", f"{where} has no argument '{key}'", keyword.name.span,
                            did_you_mean(key, params) or effect.signature())
            elif key in bound:
                self.report("E218", f"argument '{key}' given twice", keyword.name.span)
            else:
                bound[key] = keyword.value
        for param in effect.params:
            if param.required and param.name not in bound:
                self.report("E203", f"{where} needs '{param.name}'", action.span,
                            effect.signature())
            elif param.name in bound and param.type != "any":
                given = self.scope.infer(bound[param.name], self.checker, None)
                accepted = ("int", "float", "number") if param.type == "number" else \
                    (param.type,)
                if given not in (*accepted, "any", "none"):
                    self.report("E221", f"'{param.name}' of {where} takes a {param.type}, not a "
                                f"{given}", bound[param.name].span)
        if effect.events is not None:
            for event in self.events:
                if event.name not in effect.events:
                    self.report("E205", f"{where} is not allowed in {event.name}", action.span,
                                f"{name} runs in " + ", ".join(sorted(effect.events)))

    def check_write_row(self, action: n.WriteRow) -> None:
        self.check_expr(action.row)
        kind = self.scope.infer(action.row, self.checker, None)
        if kind not in ("table", "none", "any"):
            self.report("E221", f"'write row' needs a table (or none), not a {kind}",
                        action.row.span, "the table's values are the line, its keys the header")
        self.check_expr(action.file)
        if self.scope.infer(action.file, self.checker, None) not in ("str", "any"):
            self.report("E221", "the file of 'write row' must be a string", action.file.span)
        for option in self.known_options(action.options, ROW_OPTIONS, "'write row'"):
            want, given = ROW_OPTIONS[option.name.name].type, self.option_type(option)
            if given not in (want, "any"):
                self.report("E211", f"option '{option.name.name}' takes a {want}, not a "
                            f"{given}", option.value.span)

    def known_options(self, options, known: dict, what: str):
        """Report unknown (E210) and repeated (E218) options; yield each known one."""
        seen = set()
        for option in options:
            name = option.name.name
            if name not in known:
                self.report("E210", f"{what} has no option '{name}'", option.name.span,
                            did_you_mean(name, known) or "options: " + ", ".join(known))
                continue
            if name in seen:
                self.report("E218", f"option '{name}' given twice", option.name.span)
            seen.add(name)
            yield option

    def option_type(self, option: n.Option) -> str:
        """Check an option's value and return its inferred type."""
        self.check_expr(option.value)
        return self.scope.infer(option.value, self.checker, None)

    def check_post(self, action: n.Post) -> None:
        kind = action.kind.name
        if kind not in language.POST_KINDS:
            self.report("E210", f"'post' sends 'json' or 'form', not '{kind}'", action.kind.span,
                        did_you_mean(kind, language.POST_KINDS)
                        or "post json TABLE to URL, post form TABLE to URL")
        self.check_expr(action.body)
        body = self.scope.infer(action.body, self.checker, None)
        if kind == "form" and body not in ("table", "any"):
            self.report("E221", f"'post form' needs a table of fields, not a {body}",
                        action.body.span, "post form {field: json(send)} to url")
        self.check_expr(action.url)
        if self.scope.infer(action.url, self.checker, None) not in ("str", "any"):
            self.report("E221", "'post' needs a URL string after 'to'", action.url.span)
        for option in self.known_options(action.options, POST_OPTIONS, "'post'"):
            want, given = POST_OPTIONS[option.name.name].type, self.option_type(option)
            accepted = ("int", "float", "number") if want == "number" else (want, "none")
            if given not in (*accepted, "any"):
                self.report("E211", f"option '{option.name.name}' takes a {want}, not a "
                            f"{given}", option.value.span)
        if action.otherwise is not None:
            self.check_template(action.otherwise.template)

    def check_for(self, loop: n.For) -> None:
        self.check_expr(loop.iterable)
        kind = self.scope.infer(loop.iterable, self.checker, None)
        if kind not in ("table", "any"):
            self.report("E221", f"'for' needs a table or a list to go through, not a {kind}",
                        loop.iterable.span)
        names = [i.name for i in loop.names]
        for ident in loop.names:
            if ident.name in self.scope.params or ident.name in self.scope.variables \
                    or ident.name in self.scope.locals:
                self.report("E209", f"'{ident.name}' is already defined", ident.span,
                            "a loop name must not hide a parameter, variable or outer loop name")
        for node in walk(loop.condition):
            if isinstance(node, n.Stalls | n.Improves):
                self.report("E205", "'stalls' and 'improves' belong in the rule's condition, "
                            "not in a loop's", node.span)
        outer = set(self.scope.locals)
        self.scope.locals |= set(names)
        try:
            self.check_expr(loop.condition)
            for action in loop.actions:
                self.check_action(action)
        finally:
            self.scope.locals = outer

    def check_number(self, expr: n.Expr) -> None:
        self.check_expr(expr)
        kind = self.scope.infer(expr, self.checker, None)
        if kind in ("str", "table", "bool", "none"):
            self.report("E221", f"the learning rate must be a number, not a {kind}", expr.span)

    def check_template(self, expr: n.Expr) -> None:
        self.check_expr(expr)
        if isinstance(expr, n.String):
            problem = template_problem(expr.value)
            if problem:
                self.report("E215", problem, expr.span,
                            "fields are plain names with an optional format spec: "
                            "{val_loss:.4f}")
            elif problem := self.tracker_field_problem(expr.value):
                self.report("E215", problem, expr.span,
                            "a dotted field reads a tracker: `X stalls 3 as plateau` gives "
                            "{plateau.best_epoch}")
        elif self.scope.infer(expr, self.checker, None) not in ("str", "any"):
            self.report("E221", "a template must be a string", expr.span)

    def tracker_field_problem(self, text: str) -> str | None:
        """Why a dotted template field is refused: it must be TRACKER.field."""
        for name in template_fields(text):
            if "." not in name:
                continue
            tracker, attr = name.split(".", 1)
            if tracker not in self.scope.trackers:
                return f"template field '{{{name}}}': no tracker named '{tracker}'"
            if attr not in language.TRACKER_FIELDS:
                return (f"template field '{{{name}}}': trackers have no field '{attr}' "
                        f"(fields: {', '.join(language.TRACKER_FIELDS)})")
        return None

    def check_weights_path(self, expr: n.Expr) -> None:
        try:
            value = const_value(expr, self.scope.params)
        except NotConstant:
            return
        if isinstance(value, str) and not value.endswith(".weights.h5"):
            self.report("E211", "a weights file name must end in .weights.h5 (as Keras requires)",
                        expr.span)

    def resolve_restore(self, action: n.Restore) -> None:
        if action.tracker is not None:
            if action.tracker.name not in self.scope.trackers:
                self.report("E206", f"no tracker named '{action.tracker.name}'",
                            action.tracker.span, did_you_mean(action.tracker.name,
                                                              self.scope.trackers))
            return
        here = [x for x in walk(self.rule.condition) if isinstance(x, n.Stalls | n.Improves)]
        if len(here) == 1:
            return
        if not here and len(self.scope.trackers) == 1:
            return
        self.report("E206", "which best weights? name the tracker: `restore best weights of NAME`",
                    action.span, "give the predicate a name with `as NAME`")
