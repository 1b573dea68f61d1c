"""Callback factories that another process can build again: named `module:name`, or a rule
file `FILE.cbd` (its path), never pickled. A scenario that trains in a subprocess
(`backup_and_restore`) passes the name, and the subprocess builds the callback from it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

Factory = Callable[..., Any]


class RuleFile:
    """The callback a rule file builds: checked once, compiled with each call's arguments.

    Named by the file's absolute path, so that another process checks and compiles the same
    file rather than receiving a closure.

    Raises:
        CbdslError: the file does not parse or check (from the constructor).
        OSError: it cannot be read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import cbdsl

        self.path = os.path.abspath(os.fspath(path))
        self.checked = cbdsl.check(self.path)

    def __call__(self, **params: Any) -> Any:
        from cbdsl.compiler import compile_program

        built = compile_program(self.checked, **params)
        if len(built) != 1:
            raise ValueError(f"{self.path} builds {len(built)} callbacks; a spec needs one")
        return built[0]

    def __repr__(self) -> str:
        return f"RuleFile({self.path!r})"


class Named:
    """A factory with the name another process builds it from (`module:name` or a rule
    file), for factories whose own `__module__` and `__qualname__` do not lead back to them:
    a generated class, a `functools.partial`, an instance with `__call__`."""

    def __init__(self, factory: Factory, name: str) -> None:
        self.factory = factory
        self.name = name

    def __call__(self, **arguments: Any) -> Any:
        return self.factory(**arguments)

    def __repr__(self) -> str:
        return f"Named({self.factory!r}, {self.name!r})"


def factory_name(factory: Factory) -> str:
    """The name `import_factory` builds `factory` again from, in another process.

    Raises:
        ValueError: `factory` has no such name (a lambda, a local function or class, a
            closure): name it `Named(factory, "module:name")`, or pass a rule file.
    """
    if isinstance(factory, Named):
        return factory.name
    if isinstance(factory, RuleFile):
        return factory.path
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        name = f"{module}:{qualname}"
        try:
            found = import_factory(name)
        except (ImportError, AttributeError):
            found = None
        if found is factory:
            return name
    raise ValueError(
        f"{factory!r} cannot be built in another process: it is not reachable as "
        f"module:name (a lambda, a local function or class, a generated class?); give a "
        f"class or function defined at a module's top level, a rule file (RuleFile), or "
        f"Named(factory, 'module:name')")


def import_factory(name: str) -> Factory:
    """The factory `name` names: `package.module:Name` (imported; `Name` may be dotted) or a
    rule file `FILE.cbd` (a `RuleFile`).

    Raises:
        ImportError, AttributeError: the module or the name is not there.
        CbdslError: the rule file does not check.
    """
    if name.endswith(".cbd"):
        return RuleFile(name)
    module, sep, attribute = name.partition(":")
    if not sep:
        raise ValueError(f"a factory's name is module:name or FILE.cbd, got {name!r}")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target
