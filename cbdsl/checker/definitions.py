"""What checking produces: parameters, definitions, instances and the checked program."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cbdsl.diagnostics import Diagnostic, Span
from cbdsl.syntax import nodes as n

REQUIRED = object()  # marks a parameter with no default


INVALID = object()  # marks a parameter whose default was refused (E219)


COMMON_METRICS = ("loss", "val_loss", "accuracy", "val_accuracy", "mae", "val_mae", "mse",
                  "val_mse", "auc", "val_auc", "precision", "recall", "learning_rate")
# abbreviations Keras logs only when `compile` was given them, and the names it logs otherwise
ABBREVIATED_METRICS = {"acc": "accuracy", "val_acc": "val_accuracy"}


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

    @property
    def exposures(self) -> list[n.Expose]:
        return [item for item in self.body if isinstance(item, n.Expose)]


@dataclass
class Instance:
    """One callback the program produces: a definition and the arguments of its `use`."""

    definition: Definition
    args: dict[str, n.Expr] = field(default_factory=dict)
    label: str = ""
    span: Span | None = None
    priority: int = 0  # `use ... priority N`: higher runs first; the file's own rules are 0


@dataclass
class CheckedProgram:
    """A program whose every name, type and reference was checked.

    Attributes:
        program: the parsed root file.
        main: the file's top level (its params, vars and rules) as a definition.
        definitions: callback definitions visible by name.
        instances: the callbacks to build, in the order they run (by `use` priority, then
            in file order).
        diagnostics: warnings (a CheckedProgram has no errors).
        origins: where each part of a definition's body (rule, variable, requirement) was
            written, as `(path, source)` by the part's `id`: an imported file's, a base
            callback's in another file.
    """

    program: n.Program
    main: Definition
    definitions: dict[str, Definition]
    instances: list[Instance]
    diagnostics: list[Diagnostic]
    origins: dict[int, tuple[str, str]] = field(default_factory=dict)

    def origin(self, part: n.Node, definition: Definition) -> tuple[str, str]:
        """The file (path and text) a part of `definition` was written in."""
        return self.origins.get(id(part), (definition.path, definition.source))

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def open_hooks(self) -> dict[str, list[int]]:
        """The `python` parameters of used callbacks that their `use` leaves unset, and that
        no parameter of the file is named as: `{name: positions in instances}`. The
        caller's keyword of that name fills it when one instance has it (`cbdsl.compile`)."""
        takers: dict[str, list[int]] = {}
        for position, instance in enumerate(self.instances):
            if instance.definition is self.main:
                continue
            for name, info in instance.definition.params.items():
                if info.type == "python" and name not in instance.args \
                        and name not in self.main.params:
                    takers.setdefault(name, []).append(position)
        return takers
