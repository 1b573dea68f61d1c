"""Semantic passes: resolve imports and uses, type parameters, collect every diagnostic."""

from __future__ import annotations

import os
import string
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cbdsl import nodes as n
from cbdsl import vocab
from cbdsl.diagnostics import CbdslCheckError, CbdslError, Diagnostic, Span, did_you_mean

REQUIRED = object()  # marks a parameter with no default
INVALID = object()  # marks a parameter whose default was refused (E219)
COMMON_METRICS = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae", "mse",
                  "val_mse", "auc", "val_auc", "precision", "recall", "learning_rate")


@dataclass
class ParamInfo:
    """A parameter of a definition: its declared type and constant default."""

    name: str
    type: str
    default: Any
    node: n.ParamDecl


@dataclass
class Definition:
    """A callback definition ready to instantiate: a `callback` block or a file's top level."""

    name: str
    params: dict[str, ParamInfo]
    body: tuple[n.Rule | n.VarDecl, ...]
    path: str
    source: str
    doc: str | None = None
    node: n.CallbackDef | None = None

    @property
    def rules(self) -> list[n.Rule]:
        return [item for item in self.body if isinstance(item, n.Rule)]

    @property
    def variables(self) -> list[n.VarDecl]:
        return [item for item in self.body if isinstance(item, n.VarDecl)]

    @property
    def requirements(self) -> list[n.Require]:
        return [item for item in self.body if isinstance(item, n.Require)]


@dataclass
class Instance:
    """One callback the program produces: a definition and the arguments of its `use`."""

    definition: Definition
    args: dict[str, n.Expr] = field(default_factory=dict)
    label: str = ""
    span: Span | None = None


@dataclass
class CheckedProgram:
    """A program whose every name, type and reference was checked.

    Attributes:
        program: the parsed root file.
        main: the file's top level (its params, vars and rules) as a definition.
        definitions: callback definitions visible by name.
        instances: the callbacks to build, in file order.
        diagnostics: warnings (a CheckedProgram has no errors).
    """

    program: n.Program
    main: Definition
    definitions: dict[str, Definition]
    instances: list[Instance]
    diagnostics: list[Diagnostic]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]


def library_dirs(base: str | None) -> dict[str, list[Path]]:
    """Where `use lib.rule` looks for the library `lib`, in this order: a folder next to the
    file, a folder on CBDSL_PATH, a package registered in the `cbdsl.rules` entry-point group
    (`team = "team_rules"`), and the built-in `keras` library."""
    roots = [Path(base)] if base else [Path.cwd()]
    roots += [Path(p) for p in os.environ.get("CBDSL_PATH", "").split(os.pathsep) if p]
    found: dict[str, list[Path]] = defaultdict(list)
    for root in roots:
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if child.is_dir() and any(child.glob("*.cbd")):
                    found[child.name].append(child)
    for name, folder in installed_libraries().items():
        found[name].append(folder)
    builtin = Path(str(resources.files("cbdsl.rules")))
    if builtin not in found["keras"]:
        found["keras"].append(builtin)
    return found


def installed_libraries() -> dict[str, Path]:
    """Rule libraries that pip packages register: `[project.entry-points."cbdsl.rules"]`,
    each naming a package whose folder holds `.cbd` files. Entries that do not resolve are
    left out (`cbdsl list` reports them)."""
    from importlib.metadata import entry_points

    out = {}
    for entry in entry_points(group="cbdsl.rules"):
        try:
            folder = Path(str(resources.files(entry.value)))
        except (ModuleNotFoundError, TypeError, ValueError):
            continue
        if folder.is_dir():
            out.setdefault(entry.name, folder)
    return out


class Checker:
    """Runs every semantic pass and collects diagnostics instead of stopping at the first."""

    def __init__(self, program: n.Program):
        self.program = program
        self.diagnostics: list[Diagnostic] = []
        self.definitions: dict[str, Definition] = {}
        self.library_cache: dict[Path, n.Program] = {}
        self._importing: dict[str, Span] = {}  # file -> the import being followed from it
        self._origin: dict[int, n.Program] = {}  # top-level item -> the file it was written in
        self._base = (os.path.dirname(os.path.abspath(program.path))
                      if program.path not in ("<string>", "") else None)

    # ------------------------------------------------------------ reporting
    def report(self, code: str, message: str, span: Span | None, where: Definition | n.Program,
               hint: str | None = None, related: Iterable[tuple[str, str, Span]] = ()) -> None:
        path = where.path
        source = where.source
        self.diagnostics.append(Diagnostic(code, message, span if span and span.line else None,
                                           path, source, hint, tuple(related)))

    def origin(self, item: n.Node, default: Definition | n.Program) -> Definition | n.Program:
        """Where a top-level item was written: an imported file's rules, params and vars are
        reported in that file, not in the file that imports it."""
        return self._origin.get(id(item), default)

    # ---------------------------------------------------------- entry point
    def run(self) -> CheckedProgram:
        params: list[n.ParamDecl] = []
        body: list[n.Rule | n.VarDecl] = []
        uses: list[tuple[n.Use, n.Program]] = []
        self._collect(self.program, params, body, uses, [os.path.abspath(self.program.path)])
        main = Definition(_stem(self.program.path), self._params(params, self.program), tuple(body),
                          self.program.path, self.program.source)
        self.check_definition(main)
        for definition in list(self.definitions.values()):
            self.check_definition(definition)
        instances: list[Instance] = []
        if main.rules:
            instances.append(Instance(main, {}, main.name))
        for use, where in uses:
            instance = self._instantiate(use, where, main)
            if instance is not None:
                instances.append(instance)
        self._check_cross_conflicts(instances)
        self.diagnostics.sort(key=lambda d: (d.path, d.span or Span(0, 0, 0, 0)))
        errors = [d for d in self.diagnostics if d.severity == "error"]
        if errors:
            raise CbdslCheckError(self.diagnostics)
        return CheckedProgram(self.program, main, self.definitions, instances, self.diagnostics)

    # ------------------------------------------------------- imports, defs
    def _collect(self, program: n.Program, params: list, body: list, uses: list,
                 stack: list[str]) -> None:
        for item in program.items:
            self._origin[id(item)] = program
            if isinstance(item, n.Import):
                self._import(item, program, params, body, uses, stack)
            elif isinstance(item, n.CallbackDef):
                self._define(item, program)
            elif isinstance(item, n.ParamDecl):
                params.append(item)
            elif isinstance(item, n.Use):
                uses.append((item, program))
            else:
                body.append(item)

    def _import(self, item: n.Import, program: n.Program, params, body, uses, stack) -> None:
        from cbdsl.parser import parse, read_source

        base = os.path.dirname(os.path.abspath(program.path)) if program.path != "<string>" \
            else os.getcwd()
        target = os.path.abspath(os.path.join(base, item.path.value))
        if target in stack:
            start = self._importing.get(target, item.span)
            self.report("E213", f"import cycle: '{item.path.value}' imports itself", item.span,
                        program, related=[("the cycle starts here", target, start)])
            return
        if not os.path.isfile(target):
            self.report("E213", f"cannot import '{item.path.value}': no such file", item.path.span,
                        program)
            return
        try:
            imported = parse(read_source(target), target)
        except CbdslError as exc:
            self.diagnostics.extend(exc.diagnostics)
            return
        self._importing[os.path.abspath(program.path)] = item.span
        self._collect(imported, params, body, uses, [*stack, target])

    def _define(self, item: n.CallbackDef, program: n.Program) -> Definition:
        params = self._params(item.params, program)
        body, doc = item.body, item.doc
        if item.extends is not None:
            base = self._resolve_use(item.extends, program)
            if base is not None:
                params = {**self._extended_params(base, item.extends, program), **params}
                for part in base.body:  # the base's rules are reported in the base's file
                    self._origin.setdefault(id(part), base)
                body, doc = (*base.body, *item.body), doc or base.doc
        definition = Definition(item.name.name, params, body, program.path, program.source, doc,
                                item)
        previous = self.definitions.get(item.name.name)
        if previous is not None and previous.node is not None:
            self.report("E209", f"callback '{item.name.name}' is defined twice", item.name.span,
                        program, related=[("first defined here", previous.path,
                                           previous.node.name.span)])
        else:
            self.definitions[item.name.name] = definition
        return definition

    def _extended_params(self, base: Definition, extends: n.Use, where: n.Program
                         ) -> dict[str, ParamInfo]:
        """The base's parameters, with the defaults `extends base(name = value)` gives."""
        params = dict(base.params)
        names = list(base.params)
        given = [*((name, value, value.span) for name, value in zip(names, extends.args,
                                                                      strict=False)),
                 *((k.name.name, k.value, k.name.span) for k in extends.keywords)]
        if len(extends.args) > len(names):
            self.report("E203", f"'{extends.dotted}' takes {len(names)} arguments, "
                        f"{len(extends.args)} given", extends.span, where)
        for name, value, span in given:
            info = base.params.get(name)
            if info is None:
                self.report("E212", f"'{extends.dotted}' has no parameter '{name}'",
                            span, where, did_you_mean(name, names))
                continue
            try:
                default = const_value(value)
            except NotConstant as exc:
                self.report("E219", f"the new default of '{name}' must be a constant", exc.span,
                            where)
                continue
            kind = vocab.type_of_value(default)
            if info.type not in ("python", "any") and not vocab.accepts(info.type, kind):
                self.report("E221", f"'{name}' takes {info.type}, got {kind}", value.span, where)
                continue
            params[name] = ParamInfo(name, info.type, default, info.node)
        return params

    def _params(self, decls: Iterable[n.ParamDecl], where) -> dict[str, ParamInfo]:
        params: dict[str, ParamInfo] = {}
        default_where = where
        for decl in decls:
            where = self.origin(decl, default_where)
            name = decl.name.name
            if name in params:
                self.report("E209", f"parameter '{name}' is declared twice", decl.name.span, where)
                continue
            if decl.type_name is not None:
                type_name = decl.type_name.name
                if type_name not in vocab.PARAM_TYPES:
                    self.report("E212", f"unknown parameter type '{type_name}'",
                                decl.type_name.span, where,
                                did_you_mean(type_name, vocab.PARAM_TYPES))
                    type_name = "any"  # reported once; no type errors follow from it
                default = None if type_name in ("python", "schedule") else REQUIRED
                if decl.default is not None:
                    default = self._typed_default(decl, type_name, where)
                params[name] = ParamInfo(name, type_name, default, decl)
                continue
            try:
                value = const_value(decl.default)
            except NotConstant as exc:
                self.report("E219", f"the default of '{name}' must be a constant", exc.span, where,
                            "parameters are typed by constant defaults")
                # still a parameter (not a metric), of no known type: no errors follow from it
                params[name] = ParamInfo(name, "any", INVALID, decl)
                continue
            params[name] = ParamInfo(name, vocab.type_of_value(value), value, decl)
        return params

    def _typed_default(self, decl: n.ParamDecl, type_name: str, where) -> Any:
        """The default of `name: type = default`, which must be a constant of that type."""
        try:
            value = const_value(decl.default)
        except NotConstant as exc:
            self.report("E219", f"the default of '{decl.name.name}' must be a constant",
                        exc.span, where)
            return INVALID
        given = vocab.type_of_value(value)
        if type_name != "any" and not vocab.accepts(type_name, given):
            self.report("E221", f"'{decl.name.name}' is declared {type_name} but its default "
                        f"is {given}", decl.default.span, where)
            return INVALID
        return value

    # --------------------------------------------------------------- uses
    def _resolve_use(self, use: n.Use, where: n.Program) -> Definition | None:
        dotted = use.dotted
        if len(use.name) == 1:
            found = self.definitions.get(dotted)
            if found is None:
                self.report("E206", f"no callback named '{dotted}'", use.name[0].span, where,
                            did_you_mean(dotted, self.definitions) or
                            "define it with `callback`, import its file, or name its library")
            return found
        library, rule = ".".join(i.name for i in use.name[:-1]), use.name[-1].name
        dirs = library_dirs(self._base).get(library)
        if not dirs:
            known = library_dirs(self._base)
            self.report("E206", f"no rule library named '{library}'", use.name[0].span, where,
                        did_you_mean(library, known)
                        or f"libraries found: {', '.join(sorted(known))}")
            return None
        for folder in dirs:
            definition = self._library_definition(folder, rule)
            if definition is not None:
                return definition
        # the callbacks the library defines (every file of it was parsed by the search above)
        names = sorted({item.name.name for folder in dirs for path in folder.glob("*.cbd")
                        for item in self.library_cache.get(path, n.Program(())).items
                        if isinstance(item, n.CallbackDef)})
        self.report("E206", f"library '{library}' has no rule '{rule}'", use.name[-1].span, where,
                    did_you_mean(rule, names)
                    or (f"it has: {', '.join(names)}" if names else "it has no rules"))
        return None

    def _library_definition(self, folder: Path, rule: str) -> Definition | None:
        from cbdsl.parser import parse, read_source

        candidates = [folder / f"{rule}.cbd", *sorted(folder.glob("*.cbd"))]
        for path in candidates:
            if not path.is_file():
                continue
            if path not in self.library_cache:
                try:
                    self.library_cache[path] = parse(read_source(path), str(path))
                except CbdslError as exc:
                    self.diagnostics.extend(exc.diagnostics)
                    self.library_cache[path] = n.Program(())
            program = self.library_cache[path]
            defs = [item for item in program.items if isinstance(item, n.CallbackDef)]
            # `use keras.EarlyStopping` names the callback; `use keras.early_stopping` the
            # file, when it defines one callback
            named = [d for d in defs if d.name.name == rule] or (
                defs if path.stem == rule and len(defs) == 1 else [])
            for item in named:
                key = f"{folder.name}.{item.name.name}"
                if key not in self.definitions:
                    sub = Checker(program)
                    definition = sub._define(item, program)
                    sub.check_definition(definition)
                    self.diagnostics.extend(sub.diagnostics)
                    self.definitions[key] = definition
                return self.definitions[key]
        return None

    def _instantiate(self, use: n.Use, where: n.Program, main: Definition) -> Instance | None:
        definition = self._resolve_use(use, where)
        if definition is None:
            return None
        names = list(definition.params)
        args: dict[str, n.Expr] = {}
        if len(use.args) > len(names):
            self.report("E203", f"'{use.dotted}' takes {len(names)} "
                        f"argument{'' if len(names) == 1 else 's'}, {len(use.args)} given",
                        use.span, where)
        for name, value in zip(names, use.args, strict=False):
            args[name] = value
        for keyword in use.keywords:
            name = keyword.name.name
            if name not in definition.params:
                self.report("E212", f"'{use.dotted}' has no parameter '{name}'", keyword.name.span,
                            where, did_you_mean(name, names))
                continue
            if name in args:
                self.report("E212", f"parameter '{name}' is given twice", keyword.name.span, where)
            args[name] = keyword.value
        for name, info in definition.params.items():
            if info.default is REQUIRED and name not in args:
                self.report("E212", f"'{use.dotted}' needs a value for '{name}' ({info.type})",
                            use.span, where)
        scope = Scope(main, None)
        for name, value in args.items():
            given = scope.infer(value, self, None)
            declared = definition.params[name].type
            if given != "any" and not vocab.accepts(declared, _numeric(given, declared)):
                self.report("E221", f"'{name}' takes {declared}, got {given}", value.span, where)
        return Instance(definition, args, use.dotted, use.span)

    # ------------------------------------------------------- definitions
    def check_definition(self, definition: Definition) -> None:
        scope = Scope(definition, self)
        for var in definition.variables:
            name = var.name.name
            if name in definition.params:
                self.report("E209", f"'{name}' is both a parameter and a state variable",
                            var.name.span, self.origin(var, definition))
            elif name in scope.variables:
                self.report("E209", f"state variable '{name}' is declared twice", var.name.span,
                            self.origin(var, definition))
            else:
                scope.variables[name] = scope.infer(var.value, self, None)
        for requirement in definition.requirements:
            self._check_requirement(requirement, definition)
        for rule in definition.rules:
            scope.collect_trackers(rule, self)
        for rule in definition.rules:
            RuleChecker(self, scope, rule).check()
        self._check_conflicts(definition)
        read = {name for rule in definition.rules for name in names_read(rule)}
        for var in definition.variables:
            if var.name.name not in read:
                self.report("W203", f"state variable '{var.name.name}' is never read",
                            var.name.span, self.origin(var, definition))

    def _check_requirement(self, requirement: n.Require, definition: Definition) -> None:
        """`require` reads only parameters and constants: it runs before training starts."""
        where = self.origin(requirement, definition)
        for node in (*walk(requirement.condition), *walk(requirement.message)):
            if isinstance(node, n.Name) and node.id not in definition.params and node.id != "inf":
                self.report("E219", f"a requirement reads only parameters, not '{node.id}'",
                            node.span, where, did_you_mean(node.id, definition.params))
            elif isinstance(node, n.Stalls | n.Improves | n.Attribute):
                self.report("E219", "a requirement reads only parameters", node.span, where)
        if isinstance(requirement.message, n.String):
            problem = template_problem(requirement.message.value)
            if problem:
                self.report("E215", problem, requirement.message.span, where)
            for name in template_fields(requirement.message.value):
                if name not in definition.params:
                    self.report("E215", f"template field '{{{name}}}' is not a parameter",
                                requirement.message.span, where,
                                did_you_mean(name, definition.params))

    def _check_conflicts(self, definition: Definition) -> None:
        writers: dict[tuple[str, str, Any], list[tuple[n.Rule, Span]]] = defaultdict(list)
        for rule in definition.rules:
            priority = rule_priority(rule, definition)
            for event in rule_events(rule):
                for target, span in written_targets(rule):
                    entries = writers[(event, target, priority)]
                    if not any(other is rule for other, _ in entries):  # a rule's own actions
                        entries.append((rule, span))                   # run in their order
        for (event, target, _), entries in writers.items():
            for (rule, span), (other, first) in zip(entries[1:], entries, strict=False):
                self.report("E207", f"two rules write {target} at {event} in no declared order",
                            span, self.origin(rule, definition),
                            "give one rule a priority, or merge the rules",
                            [("the other write is here", self.origin(other, definition).path,
                              first)])

    def _check_cross_conflicts(self, instances: list[Instance]) -> None:
        seen: dict[tuple[str, str], Instance] = {}
        for instance in instances:
            for rule in instance.definition.rules:
                for event in rule_events(rule):
                    for target, _ in written_targets(rule):
                        if not target.startswith("lr"):
                            continue
                        key = (event, target)
                        earlier = seen.get(key)
                        if earlier is not None and earlier is not instance:
                            self.report(
                                "E207", f"'{earlier.label}' and '{instance.label}' both write "
                                f"{target} at {event}", instance.span or rule.span,
                                self.program, "the later callback in the list would win "
                                "silently: keep one writer per target and event")
                        seen.setdefault(key, instance)


# -------------------------------------------------------------- rule checks


class Scope:
    """What names mean inside one definition: parameters, variables, trackers."""

    def __init__(self, definition: Definition, checker: Checker | None):
        self.definition = definition
        self.params = definition.params
        self.variables: dict[str, str] = {}
        self.trackers: dict[str, n.Stalls | n.Improves] = {}
        self.locals: set[str] = set()  # the names a `for` binds, while its body is checked

    def collect_trackers(self, rule: n.Rule, checker: Checker) -> None:
        for node in walk(rule.condition):
            if isinstance(node, n.Stalls | n.Improves) and node.alias is not None:
                name = node.alias.name
                if name in self.trackers or name in self.params or name in self.variables:
                    checker.report("E209", f"'{name}' is already defined", node.alias.span,
                                   checker.origin(rule, self.definition))
                else:
                    self.trackers[name] = node

    def infer(self, expr: n.Expr, checker: Checker, event: vocab.Event | None) -> str:
        """The type of `expr`: int, float, number, bool, str, table, none or any."""
        t = type(expr)
        if t is n.Number:
            return "int" if isinstance(expr.value, int) else "float"
        if t is n.String:
            return "str"
        if t is n.Bool:
            return "bool"
        if t is n.NoneLit:
            return "none"
        if t is n.Table:
            return "table"
        if t is n.Name:
            if expr.id in self.locals:
                return "any"
            if expr.id in self.params:
                return self.params[expr.id].type
            if expr.id in self.variables:
                return self.variables[expr.id]
            if expr.id in ("epoch", "batch", "step", "epochs", "verbose", "iterations"):
                return "int"
            if expr.id == "logs":
                return "table"
            return "any" if expr.id in ("steps", "metrics", "available", "missing") \
                else "number"
        if t is n.Attribute:
            return "any" if expr.attr.name == "best" else "number"
        if t in (n.Compare, n.BoolOp, n.Stalls, n.Improves, n.IsNan, n.IsFinite):
            return "bool"
        if t is n.Unary:
            return "bool" if expr.op == "not" else self.infer(expr.operand, checker, event)
        if t is n.BinOp:
            left = self.infer(expr.left, checker, event)
            right = self.infer(expr.right, checker, event)
            if expr.op == "+" and "str" in (left, right) and {left, right} <= {"str", "any"}:
                return "str"  # a string joined with a string, or with what may be one
            if left == right == "int" and expr.op in ("+", "-", "*", "//", "%", "**"):
                return "int"
            return "number"
        if t is n.Conditional:
            a, b = self.infer(expr.then, checker, event), self.infer(expr.orelse, checker, event)
            return a if a == b else "any"
        if t is n.Call:
            name = expr.func.name
            if name in ("floor", "ceil", "int"):
                return "int"
            if name == "has":
                return "bool"
            if name in ("lookup", "piecewise", "metric", "item"):
                return "any"
            if name in ("keys", "sorted"):
                return "table"  # a list: what `for` and `in` go through
            if name in ("startswith", "file_empty", "profiler_available"):
                return "bool"
            if name == "json":
                return "str"
            if name in ("type", "format", "fill", "backend", "path", "removeprefix"):
                return "str"
            if name == "split":
                return "table"  # a list
            if name == "len":
                return "int"
            if name == "endswith":
                return "bool"
            return "number"
        return "any"


def _numeric(given: str, declared: str) -> str:
    if given == "number" and declared in ("int", "float"):
        return declared
    return given


class RuleChecker:
    """Checks one rule: events, filters, condition, actions."""

    def __init__(self, checker: Checker, scope: Scope, rule: n.Rule):
        self.checker, self.scope, self.rule = checker, scope, rule
        self.definition = scope.definition
        self.where = checker.origin(rule, scope.definition)  # the file the rule is written in
        self.events: list[vocab.Event] = []

    def report(self, code, message, span, hint=None, related=()):
        self.checker.report(code, message, span, self.where, hint, related)

    def check(self) -> None:
        for ident in self.rule.events:
            event = vocab.resolve_event(ident.name)
            if event is None:
                names = [*vocab.EVENTS, *vocab.EVENT_ALIASES]
                self.report("E201", f"unknown event '{ident.name}'", ident.span,
                            did_you_mean(ident.name, names) or
                            "events: " + ", ".join(vocab.EVENTS))
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
        if name in vocab.BUILTIN_NAMES:
            for event in self.events:
                why = vocab.name_available(name, event)
                if why:
                    self.report("E214", f"{why}, not in {event.name}", node.span)
            return
        if name in COMMON_METRICS or name.removeprefix("val_") in COMMON_METRICS:
            return
        known = [*self.scope.params, *self.scope.variables, *vocab.BUILTIN_NAMES]
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
        elif node.attr.name not in vocab.TRACKER_FIELDS:
            self.report("E210", f"trackers have no field '{node.attr.name}'", node.attr.span,
                        did_you_mean(node.attr.name, vocab.TRACKER_FIELDS) or
                        "fields: " + ", ".join(vocab.TRACKER_FIELDS))

    def check_call(self, node: n.Call) -> None:
        name = node.func.name
        function = vocab.FUNCTIONS.get(name)
        info = self.scope.params.get(name)
        if info is not None and info.type in ("python", "schedule"):
            if info.type == "schedule" and not 1 <= len(node.args) <= 2:
                self.report("E203", f"the schedule '{name}' takes (epoch) or (epoch, lr)",
                            node.span)
            return
        if function is None:
            self.report("E202", f"unknown function '{name}'", node.func.span,
                        did_you_mean(name, vocab.FUNCTIONS) or
                        "functions: " + ", ".join(vocab.FUNCTIONS))
            return
        if node.keywords:
            self.report("E203", f"'{name}' takes no keyword arguments", node.keywords[0].span)
        count = len(node.args)
        high = function.max_args
        if count < function.min_args or (high is not None and count > high):
            want = (f"{function.min_args}" if high == function.min_args else
                    f"{function.min_args} or more" if high is None else
                    f"{function.min_args} to {high}")
            noun = "argument" if want == "1" else "arguments"
            self.report("E203", f"'{name}' takes {want} {noun}, {count} given", node.span)
            return
        if function.numeric:
            for arg in node.args:
                kind = self.scope.infer(arg, self.checker, None)
                if kind in ("str", "table", "bool", "none"):
                    self.report("E203", f"'{name}' needs numbers, got a {kind}", arg.span)
        elif name in ("lookup", "piecewise"):
            kind = self.scope.infer(node.args[0], self.checker, None)
            if kind not in ("table", "any"):
                self.report("E203", f"'{name}' needs a table first, got a {kind}",
                            node.args[0].span, "a table is written {3: 0.05, 6: 0.01}")
        elif name in ("startswith", "file_empty", "path", "split", "removeprefix"):
            for arg in node.args:
                kind = self.scope.infer(arg, self.checker, None)
                if kind not in ("str", "any"):
                    self.report("E203", f"'{name}' needs strings, got a {kind}", arg.span)
        elif name == "len":
            kind = self.scope.infer(node.args[0], self.checker, None)
            if kind not in ("table", "str", "none", "any"):
                self.report("E203", f"'len' needs a list, a table or a string, got a {kind}",
                            node.args[0].span)
        elif name in ("keys", "sorted"):
            kind = self.scope.infer(node.args[0], self.checker, None)
            if kind not in ("table", "none", "any"):
                self.report("E203", f"'{name}' needs a table or a list, got a {kind}",
                            node.args[0].span)
        elif name in ("endswith", "fill"):
            for arg in node.args:
                kind = self.scope.infer(arg, self.checker, None)
                if kind not in ("str", "any"):
                    self.report("E203", f"'{name}' needs strings, got a {kind}", arg.span)
        elif name == "format":
            kind = self.scope.infer(node.args[1], self.checker, None)
            if kind not in ("str", "any"):
                self.report("E203", f"'format' needs a format spec (a string), got a {kind}",
                            node.args[1].span)
        elif name in ("metric", "has"):
            kind = self.scope.infer(node.args[0], self.checker, None)
            if kind not in ("str", "any"):
                self.report("E203", f"'{name}' needs a metric name (a string), got a {kind}",
                            node.args[0].span)

    def check_tracker(self, node: n.Stalls | n.Improves, top: bool) -> None:
        kind = "stalls" if isinstance(node, n.Stalls) else "improves"
        if isinstance(node, n.Stalls):
            self.check_count(node.count, "the patience of 'stalls'", walked=True)
        for option in self.known_options(node.options, vocab.TRACKER_OPTIONS[kind], f"'{kind}'"):
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
        if mode not in vocab.MODES:
            self.report("E211", f"mode must be 'min', 'max' or 'auto', got {mode!r}", value.span,
                        did_you_mean(str(mode), vocab.MODES))

    # -- actions
    def check_action(self, action: n.Action) -> None:
        kind = type(action).__name__.lower()
        allowed = vocab.ACTION_EVENTS.get(kind)
        if allowed is not None:
            for event in self.events:
                if event.name not in allowed:
                    self.report("E205", f"'{_action_word(action)}' is not allowed in {event.name}",
                                action.span, _action_hint(kind))
        if isinstance(action, n.Assign):
            if action.target.name not in vocab.TARGETS:
                hint = did_you_mean(action.target.name, vocab.TARGETS)
                if action.target.name in self.scope.variables:
                    hint = f"state variables are written with `set {action.target.name} = ...`"
                self.report("E208", f"cannot assign to '{action.target.name}'", action.target.span,
                            hint or "targets: " + ", ".join(vocab.TARGETS))
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
        effect = vocab.EFFECTS.get(name)
        for arg in (*action.args, *(k.value for k in action.keywords)):
            self.check_expr(arg)
        if effect is None:
            self.report("E222", f"unknown effect '{name}'", action.span,
                        did_you_mean(name, vocab.EFFECTS)
                        or "effects: " + ", ".join(vocab.EFFECTS))
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
        for option in self.known_options(action.options, vocab.ROW_OPTIONS, "'write row'"):
            want, given = vocab.ROW_OPTIONS[option.name.name][0], self.option_type(option)
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
        if kind not in vocab.POST_KINDS:
            self.report("E210", f"'post' sends 'json' or 'form', not '{kind}'", action.kind.span,
                        did_you_mean(kind, vocab.POST_KINDS)
                        or "post json TABLE to URL, post form TABLE to URL")
        self.check_expr(action.body)
        body = self.scope.infer(action.body, self.checker, None)
        if kind == "form" and body not in ("table", "any"):
            self.report("E221", f"'post form' needs a table of fields, not a {body}",
                        action.body.span, "post form {field: json(send)} to url")
        self.check_expr(action.url)
        if self.scope.infer(action.url, self.checker, None) not in ("str", "any"):
            self.report("E221", "'post' needs a URL string after 'to'", action.url.span)
        for option in self.known_options(action.options, vocab.POST_OPTIONS, "'post'"):
            want, given = vocab.POST_OPTIONS[option.name.name][0], self.option_type(option)
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
            if attr not in vocab.TRACKER_FIELDS:
                return (f"template field '{{{name}}}': trackers have no field '{attr}' "
                        f"(fields: {', '.join(vocab.TRACKER_FIELDS)})")
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


# ------------------------------------------------------------------ helpers


class NotConstant(Exception):
    def __init__(self, span: Span):
        self.span = span


def const_value(expr: n.Expr | None, params: dict[str, ParamInfo] | None = None) -> Any:
    """The value of a constant expression (literals, tables, params' defaults), else NotConstant."""
    t = type(expr)
    if t in (n.Number, n.String, n.Bool):
        return expr.value
    if t is n.NoneLit:
        return None
    if t is n.Name and expr.id == "inf":
        return float("inf")
    if t is n.Name and params and expr.id in params and \
            params[expr.id].default is not REQUIRED and params[expr.id].default is not INVALID:
        return params[expr.id].default
    if t is n.Unary and expr.op in "+-":
        value = const_value(expr.operand, params)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if expr.op == "-" else value
    if t is n.Table:
        table = {}
        for k, v in expr.entries:
            key = const_value(k, params)
            if isinstance(key, dict):  # a table is no key
                raise NotConstant(k.span)
            table[key] = const_value(v, params)
        return table
    raise NotConstant(expr.span if expr is not None else Span(0, 0, 0, 0))


def _const_ok(expr, params) -> bool:
    try:
        const_value(expr, params)
    except NotConstant:
        return False
    return True


def flat_actions(actions: Iterable[n.Action]) -> list[n.Action]:
    """Actions with the bodies of `for` loops spliced in (the loops themselves included)."""
    out: list[n.Action] = []
    stack = list(reversed(tuple(actions)))
    while stack:
        action = stack.pop()
        out.append(action)
        if isinstance(action, n.For):
            stack += reversed(action.actions)
    return out


def walk(expr: Any) -> Iterator[Any]:
    """Every node under `expr` (itself included), depth first, without recursion."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        t = type(node)
        if t in (n.BinOp, n.BoolOp):
            stack += (node.right, node.left)
        elif t is n.Unary:
            stack.append(node.operand)
        elif t is n.Compare:
            stack += [e for _, e in reversed(node.rest)] + [node.first]
        elif t is n.Conditional:
            stack += (node.orelse, node.cond, node.then)
        elif t in (n.Call, n.CallPython, n.Effect):
            stack += [k.value for k in node.keywords] + list(reversed(node.args))
        elif t is n.Table:
            for key, value in reversed(node.entries):
                stack += (value, key)
        elif t is n.Stalls:
            stack += [o.value for o in node.options] + [node.count, node.subject]
        elif t is n.Improves:
            stack += [o.value for o in node.options] + [node.subject]
        elif t in (n.IsNan, n.IsFinite):
            stack.append(node.subject)
        elif t is n.Index:
            stack += (node.key, node.value)


def rule_events(rule: n.Rule) -> list[str]:
    events = []
    for ident in rule.events:
        event = vocab.resolve_event(ident.name)
        if event is not None:
            events.append(event.name)
    return events


def rule_priority(rule: n.Rule, definition: Definition) -> Any:
    if rule.priority is None:
        return 0
    try:
        value = const_value(rule.priority.value, definition.params)
    except NotConstant:
        return 0
    return 0 if isinstance(value, dict) else value  # a table is reported (E204), not hashed


def written_targets(rule: n.Rule) -> list[tuple[str, Span]]:
    """The targets a rule writes: the learning rate, log keys, variables, model weights."""
    out = []
    for action in flat_actions(rule.actions):
        if isinstance(action, n.Assign):
            out.append(("lr" if action.target.name in vocab.TARGETS else action.target.name,
                        action.span))
        elif isinstance(action, n.Log) and action.key is not None:
            out.append((f"logs['{action.key.name}']", action.span))
        elif isinstance(action, n.Set) and action.op == "=" and action.index is None:
            out.append((f"'{action.var.name}'", action.span))
        elif isinstance(action, n.Restore):
            out.append(("the model weights", action.span))
    return out


def names_read(rule: n.Rule) -> set[str]:
    found = set()
    exprs = [rule.condition, *(getattr(f, "count", None) or getattr(f, "at", None)
                               for f in rule.filters)]
    for action in flat_actions(rule.actions):
        for attr in ("value", "path", "template", "count", "index", "key_expr", "iterable",
                     "condition", "text", "row"):
            exprs.append(getattr(action, attr, None))
        if isinstance(action, n.WriteRow):
            exprs += [action.file, *(o.value for o in action.options)]
        if isinstance(action, n.Set) and (action.op != "=" or action.index is not None):
            found.add(action.var.name)
        if isinstance(action, n.CallPython | n.Effect):
            exprs += [*action.args, *(k.value for k in action.keywords)]
    for expr in exprs:
        for node in walk(expr):
            if isinstance(node, n.Name):
                found.add(node.id)
            elif isinstance(node, n.String):
                found.update(template_fields(node.value))
    return found


def filter_counter(unit: str | None, event: vocab.Event) -> str | None:
    """Which counter a filter reads in `event` (`epoch`, `batch`, `step`), or None."""
    if unit is None:
        return {"epoch": "epoch", "batch": "batch"}.get(event.level)
    base = unit.rstrip("es") if unit.endswith("ches") else unit.rstrip("s")
    base = {"batch": "batch", "epoch": "epoch", "step": "step"}.get(base, base)
    if base == "epoch":
        return "epoch" if event.phase == "train" and event.name != "train_begin" else None
    if base == "batch":
        return "batch" if event.level == "batch" else None
    if base == "step":
        return "step" if event.level == "batch" and event.phase == "train" else None
    return None


def mode_of(node: n.Stalls | n.Improves, params) -> Any:
    for option in node.options:
        if option.name.name == "mode":
            try:
                return const_value(option.value, params)
            except NotConstant:
                return None
    return "auto"


def metric_name_of(expr: n.Expr, params: dict[str, ParamInfo] | None = None) -> str | None:
    """The metric a predicate watches: `val_loss`, or `metric(monitor)` with a str param."""
    if isinstance(expr, n.Name) and expr.id not in vocab.BUILTIN_NAMES and not (
            params and expr.id in params):
        return expr.id
    if isinstance(expr, n.Name) and expr.id in ("lr", "learning_rate"):
        return expr.id
    if isinstance(expr, n.Call) and expr.func.name == "metric" and len(expr.args) == 1:
        arg = expr.args[0]
        if isinstance(arg, n.String):
            return arg.value
        if isinstance(arg, n.Name) and params and arg.id in params:
            return "<param>"
    return None


_FORMATTER = string.Formatter()


def template_fields(text: str) -> list[str]:
    try:
        return [name for _, name, _, _ in _FORMATTER.parse(text) if name]
    except ValueError:
        return []


def template_problem(text: str) -> str | None:
    """Why a template is refused (attribute or index access, conversions, bad braces)."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        return f"malformed template: {exc}"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not all(part.isidentifier() for part in name.split(".", 1)):
            return (f"template field '{{{name}}}' must be a plain name or TRACKER.field"
                    if name else
                    "template fields must be named: '{}' is not allowed")
        if conversion:
            return (f"template field '{{{name}!{conversion}}}' uses a conversion; "
                    f"drop '!{conversion}'")
        if spec and "{" in spec:
            return f"template field '{{{name}}}' has a nested field in its format spec"
    return None


def _action_word(action) -> str:
    return {"Assign": "assigning the learning rate", "Stop": "stop",
            "Restore": "restore best weights", "Cooldown": "cooldown"}.get(
        type(action).__name__, type(action).__name__.lower())


def _action_hint(kind: str) -> str | None:
    return {"assign": "the learning rate is set in train events (train_*, epoch_*, "
                      "train_batch_*)",
            "stop": "stop in epoch or batch events",
            "restore": "weights are restored in train events"}.get(kind)


def _stem(path: str) -> str:
    base = os.path.basename(path)
    stem = base[:-4] if base.endswith(".cbd") else base
    return stem if stem.isidentifier() else "policy"


def check(program: n.Program) -> CheckedProgram:
    """Check a parsed program.

    Args:
        program: a `Program` from `cbdsl.parse`.

    Returns:
        A `CheckedProgram`; its `diagnostics` hold any warnings.

    Raises:
        CbdslCheckError: with every error found (codes E2xx), not just the first.
    """
    return Checker(program).run()


# The names of a definition's `stalls`/`improves` trackers, as the compiler keys their state
# and `explain --python` names their attributes.


def rule_trackers(rule: n.Rule) -> list[n.Stalls | n.Improves]:
    """The `stalls`/`improves` predicates of a rule's condition, in the order they are read."""
    return [x for x in walk(rule.condition) if isinstance(x, n.Stalls | n.Improves)]


def tracker_name(node: n.Stalls | n.Improves, index: int, k: int, rule: n.Rule) -> str:
    """A tracker's name: its alias, else its rule's label (or `rule<index>`) and `#k`."""
    if node.alias is not None:
        return node.alias.name
    return f"{rule.label.name if rule.label else f'rule{index}'}#{k}"


def restored_trackers(rules: list[n.Rule]) -> set[str]:
    """Trackers that some `restore best weights` reads, in `for` bodies too: they keep weight
    snapshots. An unnamed restore reads its own rule's first tracker, else the callback's."""
    named = [[tracker_name(t, i, k, rule) for k, t in enumerate(rule_trackers(rule))]
             for i, rule in enumerate(rules)]
    everywhere = [name for names in named for name in names]
    restored = set()
    for rule, names in zip(rules, named, strict=True):
        for action in flat_actions(rule.actions):
            if isinstance(action, n.Restore):
                if action.tracker is not None:
                    restored.add(action.tracker.name)
                elif names or everywhere:
                    restored.add((names or everywhere)[0])
    return restored
