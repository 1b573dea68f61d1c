"""The Python API: parse, check, compile and load, each stage callable alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cbdsl.checker import CheckedProgram
from cbdsl.checker import check as _check
from cbdsl.syntax.nodes import Program
from cbdsl.syntax.parser import parse as _parse
from cbdsl.syntax.parser import read_source

Source = str | os.PathLike[str] | Program | CheckedProgram


def _is_path(source: Any) -> bool:
    if isinstance(source, os.PathLike):
        return True
    return isinstance(source, str) and "\n" not in source and source.strip().endswith(".cbd")


def parse(source: str | os.PathLike[str]) -> Program:
    """Parse rule-file text, or the file at a path, into a `Program`.

    Args:
        source: rule text, or a path (an `os.PathLike`, or a string ending in `.cbd`).

    Returns:
        The syntax tree, unchecked.

    Raises:
        CbdslSyntaxError: the input is not a rule file (E1xx).
    """
    if _is_path(source):
        path = os.fspath(source)
        return _parse(read_source(path), path)
    return _parse(str(source))


def check(source: Source) -> CheckedProgram:
    """Parse (when given text or a path) and check a program.

    Returns:
        A `CheckedProgram`, with warnings in `.diagnostics`.

    Raises:
        CbdslSyntaxError: on malformed input (E1xx).
        CbdslCheckError: with every semantic error found (E2xx).
    """
    if isinstance(source, CheckedProgram):
        return source
    program = source if isinstance(source, Program) else parse(source)
    return _check(program)


def compile(source: Source, **params: Any) -> list[Any]:
    """Parse, check and compile rules into ready `keras.callbacks.Callback` instances.

    Example:

    ```python
    callbacks = cbdsl.compile("on epoch_end when val_loss stalls 5 do lr *= 0.2")
    model.fit(x, y, validation_split=0.2, callbacks=callbacks)
    ```

    Args:
        source: rule text, a path, a `Program` or a `CheckedProgram`.
        **params: values for the file's `param`s; for a file holding one
            `callback` definition and nothing else, its parameters. A Python
            callable is accepted only for parameters declared `NAME: python`; a
            name that is no `param` fills the `python` parameter of that name of
            the one used callback whose `use` leaves it unset.

    Returns:
        A list of callbacks, in file order, to pass to `model.fit(callbacks=...)`.

    Raises:
        CbdslError: a subclass naming the stage that refused the input.
    """
    from cbdsl.compiler import compile_program

    return compile_program(check(source), **params)


def load(path: str | os.PathLike[str], **params: Any) -> list[Any]:
    """Compile the rule file at `path`: `model.fit(..., callbacks=cbdsl.load("policy.cbd"))`.

    Args:
        path: the rule file, whatever its suffix.
        **params: as for `compile`.
    """
    return compile(Path(path), **params)


def callback_class(name: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
                   ) -> type:
    """The class of one rule definition, built like Keras's callback classes.

    The class takes the definition's parameters as its constructor's (`inspect.signature`
    shows them, with their defaults), reads and writes its state under its names, and can be
    subclassed; `cbdsl.callbacks` holds the built-in library's classes, made this way.

    Example:

    ```python
    StrictStop = cbdsl.callback_class("team.strict_stop")     # a library's callback
    Shrink = cbdsl.callback_class("policies/shrink.cbd")       # a file's one callback
    model.fit(x, y, callbacks=[StrictStop(patience=2), Shrink()])
    ```

    Args:
        name: `LIBRARY.RULE` as `use` names it (a file of the library holding one callback,
            or a callback by name), or the path of a rule file, with `:NAME` to pick one of
            its callbacks.
        base: the folder a library is looked up from (default: the current folder); see
            `cbdsl list`.

    Returns:
        A subclass of `keras.callbacks.Callback`.

    Raises:
        CbdslError: the name resolves to no callback, or its file does not check.
    """
    from cbdsl.checker.resolve import resolve_definition
    from cbdsl.compiler.dropins import callback_class as generate

    return generate(resolve_definition(os.fspath(name),
                                       os.fspath(base) if base is not None else None),
                    module="cbdsl.compiled")
