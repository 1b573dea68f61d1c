"""Expression nodes: literals, names, calls, operators, tables and the stateful predicates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from cbdsl.diagnostics import Span
from cbdsl.syntax.nodes.base import Ident, Node, _span


@dataclass(frozen=True)
class Number(Node):
    children: ClassVar[tuple[str, ...]] = ()
    value: int | float
    span: Span = _span()


@dataclass(frozen=True)
class String(Node):
    children: ClassVar[tuple[str, ...]] = ()
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Bool(Node):
    children: ClassVar[tuple[str, ...]] = ()
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class NoneLit(Node):
    children: ClassVar[tuple[str, ...]] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Name(Node):
    """A plain name: a parameter, state variable, built-in counter or log metric."""

    children: ClassVar[tuple[str, ...]] = ()
    id: str
    span: Span = _span()


@dataclass(frozen=True)
class Attribute(Node):
    """`tracker.field`, e.g. `plateau.best`."""

    children: ClassVar[tuple[str, ...]] = ()
    value: Ident
    attr: Ident
    span: Span = _span()


@dataclass(frozen=True)
class Keyword(Node):
    children: ClassVar[tuple[str, ...]] = ("value",)
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Call(Node):
    """A call of a safe built-in function: `max(lr * 0.5, 1e-6)`."""

    children: ClassVar[tuple[str, ...]] = ("args", "keywords")
    func: Ident
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Table(Node):
    """`{3: 0.05, 6: 0.01}`: a lookup table for piecewise schedules."""

    children: ClassVar[tuple[str, ...]] = ("entries",)
    entries: tuple[tuple[Expr, Expr], ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Unary(Node):
    children: ClassVar[tuple[str, ...]] = ("operand",)
    op: str  # "-" | "+" | "not"
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class BinOp(Node):
    children: ClassVar[tuple[str, ...]] = ("left", "right")
    op: str  # + - * / // % **
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Index(Node):
    """`table[key]`: one entry of a table or the logs."""

    children: ClassVar[tuple[str, ...]] = ("value", "key")
    value: Expr
    key: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Compare(Node):
    """`a < b <= c`: a chain, each link compared pairwise as in Python."""

    children: ClassVar[tuple[str, ...]] = ("first", "rest")
    first: Expr
    rest: tuple[tuple[str, Expr], ...]
    span: Span = _span()


@dataclass(frozen=True)
class BoolOp(Node):
    children: ClassVar[tuple[str, ...]] = ("left", "right")
    op: str  # "and" | "or"
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Conditional(Node):
    """`a if cond else b`."""

    children: ClassVar[tuple[str, ...]] = ("then", "cond", "orelse")
    then: Expr
    cond: Expr
    orelse: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Option(Node):
    children: ClassVar[tuple[str, ...]] = ("value",)
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Stalls(Node):
    """`X stalls N`: no improvement of X for N checks (Keras patience)."""

    children: ClassVar[tuple[str, ...]] = ("subject", "count", "options")
    subject: Expr
    count: Expr
    options: tuple[Option, ...] = ()
    alias: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Improves(Node):
    """`X improves`: X beat its best so far by more than min_delta."""

    children: ClassVar[tuple[str, ...]] = ("subject", "options")
    subject: Expr
    options: tuple[Option, ...] = ()
    alias: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class IsNan(Node):
    children: ClassVar[tuple[str, ...]] = ("subject",)
    subject: Expr
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class IsFinite(Node):
    children: ClassVar[tuple[str, ...]] = ("subject",)
    subject: Expr
    negated: bool = False
    span: Span = _span()


Expr = Union[  # noqa: UP007 - runtime alias used in annotations above
    Number, String, Bool, NoneLit, Name, Attribute, Call, Table, Unary, BinOp, Compare,
    BoolOp, Conditional, Stalls, Improves, IsNan, IsFinite, Index,
]
PREDICATES = (Stalls, Improves)
