"""The checks of actions: where each may run, its operands, options, templates and targets."""

from __future__ import annotations

import math

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value, folded
from cbdsl.checker.templates import template_fields, template_problem, template_specs
from cbdsl.diagnostics import did_you_mean
from cbdsl.language import types, values
from cbdsl.language.formats import INT_CODES, NUMBER_CODES, spec_type
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

ROW_OPTIONS = language.ACTIONS["WriteRow"].options
POST_OPTIONS = language.ACTIONS["Post"].options


class ActionChecks:
    """The checks of actions, one `check_<Node>` method per action node (see
    `cbdsl.language.ACTIONS`); mixed into `RuleChecker`, whose scope and reports they use."""

    def check_action(self, action: n.Action) -> None:
        spec = language.ACTIONS[type(action).__name__]
        if spec.events is not None:
            for event in self.events:
                if event.name not in spec.events:
                    self.report("E205", f"'{spec.word}' is not allowed in {event.name}",
                                action.span, spec.hint)
        getattr(self, f"check_{type(action).__name__}")(action)

    def check_Assign(self, action: n.Assign) -> None:
        if action.target.name not in language.TARGETS:
            hint = did_you_mean(action.target.name, language.TARGETS)
            if action.target.name in self.scope.variables:
                hint = f"state variables are written with `set {action.target.name} = ...`"
            self.report("E208", f"cannot assign to '{action.target.name}'", action.target.span,
                        hint or "targets: " + ", ".join(language.TARGETS))
        self.check_number(action.value)

    def check_Set(self, action: n.Set) -> None:
        if action.var.name not in self.scope.variables:
            self.report("E206", f"no state variable named '{action.var.name}'",
                        action.var.span, did_you_mean(action.var.name, self.scope.variables)
                        or f"declare it with `var {action.var.name} = 0`")
        elif action.index is not None and \
                types.base_type(self.scope.variables[action.var.name]) not in ("table", "any"):
            self.report("E221", f"'{action.var.name}' is not a table; only a table has "
                        "entries to set", action.var.span,
                        f"declare it with `var {action.var.name} = {{}}`")
        elif action.index is None and action.op != "=":
            name = action.var.name
            if types.is_optional(self.scope.narrowed(action, name, self.scope.variables[name])):
                self.report("E221", f"'{action.op}' needs a value, and '{name}' may be none "
                            "(a value set to it may be)", action.var.span,
                            f"guard it: `when {name} != none and ...`")
            elif not self.check_present(action.value, f"'{action.op}' needs a value"):
                self.check_operands(action.op.rstrip("="),
                                    types.base_type(self.scope.variables[action.var.name]),
                                    self.scope.infer(action.value, self.checker, None),
                                    action.span)
        self.check_expr(action.index)
        self.check_expr(action.value)

    def check_Log(self, action: n.Log) -> None:
        self.check_expr(action.key_expr)
        self.check_expr(action.value)

    def check_WriteFile(self, action: n.WriteFile) -> None:
        self.check_expr(action.text)
        self.check_template(action.path)

    def check_Save(self, action: n.Save) -> None:
        self.check_template(action.path)
        if action.kind == "weights":
            self.check_weights_path(action.path)

    def check_Print(self, action: n.Print | n.Warn | n.Fail) -> None:
        self.check_template(action.template)

    check_Warn = check_Fail = check_Print

    def check_Stop(self, action: n.Stop) -> None:
        """Nothing but its events, checked with every action's."""

    check_Record = check_Stop

    def check_Cooldown(self, action: n.Cooldown) -> None:
        self.check_count(action.count, "cooldown", before_training=False)
        if action.tracker is not None:
            kind = self.scope.trackers.get(action.tracker.name)
            if kind is None:
                self.report("E206", f"no tracker named '{action.tracker.name}'",
                            action.tracker.span, did_you_mean(action.tracker.name,
                                                              self.scope.trackers))
            elif not isinstance(kind, n.Stalls):
                self.report("E205", f"'{action.tracker.name}' is an 'improves' tracker; "
                            "'cooldown' holds a 'stalls' one", action.tracker.span)
            return
        if not any(isinstance(x, n.Stalls) for x in walk(self.rule.condition)):
            self.report("E205", "'cooldown' needs a 'stalls' predicate in the same rule",
                        action.span, "or name one: `cooldown N of TRACKER`")

    def check_CallPython(self, action: n.CallPython) -> None:
        info = self.scope.params.get(action.func.name)
        if info is None or info.type != "python":
            self.report("E216", f"'{action.func.name}' is not a Python hook parameter",
                        action.func.span, "declare it as `NAME: python` in the callback's "
                        "parameters; only the caller's Python code can fill it")
        for arg in (*action.args, *(k.value for k in action.keywords)):
            if not (isinstance(arg, n.Name) and arg.id == "logs"):
                self.check_expr(arg)

    def check_Effect(self, action: n.Effect) -> None:
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

    def check_WriteRow(self, action: n.WriteRow) -> None:
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

    def check_Post(self, action: n.Post) -> None:
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

    def check_For(self, loop: n.For) -> None:
        self.check_expr(loop.iterable)
        kind = self.scope.infer(loop.iterable, self.checker, None)
        if kind not in ("table", "list", "str", "any"):
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
        outer = dict(self.scope.locals)
        self.scope.locals.update(zip(names, self.scope.loop_types(loop), strict=True))
        try:
            self.check_expr(loop.condition)
            for action in loop.actions:
                self.check_action(action)
        finally:
            self.scope.locals = outer

    def check_number(self, expr: n.Expr) -> None:
        self.check_expr(expr)
        if self.check_present(expr, "the learning rate must be a number"):
            return
        kind = self.scope.infer(expr, self.checker, None)
        if kind in ("str", "table", "list", "bool", "none"):
            self.report("E221", f"the learning rate must be a number, not a {kind}", expr.span)
            return
        value = folded(expr, self.scope.params)
        if values.is_number(value) and (not math.isfinite(value) or value < 0):
            self.report("E223", f"the learning rate must be finite and not negative, got "
                        f"{value!r}", expr.span)

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
            else:
                self.check_specs(expr)
        elif self.scope.infer(expr, self.checker, None) not in ("str", "any"):
            self.report("E221", "a template must be a string", expr.span)

    def check_specs(self, expr: n.String) -> None:
        """Each field's format spec against the field's type, where the check knows it: an
        integer format (`d`) of a float metric, a number format of a string."""
        for name, spec in template_specs(expr.value):
            code = spec_type(spec)
            if code is None:
                continue
            full = self.field_type(name, expr)
            kind = types.base_type(full)
            if code in INT_CODES | NUMBER_CODES and types.is_optional(full):
                what = ("is none until the tracker's first check" if "." in name else
                        "may be none here")
                self.report("E221", f"template field '{{{name}:{spec}}}': format '{code}' takes "
                            f"a number, and '{name}' {what}", expr.span,
                            f"guard the rule: `when {name} != none`, or show it without a "
                            f"format: {{{name}}}")
            elif code in INT_CODES and kind in ("float", "number"):
                self.report("E221", f"template field '{{{name}:{spec}}}': format '{code}' takes "
                            f"an integer; '{name}' is a {'float' if kind == 'float' else 'number'}"
                            " (Keras logs metrics as floats)", expr.span,
                            f"show it rounded with {{{name}:{spec[:-1]}.0f}}")
            elif code in INT_CODES | NUMBER_CODES and kind in ("str", "table", "list"):
                self.report("E221", f"template field '{{{name}:{spec}}}': format '{code}' takes "
                            f"a number; '{name}' is a {kind}", expr.span)
            elif code == "s" and kind in ("int", "float", "number", "bool"):
                self.report("E221", f"template field '{{{name}:{spec}}}': format 's' takes a "
                            f"string; '{name}' is a {kind}", expr.span,
                            f"drop the 's': {{{name}:{spec[:-1]}}}")

    def field_type(self, name: str, template: n.Expr) -> str:
        """The type of a template field, as the guards in force at the template narrow it:
        1-based counters are ints, the rest as expressions."""
        if "." in name:
            kind = language.TRACKER_FIELD_TYPES.get(name.split(".", 1)[1], "any")
            return self.scope.narrowed(template, name, kind)
        return self.scope.narrowed(template, name, self.scope.type_of(n.Name(name)))

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

    def check_Restore(self, action: n.Restore) -> None:
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
