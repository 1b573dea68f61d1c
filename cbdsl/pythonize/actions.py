"""Actions as Python statements: one `x_<Kind>` method for each action node kind."""

from __future__ import annotations

from cbdsl import language
from cbdsl.checker.templates import template_fields
from cbdsl.checker.trackers import trackers_of
from cbdsl.pythonize.code import ADD, ATOM, BIN_PREC, CMP, MUL, OR, Code, py_str
from cbdsl.pythonize.layout import Block, Comment, If, Line, StrCall
from cbdsl.pythonize.names import RESERVED_LOCALS, Scope, identifier
from cbdsl.pythonize.snippets import LR_READ
from cbdsl.pythonize.tree import action_exprs, nonzero
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk


class ActionWriter:
    """Each action node as statements: `action(...)` calls `x_<Kind>(action, scope, rule,
    guarded_calls, later)`.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def actions(self, actions, scope: Scope, rule: n.Rule, *, guarded_calls: bool) -> list:
        out: list = []
        flat = list(actions)
        for i, action in enumerate(flat):
            later = flat[i + 1:]
            out += self.action(action, scope, rule, guarded_calls, later)
        return out

    def action(self, action, scope: Scope, rule: n.Rule, guarded_calls: bool,
               later: list) -> list:
        """One action as statements; `later` are the actions after it in its rule or loop."""
        # dispatches on every action kind: `x_<Kind>` writes the node `n.<Kind>`
        method = getattr(self, f"write_{type(action).__name__}", None)
        if method is None:
            raise self.error(f"the action '{type(action).__name__}'", action)
        return method(action, scope, rule, guarded_calls, later)

    def write_Assign(self, action: n.Assign, scope: Scope, rule: n.Rule,
                 guarded_calls: bool, later: list) -> list:
        value = self.expr(action.value, scope)
        if action.op == "=":
            new = value.text
        else:
            op = action.op[0]
            new = f"lr {op} {value.at(BIN_PREC[op] + 1)}"
            if op == "/" and not nonzero(action.value):
                new = f"lr / {value.at(MUL + 1)} if {value.at(CMP + 1)} != 0 else math.nan"
                self.module.imports.add("math")
        out = [Line(f"self.model.optimizer.learning_rate = {new}")]
        if any(self.reads_lr_in(e) for e in action_exprs(later)) or any(
                isinstance(a, n.Assign) and a.op != "=" for a in flat_actions(later)) or \
                self._in_loop:
            out.append(LR_READ)
        return out

    def write_Stop(self, action: n.Stop, scope: Scope, rule: n.Rule,
               guarded_calls: bool, later: list) -> list:
        flag = {"train": "stop_training", "test": "stop_evaluating",
                "predict": "stop_predicting"}[scope.event.phase]
        out = [Line(f"self.model.{flag} = True")]
        if scope.epoch is not None:
            self.uses.add("stopped_epoch")
            if scope.epoch == "self._current_epoch":
                self.uses.add("current_epoch")
            out.append(Line(f"self.stopped_epoch = {scope.epoch}"))
        return out

    def write_Save(self, action: n.Save, scope: Scope, rule: n.Rule,
               guarded_calls: bool, later: list) -> list:
        self.module.imports.add("os")
        path = self.template(action.path, scope, rule)
        call = "self.model.save_weights" if action.kind == "weights" else "self.model.save"
        return [*_fills(path), StrCall("filepath = ", path, ""),
                Line('os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)'),
                Line(f"{call}(filepath, overwrite=True)")]

    def write_Restore(self, action: n.Restore, scope: Scope, rule: n.Rule,
                  guarded_calls: bool, later: list) -> list:
        if action.tracker is not None:
            tracker = self.tracker_by_name[action.tracker.name]
        else:
            here = trackers_of(rule)
            tracker = self.trackers[id(here[0])] if here else \
                self.tracker_by_name[next(iter(self.restored))]
        weights = f"self.{tracker.attrs['best_weights']}"
        return [If([(Code(f"{weights} is not None", CMP),
                     [Line(f"self.model.set_weights({weights})")])])]

    def write_Log(self, action: n.Log, scope: Scope, rule: n.Rule,
              guarded_calls: bool, later: list) -> list:
        self._needs_logs = True
        value = self.expr(action.value, scope)
        key = py_str(action.key.name) if action.key is not None else \
            self.expr(action.key_expr, scope).text
        if action.key is not None:
            scope.metric_locals.pop(action.key.name, None)
        else:
            scope.metric_locals.clear()
        return [Line(f"{scope.logs}[{key}] = {value.text}")]

    def write_Print(self, action: n.Print, scope: Scope, rule: n.Rule,
                guarded_calls: bool, later: list) -> list:
        message = self.template(action.template, scope, rule)
        self.module.helpers.add("print_msg")
        return [StrCall("print_msg(", message, ")")]

    def write_Warn(self, action: n.Warn, scope: Scope, rule: n.Rule,
               guarded_calls: bool, later: list) -> list:
        message = self.template(action.template, scope, rule)
        self.module.imports.add("warnings")
        return [StrCall("warnings.warn(", message, ", stacklevel=2)")]

    def write_Fail(self, action: n.Fail, scope: Scope, rule: n.Rule,
               guarded_calls: bool, later: list) -> list:
        message = self.template(action.template, scope, rule)
        # in `on metric_missing` a log key was missing: a KeyError, as the compiled rule's
        kind = "KeyError" if all(e.name == "metric_missing" for e in rule.events) \
            else "RuntimeError"
        return [StrCall(f"raise {kind}(", message, ")")]

    def write_Set(self, action: n.Set, scope: Scope, rule: n.Rule,
              guarded_calls: bool, later: list) -> list:
        target = f"self.{self.attr[action.var.name]}"
        if action.index is not None:
            target += f"[{self.expr(action.index, scope).text}]"
        value = self.expr(action.value, scope)
        if action.op == "/=" and not nonzero(action.value):
            pass  # Python's ZeroDivisionError, as the compiled rule raises it
        return [Line(f"{target} {action.op} {value.text}")]

    def write_Cooldown(self, action: n.Cooldown, scope: Scope, rule: n.Rule,
                   guarded_calls: bool, later: list) -> list:
        count = self.expr(action.count, scope)
        held = ([self.tracker_by_name[action.tracker.name]] if action.tracker is not None
                else [self.trackers[id(t)] for t in trackers_of(rule) if isinstance(t, n.Stalls)])
        return [Line(f"self.{t.attrs['cooldown_counter']} = {count.text}") for t in held]

    def write_CallPython(self, action: n.CallPython, scope: Scope, rule: n.Rule,
                     guarded_calls: bool, later: list) -> list:
        fn = f"self.{self.attr[action.func.name]}"
        needed, raw = self._needs_logs, scope.inner(logs="logs")  # as Keras passes them
        args = [self.expr(a, raw).text for a in action.args]
        args += [f"{k.name.name}={self.expr(k.value, raw).text}" for k in action.keywords]
        self._needs_logs = needed or any(self.reads_logs(a, scope) for a in (
            *action.args, *(k.value for k in action.keywords)))
        scope.metric_locals.clear()  # the hook may change the logs
        call = Line(f"{fn}({', '.join(args)})")
        if guarded_calls:
            return [If([(Code(f"{fn} is not None", CMP), [call])])]
        return [call]

    def write_Record(self, action: n.Record, scope: Scope, rule: n.Rule,
                 guarded_calls: bool, later: list) -> list:
        self._needs_logs = True
        return [Line(f"self.epoch.append({scope.epoch})"),
                Block(f"for key, value in {scope.logs}.items():",
                      [Line("self.history.setdefault(key, []).append(value)")]),
                Line("self.model.history = self")]

    def write_WriteFile(self, action: n.WriteFile, scope: Scope, rule: n.Rule,
                    guarded_calls: bool, later: list) -> list:
        self.module.imports.add("os")
        path = self.template(action.path, scope, rule)
        text = self.expr(action.text, scope)
        if not self.is_str(action.text):
            text = Code(f"str({text.text})")
        mode = "a" if action.mode == "append" else "w"
        written = f"{text.at(ADD + 1)} + \"\\n\"" if action.mode == "append" else text.text
        return [*_fills(path),
                Comment("In a multi-process job, the compiled rule writes from the first "
                        "process only."),
                StrCall("filepath = ", path, ""),
                Line('os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)'),
                Block(f'with open(filepath, "{mode}", encoding="utf-8", newline="") as f:',
                      [Line(f"f.write({written})")])]

    def write_WriteRow(self, action: n.WriteRow, scope: Scope, rule: n.Rule,
                   guarded_calls: bool, later: list) -> list:
        self.module.helpers.add("write_row")
        path, row = self.expr(action.file, scope), self.expr(action.row, scope)
        options = "".join(f", {o.name.name}={self.expr(o.value, scope).text}"
                          for o in action.options)
        return [Line(f"write_row({path.text}, {row.text}{options})")]

    def write_Post(self, action: n.Post, scope: Scope, rule: n.Rule,
               guarded_calls: bool, later: list) -> list:
        """`post json|form BODY to URL`: `requests.post`, bounded by a timeout."""
        options = {o.name.name: self.expr(o.value, scope).text for o in action.options}
        headers = options.get("headers", "None")
        timeout = options.get("timeout", repr(language.POST_TIMEOUT))
        body = self.expr(action.body, scope).text
        sent = f"json={body}" if action.kind.name == "json" else body
        message = py_str(f"{self.d.name} requires the `requests` library.")
        url = self.expr(action.url, scope).text
        call = Line(f"requests.post({url}, {sent}, headers={headers}, timeout={timeout})")
        out = [Block("try:", [Line("import requests")]),
               Block("except ImportError:", [Line(f"raise ImportError({message}) from None")])]
        if action.otherwise is None:
            return [*out, call]
        otherwise = self.action(action.otherwise, scope, rule, guarded_calls, [])
        return [*out, Block("try:", [call]),
                Block("except requests.exceptions.RequestException:", otherwise)]

    _in_loop = False  # inside a `for` body

    def write_For(self, loop: n.For, scope: Scope, rule: n.Rule,
              guarded_calls: bool, later: list) -> list:
        names = [i.name for i in loop.names]
        kind = self.iterable_kind(loop.iterable)
        if kind is None:
            raise self.error("a 'for' over a value that is neither a known table nor a list",
                             loop.iterable)
        iterable = self.expr(loop.iterable, scope)
        if self.may_be_none(loop.iterable):
            iterable = Code(f"{iterable.at(OR + 1)} or {'{}' if kind == 'dict' else '[]'}", OR)
        body_scope = scope.inner()
        read = self.names_read_in(loop)
        taken = set(RESERVED_LOCALS) | set(scope.metric_locals.values()) | set(
            scope.locals.values()) | {self.attr[p] for p in self.params}
        targets = []
        for name in names:
            local = identifier(name, taken, "_")
            if name not in read:
                local = "_" + local
            body_scope.locals[name] = local
            taken.add(local)
            targets.append(local)
        writes_into = self.writes_into(loop, loop.iterable)
        if kind == "dict":
            source = f"{iterable.at(ATOM)}.items()" if len(names) == 2 else iterable.text
        else:
            source = f"enumerate({iterable.text})" if len(names) == 2 else iterable.text
        if writes_into:
            source = f"list({source})"
        previous = self._in_loop
        self._in_loop = True
        try:
            actions: list = []
            for i, action in enumerate(loop.actions):
                actions += self.action(action, body_scope, rule, guarded_calls,
                                       list(loop.actions[i + 1:]))
            if loop.condition is not None:
                cond = self.expr(loop.condition, body_scope, boolean=True)
                actions = [If([(cond, actions)])]
        finally:
            self._in_loop = previous
        if any(isinstance(a, n.Log | n.CallPython) for a in flat_actions(loop.actions)):
            scope.metric_locals.clear()
        return [Block(f"for {', '.join(targets)} in {source}:", actions)]

    def write_Effect(self, action: n.Effect, scope: Scope, rule: n.Rule,
                 guarded_calls: bool, later: list) -> list:
        raise self.error(f"the effect '{action.full_name}' is cbdsl's runtime", action)

    def names_read_in(self, loop: n.For) -> set[str]:
        found = set()
        for expr in [loop.condition, *action_exprs(loop.actions)]:
            for node in walk(expr):
                if isinstance(node, n.Name):
                    found.add(node.id)
                elif isinstance(node, n.String):
                    found |= set(template_fields(node.value))
        return found

    def writes_into(self, loop: n.For, iterable: n.Expr) -> bool:
        for action in flat_actions(loop.actions):
            if isinstance(iterable, n.Name) and iterable.id == "logs" and isinstance(
                    action, n.Log | n.CallPython):
                return True
            if isinstance(iterable, n.Name) and isinstance(action, n.Set) and \
                    action.var.name == iterable.id:
                return True
        return False


def _fills(path: list | Code) -> list:
    if isinstance(path, Code):
        return [Comment("The path's {epoch} and metric fields are filled in, as ModelCheckpoint "
                        "fills its filepath.")]
    return []
