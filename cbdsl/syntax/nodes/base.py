"""The base of every node, names as written, and the span every node carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

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
