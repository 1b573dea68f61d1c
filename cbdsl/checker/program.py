"""The checker of a whole program: files, definitions, parameters, uses and cross-rule order."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value
from cbdsl.checker.definitions import (
    INVALID,
    REQUIRED,
    CheckedProgram,
    Definition,
    Instance,
    ParamInfo,
)
from cbdsl.checker.libraries import library_dirs
from cbdsl.checker.order import (
    names_read,
    rule_events,
    rule_priority,
    written_targets,
)
from cbdsl.checker.rules import RuleChecker
from cbdsl.checker.scope import Scope
from cbdsl.checker.templates import template_fields, template_problem
from cbdsl.diagnostics import CbdslCheckError, CbdslError, Diagnostic, Span, did_you_mean
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk


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
        from cbdsl.syntax.parser import parse, read_source

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
            kind = language.type_of_value(default)
            if info.type not in ("python", "any") and not language.accepts(info.type, kind):
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
                if type_name not in language.PARAM_TYPES:
                    self.report("E212", f"unknown parameter type '{type_name}'",
                                decl.type_name.span, where,
                                did_you_mean(type_name, language.PARAM_TYPES))
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
            params[name] = ParamInfo(name, language.type_of_value(value), value, decl)
        return params

    def _typed_default(self, decl: n.ParamDecl, type_name: str, where) -> Any:
        """The default of `name: type = default`, which must be a constant of that type."""
        try:
            value = const_value(decl.default)
        except NotConstant as exc:
            self.report("E219", f"the default of '{decl.name.name}' must be a constant",
                        exc.span, where)
            return INVALID
        given = language.type_of_value(value)
        if type_name != "any" and not language.accepts(type_name, given):
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
        from cbdsl.syntax.parser import parse, read_source

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
            if given != "any" and \
                    not language.accepts(declared, language.narrowed(given, declared)):
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
