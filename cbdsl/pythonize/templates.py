"""Rule-language templates as Python strings: f-string pieces, laid out within WIDTH."""

from __future__ import annotations

import re
import string

from cbdsl.pythonize.code import WIDTH, Code, escape
from cbdsl.pythonize.names import Scope
from cbdsl.syntax import nodes as n

_FORMATTER = string.Formatter()


class TemplateWriter:
    """Messages and paths (`print "..."`, `save to "..."`) as f-string pieces or an expression.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def template(self, expr: n.Expr, scope: Scope, rule: n.Node, in_init: bool = False
                 ) -> list[tuple[str, str]] | Code:
        """A message or path template: the pieces of an f-string, or an expression."""
        if isinstance(expr, n.String):
            text = expr.value
            pieces: list[tuple[str, str]] = []
            fq = scope.inner(quote="'")
            for literal, name, spec, _ in _FORMATTER.parse(text):
                if literal:
                    pieces.append(("lit", literal))
                if name is None:
                    continue
                value = self.field(name, fq, rule, in_init)
                if spec and any(c in spec for c in "{}'\"\\\n"):
                    raise self.error(f"the format spec of '{{{name}:{spec}}}'", expr)
                pieces.append(("field", value + (f":{spec}" if spec else "")))
            return pieces
        if isinstance(expr, n.Name) and expr.id in self.params:
            # a template passed as an argument: filled as ModelCheckpoint fills its filepath
            attr = self.local_param[expr.id] if in_init else f"self.{self.attr[expr.id]}"
            args = []
            if scope.epoch is not None:
                args.append(f"epoch={scope.epoch} + 1")
            if scope.batch is not None:
                args.append(f"batch={scope.batch} + 1")
            if not in_init:
                self._needs_logs = True
                args.append(f"**{scope.logs}")
            return Code(f"{attr}.format({', '.join(args)})")
        raise self.error("a template computed by an expression (write it as a string)", expr)

    def field(self, name: str, scope: Scope, rule: n.Node, in_init: bool) -> str:
        """A template field as Python: 1-based counters, as Keras prints them."""
        if in_init:
            return self.local_param[name]
        if name in scope.locals:
            return scope.locals[name]
        if name == "epoch" and scope.epoch is not None:
            if scope.epoch == "self._current_epoch":
                self.uses.add("current_epoch")
            return f"{scope.epoch} + 1"
        if name == "batch" and scope.batch is not None:
            return f"{scope.batch} + 1"
        if name == "step" and scope.step is not None:
            return f"{scope.step} + 1"
        if name == "stopped_epoch":
            self.uses.add("stopped_epoch")
            return "self.stopped_epoch + 1"
        if "." in name:
            tracker_name, attr = name.split(".", 1)
            tracker = self.tracker_by_name[tracker_name]
            if attr == "direction" and not tracker.runtime_direction:
                return repr(tracker.static_direction or "min")
            value = f"self.{tracker.attrs[attr]}"
            return f"{value} + 1" if attr == "best_epoch" else value
        if name in ("epoch", "batch") and name not in self.params and \
                name not in self.variables:
            raise self.error(f"the template field '{{{name}}}' in {scope.event.name}, which "
                             f"has no {name}", rule)
        return self.expr(n.Name(name), scope).text


# ---------------------------------------------------------- string literals


def string_code(pieces: list[tuple[str, str]], indent: int, prefix: str, suffix: str) -> str:
    """`prefix` + a string (f-string when it has fields) + `suffix`, split into adjacent
    literals over several lines when one line would be too long.

    `pieces` are `("lit", raw text)` and `("field", "expr" or "expr:spec")`.
    """
    one = _literal(_tokens(pieces))
    if len(" " * indent + prefix + one + suffix) <= WIDTH:
        return prefix + one + suffix
    chunks = _pack(_tokens(pieces), WIDTH - indent - 4)
    if len(_literal(chunks[-1]) + suffix) > WIDTH - indent - 4:  # the suffix ends the last
        chunks[-1:] = _pack(chunks[-1], WIDTH - indent - 4 - len(suffix))
    head = prefix.rstrip()
    body = [f"    {_literal(chunk)}" for chunk in chunks]
    body[-1] += suffix
    return "\n".join([head, *body])


def _pack(tokens: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    """Tokens packed greedily into literals of at most `width` characters."""
    chunks: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if chunks[-1] and len(_literal([*chunks[-1], token])) > width:
            chunks.append([])
        chunks[-1].append(token)
    return chunks


def _tokens(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    tokens = []
    for kind, text in pieces:
        if kind == "lit":
            tokens += [("lit", word) for word in re.findall(r"\S*\s*", text) if word]
        else:
            tokens.append((kind, text))
    return tokens


def _literal(tokens: list[tuple[str, str]]) -> str:
    is_f = any(kind == "field" for kind, _ in tokens)
    body = []
    for kind, text in tokens:
        if kind == "field":
            body.append("{" + text + "}")
        else:
            escaped = "".join(escape(c, '"') for c in text)
            body.append(escaped.replace("{", "{{").replace("}", "}}") if is_f else escaped)
    return ("f" if is_f else "") + '"' + "".join(body) + '"'


def call_with_string(prefix: str, message: list[tuple[str, str]] | Code, suffix: str,
                     indent: int) -> str:
    if isinstance(message, Code):
        return prefix + message.text + suffix
    return string_code(message, indent, prefix, suffix)
