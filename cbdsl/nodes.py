"""The syntax tree: frozen dataclasses, one per language concept, each with a source span."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from cbdsl.diagnostics import Span

NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    # Spans are excluded from equality, so two parses of differently laid-out
    # text compare equal when they mean the same program.
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    """Base of every node."""


@dataclass(frozen=True)
class Ident(Node):
    """A name as written, with its own span (events, targets, options, ...)."""

    name: str
    span: Span = _span()


# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Number(Node):
    value: int | float
    span: Span = _span()


@dataclass(frozen=True)
class String(Node):
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Bool(Node):
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class NoneLit(Node):
    span: Span = _span()


@dataclass(frozen=True)
class Name(Node):
    """A plain name: a parameter, state variable, built-in counter or log metric."""

    id: str
    span: Span = _span()


@dataclass(frozen=True)
class Attribute(Node):
    """`tracker.field`, e.g. `plateau.best`."""

    value: Ident
    attr: Ident
    span: Span = _span()


@dataclass(frozen=True)
class Keyword(Node):
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Call(Node):
    """A call of a safe built-in function: `max(lr * 0.5, 1e-6)`."""

    func: Ident
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Table(Node):
    """`{3: 0.05, 6: 0.01}`: a lookup table for piecewise schedules."""

    entries: tuple[tuple[Expr, Expr], ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" | "+" | "not"
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * / // % **
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Index(Node):
    """`table[key]`: one entry of a table or the logs."""

    value: Expr
    key: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Compare(Node):
    """`a < b <= c`: a chain, each link compared pairwise as in Python."""

    first: Expr
    rest: tuple[tuple[str, Expr], ...]
    span: Span = _span()


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Conditional(Node):
    """`a if cond else b`."""

    then: Expr
    cond: Expr
    orelse: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Option(Node):
    name: Ident
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Stalls(Node):
    """`X stalls N`: no improvement of X for N checks (Keras patience)."""

    subject: Expr
    count: Expr
    options: tuple[Option, ...] = ()
    alias: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Improves(Node):
    """`X improves`: X beat its best so far by more than min_delta."""

    subject: Expr
    options: tuple[Option, ...] = ()
    alias: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class IsNan(Node):
    subject: Expr
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class IsFinite(Node):
    subject: Expr
    negated: bool = False
    span: Span = _span()


Expr = Union[  # noqa: UP007 - runtime alias used in annotations above
    Number, String, Bool, NoneLit, Name, Attribute, Call, Table, Unary, BinOp, Compare,
    BoolOp, Conditional, Stalls, Improves, IsNan, IsFinite,
]
PREDICATES = (Stalls, Improves)

# --------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Every(Node):
    count: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class After(Node):
    """`after N [unit]` and `from unit N`: the counter's index is at least N."""

    count: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Before(Node):
    count: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Once(Node):
    at: Expr
    unit: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Priority(Node):
    value: Expr
    span: Span = _span()


Filter = Union[Every, After, Before, Once]  # noqa: UP007

# --------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Assign(Node):
    """`lr = expr`, `lr *= expr`: write a training target."""

    target: Ident
    op: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Stop(Node):
    span: Span = _span()


@dataclass(frozen=True)
class Save(Node):
    kind: str  # "model" | "weights"
    path: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Restore(Node):
    """`restore best weights [of tracker]`."""

    tracker: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Log(Node):
    """`log name = value`, or `log [key] = value` with the key computed (`key_expr`)."""

    key: Ident | None
    value: Expr
    span: Span = _span()
    key_expr: Expr | None = None


@dataclass(frozen=True)
class Print(Node):
    template: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Warn(Node):
    template: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Set(Node):
    """`set var op value`, or `set var[key] op value` for one entry of a table variable."""

    var: Ident
    op: str
    value: Expr
    span: Span = _span()
    index: Expr | None = None


@dataclass(frozen=True)
class Cooldown(Node):
    count: Expr
    span: Span = _span()


@dataclass(frozen=True)
class CallPython(Node):
    """`call hook(args)`: a Python function passed in explicitly by the caller."""

    func: Ident
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Fail(Node):
    """`fail "message"`: end training with a RuntimeError."""

    template: Expr
    span: Span = _span()


@dataclass(frozen=True)
class For(Node):
    """`for k[, v] in table [when cond] do (actions)`: actions once per key (and value)."""

    names: tuple[Ident, ...]
    iterable: Expr
    condition: Expr | None
    actions: tuple[Any, ...]
    span: Span = _span()


@dataclass(frozen=True)
class WriteFile(Node):
    """`write TEXT to PATH` (replace the file's text) or `append TEXT to PATH` (add a line)."""

    mode: str  # "write" | "append"
    text: Expr
    path: Expr
    span: Span = _span()


@dataclass(frozen=True)
class WriteRow(Node):
    """`write row TABLE to FILE [with OPTIONS]`: the table's values as one CSV line at the end.

    `row` may be `none`: the file is only opened (created, or emptied with `append = false`).
    `file` is a path as it is, not a template.
    """

    row: Expr
    file: Expr
    options: tuple[Option, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Post(Node):
    """`post json|form BODY to URL [with OPTIONS] [else MESSAGE]`: an HTTP POST of a table.

    `kind` is the `json`/`form` word as written (the checker refuses any other); `otherwise`
    is the `print`, `warn` or `fail` run when the request fails.
    """

    kind: Ident
    body: Expr
    url: Expr
    options: tuple[Option, ...] = ()
    otherwise: Print | Warn | Fail | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Effect(Node):
    """`group.name(args)`: a runtime primitive (`progress.update(seen, values = logs)`)."""

    group: Ident
    name: Ident
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()

    @property
    def full_name(self) -> str:
        return f"{self.group.name}.{self.name.name}"


@dataclass(frozen=True)
class Record(Node):
    """`record`: append the epoch and every log value to the callback's history."""

    span: Span = _span()


Action = Union[Assign, Stop, Save, Restore, Log, Print, Warn, Set, Cooldown,  # noqa: UP007
               CallPython, Fail, Record, For, WriteFile, WriteRow, Post, Effect]

# ------------------------------------------------------------ rules and files


@dataclass(frozen=True)
class Rule(Node):
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

    name: Ident
    default: Expr | None = None
    type_name: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class VarDecl(Node):
    """`[keep] var NAME = VALUE`: a state variable; `keep` keeps it across `fit` calls."""

    name: Ident
    value: Expr
    span: Span = _span()
    kept: bool = False


@dataclass(frozen=True)
class Import(Node):
    path: String
    span: Span = _span()


@dataclass(frozen=True)
class Use(Node):
    """`use library.rule(args)`: instantiate a callback definition."""

    name: tuple[Ident, ...]
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(i.name for i in self.name)


@dataclass(frozen=True)
class Require(Node):
    """`require COND else "message"`: a ValueError when the callback is built with bad args."""

    condition: Expr
    message: Expr
    span: Span = _span()


@dataclass(frozen=True)
class CallbackDef(Node):
    """`callback Name(param = default, ...) { rules }`."""

    name: Ident
    params: tuple[ParamDecl, ...] = ()
    body: tuple[Rule | VarDecl | Require, ...] = ()
    doc: str | None = None
    span: Span = _span()
    extends: Use | None = None  # `extends early_stopping(patience = 3)`


Item = Union[Rule, CallbackDef, Use, Import, ParamDecl, VarDecl]  # noqa: UP007


@dataclass(frozen=True)
class Program(Node):
    """One parsed rule file."""

    items: tuple[Item, ...]
    path: str = field(default="<string>", compare=False)
    source: str = field(default="", compare=False, repr=False)
    span: Span = _span()
