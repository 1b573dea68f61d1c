"""One definition with its parameters bound to compiled rules: filters, trackers, actions."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

from cbdsl import language, runtime
from cbdsl.checker import Definition
from cbdsl.checker.order import filter_counter, sure_reads
from cbdsl.checker.templates import template_fields, template_problem
from cbdsl.checker.trackers import metric_name_of, restored_trackers, tracker_name, trackers_of
from cbdsl.compiler.actions import ActionCompiler, text_of
from cbdsl.compiler.expressions import ExprCompiler, name_reader
from cbdsl.diagnostics import (
    CbdslCompileError,
    CbdslRuntimeError,
    Diagnostic,
    RequirementError,
)
from cbdsl.language import values
from cbdsl.runtime.rules import CompiledRule, Context, TrackerSpec
from cbdsl.syntax import nodes as n


def class_name(name: str) -> str:
    """The name of the class generated for a definition: its own when capitalized
    (`ReduceLROnPlateau`), else its parts capitalized (`my_policy` -> `MyPolicy`)."""
    if name[:1].isupper():
        return name
    return "".join(part.capitalize() for part in name.split("_")) or "Policy"


class DefinitionCompiler(ActionCompiler):
    """Compiles one definition, with its parameters bound, into a Callback class and instance."""

    def __init__(self, definition: Definition, params: dict[str, Any], label: str):
        self.definition, self.params, self.label = definition, params, label
        self.variables = {v.name.name for v in definition.variables}
        self.restored = restored_trackers(definition.rules)
        self.schedules = frozenset(k for k, info in definition.params.items()
                                   if info.type == "schedule")
        self.origin = (definition.path, definition.source)

    def expressions(self, where: str, variables: set[str] | None = None) -> ExprCompiler:
        """The compiler of this definition's expressions, its errors naming `where`."""
        return ExprCompiler(self.params, self.variables if variables is None else variables,
                            {}, where, self.schedules, origin=self.origin)

    def constant(self, expr: n.Expr, what: str) -> Any:
        fn = self.expressions(self.label, set()).compile(expr)
        try:
            return fn(None)
        except (AttributeError, TypeError) as exc:
            raise CbdslCompileError(Diagnostic(
                "E219", f"{what} must be known before training starts", expr.span,
                self.definition.path, self.definition.source)) from exc

    def check_requirements(self) -> None:
        """Raise RequirementError (a ValueError) for the first `require` the arguments fail."""
        for requirement in self.definition.requirements:
            if self.constant(requirement.condition, "a requirement"):
                continue
            text = self.constant(requirement.message, "a requirement's message")
            message = runtime.render(str(text), dict(self.params), self.label)
            raise RequirementError(Diagnostic(
                "E302", message, requirement.span, self.definition.path,
                self.definition.source))

    def exposures(self) -> dict[str, Any]:
        """`expose NAME = EXPR`: each attribute as a closure over a context without an event."""
        exprs = self.expressions(self.label)
        return {e.name.name: exprs.compile(e.value) for e in self.definition.exposures}

    def rules(self) -> dict[str, list[CompiledRule]]:
        by_event: dict[str, list[CompiledRule]] = {}
        for index, rule in enumerate(self.definition.rules):
            compiled = self.rule(rule, index)
            if compiled is None:
                continue
            for ident in rule.events:
                event = language.resolve_event(ident.name)
                by_event.setdefault(event.name, []).append(compiled)
        for rules in by_event.values():
            rules.sort(key=lambda r: (-r.priority, r.index))
        return by_event

    def rule(self, rule: n.Rule, index: int) -> CompiledRule | None:
        label = rule.label.name if rule.label else f"rule@{rule.span.line}"
        where = f"{self.label}: {label}"
        exprs = self.expressions(where)
        exprs.fields = lambda name, c: self.field(name, c, exprs)
        events = [language.resolve_event(i.name) for i in rule.events]
        priority = self.count(rule.priority.value, "priority", low=-(2 ** 31)) \
            if rule.priority else 0
        compiled = CompiledRule(label, rule.span.line, index, priority,
                                {e.name: e.phase for e in events}, origin=self.origin,
                                span=rule.span)
        for f in rule.filters:
            kind = type(f).__name__.lower()
            count = self.count(f.at if isinstance(f, n.Once) else f.count, kind,
                               low=1 if isinstance(f, n.Every) else 0)
            counter = filter_counter(f.unit.name if f.unit else None, events[0])
            compiled.filters.append((kind, counter, count))
        for k, node in enumerate(trackers_of(rule)):
            compiled.trackers.append(self.tracker(node, index, k, rule, exprs))
        if rule.condition is not None:
            compiled.condition = exprs.compile(rule.condition)
            compiled.condition_span = rule.condition.span
        actions = [a for a in rule.actions if not self._inert(a)]
        if rule.actions and not actions:
            return None  # only hooks the caller did not pass: no hook, no cost
        compiled.actions = [self.action(a, compiled, exprs, where) for a in actions]
        compiled.action_spans = [a.span for a in actions]
        compiled.stops = any(isinstance(a, n.Stop) for a in actions)
        known = {*self.params, *self.variables, *language.BUILTIN_NAMES}
        compiled.reads = tuple(sorted(sure_reads(actions, known)))
        return compiled

    def _inert(self, action: n.Action) -> bool:
        return isinstance(action, n.CallPython) and self.params.get(action.func.name) is None

    def tracker(self, node, index: int, k: int, rule: n.Rule, exprs: ExprCompiler) -> TrackerSpec:
        name = tracker_name(node, index, k, rule)
        options = {o.name.name: o.value for o in node.options}
        # the bound value of `mode = mode`, not the parameter's default
        mode = self.constant(options["mode"], "mode") if "mode" in options else "auto"
        if mode not in language.MODES:
            # Keras's MonitorCallback's words, naming the class (`self.__class__.__name__`)
            warnings.warn(f"{class_name(self.definition.name)} mode '{mode}' is unknown, "
                          "fallback to auto mode.", stacklevel=4)
            mode = "auto"
        metric = metric_name_of(node.subject, self.definition.params)
        if metric == "<param>":
            metric = str(self.params[node.subject.args[0].id])
        min_delta = self.number(options["min_delta"], "min_delta") \
            if "min_delta" in options else 0.0
        baseline = self.number(options["baseline"], "baseline", optional=True) \
            if "baseline" in options else None
        keep = (bool(self.constant(options["weights"], "weights")) if "weights" in options
                else name in self.restored)
        stalls = self.count(node.count, "the patience of 'stalls'") \
            if isinstance(node, n.Stalls) else None
        only = exprs.compile(options["only"]) if "only" in options else None
        kept = bool(self.constant(options["keep"], "keep")) if "keep" in options else False
        return TrackerSpec(id(node), name, exprs.compile(node.subject), metric, stalls, mode,
                           float(min_delta), baseline, keep, only, kept, node.subject.span)


    def number(self, expr: n.Expr, what: str, optional: bool = False) -> float | None:
        """A number known when the callback is built (`min_delta = d`), else E212 there."""
        value = self.constant(expr, what)
        if value is None and optional:
            return None
        if not values.is_number(value) or math.isnan(value):
            raise self.compile_error(expr, "E212", f"{what} must be a number, got {value!r}")
        return float(value)

    def count(self, expr: n.Expr, what: str, low: int = 0) -> int:
        """A whole number known when the callback is built, at least `low`, else E204 there."""
        value = self.constant(expr, what)
        if not values.is_number(value) or not math.isfinite(value) \
                or not float(value).is_integer() or value < low:
            raise self.compile_error(expr, "E204", f"{what} must be a whole number of at "
                                     f"least {low}, got {value!r}")
        return int(value)

    def compile_error(self, expr: n.Node, code: str, message: str) -> CbdslCompileError:
        return CbdslCompileError(Diagnostic(code, message, expr.span, self.definition.path,
                                            self.definition.source))

    def template(self, expr: n.Expr, exprs: ExprCompiler) -> Callable[[Context], str]:
        source = exprs.compile(expr)
        try:
            fixed = source(None)
        except Exception:  # depends on the event: resolve its fields when it runs
            fixed = None
        if fixed is not None and not isinstance(fixed, str):
            fixed = str(fixed)
        if fixed is not None and template_problem(fixed):  # a parameter's text, as bound
            raise self.compile_error(expr, "E215", template_problem(fixed))
        names = template_fields(fixed) if fixed is not None else None
        where = exprs.where

        def fill(c: Context) -> str:
            text = fixed if fixed is not None else text_of(source(c), expr, exprs)
            if fixed is None and template_problem(text):
                raise exprs.error(expr, template_problem(text), "E215")
            wanted = names if names is not None else template_fields(text)
            fields = {}
            for name in wanted:
                fields[name] = self.field(name, c, exprs)
            return runtime.render(text, fields, where)
        return fill

    def field(self, name: str, c: Context, exprs: ExprCompiler) -> Any:
        # In templates every counter is 1-based, as Keras prints them and names files:
        # `{epoch}`, `{batch}`, `{step}`, `{stopped_epoch}` and a tracker's `{NAME.best_epoch}`.
        if name in c.locals:
            return c.locals[name]
        if name == "epoch" and c.epoch is not None:
            return c.epoch + 1
        if name == "batch" and c.batch is not None:
            return c.batch + 1
        if name == "step" and c.batch is not None and c.cb.phase == "train":
            return c.cb.step_index(c.batch) + 1
        if name == "stopped_epoch":
            return c.cb.state.stopped_epoch + 1
        if "." in name:
            tracker, attr = name.split(".", 1)
            named = {node.alias.name for rule in self.definition.rules
                     for node in trackers_of(rule) if node.alias is not None}
            if tracker not in named or attr not in language.TRACKER_FIELDS:
                # a template made while training (`print text + "{x.y}"`): checked here
                raise CbdslRuntimeError(Diagnostic("E215", (
                    f"{exprs.where}: template field '{{{name}}}': "
                    + (f"no tracker named '{tracker}'" if tracker not in named else
                       f"trackers have no field '{attr}'"))))
            state = c.cb.state.trackers.get(tracker) or runtime.TrackerState()
            value = getattr(state, attr)  # a tracker whose rule is not built reads as fresh
            return value + 1 if attr == "best_epoch" else value
        if name in self.definition.params or name in self.variables:
            return exprs.visit_Name(n.Name(name))(c)
        value = name_reader(name)(c)
        if value is None and name in ("epoch", "batch"):
            raise runtime.MissingMetric(name)
        return value
