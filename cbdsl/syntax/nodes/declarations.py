"""Rules, their filters, and the declarations of a file: parameters, variables, callbacks, uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Union

from cbdsl.diagnostics import Span
from cbdsl.syntax.nodes.actions import Action
from cbdsl.syntax.nodes.base import Ident, Node, _span
from cbdsl.syntax.nodes.expressions import Expr, Keyword, String


@dataclass(frozen=True)
class Every(Node):
    children: ClassVar[tuple[str, ...]] = ("count",)
    count: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class After(Node):
    """`after N [unit]` and `from unit N`: the counter's index is at least N."""

    children: ClassVar[tuple[str, ...]] = ("count",)
    count: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Before(Node):
    children: ClassVar[tuple[str, ...]] = ("count",)
    count: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Once(Node):
    children: ClassVar[tuple[str, ...]] = ("at",)
    at: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Priority(Node):
    children: ClassVar[tuple[str, ...]] = ("value",)
    value: Expr
    span: Span = _span()


Filter = Union[Every, After, Before, Once]  # noqa: UP007


@dataclass(frozen=True)
class Rule(Node):
    children: ClassVar[tuple[str, ...]] = ("filters", "priority", "condition", "actions")
    events: tuple[Ident, ...]
    actions: tuple[Action, ...]
    filters: tuple[Filter, ...] = ()
    condition: Expr | None = None
    priority: Priority | None = None
    label: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class ParamDecl(Node):
    """A parameter: `patience = 5` (typed by its default), `path: str`, `hook: python = none`."""

    children: ClassVar[tuple[str, ...]] = ("default",)
    name: Ident
    default: Expr | None = None
    type_name: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class VarDecl(Node):
    """`[keep] var NAME = VALUE`: a state variable; `keep` keeps it across `fit` calls."""

    children: ClassVar[tuple[str, ...]] = ("value",)
    name: Ident
    value: Expr
    span: Span = _span()
    kept: bool = False


@dataclass(frozen=True)
class Import(Node):
    children: ClassVar[tuple[str, ...]] = ("path",)
    path: String
    span: Span = _span()


@dataclass(frozen=True)
class Use(Node):
    """`use library.rule(args) [priority N]`: instantiate a callback definition; callbacks of
    a higher priority run first (the file's own rules have 0)."""

    children: ClassVar[tuple[str, ...]] = ("args", "keywords", "priority")
    name: tuple[Ident, ...]
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()
    priority: Priority | None = None

    @property
    def dotted(self) -> str:
        return ".".join(i.name for i in self.name)


@dataclass(frozen=True)
class Require(Node):
    """`require COND else "message"`: a ValueError when the callback is built with bad args."""

    children: ClassVar[tuple[str, ...]] = ("condition", "message")
    condition: Expr
    message: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Expose(Node):
    """`expose NAME = EXPR`: an attribute of the callback's class, read live from its
    parameters, state variables and trackers (how a drop-in shows Keras's attribute names)."""

    children: ClassVar[tuple[str, ...]] = ("value",)
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class CallbackDef(Node):
    """`callback Name(param = default, ...) { rules }`."""

    children: ClassVar[tuple[str, ...]] = ("params", "extends", "body")
    name: Ident
    params: tuple[ParamDecl, ...] = ()
    body: tuple[Rule | VarDecl | Require | Expose, ...] = ()
    doc: str | None = None
    span: Span = _span()
    extends: Use | None = None  # `extends early_stopping(patience = 3)`


Item = Union[Rule, CallbackDef, Use, Import, ParamDecl, VarDecl]  # noqa: UP007


@dataclass(frozen=True)
class Program(Node):
    """One parsed rule file."""

    children: ClassVar[tuple[str, ...]] = ("items",)
    items: tuple[Item, ...]
    path: str = field(default="<string>", compare=False)
    source: str = field(default="", compare=False, repr=False)
    span: Span = _span()
