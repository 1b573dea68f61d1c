"""Actions to closures: learning rate, stop, saves, logs, messages, state, files, effects."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from cbdsl import language, runtime
from cbdsl.compiler.expressions import ExprCompiler
from cbdsl.diagnostics import (
    CbdslError,
    MissingKeyFailure,
    RuleFailure,
)
from cbdsl.language import values
from cbdsl.runtime import effects
from cbdsl.runtime.rules import CompiledRule, Context, _num, _short
from cbdsl.syntax import nodes as n

Action = Callable[[Context], str]  # a compiled action: runs, and says what it did
POST_DEFAULTS = {k: o.default for k, o in language.ACTIONS["Post"].options.items()}


class ActionCompiler:
    """The compilers of actions, one `visit_<Node>` per action node (`cbdsl.language.ACTIONS`).

    Each returns a closure that runs the action and says what it did; a part of
    `DefinitionCompiler`, whose parameters, templates and trackers they use.
    """

    def action(self, action: n.Action, rule: CompiledRule, exprs: ExprCompiler,
               where: str) -> Action:
        """A closure running one action; `visit_<Node>` builds it for each action node."""
        return getattr(self, f"visit_{type(action).__name__}")(action, rule, exprs, where)

    def visit_Assign(self, action: n.Assign, rule: CompiledRule,
                     exprs: ExprCompiler, where: str) -> Action:
        value, op = exprs.compile(action.value), action.op.rstrip("=")

        def assign(c: Context) -> str:
            old = c.lr()
            new = value(c) if not op else _update(op, old, value(c), action, exprs)
            runtime.write_lr(c.cb.model, new, where)
            c._lr = None
            return f"lr {_num(old)} -> {_num(c.lr())}"
        return assign

    def visit_Stop(self, action: n.Stop, rule: CompiledRule,
                   exprs: ExprCompiler, where: str) -> Action:
        def stop(c: Context) -> str:
            runtime.stop(c.cb.model, c.cb.phase)
            if c.epoch is not None:
                c.cb.state.stopped_epoch = c.epoch
            return "stop"
        return stop

    def visit_Save(self, action: n.Save, rule: CompiledRule,
                   exprs: ExprCompiler, where: str) -> Action:
        path, kind = self.template(action.path, exprs), action.kind

        def save(c: Context) -> str:
            target = path(c)
            if c.cb.dry_run:
                return f"would save {kind} to {target}"
            with keras_errors(exprs, action, "E406"):
                runtime.save(c.cb.model, kind, target, where, type(c.cb).__name__)
            return f"save {kind} {target}"
        return save

    def visit_Restore(self, action: n.Restore, rule: CompiledRule,
                      exprs: ExprCompiler, where: str) -> Action:
        name = action.tracker.name if action.tracker else (
            rule.trackers[0].name if rule.trackers else next(iter(self.restored)))

        def restore(c: Context) -> str:
            tracker = c.cb.state.trackers[name]
            if tracker.best_weights is None:
                return ""
            c.cb.model.set_weights(tracker.best_weights)
            return f"restore weights of epoch {tracker.best_epoch + 1}"
        return restore

    def visit_Log(self, action: n.Log, rule: CompiledRule,
                  exprs: ExprCompiler, where: str) -> Action:
        value = exprs.compile(action.value)
        fixed = action.key.name if action.key is not None else None
        computed = exprs.compile(action.key_expr) if action.key_expr is not None else None

        def log(c: Context) -> str:
            key = fixed if computed is None else computed(c)
            if not isinstance(key, str):
                raise exprs.error(action.key_expr, f"a log key is a string, got {_short(key)}")
            v = value(c)
            if c.logs is not None:
                c.logs[key] = v
            return f"log {key} = {_num(v)}"
        return log

    def visit_Fail(self, action: n.Fail, rule: CompiledRule,
                   exprs: ExprCompiler, where: str) -> Action:
        text = self.template(action.template, exprs)

        def fail(c: Context) -> str:
            # in `on metric_missing`, a log key was missing: a KeyError too
            raise (RuleFailure if c.missing is None else MissingKeyFailure)(text(c))
        return fail

    def visit_WriteFile(self, action: n.WriteFile, rule: CompiledRule,
                        exprs: ExprCompiler, where: str) -> Action:
        text, path, mode = exprs.compile(action.text), self.template(action.path, exprs), \
            action.mode

        def write_file(c: Context) -> str:
            target, content = path(c), text_of(text(c), action.text, exprs)
            if c.cb.dry_run:
                if mode == "append":
                    return f"would append a line to {target}"
                return f"would write {target}" if content else f"would empty {target}"
            with keras_errors(exprs, action, "E406"):
                runtime.write_text(target, content, append=mode == "append", where=where,
                                   model=c.cb._model)
            return f"{mode} {target}"
        return write_file

    def visit_Record(self, action: n.Record, rule: CompiledRule,
                     exprs: ExprCompiler, where: str) -> Action:
        def record(c: Context) -> str:
            state = c.cb.state
            state.recorded_epochs.append(c.epoch)
            for key, value in (c.logs or {}).items():
                state.history.setdefault(key, []).append(value)
            c.cb.model.history = c.cb
            return "record"
        return record

    def visit_Print(self, action: n.Print | n.Warn, rule: CompiledRule,
                    exprs: ExprCompiler, where: str) -> Action:
        text, is_print = self.template(action.template, exprs), isinstance(action, n.Print)

        def message(c: Context) -> str:
            body = text(c)
            if is_print:
                runtime.print_message(body)
            else:
                warnings.warn(body, stacklevel=2)
            return "print" if is_print else "warn"
        return message


    visit_Warn = visit_Print

    def visit_Set(self, action: n.Set, rule: CompiledRule,
                  exprs: ExprCompiler, where: str) -> Action:
        var, value, op = action.var.name, exprs.compile(action.value), action.op.rstrip("=")

        if action.index is not None:
            key_of = exprs.compile(action.index)

            def set_entry(c: Context) -> str:
                table, key = c.cb.state.variables[var], key_of(c)
                if not isinstance(table, dict):
                    raise exprs.error(action.var, f"'{var}' is not a table: {_short(table)}")
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise exprs.error(action.index, "a table's key is a number, a string, "
                                      f"true, false or none, got {_short(key)}")
                if op and key not in table:
                    raise exprs.error(action.index, f"'{var}' has no entry {key!r} to update")
                try:
                    values.check_table_size(table, key)
                except ValueError as exc:
                    raise exprs.error(action, f"'{var}': {exc}") from None
                table[key] = value(c) if not op else _update(op, table[key], value(c), action,
                                                             exprs)
                return f"set {var}[{key!r}] = {_num(table[key])}"
            return set_entry

        def set_(c: Context) -> str:
            variables = c.cb.state.variables
            variables[var] = value(c) if not op else _update(op, variables[var], value(c),
                                                             action, exprs)
            return f"set {var} = {_num(variables[var])}"
        return set_

    def visit_Cooldown(self, action: n.Cooldown, rule: CompiledRule,
                       exprs: ExprCompiler, where: str) -> Action:
        count = exprs.compile(action.count)
        names = [action.tracker.name] if action.tracker is not None else [
            t.name for t in rule.trackers if t.stalls is not None]

        def cooldown(c: Context) -> str:
            k = count(c)
            if not values.is_number(k) or not math.isfinite(k) or k < 0:
                raise exprs.error(action.count, "a cooldown is a number of checks, not "
                                  f"negative, got {_short(k)}")
            k = int(k)
            for name in names:
                c.cb.state.trackers[name].cooldown = k
            return f"cooldown {k}" if k else ""
        return cooldown

    def visit_CallPython(self, action: n.CallPython, rule: CompiledRule,
                         exprs: ExprCompiler, where: str) -> Action:
        hook = self.params[action.func.name]
        args = [exprs.compile(a) for a in action.args]
        kwargs = {k.name.name: exprs.compile(k.value) for k in action.keywords}
        label = action.func.name

        def call(c: Context) -> str:
            if hook is None:  # not passed: a rule of such calls alone is not even compiled
                return ""
            hook(*[a(c) for a in args], **{k: v(c) for k, v in kwargs.items()})
            return f"call {label}"
        return call

    def visit_Effect(self, action: n.Effect, rule: CompiledRule, exprs: ExprCompiler,
                     where: str) -> Action:
        """`group.name(args)`: the runtime primitive, with its arguments bound by name."""
        spec = language.EFFECTS[action.full_name]
        names = [p.name for p in spec.params]
        given = {**{names[i]: exprs.compile(a) for i, a in enumerate(action.args)},
                 **{k.name.name: exprs.compile(k.value) for k in action.keywords}}
        defaults = {p.name: p.default for p in spec.params if not p.required}
        kinds = {p.name: p.type for p in spec.params}
        run = effects.IMPLEMENTATIONS[spec.name]

        def effect(c: Context) -> str:
            arguments = {**defaults, **{k: fn(c) for k, fn in given.items()}}
            for name, value in arguments.items():
                if value is not None and not values.matches(kinds[name], value):
                    raise exprs.error(action, f"{spec.name}() takes a {kinds[name]} as "
                                      f"'{name}', got {values.describe(value)}")
            if c.cb.dry_run:
                return spec.would_do(arguments)
            with keras_errors(exprs, action, "E405"):
                return run(c.cb, where=where, **arguments)
        return effect

    def visit_WriteRow(self, action: n.WriteRow, rule: CompiledRule, exprs: ExprCompiler,
                       where: str) -> Action:
        """`write row TABLE to PATH [with (separator = s, header = b, append = b)]`."""
        row, path = exprs.compile(action.row), exprs.compile(action.file)  # a path, as it is
        options = {o.name.name: exprs.compile(o.value) for o in action.options}
        defaults = {k: o.default for k, o in language.ACTIONS["WriteRow"].options.items()}

        def write_row(c: Context) -> str:
            target, values = str(path(c)), row(c)
            if values is not None and not isinstance(values, dict):
                raise exprs.error(action.row, f"'write row' needs a table, got {_short(values)}")
            given = {k: options[k](c) if k in options else v for k, v in defaults.items()}
            if not isinstance(given["separator"], str) or len(given["separator"]) != 1:
                # Python's csv module's words, which Keras's CSVLogger raises
                raise exprs.error(action, '"delimiter" must be a 1-character string',
                                  like=TypeError)
            if c.cb.dry_run:
                return _would_write_row(target, values, bool(given["header"]),
                                        bool(given["append"]))
            with keras_errors(exprs, action, "E406"):  # a missing folder: Keras's error
                runtime.write_row(target, values, separator=given["separator"],
                                  header=bool(given["header"]), append=bool(given["append"]),
                                  handles=c.cb.__dict__.setdefault("resources", {}),
                                  model=c.cb._model)
            return f"write row to {target}"
        return write_row

    def visit_Post(self, action: n.Post, rule: CompiledRule, exprs: ExprCompiler,
                   where: str) -> Action:
        """`post json|form BODY to URL [with (headers = t, timeout = s)] [else MESSAGE]`."""
        kind, body, url = action.kind.name, exprs.compile(action.body), exprs.compile(action.url)
        options = {o.name.name: exprs.compile(o.value) for o in action.options}
        otherwise = self.action(action.otherwise, rule, exprs, where) \
            if action.otherwise is not None else None
        owner = self.definition.name

        def post(c: Context) -> str:
            target, payload = url(c), body(c)
            headers = options["headers"](c) if "headers" in options else None
            timeout = options["timeout"](c) if "timeout" in options else POST_DEFAULTS["timeout"]
            if not isinstance(target, str):
                raise exprs.error(action.url, f"'post' needs a URL string, got {_short(target)}")
            if kind == "form" and not isinstance(payload, dict):
                raise exprs.error(action.body, f"'post form' needs a table, got "
                                  f"{_short(payload)}")
            if not values.is_number(timeout) or not 0 < timeout <= 3600:
                raise exprs.error(action, "the timeout of 'post' is a number of seconds, above "
                                  f"0 and at most 3600, got {_short(timeout)}")
            if headers is not None and not (isinstance(headers, dict) and all(
                    isinstance(k, str) and isinstance(v, str) for k, v in headers.items())):
                raise exprs.error(action, "the headers of 'post' are a table of strings, got "
                                  f"{_short(headers)}")
            if c.cb.dry_run:
                return f"would post {kind} to {target}"
            try:
                sent = runtime.post(target, payload, kind=kind, headers=headers,
                                    timeout=timeout, owner=owner, unhandled=otherwise is None,
                                    model=c.cb._model)
            except (TypeError, ValueError) as exc:  # a body JSON cannot hold (an array)
                raise exprs.error(action.body, f"'post {kind}' cannot send it: {exc}",
                                  like=type(exc)) from exc
            except OSError as exc:  # no `else`: the failed request ends training, as its type
                raise exprs.error(action, str(exc), "E406", like=type(exc)) from exc
            if sent:
                return f"post {kind} to {target}"
            done = otherwise(c)
            return f"post {kind} to {target} failed" + (f", {done}" if done else "")
        return post

    def visit_For(self, loop: n.For, rule: CompiledRule, exprs: ExprCompiler,
                  where: str) -> Action:
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
            if not isinstance(items, dict | list | tuple | str):
                raise exprs.error(loop.iterable, "'for' needs a table, a list or a string, got "
                                  f"{_short(items)}")
            if isinstance(items, dict):  # a snapshot: the body may write into the same table
                entries = list(items.items()) if len(names) == 2 else list(items)
            else:
                entries = list(enumerate(items)) if len(names) == 2 else list(items)
            outer = dict(c.locals)
            count = 0
            would: list[str] = []  # in a dry run, what the body would have done, each time
            try:
                for entry in entries:
                    c.locals.update(zip(names, entry, strict=True) if len(names) == 2
                                    else {names[0]: entry})
                    if condition is not None and not condition(c):
                        continue
                    for action in actions:
                        done = action(c)
                        if c.cb.dry_run:
                            would += [d for d in done.split("\n") if d.startswith("would ")]
                    count += 1
            finally:
                c.locals = outer
            return "\n".join([f"for {', '.join(names)}: {count} times", *would]) if count else ""
        return run


def _update(op: str, old: Any, given: Any, action: n.Node, exprs: ExprCompiler) -> Any:
    """`x op= value`, as the expression `x op value` computes it."""
    try:
        return values.arithmetic(op, old, given)
    except ValueError as exc:
        raise exprs.error(action, str(exc)) from None


def text_of(value: Any, node: n.Node, exprs: ExprCompiler) -> str:
    """A value as the text `write` and `append` put in a file, within bounds."""
    try:
        return values.check_text(value if isinstance(value, str) else str(value))
    except (ValueError, RecursionError) as exc:  # a table that holds itself
        raise exprs.error(node, f"cannot write {type(value).__name__} as text: {exc}") \
            from None


def _would_write_row(path: str, row: dict[str, Any] | None, header: bool, append: bool) -> str:
    """What `write row` would have done to the file, for a dry run's timeline."""
    if row is None:
        return f"would create {path} if absent" if append else f"would empty {path}"
    what = "a header and a row" if header else "a row"
    return f"would write {what} to {path}" if append else \
        f"would empty {path} and write {what} to it"


@contextlib.contextmanager
def keras_errors(exprs: ExprCompiler, node: n.Node, code: str) -> Iterator[None]:
    """Errors Keras, TensorFlow or the file system raise under an action (a save path Keras
    refuses, a missing folder): positioned run-time errors of the same type and text."""
    try:
        yield
    except CbdslError:
        raise
    except (OSError, ValueError, TypeError, ArithmeticError) as exc:
        raise exprs.error(node, str(exc), code, like=type(exc)) from exc
