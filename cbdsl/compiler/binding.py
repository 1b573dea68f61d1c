"""Arguments bound to definitions and checked against their types; callbacks built."""

from __future__ import annotations

from typing import Any

from cbdsl import language
from cbdsl.checker import (
    REQUIRED,
    CheckedProgram,
    Definition,
    Instance,
    ParamInfo,
)
from cbdsl.compiler.classes import _copy, build_class
from cbdsl.compiler.definitions import DefinitionCompiler
from cbdsl.compiler.schedule import parse_schedule
from cbdsl.diagnostics import (
    CbdslCompileError,
    Diagnostic,
    did_you_mean,
)


def bind(definition: Definition, given: dict[str, Any], where: str) -> dict[str, Any]:
    """Bind parameter values to a definition: defaults, overrides, types; E301 on misuse.

    A name that is no parameter goes into the definition's `keywords` parameter, when it has
    one (Keras's `**kwargs`).
    """
    values: dict[str, Any] = {}
    rest = next((k for k, info in definition.params.items() if info.type == "keywords"), None)
    extra: dict[str, Any] = {}
    for name, value in given.items():
        info = definition.params.get(name)
        if info is None and rest is not None:
            extra[name] = value
            continue
        if info is None:
            raise CbdslCompileError(Diagnostic(
                "E301", f"{where} has no parameter '{name}'", path=definition.path,
                hint=did_you_mean(name, definition.params)
                or f"parameters: {', '.join(definition.params) or 'none'}"))
        check_value(info, value, where, definition)
        values[name] = value
    if rest is not None:
        values[rest] = {**values.get(rest, {}), **extra}
    for name, info in definition.params.items():
        if name not in values:
            if info.default is REQUIRED:
                raise CbdslCompileError(Diagnostic(
                    "E301", f"{where} needs a value for '{name}' ({info.type})",
                    path=definition.path))
            values[name] = _copy(info.default)
    return values


def check_value(info: ParamInfo, value: Any, where: str, definition: Definition) -> None:
    given = language.type_of_value(value)
    if isinstance(value, float | int) and not isinstance(value, bool):
        given = "float" if isinstance(value, float) else "int"
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalars
        given = language.type_of_value(value.item())
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
    if info.type != "python" and not language.accepts(info.type, given, info.default is None):
        raise CbdslCompileError(Diagnostic(
            "E301", f"{where}: '{info.name}' takes {info.type}, got {given} ({value!r})",
            path=definition.path))


def compile_program(checked: CheckedProgram, **params: Any) -> list[Any]:
    """Build one callback instance per definition the program uses.

    Args:
        checked: a `CheckedProgram` from `cbdsl.check`.
        **params: values for the file's `param`s (or, for a file holding a
            single `callback` definition and nothing else, for its parameters). A
            name that is no `param` of the file fills the `python` parameter of that
            name of the one used callback whose `use` leaves it unset (`hooks_of`).

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
    hooks = hooks_of(checked, params)
    main_values = bind(main, {k: v for k, v in params.items() if k not in hooks}, main.name)
    callbacks = []
    for position, instance in enumerate(checked.instances):
        given = {name: params[name] for name, at in hooks.items() if at == position}
        callbacks.append(instantiate(instance, main, main_values, given))
    return callbacks


def hooks_of(checked: CheckedProgram, params: dict[str, Any]) -> dict[str, int]:
    """Which of `params` go to a used callback's Python hook: `{name: instance position}`.

    A name that is no parameter of the file goes to the `python` parameter of that name of
    the one used callback whose `use` does not give it (`CheckedProgram.open_hooks`); where
    several could take it, which one is meant is for the file to say
    (`param h: python = none` and `use C(h = h)`): E301.
    """
    takers = checked.open_hooks()
    found: dict[str, int] = {}
    for name in params:
        where = takers.get(name, [])
        if len(where) > 1:
            labels = ", ".join(_named(checked.instances[i]) for i in where)
            raise CbdslCompileError(Diagnostic(
                "E301", f"'{name}' is a Python hook of several used callbacks ({labels})",
                path=checked.program.path,
                hint=f"declare `param {name}: python = none` and pass it on where it is "
                     f"meant: `use NAME({name} = {name})`"))
        if where:
            found[name] = where[0]
    return found


def _named(instance: Instance) -> str:
    label = instance.label or instance.definition.name
    return f"{label} at line {instance.span.line}" if instance.span else label


def instantiate(instance: Instance, main: Definition, main_values: dict[str, Any],
                hooks: dict[str, Any] | None = None) -> Any:
    definition = instance.definition
    if definition is main:
        values = main_values
    else:
        scope = DefinitionCompiler(main, main_values, main.name)
        given = {k: scope.constant(v, f"argument '{k}'") for k, v in instance.args.items()}
        values = bind(definition, {**given, **(hooks or {})}, instance.label)
    return build_class(definition, values, instance.label or definition.name)(values)
