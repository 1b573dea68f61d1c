"""The checker of a whole program: files, definitions, parameters, uses and cross-rule order."""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cbdsl import language
from cbdsl.checker.conflicts import ConflictChecks
from cbdsl.checker.constants import (
    UNKNOWN,
    NotConstant,
    const_value,
    evaluate,
    training_only,
)
from cbdsl.checker.definitions import (
    INVALID,
    REQUIRED,
    CheckedProgram,
    Definition,
    Instance,
)
from cbdsl.checker.order import names_read
from cbdsl.checker.params import ParameterChecks
from cbdsl.checker.resolve import Resolution, Session
from cbdsl.checker.rules import RuleChecker
from cbdsl.checker.scope import Scope
from cbdsl.checker.templates import template_fields, template_problem
from cbdsl.diagnostics import CbdslCheckError, Diagnostic, Span, did_you_mean
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

# Names a compiled callback has of its own, which `expose` cannot take.
RESERVED_ATTRIBUTES = frozenset({
    "state", "timeline", "arguments", "model", "params", "set_model", "set_params", "exposed",
    "definition", "reset_state", "dry_run"})


class Checker(Resolution, ParameterChecks, ConflictChecks):
    """Runs every semantic pass and collects diagnostics instead of stopping at the first."""

    def __init__(self, program: n.Program, session: Session | None = None):
        self.program = program
        self.diagnostics: list[Diagnostic] = []
        self.definitions: dict[str, Definition] = {}  # callbacks of this file and its imports
        self._library_definitions: dict[str, Definition] = {}  # `LIBRARY.Name` -> definition
        self._session = session if session is not None else Session()
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

    @property
    def failed(self) -> bool:
        """Whether any error was found."""
        return any(d.severity == "error" for d in self.diagnostics)

    # ---------------------------------------------------------- entry point
    def run(self) -> CheckedProgram:
        checked = self.check_program()
        if self.failed:
            raise CbdslCheckError(self.diagnostics)
        return checked

    def check_program(self) -> CheckedProgram:
        """Every pass over the whole program, collecting diagnostics without raising (a used
        library file is checked this way)."""
        own = os.path.abspath(self.program.path)
        if os.path.isfile(own):
            self._session.active.setdefault(str(Path(own).resolve()), self)
        params: list[n.ParamDecl] = []
        body: list[n.Rule | n.VarDecl] = []
        uses: list[tuple[n.Use, n.Program]] = []
        self._collect(self.program, params, body, uses, [own])
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
        instances.sort(key=lambda i: -i.priority)  # stable: in file order within a priority
        self._check_cross_conflicts(instances)
        # a base's rules are checked in each definition that extends it: report them once
        self.diagnostics = sorted(dict.fromkeys(self.diagnostics),
                                  key=lambda d: (d.path, d.span or Span(0, 0, 0, 0)))
        definitions = {**self.definitions, **self._library_definitions}
        return CheckedProgram(self.program, main, definitions, instances, self.diagnostics,
                              self._origins(main, definitions.values(), instances))

    def _origins(self, main: Definition, definitions, instances) -> dict[int, tuple[str, str]]:
        """Where each part of every definition was written, from every file's checker."""
        checkers = [self, *(c for c in self._session.checked.values() if c is not self)]
        origins: dict[int, tuple[str, str]] = {}
        for definition in (main, *definitions, *(i.definition for i in instances)):
            for part in definition.body:
                where = next((c._origin[id(part)] for c in checkers if id(part) in c._origin),
                             definition)
                origins.setdefault(id(part), (where.path, where.source))
        return origins

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
            node = training_only(value, main.params)
            if node is not None:
                self.report("E219", f"argument '{name}' must be known before training starts",
                            node.span, where, "it may read the file's parameters and constants")
                continue
            given = scope.infer(value, self, None)
            declared = definition.params[name].type
            if given != "any" and \
                    not language.accepts(declared, language.narrowed(given, declared),
                                         definition.params[name].default is None):
                self.report("E221", f"'{name}' takes {declared}, got {given}", value.span, where)
        self._check_requirements(use, definition, args, where)
        return Instance(definition, args, use.dotted, use.span,
                        self._use_priority(use, main, where))

    def _use_priority(self, use: n.Use, main: Definition, where: n.Program) -> int:
        """`use X(...) priority N`: a constant integer (E204 otherwise)."""
        if use.priority is None:
            return 0
        try:
            value = const_value(use.priority.value, main.params)
        except NotConstant:
            value = None
        if isinstance(value, bool) or not isinstance(value, int):
            self.report("E204", "the priority of a 'use' must be a constant integer",
                        use.priority.value.span, where)
            return 0
        return value

    def _check_requirements(self, use: n.Use, definition: Definition, args: dict[str, n.Expr],
                            where: n.Program) -> None:
        """`require` clauses whose parameters the `use` line fixes: a failed one is E302 at
        that line (the requirement in a note), as building the callback would raise."""
        bound: dict[str, Any] = {}
        for name, info in definition.params.items():
            value = evaluate(args[name], {}) if name in args else info.default
            if value is not UNKNOWN and value is not REQUIRED and value is not INVALID:
                bound[name] = value
        for requirement in definition.requirements:
            if evaluate(requirement.condition, bound) is not False:
                continue
            message = evaluate(requirement.message, bound)
            text = _filled(message, bound) if isinstance(message, str) else "requirement not met"
            self.report("E302", text, use.span, where, related=[(
                f"required by '{use.dotted}' here", definition.path, requirement.span)])

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
                scope.guard(var.value)
                scope.variables[name] = scope.type_of(var.value)
                RuleChecker(self, scope, var).check_expr(var.value)
                node = training_only(var.value, definition.params)
                if node is not None:
                    self.report("E219", f"the initial value of '{name}' must be known before "
                                "training starts", node.span, self.origin(var, definition),
                                "it may read parameters and constants; set it in a "
                                "`train_begin` rule to start from the run")
        for requirement in definition.requirements:
            self._check_requirement(requirement, definition)
        scope.guard_definition(definition)
        scope.type_variables(definition)
        for rule in definition.rules:
            scope.collect_trackers(rule, self)
        for rule in definition.rules:
            RuleChecker(self, scope, rule).check()
        self._check_conflicts(definition)
        self._check_exposures(definition, scope)
        read = {name for rule in definition.rules for name in names_read(rule)}
        read |= {node.id for e in definition.exposures for node in walk(e.value)
                 if isinstance(node, n.Name)}
        for var in definition.variables:
            if var.name.name not in read:
                self.report("W203", f"state variable '{var.name.name}' is never read",
                            var.name.span, self.origin(var, definition))

    def _check_exposures(self, definition: Definition, scope: Scope) -> None:
        """`expose NAME = EXPR`: read live when code reads the attribute, with no event: from
        parameters, state variables, trackers and constants only."""
        seen: set[str] = set()
        # what needs no event: parameters, variables, and the built-ins `fit`'s params give
        readable = {*definition.params, *scope.variables, "inf", "stopped_epoch", "epochs",
                    "steps", "verbose"}
        for exposure in definition.exposures:
            where, name = self.origin(exposure, definition), exposure.name.name
            if name in seen or name in RESERVED_ATTRIBUTES or name.startswith("on_"):
                self.report("E209", f"'{name}' is already an attribute of the callback"
                            if name not in seen else f"'{name}' is exposed twice",
                            exposure.name.span, where)
            seen.add(name)
            for node in walk(exposure.value):
                problem = None
                if isinstance(node, n.Name) and node.id not in readable:
                    problem = f"an exposed attribute reads parameters, state variables and " \
                              f"trackers, not '{node.id}'"
                elif isinstance(node, n.Attribute) and (
                        node.value.name not in scope.trackers
                        or node.attr.name not in language.TRACKER_FIELDS):
                    problem = f"no tracker field '{node.value.name}.{node.attr.name}'"
                elif isinstance(node, n.Stalls | n.Improves):
                    problem = "an exposed attribute reads a tracker's fields, not a predicate"
                elif isinstance(node, n.Call) and node.func.name not in definition.params:
                    function = language.FUNCTIONS.get(node.func.name)
                    if function is None or function.reads_event:
                        problem = f"an exposed attribute cannot call '{node.func.name}'"
                if problem:
                    self.report("E219", problem, node.span, where,
                                did_you_mean(node.id, readable)
                                if isinstance(node, n.Name) else None)
                    break
            else:  # functions known, typed and called as they take, as in a rule
                RuleChecker(self, scope, exposure).check_expr(exposure.value)

    def _check_requirement(self, requirement: n.Require, definition: Definition) -> None:
        """`require` reads only parameters and constants: it runs before training starts."""
        where = self.origin(requirement, definition)
        checks = RuleChecker(self, Scope(definition, self), requirement)
        checks.check_expr(requirement.condition)  # functions known, typed, called as they take
        checks.check_expr(requirement.message)
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


def _filled(template: str, bound: dict[str, Any]) -> str:
    """A requirement's message with the fields the `use` line fixes filled in."""
    out = []
    try:
        for literal, name, spec, _ in string.Formatter().parse(template):
            out.append(literal)
            if name is not None:
                out.append(format(bound[name], spec or "") if name in bound else f"{{{name}}}")
    except (ValueError, TypeError, KeyError):
        return template
    return "".join(out)
