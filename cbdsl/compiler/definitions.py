"""One definition with its parameters bound to compiled rules: filters, trackers, actions."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from cbdsl import language, runtime
from cbdsl.checker import Definition
from cbdsl.checker.order import filter_counter
from cbdsl.checker.templates import template_fields
from cbdsl.checker.trackers import metric_name_of, restored_trackers, tracker_name, trackers_of
from cbdsl.compiler.expressions import ExprCompiler, name_reader
from cbdsl.diagnostics import (
    CbdslCompileError,
    CbdslRuntimeError,
    Diagnostic,
    MissingKeyFailure,
    RequirementError,
    RuleFailure,
)
from cbdsl.runtime import effects
from cbdsl.runtime.rules import CompiledRule, Context, TrackerSpec, _num, _short
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import child_fields, unconditional

_ASSIGN: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.add, "-=": operator.sub, "*=": operator.mul, "/=": operator.truediv,
}


_IN_ORDER = ("args", "keywords", "options")  # operand lists, read one by one as they run


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
                event = language.resolve_event(ident.name)
                by_event.setdefault(event.name, []).append(compiled)
        for rules in by_event.values():
            rules.sort(key=lambda r: (-r.priority, r.index))
        return by_event

    def rule(self, rule: n.Rule, index: int) -> CompiledRule | None:
        label = rule.label.name if rule.label else f"rule@{rule.span.line}"
        where = f"{self.label}: {label}"
        exprs = ExprCompiler(self.params, self.variables, {}, where, self.schedules)
        exprs.fields = lambda name, c: self.field(name, c, exprs)
        events = [language.resolve_event(i.name) for i in rule.events]
        priority = int(self.constant(rule.priority.value, "priority")) if rule.priority else 0
        compiled = CompiledRule(label, rule.span.line, index, priority,
                                {e.name: e.phase for e in events})
        for f in rule.filters:
            kind = type(f).__name__.lower()
            count = int(self.constant(f.at if isinstance(f, n.Once) else f.count, kind))
            counter = filter_counter(f.unit.name if f.unit else None, events[0])
            compiled.filters.append((kind, counter, count))
        for k, node in enumerate(trackers_of(rule)):
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

        Names and template fields that are neither parameters, variables nor built-ins, in the
        action's own operands and a `post`'s options (read before its request is sent); not in
        `for` bodies, argument lists (read in order as the call runs), the branches of
        `x if c else y` or the right side of `and`/`or`.
        """
        known = {*self.params, *self.variables, *language.BUILTIN_NAMES}
        reads: set[str] = set()
        for action in actions:
            if isinstance(action, n.For):
                continue
            for name, child in child_fields(action):
                if name in _IN_ORDER and not isinstance(action, n.Post):
                    continue
                for node in unconditional(child):
                    if isinstance(node, n.Name) and node.id not in known:
                        reads.add(node.id)
                    elif isinstance(node, n.String) and name in ("template", "path"):
                        reads.update(f for f in template_fields(node.value)
                                     if "." not in f and f not in known)
        return reads

    def _inert(self, action: n.Action) -> bool:
        return isinstance(action, n.CallPython) and self.params.get(action.func.name) is None

    def tracker(self, node, index: int, k: int, rule: n.Rule, exprs: ExprCompiler) -> TrackerSpec:
        name = tracker_name(node, index, k, rule)
        options = {o.name.name: o.value for o in node.options}
        # the bound value of `mode = mode`, not the parameter's default
        mode = self.constant(options["mode"], "mode") if "mode" in options else "auto"
        if mode not in language.MODES:
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
        spec = language.EFFECTS[action.full_name]
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
            timeout = options["timeout"](c) if "timeout" in options else language.POST_TIMEOUT
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
