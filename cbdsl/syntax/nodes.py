"""The syntax tree: frozen dataclasses, one per language concept, each with a source span."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Union

from cbdsl.diagnostics import Span

NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    # Spans are excluded from equality, so two parses of differently laid-out
    # text compare equal when they mean the same program.
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    """Base of every node.

    Each node class names the fields that hold its sub-nodes in `children`, in source order
    (an `Ident`, a name as written, is a leaf of its parent, not a child). The generic walk
    of `cbdsl.syntax.walk` reads only that, so every analysis sees the same nodes.
    """

    children: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class Ident(Node):
    """A name as written, with its own span (events, targets, options, ...)."""

    children: ClassVar[tuple[str, ...]] = ()
    name: str
    span: Span = _span()


# ----------------------------------------------------------------- expressions


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

# --------------------------------------------------------------------- filters


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

# --------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Assign(Node):
    """`lr = expr`, `lr *= expr`: write a training target."""

    children: ClassVar[tuple[str, ...]] = ("value",)
    target: Ident
    op: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Stop(Node):
    children: ClassVar[tuple[str, ...]] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Save(Node):
    children: ClassVar[tuple[str, ...]] = ("path",)
    kind: str  # "model" | "weights"
    path: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Restore(Node):
    """`restore best weights [of tracker]`."""

    children: ClassVar[tuple[str, ...]] = ()
    tracker: Ident | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Log(Node):
    """`log name = value`, or `log [key] = value` with the key computed (`key_expr`)."""

    children: ClassVar[tuple[str, ...]] = ("key_expr", "value")
    key: Ident | None
    value: Expr
    span: Span = _span()
    key_expr: Expr | None = None


@dataclass(frozen=True)
class Print(Node):
    children: ClassVar[tuple[str, ...]] = ("template",)
    template: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Warn(Node):
    children: ClassVar[tuple[str, ...]] = ("template",)
    template: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Set(Node):
    """`set var op value`, or `set var[key] op value` for one entry of a table variable."""

    children: ClassVar[tuple[str, ...]] = ("index", "value")
    var: Ident
    op: str
    value: Expr
    span: Span = _span()
    index: Expr | None = None


@dataclass(frozen=True)
class Cooldown(Node):
    children: ClassVar[tuple[str, ...]] = ("count",)
    count: Expr
    span: Span = _span()


@dataclass(frozen=True)
class CallPython(Node):
    """`call hook(args)`: a Python function passed in explicitly by the caller."""

    children: ClassVar[tuple[str, ...]] = ("args", "keywords")
    func: Ident
    args: tuple[Expr, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    span: Span = _span()


@dataclass(frozen=True)
class Fail(Node):
    """`fail "message"`: end training with a RuntimeError."""

    children: ClassVar[tuple[str, ...]] = ("template",)
    template: Expr
    span: Span = _span()


@dataclass(frozen=True)
class For(Node):
    """`for k[, v] in table [when cond] do (actions)`: actions once per key (and value)."""

    children: ClassVar[tuple[str, ...]] = ("iterable", "condition", "actions")
    names: tuple[Ident, ...]
    iterable: Expr
    condition: Expr | None
    actions: tuple[Action, ...]
    span: Span = _span()


@dataclass(frozen=True)
class WriteFile(Node):
    """`write TEXT to PATH` (replace the file's text) or `append TEXT to PATH` (add a line)."""

    children: ClassVar[tuple[str, ...]] = ("text", "path")
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

    children: ClassVar[tuple[str, ...]] = ("row", "file", "options")
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

    children: ClassVar[tuple[str, ...]] = ("body", "url", "options", "otherwise")
    kind: Ident
    body: Expr
    url: Expr
    options: tuple[Option, ...] = ()
    otherwise: Print | Warn | Fail | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Effect(Node):
    """`group.name(args)`: a runtime primitive (`progress.update(seen, values = logs)`)."""

    children: ClassVar[tuple[str, ...]] = ("args", "keywords")
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

    children: ClassVar[tuple[str, ...]] = ()
    span: Span = _span()


Action = Union[Assign, Stop, Save, Restore, Log, Print, Warn, Set, Cooldown,  # noqa: UP007
               CallPython, Fail, Record, For, WriteFile, WriteRow, Post, Effect]

# ------------------------------------------------------------ rules and files


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
    """`use library.rule(args)`: instantiate a callback definition."""

    children: ClassVar[tuple[str, ...]] = ("args", "keywords")
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
