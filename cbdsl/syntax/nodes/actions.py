"""Action nodes: what a rule does after `do`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from cbdsl.diagnostics import Span
from cbdsl.syntax.nodes.base import Ident, Node, _span
from cbdsl.syntax.nodes.expressions import Expr, Keyword, Option


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
    """`cooldown N [of tracker]`: hold a `stalls` tracker for its next N checks."""

    children: ClassVar[tuple[str, ...]] = ("count",)
    count: Expr
    tracker: Ident | None = None
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
