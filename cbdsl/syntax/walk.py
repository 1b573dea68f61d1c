"""One generic walk over the syntax tree, driven by each node's declared `children`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cbdsl.syntax import nodes as n


def children(node: Any) -> Iterator[n.Node]:
    """The direct sub-nodes of `node`, in source order (pairs in tuples are opened)."""
    for name in type(node).children:
        yield from _nodes(getattr(node, name))


def child_fields(node: Any) -> Iterator[tuple[str, n.Node]]:
    """The direct sub-nodes of `node` with the name of the field holding each."""
    for name in type(node).children:
        for child in _nodes(getattr(node, name)):
            yield name, child


def _nodes(value: Any) -> Iterator[n.Node]:
    if value is None:
        return
    if isinstance(value, n.Node):
        yield value
    elif isinstance(value, tuple):  # a tuple of nodes, or of pairs (`Table`, `Compare`)
        for item in value:
            yield from _nodes(item)


def walk(node: Any) -> Iterator[n.Node]:
    """Every node under `node` (itself included), depth first in source order, without
    recursion, so that any depth of nesting is walked."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current is None:
            continue
        yield current
        stack.extend(reversed(list(children(current))))


def walk_all(nodes: Iterable[Any]) -> Iterator[n.Node]:
    """Every node under each of `nodes`, in order."""
    for node in nodes:
        yield from walk(node)


def flat_actions(actions: Iterable[n.Action]) -> list[n.Action]:
    """Actions with the bodies of `for` loops spliced in (the loops themselves included)."""
    out: list[n.Action] = []
    stack = list(reversed(tuple(actions)))
    while stack:
        action = stack.pop()
        out.append(action)
        if isinstance(action, n.For):
            stack += reversed(action.actions)
    return out


def unconditional(node: Any) -> Iterator[n.Node]:
    """The nodes under `node` evaluated whenever it is: not the right side of `and`/`or`, not
    the branches of `x if c else y`, not inside `stalls`/`improves` (checked before)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, n.BoolOp):
            stack.append(current.left)
        elif isinstance(current, n.Conditional):
            stack.append(current.cond)
        elif not isinstance(current, n.Stalls | n.Improves | n.Ident):
            stack.extend(children(current))
