"""Parameters of definitions: their types, their constant defaults, and `extends` overrides."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value
from cbdsl.checker.definitions import (
    INVALID,
    REQUIRED,
    Definition,
    ParamInfo,
)
from cbdsl.diagnostics import did_you_mean
from cbdsl.syntax import nodes as n


class ParameterChecks:
    """Parameters: types, constant defaults, what an `extends` changes (a `Checker` part)."""

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
                default = None if type_name in ("python", "schedule") else \
                    {} if type_name == "keywords" else REQUIRED
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
