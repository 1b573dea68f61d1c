"""Drop-in replacements for `keras.callbacks`: the same classes, generated from rule files.

Switching is one import line::

    from cbdsl.callbacks import EarlyStopping, ReduceLROnPlateau

Each name is a class generated, when first imported, from the rule file of the built-in
library (`rules/`, installed as `cbdsl.rules`) that defines a callback of that name: its
constructor takes the rule file's parameters (`inspect.signature` shows Keras's), its docstring
is the rule file's, and it subclasses Keras's own class of the name (taken from Keras's
defining modules, so a patched `keras.callbacks` namespace changes nothing), so `isinstance`
against Keras's class holds. See `cbdsl.compiler.dropins` for what instances read and write.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any


def rule_file(name: str) -> str:
    """The path of a built-in rule file, e.g. `rule_file("early_stopping")`."""
    return str(resources.files("cbdsl.rules").joinpath(f"{name}.cbd"))


@functools.cache
def _parsed(name: str):
    """A built-in rule file's syntax tree, parsed once for the catalogue and the check."""
    from cbdsl.syntax.parser import parse

    path = rule_file(name)
    return parse(Path(path).read_text("utf-8"), path)


@functools.cache
def _checked(name: str):
    import cbdsl

    return cbdsl.check(_parsed(name))


@functools.cache
def _catalog() -> dict[str, str]:
    """Each built-in callback's name and the stem of the rule file that defines it."""
    from cbdsl.syntax import nodes as n

    found = {}
    for path in sorted(Path(str(resources.files("cbdsl.rules"))).glob("*.cbd")):
        for item in _parsed(path.stem).items:
            if isinstance(item, n.CallbackDef):
                found[item.name.name] = path.stem
    return found


def keras_class(name: str) -> type | None:
    """Keras's own callback class of this name, from the module that defines it (None for a
    class Keras 3 has not, such as Keras 2's BaseLogger)."""
    import keras.src.callbacks

    found = getattr(keras.src.callbacks, name, None)
    return found if isinstance(found, type) else None


@functools.cache
def _generated(name: str) -> type:
    from cbdsl.compiler.dropins import callback_class

    definition = _checked(_catalog()[name]).definitions[name]
    return callback_class(definition, keras_class(name), module=__name__)


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return [*sorted(_catalog()), "rule_file"]
    if name in _catalog():
        cls = _generated(name)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_catalog()})
