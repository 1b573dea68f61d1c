"""Checked program to Keras callbacks: one generated `Callback` subclass per definition used."""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cbdsl import effects, runtime, vocab
from cbdsl import nodes as n
from cbdsl.checker import (
    REQUIRED,
    CheckedProgram,
    Definition,
    Instance,
    ParamInfo,
    filter_counter,
    flat_actions,
    metric_name_of,
    restored_trackers,
    rule_trackers,
    template_fields,
    template_problem,
    tracker_name,
    walk,
)
from cbdsl.diagnostics import (
    CbdslCompileError,
    CbdslRuntimeError,
    Diagnostic,
    MissingKeyFailure,
    RequirementError,
    RuleFailure,
    did_you_mean,
)

Fn = Callable[["Context"], Any]

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
    "in": lambda a, b: b is not None and a in b,
    "not in": lambda a, b: b is None or a not in b,
}
_ASSIGN: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.add, "-=": operator.sub, "*=": operator.mul, "/=": operator.truediv,
}


class Context:
    """What a rule sees while one event runs: logs, counters, learning rate, predicate results."""

    __slots__ = ("_lr", "batch", "cb", "epoch", "locals", "logs", "missing", "results")

    def __init__(self, cb: Any, logs: dict | None, epoch: int | None, batch: int | None):
        self.cb, self.logs, self.epoch, self.batch = cb, logs, epoch, batch
        self.results: dict[int, bool] = {}
        self._lr: float | None = None
        self.missing: str | None = None
        self.locals: dict[str, Any] = {}  # the names `for` loops bind

    def metric(self, name: str) -> Any:
        logs = self.logs
        if logs is None or name not in logs or logs[name] is None:
            raise runtime.MissingMetric(name)
        return logs[name]

    def lr(self) -> float:
        if self._lr is None:
            self._lr = runtime.read_lr(self.cb.model)
        return self._lr


class NotConstantError(Exception):
    """An expression needed a training context where only constants are allowed."""


@dataclass
class TrackerSpec:
    """A compiled `stalls`/`improves` predicate of one rule."""

    slot: int
    name: str
    subject: Fn
    metric: str | None
    stalls: int | None
    mode: str
    min_delta: float
    baseline: float | None
    keep_weights: bool
    only: Fn | None = None  # `with only = COND`: checked only where COND holds
    kept: bool = False  # `with keep = true`: kept across `fit` calls


@dataclass
class CompiledRule:
    """One rule, ready to run: filters, trackers, condition and actions as closures."""

    label: str
    line: int
    index: int
    priority: int
    phase_of: dict[str, str]
    filters: list[tuple[str, str, int]] = field(default_factory=list)
    trackers: list[TrackerSpec] = field(default_factory=list)
    condition: Fn | None = None
    actions: list[Callable[[Context], str]] = field(default_factory=list)
    stops: bool = False
    reads: tuple[str, ...] = ()  # log metrics the actions read whatever the values

    def passes_filters(self, ctx: Context, counters: dict[str, int | None]) -> bool:
        for kind, counter, count in self.filters:
            index = counters.get(counter)
            if index is None:
                return False
            if kind == "every" and (index + 1) % count:
                return False
            if (kind == "after" and index < count) or (kind == "before" and index >= count):
                return False
            if kind == "once" and index != count:
                return False
        return True

    def run(self, ctx: Context, event: str, counters: dict[str, int | None]) -> None:
        if self.filters and not self.passes_filters(ctx, counters):
            return
        cb = ctx.cb
        state = cb.state
        try:
            checked = [t for t in self.trackers if t.only is None or t.only(ctx)]
            values = [float(t.subject(ctx)) for t in checked]
            for spec, value in zip(checked, values, strict=True):
                tracker = state.trackers[spec.name]
                snapshot = cb.model.get_weights if spec.keep_weights else None
                ctx.results[spec.slot] = runtime.update_tracker(
                    tracker, value, ctx.epoch or 0, stalls=spec.stalls,
                    min_delta=spec.min_delta, baseline=spec.baseline, snapshot=snapshot)
            if self.condition is not None and not self.condition(ctx):
                return
            for name in self.reads:  # before any action: a rule runs whole or not at all
                ctx.metric(name)
            done = [action(ctx) for action in self.actions]
        except runtime.MissingMetric as missing:
            # a read behind a condition inside an action (`x if has("m") else m`) can still
            # miss once earlier actions have run: those stay done
            self.metric_missing(ctx, missing.name, counters)
            return
        if not self.stops:  # a stall acted on starts a new count; a stop keeps it, as Keras
            for spec in checked:  # (a predicate not checked here, `only`, is left as it is)
                if spec.stalls is not None:
                    state.trackers[spec.name].wait = 0
        state.fired[self.label] = state.fired.get(self.label, 0) + 1
        cb.timeline.append(runtime.Firing(event, ctx.epoch, ctx.batch, self.label,
                                          self.reasons(ctx), tuple(d for d in done if d)))

    def metric_missing(self, ctx: Context, name: str, counters: dict[str, int | None]) -> None:
        """The callback's `on metric_missing` rules, or else Keras's warning."""
        cb = ctx.cb
        handlers = cb.rules_by_event.get("metric_missing")
        if not handlers:
            runtime.warn_missing(cb.__class__.__name__, self.line, name, ctx.logs or {})
            return
        signal = Context(cb, ctx.logs, ctx.epoch, ctx.batch)
        signal.missing = name
        for rule in handlers:
            rule.run(signal, "metric_missing", counters)

    def reasons(self, ctx: Context) -> tuple[str, ...]:
        out = []
        for spec in self.trackers:
            if not ctx.results.get(spec.slot):
                continue
            tracker = ctx.cb.state.trackers[spec.name]
            what = spec.metric or "value"
            if spec.stalls is not None:
                out.append(f"{what} has not improved on {_num(tracker.best)} for "
                           f"{spec.stalls if spec.stalls > 0 else 1} checks")
            else:
                out.append(f"{what} improved to {_num(tracker.value)}")
        if not out and self.condition is not None:
            out.append("its condition held")
        return tuple(out)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class ExprCompiler:
    """Turns expression nodes into closures over a `Context`; nothing is ever `eval`-ed."""

    def __init__(self, params: dict[str, Any], variables: set[str], trackers: dict[int, str],
                 where: str = "", schedules: frozenset[str] = frozenset(),
                 local_names: frozenset[str] = frozenset()):
        self.params, self.variables, self.trackers, self.where = params, variables, trackers, where
        self.schedules = schedules  # parameters of type `schedule`: Keras's calling convention
        self.local_names = local_names  # names bound by enclosing `for` loops
        # a template field's value at an event, as `print` fills it (set by the rule's compiler)
        self.fields: Callable[[str, Context], Any] | None = None

    def inner(self, names: Iterable[str]) -> ExprCompiler:
        """The compiler for a loop's body: the same scope plus the loop's names."""
        inner = ExprCompiler(self.params, self.variables, self.trackers, self.where,
                             self.schedules, self.local_names | frozenset(names))
        inner.fields = self.fields
        return inner

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
        value, key, where = self.compile(node.value), self.compile(node.key), self.where

        def index(c):
            container, k = value(c), key(c)
            try:
                return container[k]
            except (KeyError, IndexError, TypeError):
                raise CbdslRuntimeError(Diagnostic(
                    "E221", f"{where}: no entry {k!r} in {_short(container)}")) from None
        return index

    def visit_Attribute(self, node: n.Attribute) -> Fn:
        tracker, attr = node.value.name, node.attr.name
        return lambda c: getattr(c.cb.state.trackers[tracker], attr)

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
        impl = vocab.FUNCTIONS[name].impl
        where = self.where
        if len(args) == 1:
            (only,) = args

            def call1(c):
                try:
                    return impl(only(c))
                except (ValueError, OverflowError) as exc:
                    raise _math_error(name, exc, where) from None
            return call1

        def call(c):
            try:
                return impl(*[a(c) for a in args])
            except (ValueError, OverflowError) as exc:
                raise _math_error(name, exc, where) from None
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
                return vocab.FUNCTIONS["piecewise"].impl(value, x, rest[0] if rest else None)
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
            return lambda c: -operand(c)
        return operand

    def visit_BinOp(self, node: n.BinOp) -> Fn:
        left, right, op = self.compile(node.left), self.compile(node.right), _BINOPS[node.op]
        where = self.where

        def binop(c):
            try:
                return op(left(c), right(c))
            except ZeroDivisionError:
                return math.nan  # a rule never crashes training on x / 0; comparisons fail
            except OverflowError:
                return math.inf
            except TypeError as exc:
                raise CbdslRuntimeError(Diagnostic("E221", f"{where}: {exc}")) from None
        return binop

    def visit_Compare(self, node: n.Compare) -> Fn:
        first = self.compile(node.first)
        rest = [(_COMPARE[op], self.compile(e)) for op, e in node.rest]

        def compare(c):
            left = first(c)
            for op, fn in rest:
                right = fn(c)
                if left is None or right is None:
                    if not op(left, right) if op in (operator.eq, operator.ne) else True:
                        return False
                elif not op(left, right):
                    return False
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


SCHEDULE_NAMES = ("epoch", "lr", "learning_rate", "epochs", "inf")


def parse_schedule(text: str, where: str) -> n.Expr:
    """A schedule given as text (`0.1 * 0.9 ** epoch`), parsed and checked; never `eval`-ed.

    It may read `epoch`, `lr`, `learning_rate`, `epochs` and `inf`, and call the
    built-in functions; anything else is a CbdslCompileError with its position.
    """
    from cbdsl.parser import parse_expression

    path = f"<{where}>"
    expr = parse_expression(text, path)
    for node in walk(expr):
        problem = None
        if isinstance(node, n.Name) and node.id not in SCHEDULE_NAMES:
            problem = ("E206", f"a schedule cannot read '{node.id}'", node.span,
                       did_you_mean(node.id, SCHEDULE_NAMES) or
                       "names: " + ", ".join(SCHEDULE_NAMES))
        elif isinstance(node, n.Call) and (node.func.name not in vocab.FUNCTIONS
                                           or node.func.name in ("metric", "has")):
            problem = ("E202", f"a schedule cannot call '{node.func.name}'", node.func.span,
                       did_you_mean(node.func.name, vocab.FUNCTIONS))
        elif isinstance(node, n.Stalls | n.Improves | n.Attribute | n.Table):
            problem = ("E205", "a schedule is arithmetic on epoch and lr", node.span, None)
        if problem:
            code, message, span, hint = problem
            raise CbdslCompileError(Diagnostic(code, message, span, path, text, hint=hint))
    return expr


def _math_error(name: str, exc: Exception, where: str) -> CbdslRuntimeError:
    return CbdslRuntimeError(Diagnostic("E221", f"{where}: {name}() failed: {exc}"))


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


# --------------------------------------------------------------- definitions


class DefinitionCompiler:
    """Compiles one definition, with its parameters bound, into a Callback class and instance."""

    def __init__(self, definition: Definition, params: dict[str, Any], label: str):
        self.definition, self.params, self.label = definition, params, label
        self.variables = {v.name.name for v in definition.variables}
        self.restored = restored_trackers(definition.rules)
        self.schedules = frozenset(k for k, info in definition.params.items()
                                   if info.type == "schedule")

    def constant(self, expr: n.Expr, what: str) -> Any:
        fn = ExprCompiler(self.params, set(), {}, self.label).compile(expr)
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

    def rules(self) -> dict[str, list[CompiledRule]]:
        by_event: dict[str, list[CompiledRule]] = {}
        for index, rule in enumerate(self.definition.rules):
            compiled = self.rule(rule, index)
            if compiled is None:
                continue
            for ident in rule.events:
                event = vocab.resolve_event(ident.name)
                by_event.setdefault(event.name, []).append(compiled)
        for rules in by_event.values():
            rules.sort(key=lambda r: (-r.priority, r.index))
        return by_event

    def rule(self, rule: n.Rule, index: int) -> CompiledRule | None:
        label = rule.label.name if rule.label else f"rule@{rule.span.line}"
        where = f"{self.label}: {label}"
        exprs = ExprCompiler(self.params, self.variables, {}, where, self.schedules)
        exprs.fields = lambda name, c: self.field(name, c, exprs)
        events = [vocab.resolve_event(i.name) for i in rule.events]
        priority = int(self.constant(rule.priority.value, "priority")) if rule.priority else 0
        compiled = CompiledRule(label, rule.span.line, index, priority,
                                {e.name: e.phase for e in events})
        for f in rule.filters:
            kind = type(f).__name__.lower()
            count = int(self.constant(f.at if isinstance(f, n.Once) else f.count, kind))
            counter = filter_counter(f.unit.name if f.unit else None, events[0])
            compiled.filters.append((kind, counter, count))
        for k, node in enumerate(rule_trackers(rule)):
            compiled.trackers.append(self.tracker(node, index, k, rule, exprs))
        if rule.condition is not None:
            compiled.condition = exprs.compile(rule.condition)
        actions = [a for a in rule.actions if not self._inert(a)]
        if rule.actions and not actions:
            return None  # only hooks the caller did not pass: no hook, no cost
        compiled.actions = [self.action(a, compiled, exprs, where) for a in actions]
        compiled.stops = any(isinstance(a, n.Stop) for a in actions)
        compiled.reads = tuple(sorted(self.sure_reads(actions)))
        return compiled

    def sure_reads(self, actions: Iterable[n.Action]) -> set[str]:
        """The log metrics that running these actions reads, whatever the values are.

        Names and template fields that are neither parameters, variables nor built-ins, outside
        `for` bodies, the branches of `x if c else y` and the right side of `and`/`or`.
        """
        known = {*self.params, *self.variables, *vocab.BUILTIN_NAMES}
        reads: set[str] = set()
        for action in actions:
            if isinstance(action, n.For):
                continue
            for spec in dataclasses.fields(action):
                value = getattr(action, spec.name)
                if not isinstance(value, n.Node) or isinstance(value, n.Ident):
                    continue
                for node in _unconditional(value):
                    if isinstance(node, n.Name) and node.id not in known:
                        reads.add(node.id)
                    elif isinstance(node, n.String) and spec.name in ("template", "path"):
                        reads.update(f for f in template_fields(node.value)
                                     if "." not in f and f not in known)
            if isinstance(action, n.Post):  # its options are read before the request is sent
                reads.update(node.id for o in action.options for node in _unconditional(o.value)
                             if isinstance(node, n.Name) and node.id not in known)
        return reads

    def _inert(self, action: n.Action) -> bool:
        return isinstance(action, n.CallPython) and self.params.get(action.func.name) is None

    def tracker(self, node, index: int, k: int, rule: n.Rule, exprs: ExprCompiler) -> TrackerSpec:
        name = tracker_name(node, index, k, rule)
        options = {o.name.name: o.value for o in node.options}
        # the bound value of `mode = mode`, not the parameter's default
        mode = self.constant(options["mode"], "mode") if "mode" in options else "auto"
        if mode not in vocab.MODES:
            warnings.warn(f"{self.label}: mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=4)
            mode = "auto"
        metric = metric_name_of(node.subject, self.definition.params)
        if metric == "<param>":
            metric = str(self.params[node.subject.args[0].id])
        min_delta = self.constant(options["min_delta"], "min_delta") \
            if "min_delta" in options else 0.0
        baseline = self.constant(options["baseline"], "baseline") if "baseline" in options \
            else None
        keep = (bool(self.constant(options["weights"], "weights")) if "weights" in options
                else name in self.restored)
        stalls = int(self.constant(node.count, "patience")) if isinstance(node, n.Stalls) \
            else None
        only = exprs.compile(options["only"]) if "only" in options else None
        kept = bool(self.constant(options["keep"], "keep")) if "keep" in options else False
        return TrackerSpec(id(node), name, exprs.compile(node.subject), metric, stalls, mode,
                           float(min_delta), baseline, keep, only, kept)

    def action(self, action: n.Action, rule: CompiledRule, exprs: ExprCompiler,
               where: str) -> Callable[[Context], str]:
        if isinstance(action, n.Assign):
            value, op = exprs.compile(action.value), _ASSIGN.get(action.op)

            def assign(c: Context) -> str:
                old = c.lr()
                new = value(c) if op is None else op(old, value(c))
                runtime.write_lr(c.cb.model, new, where)
                c._lr = None
                return f"lr {_num(old)} -> {_num(c.lr())}"
            return assign
        if isinstance(action, n.Stop):
            def stop(c: Context) -> str:
                runtime.stop(c.cb.model, c.cb.phase)
                if c.epoch is not None:
                    c.cb.state.stopped_epoch = c.epoch
                return "stop"
            return stop
        if isinstance(action, n.Save):
            path, kind = self.template(action.path, exprs), action.kind

            def save(c: Context) -> str:
                target = path(c)
                runtime.save(c.cb.model, kind, target, where, type(c.cb).__name__)
                return f"save {kind} {target}"
            return save
        if isinstance(action, n.Restore):
            name = action.tracker.name if action.tracker else (
                rule.trackers[0].name if rule.trackers else next(iter(self.restored)))

            def restore(c: Context) -> str:
                tracker = c.cb.state.trackers[name]
                if tracker.best_weights is None:
                    return ""
                c.cb.model.set_weights(tracker.best_weights)
                return f"restore weights of epoch {tracker.best_epoch + 1}"
            return restore
        if isinstance(action, n.Log):
            value = exprs.compile(action.value)
            fixed = action.key.name if action.key is not None else None
            computed = exprs.compile(action.key_expr) if action.key_expr is not None else None

            def log(c: Context) -> str:
                key = fixed if computed is None else computed(c)
                v = value(c)
                if c.logs is not None:
                    c.logs[key] = v
                return f"log {key} = {_num(v)}"
            return log
        if isinstance(action, n.For):
            return self.loop(action, rule, exprs, where)
        if isinstance(action, n.Fail):
            text = self.template(action.template, exprs)

            def fail(c: Context) -> str:
                # in `on metric_missing`, a log key was missing: a KeyError too
                raise (RuleFailure if c.missing is None else MissingKeyFailure)(text(c))
            return fail
        if isinstance(action, n.WriteFile):
            text, path, mode = exprs.compile(action.text), self.template(action.path, exprs), \
                action.mode

            def write_file(c: Context) -> str:
                target = path(c)
                runtime.write_text(target, str(text(c)), append=mode == "append", where=where)
                return f"{mode} {target}"
            return write_file
        if isinstance(action, n.WriteRow):
            return self.write_row(action, exprs, where)
        if isinstance(action, n.Post):
            return self.post(action, rule, exprs, where)
        if isinstance(action, n.Record):
            def record(c: Context) -> str:
                state = c.cb.state
                state.recorded_epochs.append(c.epoch)
                for key, value in (c.logs or {}).items():
                    state.history.setdefault(key, []).append(value)
                c.cb.model.history = c.cb
                return "record"
            return record
        if isinstance(action, n.Print | n.Warn):
            text, is_print = self.template(action.template, exprs), isinstance(action, n.Print)

            def message(c: Context) -> str:
                body = text(c)
                if is_print:
                    print(body, flush=True)
                else:
                    warnings.warn(body, stacklevel=2)
                return "print" if is_print else "warn"
            return message
        if isinstance(action, n.Set):
            var, value, op = action.var.name, exprs.compile(action.value), _ASSIGN.get(action.op)

            if action.index is not None:
                key_of = exprs.compile(action.index)

                def set_entry(c: Context) -> str:
                    table, key = c.cb.state.variables[var], key_of(c)
                    if op is not None and key not in table:
                        raise CbdslRuntimeError(Diagnostic(
                            "E221", f"{where}: '{var}' has no entry {key!r} to update"))
                    table[key] = value(c) if op is None else op(table[key], value(c))
                    return f"set {var}[{key!r}] = {_num(table[key])}"
                return set_entry

            def set_(c: Context) -> str:
                variables = c.cb.state.variables
                variables[var] = value(c) if op is None else op(variables[var], value(c))
                return f"set {var} = {_num(variables[var])}"
            return set_
        if isinstance(action, n.Cooldown):
            count = exprs.compile(action.count)
            names = [t.name for t in rule.trackers if t.stalls is not None]

            def cooldown(c: Context) -> str:
                k = int(count(c))
                for name in names:
                    c.cb.state.trackers[name].cooldown = k
                return f"cooldown {k}" if k else ""
            return cooldown
        if isinstance(action, n.Effect):
            return self.effect(action, exprs, where)
        if isinstance(action, n.CallPython):
            hook = self.params[action.func.name]
            args = [exprs.compile(a) for a in action.args]
            kwargs = {k.name.name: exprs.compile(k.value) for k in action.keywords}
            label = action.func.name

            def call(c: Context) -> str:
                hook(*[a(c) for a in args], **{k: v(c) for k, v in kwargs.items()})
                return f"call {label}"
            return call
        raise AssertionError(f"no compiler for {type(action).__name__}")  # pragma: no cover

    def effect(self, action: n.Effect, exprs: ExprCompiler,
               where: str) -> Callable[[Context], str]:
        """`group.name(args)`: the runtime primitive, with its arguments bound by name."""
        spec = vocab.EFFECTS[action.full_name]
        names = [p.name for p in spec.params]
        given = {**{names[i]: exprs.compile(a) for i, a in enumerate(action.args)},
                 **{k.name.name: exprs.compile(k.value) for k in action.keywords}}
        defaults = {p.name: p.default for p in spec.params if not p.required}
        run = effects.IMPLEMENTATIONS[spec.name]

        def effect(c: Context) -> str:
            arguments = {**defaults, **{k: fn(c) for k, fn in given.items()}}
            return run(c.cb, where=where, **arguments)
        return effect

    def write_row(self, action: n.WriteRow, exprs: ExprCompiler,
                  where: str) -> Callable[[Context], str]:
        """`write row TABLE to PATH [with (separator = s, header = b, append = b)]`."""
        row, path = exprs.compile(action.row), exprs.compile(action.file)  # a path, as it is
        options = {o.name.name: exprs.compile(o.value) for o in action.options}
        defaults = {"separator": ",", "header": False, "append": True}

        def write_row(c: Context) -> str:
            target, values = str(path(c)), row(c)
            if values is not None and not isinstance(values, dict):
                raise CbdslRuntimeError(Diagnostic(
                    "E221", f"{where}: 'write row' needs a table, got {_short(values)}"))
            given = {k: options[k](c) if k in options else v for k, v in defaults.items()}
            runtime.write_row(target, values, separator=given["separator"],
                              header=bool(given["header"]), append=bool(given["append"]))
            return f"write row to {target}"
        return write_row

    def post(self, action: n.Post, rule: CompiledRule, exprs: ExprCompiler,
             where: str) -> Callable[[Context], str]:
        """`post json|form BODY to URL [with (headers = t, timeout = s)] [else MESSAGE]`."""
        kind, body, url = action.kind.name, exprs.compile(action.body), exprs.compile(action.url)
        options = {o.name.name: exprs.compile(o.value) for o in action.options}
        otherwise = self.action(action.otherwise, rule, exprs, where) \
            if action.otherwise is not None else None
        owner = self.definition.name

        def post(c: Context) -> str:
            target, payload = url(c), body(c)
            headers = options["headers"](c) if "headers" in options else None
            timeout = options["timeout"](c) if "timeout" in options else vocab.POST_TIMEOUT
            if not isinstance(target, str):
                raise CbdslRuntimeError(Diagnostic(
                    "E221", f"{where}: 'post' needs a URL string, got {_short(target)}"))
            if kind == "form" and not isinstance(payload, dict):
                raise CbdslRuntimeError(Diagnostic(
                    "E221", f"{where}: 'post form' needs a table, got {_short(payload)}"))
            if runtime.post(target, payload, kind=kind, headers=headers, timeout=timeout,
                            owner=owner, unhandled=otherwise is None):
                return f"post {kind} to {target}"
            done = otherwise(c)
            return f"post {kind} to {target} failed" + (f", {done}" if done else "")
        return post

    def loop(self, loop: n.For, rule: CompiledRule, exprs: ExprCompiler,
             where: str) -> Callable[[Context], str]:
        """`for k[, v] in X [when cond] do (...)`: keys (and values) of a table, or items."""
        iterable = exprs.compile(loop.iterable)
        names = [i.name for i in loop.names]
        body = exprs.inner(names)
        condition = body.compile(loop.condition) if loop.condition is not None else None
        actions = [self.action(a, rule, body, where) for a in loop.actions]

        def run(c: Context) -> str:
            items = iterable(c)
            if items is None:
                return ""
            if isinstance(items, dict):  # a snapshot: the body may write into the same table
                entries = list(items.items()) if len(names) == 2 else list(items)
            else:
                entries = list(enumerate(items)) if len(names) == 2 else list(items)
            outer = dict(c.locals)
            count = 0
            try:
                for entry in entries:
                    c.locals.update(zip(names, entry, strict=True) if len(names) == 2
                                    else {names[0]: entry})
                    if condition is not None and not condition(c):
                        continue
                    for action in actions:
                        action(c)
                    count += 1
            finally:
                c.locals = outer
            return f"for {', '.join(names)}: {count} times" if count else ""
        return run

    def template(self, expr: n.Expr, exprs: ExprCompiler) -> Callable[[Context], str]:
        source = exprs.compile(expr)
        try:
            fixed = source(None)
        except Exception:  # depends on the event: resolve its fields when it runs
            fixed = None
        names = template_fields(fixed) if isinstance(fixed, str) else None
        where = self.label

        def fill(c: Context) -> str:
            text = fixed if fixed is not None else str(source(c))
            wanted = names if names is not None else template_fields(text)
            fields = {}
            for name in wanted:
                fields[name] = self.field(name, c, exprs)
            return runtime.render(text, fields, where)
        return fill

    def field(self, name: str, c: Context, exprs: ExprCompiler) -> Any:
        # In templates, epoch and batch numbers are 1-based, as Keras prints them and names
        # files: `{epoch}`, `{batch}`, `{stopped_epoch}` and a tracker's `{NAME.best_epoch}`.
        if name in c.locals:
            return c.locals[name]
        if name == "epoch" and c.epoch is not None:
            return c.epoch + 1
        if name == "batch" and c.batch is not None:
            return c.batch + 1
        if name == "stopped_epoch":
            return c.cb.state.stopped_epoch + 1
        if "." in name:
            tracker, attr = name.split(".", 1)
            value = getattr(c.cb.state.trackers[tracker], attr)
            return value + 1 if attr == "best_epoch" else value
        if name in self.definition.params or name in self.variables:
            return exprs.visit_Name(n.Name(name))(c)
        value = name_reader(name)(c)
        if value is None and name in ("epoch", "batch"):
            raise runtime.MissingMetric(name)
        return value


def _unconditional(expr: Any) -> Iterable[Any]:
    """The nodes under `expr` that are evaluated whenever `expr` is."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, n.BoolOp):
            stack.append(node.left)
        elif isinstance(node, n.Conditional):
            stack.append(node.cond)
        elif not isinstance(node, n.Stalls | n.Improves):
            stack.extend(_children(node))


def _children(node: Any) -> Iterable[Any]:
    for spec in dataclasses.fields(node):
        value = getattr(node, spec.name)
        for item in value if isinstance(value, tuple | list) else (value,):
            for leaf in item if isinstance(item, tuple) else (item,):
                if isinstance(leaf, n.Node) and not isinstance(leaf, n.Ident):
                    yield leaf


# --------------------------------------------------------- the Callback class


@functools.cache
def compiled_base() -> type:
    """The base class of every compiled callback (imports Keras on first use)."""
    import keras

    class CompiledCallback(keras.callbacks.Callback):
        """A callback compiled from cbdsl rules.

        Only the hooks its rules use are overridden, so an epoch-only policy adds
        nothing to Keras's per-batch work. All state lives in `self.state`
        (a `cbdsl.runtime.CallbackState`); its fields read as attributes:
        `cb.wait`, `cb.best`, `cb.stopped_epoch`, state variables by name.

        Attributes:
            state: the serializable state of every rule.
            timeline: `cbdsl.runtime.Firing` entries, one per rule that fired.
            arguments: the bound parameter values.
        """

        definition_name = ""
        rules_by_event: dict[str, list[CompiledRule]] = {}
        initial_variables: dict[str, Callable[[], Any]] = {}
        tracker_names: tuple[str, ...] = ()
        kept: frozenset[str] = frozenset()  # variables and trackers kept across `fit` calls
        trackers_by_event: dict[str, list[TrackerSpec]] = {}
        phase = "train"
        records = False  # whether a `record` action makes this a History
        deferred: Any = ()  # backups' rule states to write once this event's rules have run

        def __init__(self, arguments: dict[str, Any]):
            super().__init__()
            self.arguments = dict(arguments)
            self.timeline: list[runtime.Firing] = []
            self.state = runtime.CallbackState()
            self.reset_state()

        def reset_state(self) -> None:
            """Start every counter, best value and variable afresh (done at train begin).

            The recorded history is kept across `fit` calls, as Keras's History keeps it, and so
            are `keep var` variables and trackers `with keep = true`.
            """
            old = self.__dict__.get("state")
            kept = self.kept if old is not None else frozenset()
            self.state = runtime.CallbackState(
                variables={k: old.variables[k] if k in kept and k in old.variables else make()
                           for k, make in self.initial_variables.items()},
                trackers={k: old.trackers[k] if k in kept and k in old.trackers
                          else runtime.TrackerState() for k in self.tracker_names},
                history=old.history if old is not None else {})

        def step_index(self, batch: int | None) -> int | None:
            """The 0-based index across epochs of the train batch `batch` (of this event)."""
            if batch is None:
                return None
            if self.event == "train_batch_begin":  # not counted yet: the batch about to run
                return self.state.step
            return self.state.step - 1

        def steps_after(self, batch: int) -> int:
            # batches counted across epochs, as ModelCheckpoint does (steps_per_execution too)
            last = self.state.last_batch
            return self.state.step + (batch + 1 if last is None or batch <= last
                                      else batch - last)

        def count_step(self, batch: int) -> None:
            self.state.step = self.steps_after(batch)
            self.state.last_batch = batch

        def _run(self, event: str, phase: str, logs, epoch=None, batch=None) -> None:
            self.phase, self.event = phase, event
            # As Keras sets its monitor op first thing in the hook, before reading any log,
            # `mode="auto"` resolves (or fails) at the first event of a tracker's rules.
            for spec in self.trackers_by_event.get(event, ()):
                tracker = self.state.trackers[spec.name]
                if tracker.direction is None:
                    tracker.direction = runtime.resolve_direction(
                        spec.mode, spec.metric, self.model, self.__class__.__name__)
            ctx = Context(self, logs, epoch, batch)
            counters = {"epoch": epoch, "batch": batch, "step": self.step_index(batch)}
            for rule in self.rules_by_event[event]:
                rule.run(ctx, event, counters)
            if self.deferred:  # backups waiting for this event's last compiled callback
                effects.run_deferred(self)

        def __getattr__(self, name: str) -> Any:
            if name in ("state", "tracker_names") or name.startswith("__"):
                raise AttributeError(name)
            state = self.__dict__.get("state")
            if state is not None:
                if name in state.variables:
                    return state.variables[name]
                if name in state.trackers:
                    return state.trackers[name]
                if name in ("stopped_epoch", "step", "fired"):
                    return getattr(state, name)
                if self.records and name in ("history", "epoch"):
                    return state.history if name == "history" else state.recorded_epochs
                if len(state.trackers) == 1 and name in ("wait", "best", "best_epoch", "value",
                                                         "cooldown", "best_weights"):
                    return getattr(next(iter(state.trackers.values())), name)
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
            return f"{type(self).__name__}({args})"

    return CompiledCallback


def _hook(event: vocab.Event, needs_epoch_begin: bool, counts_steps: bool,
          records: bool = False) -> Callable:
    name, phase = event.name, event.phase
    if event.level == "epoch":
        if name == "epoch_begin":
            def hook(self, epoch, logs=None):
                self.state.epoch = epoch
                self._run(name, phase, logs, epoch)
        else:
            def hook(self, epoch, logs=None):
                self._run(name, phase, logs, epoch)
    elif event.level == "batch":
        if counts_steps and name == "train_batch_end":
            def hook(self, batch, logs=None):
                self.count_step(batch)
                self._run(name, phase, logs, self.state.epoch if phase == "train" else None,
                          batch)
        else:
            def hook(self, batch, logs=None):
                self._run(name, phase, logs, self.state.epoch if phase == "train" else None,
                          batch)
    elif name == "train_begin":
        def hook(self, logs=None):
            self.reset_state()
            effects.join_fit(self)
            if name in self.rules_by_event:
                self._run(name, phase, logs)
            effects.take_restored(self)  # a resumed backup's state for this callback
    elif name == "train_end" and records:
        def hook(self, logs=None):
            self._run(name, phase, logs, self.state.epoch)
            self.model.history = self  # `fit` returns the model's history: this one
    else:
        def hook(self, logs=None):
            self._run(name, phase, logs, self.state.epoch if name == "train_end" else None)
    hook.__name__ = event.hook
    return hook


def build_class(definition: Definition, params: dict[str, Any], label: str) -> type:
    """Generate the Callback subclass for one definition with bound parameters."""
    compiler = DefinitionCompiler(definition, params, label)
    compiler.check_requirements()
    rules_by_event = compiler.rules()
    initial = {}
    for var in definition.variables:
        value = compiler.constant(var.value, f"the initial value of '{var.name.name}'")
        initial[var.name.name] = functools.partial(_copy, value)
    tracker_names = tuple(dict.fromkeys(
        t.name for rules in rules_by_event.values() for r in rules for t in r.trackers))
    events = {vocab.EVENTS[e] for e in rules_by_event}
    needs_epoch = any((e.level == "batch" and e.phase == "train") or e.name == "train_end"
                      for e in events)
    counts_steps = any(e.name in ("train_batch_begin", "train_batch_end") for e in events)
    if needs_epoch:
        events.add(vocab.EVENTS["epoch_begin"])
        rules_by_event.setdefault("epoch_begin", [])
    if counts_steps:
        events.add(vocab.EVENTS["train_batch_end"])
        rules_by_event.setdefault("train_batch_end", [])
    events.add(vocab.EVENTS["train_begin"])
    namespace: dict[str, Any] = {
        "definition_name": definition.name,
        "rules_by_event": rules_by_event,
        "initial_variables": initial,
        "tracker_names": tracker_names,
        "kept": frozenset({v.name.name for v in definition.variables if v.kept} | {
            t.name for rules in rules_by_event.values() for r in rules for t in r.trackers
            if t.kept}),
        "trackers_by_event": {e: [t for r in rules for t in r.trackers]
                              for e, rules in rules_by_event.items()},
        "__doc__": definition.doc or f"Compiled from the cbdsl rules of '{definition.name}'.",
        "__module__": "cbdsl.compiled",
    }
    records = any(isinstance(a, n.Record) for r in definition.rules for a in r.actions)
    if records:
        events.add(vocab.EVENTS["train_end"])
        rules_by_event.setdefault("train_end", [])
        namespace["records"] = True
    for event in events:
        if event.level != "signal":
            namespace[event.hook] = _hook(event, needs_epoch, counts_steps, records)
    bases: tuple[type, ...] = (compiled_base(),)
    if any(isinstance(a, n.Effect) and a.group.name == "progress"
           for r in definition.rules for a in flat_actions(r.actions)):
        bases += (effects.progress_display_base(),)  # Keras then adds no bar of its own
    return type(_class_name(definition.name), bases, namespace)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _class_name(name: str) -> str:
    if name[:1].isupper():
        return name
    return "".join(part.capitalize() for part in name.split("_")) or "Policy"


# ----------------------------------------------------------------- binding


def bind(definition: Definition, given: dict[str, Any], where: str) -> dict[str, Any]:
    """Bind parameter values to a definition: defaults, overrides, types; E301 on misuse."""
    values: dict[str, Any] = {}
    for name, value in given.items():
        info = definition.params.get(name)
        if info is None:
            raise CbdslCompileError(Diagnostic(
                "E301", f"{where} has no parameter '{name}'", path=definition.path,
                hint=did_you_mean(name, definition.params)
                or f"parameters: {', '.join(definition.params) or 'none'}"))
        check_value(info, value, where, definition)
        values[name] = value
    for name, info in definition.params.items():
        if name not in values:
            if info.default is REQUIRED:
                raise CbdslCompileError(Diagnostic(
                    "E301", f"{where} needs a value for '{name}' ({info.type})",
                    path=definition.path))
            values[name] = _copy(info.default)
    return values


def check_value(info: ParamInfo, value: Any, where: str, definition: Definition) -> None:
    given = vocab.type_of_value(value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        given = "float" if isinstance(value, float) else "int"
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalars
        given = vocab.type_of_value(value.item())
    if info.type == "python" and given != "python" and value is not None:
        raise CbdslCompileError(Diagnostic(
            "E301", f"{where}: '{info.name}' takes a Python callable, got {given}",
            path=definition.path))
    if given == "python" and info.type not in ("python", "schedule"):
        raise CbdslCompileError(Diagnostic(
            "E216", f"{where}: '{info.name}' is not a Python hook; a callable is only "
            "accepted for parameters declared `NAME: python`", path=definition.path))
    if info.type == "schedule" and isinstance(value, str):
        parse_schedule(value, f"{where}: {info.name}")  # bad text is refused at compile time
    if info.type != "python" and not vocab.accepts(info.type, given):
        raise CbdslCompileError(Diagnostic(
            "E301", f"{where}: '{info.name}' takes {info.type}, got {given} ({value!r})",
            path=definition.path))


def compile_program(checked: CheckedProgram, **params: Any) -> list[Any]:
    """Build one callback instance per definition the program uses.

    Args:
        checked: a `CheckedProgram` from `cbdsl.check`.
        **params: values for the file's `param`s (or, for a file holding a
            single `callback` definition and nothing else, for its parameters).

    Returns:
        A list of `keras.callbacks.Callback` instances, in file order.

    Raises:
        CbdslCompileError: unknown or mistyped parameters, non-constant values (E3xx).
    """
    main = checked.main
    only = [d for d in checked.definitions.values()
            if d.path == checked.program.path and d.node is not None]
    if not checked.instances and len(only) == 1:
        definition = only[0]
        values = bind(definition, params, definition.name)
        return [build_class(definition, values, definition.name)(values)]
    main_values = bind(main, params, main.name)
    callbacks = []
    for instance in checked.instances:
        callbacks.append(instantiate(instance, main, main_values))
    return callbacks


def instantiate(instance: Instance, main: Definition, main_values: dict[str, Any]) -> Any:
    definition = instance.definition
    if definition is main:
        values = main_values
    else:
        scope = DefinitionCompiler(main, main_values, main.name)
        given = {k: scope.constant(v, f"argument '{k}'") for k, v in instance.args.items()}
        values = bind(definition, given, instance.label)
    return build_class(definition, values, instance.label or definition.name)(values)
