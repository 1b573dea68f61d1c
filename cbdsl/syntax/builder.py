"""Lark tree to nodes: a Transformer that builds `cbdsl.syntax.nodes`, never validating meaning."""

from __future__ import annotations

import math
import re

import lark
from lark import Token, Transformer, v_args

from cbdsl.diagnostics import CbdslSyntaxError, Diagnostic, Span
from cbdsl.language import MODES
from cbdsl.syntax import nodes as n

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_ESCAPE_RE = re.compile(r"\\(.)")


def _span(meta) -> Span:
    if getattr(meta, "empty", True):
        return n.NO_SPAN
    return Span(meta.line, meta.column, meta.end_line, meta.end_column,
                meta.start_pos, meta.end_pos)


def _tspan(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column,
                token.start_pos, token.end_pos)


def _ident(token: Token) -> n.Ident:
    return n.Ident(str(token), _tspan(token))


def unescape(body: str) -> str:
    """Resolve backslash escapes in a string literal's body (no code is run)."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def _present(children) -> list:
    return [c for c in children if c is not None and not isinstance(c, Token)]


@v_args(meta=True)
class Builder(Transformer):
    """Turns the parse tree into `Program` nodes; spans come from Lark's positions."""

    def __init__(self, text: str, path: str):
        super().__init__()
        self.text, self.path = text, path

    # -- atoms
    def number(self, meta, children):
        (token,) = children
        raw = str(token)
        value: int | float = int(raw) if raw.isdigit() else float(raw)
        if isinstance(value, float) and math.isinf(value):
            raise CbdslSyntaxError(Diagnostic("E106", f"number {raw} is out of range",
                                              _tspan(token), self.path, self.text,
                                              "use the name 'inf' for infinity"))
        return n.Number(value, _tspan(token))

    def string(self, meta, children):
        (token,) = children
        return n.String(unescape(str(token)[1:-1]), _tspan(token))

    def true(self, meta, children):
        return n.Bool(True, _span(meta))

    def false(self, meta, children):
        return n.Bool(False, _span(meta))

    def none(self, meta, children):
        return n.NoneLit(_span(meta))

    def name(self, meta, children):
        (token,) = children
        return n.Name(str(token), _tspan(token))

    def counter(self, meta, children):
        (ident,) = children
        return n.Name(ident.name, ident.span)

    def func_name(self, meta, children):
        return children[0]

    def soft_name(self, meta, children):
        return children[0]

    def field_name(self, meta, children):
        return children[0]

    def attribute_name(self, meta, children):
        return children[0]

    def cooldown_word(self, meta, children):
        return children[0]

    def soft(self, meta, children):
        return n.Name(str(children[0]), _tspan(children[0]))

    def attribute(self, meta, children):
        value, attr = children
        return n.Attribute(_ident(value), _ident(attr), _span(meta))

    def func(self, meta, children):
        token, arguments = children
        args, keywords = arguments or ((), ())
        return n.Call(_ident(token), args, keywords, _span(meta))

    def arguments(self, meta, children):
        items = _present(children)
        args = tuple(c for c in items if not isinstance(c, n.Keyword))
        keywords = tuple(c for c in items if isinstance(c, n.Keyword))
        return args, keywords

    def keyword(self, meta, children):
        token, value = children
        return n.Keyword(_ident(token), value, _span(meta))

    def table(self, meta, children):
        (entries,) = children
        return n.Table(tuple(entries or ()), _span(meta))

    def entries(self, meta, children):
        return _present(children)

    def entry(self, meta, children):
        key, value = children
        return (key, value)

    # -- operators
    def neg(self, meta, children):
        return n.Unary("-", children[0], _span(meta))

    def pos(self, meta, children):
        return n.Unary("+", children[0], _span(meta))

    def not_(self, meta, children):
        return n.Unary("not", children[0], _span(meta))

    def pow(self, meta, children):
        left, right = children
        return n.BinOp("**", left, right, _span(meta))

    def binop(self, meta, children):
        left, op, right = children
        return n.BinOp(str(op.children[0]), left, right, _span(meta))

    def compare(self, meta, children):
        first, *rest = children
        pairs = tuple((" ".join(str(t) for t in rest[i].children), rest[i + 1])
                      for i in range(0, len(rest), 2))
        return n.Compare(first, pairs, _span(meta))

    def and_(self, meta, children):
        return n.BoolOp("and", children[0], children[1], _span(meta))

    def or_(self, meta, children):
        return n.BoolOp("or", children[0], children[1], _span(meta))

    def conditional(self, meta, children):
        then, cond, orelse = children
        return n.Conditional(then, cond, orelse, _span(meta))

    # -- predicates
    def stalls(self, meta, children):
        subject, count, options, alias = children
        return n.Stalls(subject, count, tuple(options or ()), alias, _span(meta))

    def improves(self, meta, children):
        subject, options, alias = children
        return n.Improves(subject, tuple(options or ()), alias, _span(meta))

    def options(self, meta, children):
        return _present(children)

    def option(self, meta, children):
        token, value = children
        if str(token) == "mode" and isinstance(value, n.Name) and value.id in MODES:
            value = n.String(value.id, value.span)  # `mode = max` reads as the string
        return n.Option(_ident(token), value, _span(meta))

    def alias(self, meta, children):
        return _ident(children[0])

    def is_nan(self, meta, children):
        return n.IsNan(children[0], False, _span(meta))

    def is_not_nan(self, meta, children):
        return n.IsNan(children[0], True, _span(meta))

    def is_finite(self, meta, children):
        return n.IsFinite(children[0], False, _span(meta))

    def is_not_finite(self, meta, children):
        return n.IsFinite(children[0], True, _span(meta))

    # -- filters
    def unit(self, meta, children):
        return _ident(children[0])

    def every(self, meta, children):
        count, unit = children
        return n.Every(count, unit, _span(meta))

    def after(self, meta, children):
        count, unit = children
        return n.After(count, unit, _span(meta))

    def from_(self, meta, children):
        unit, count = children
        return n.After(count, unit, _span(meta))

    def before(self, meta, children):
        if isinstance(children[0], n.Ident):
            unit, count = children
        else:
            count, unit = children
        return n.Before(count, unit, _span(meta))

    def once(self, meta, children):
        unit, at = children
        return n.Once(at, unit, _span(meta))

    def priority(self, meta, children):
        return n.Priority(children[0], _span(meta))

    # -- actions
    def assign_op(self, meta, children):
        return str(children[0])

    def assign(self, meta, children):
        token, op, value = children
        return n.Assign(_ident(token), op, value, _span(meta))

    def stop(self, meta, children):
        return n.Stop(_span(meta))

    def save_kind(self, meta, children):
        return str(children[0])

    def save(self, meta, children):
        kind, path = children
        return n.Save(kind, path, _span(meta))

    def restore(self, meta, children):
        (token,) = children
        return n.Restore(_ident(token) if token is not None else None, _span(meta))

    def log(self, meta, children):
        token, value = children
        return n.Log(_ident(token), value, _span(meta))

    def log_key(self, meta, children):
        key, value = children
        return n.Log(None, value, _span(meta), key)

    def for_(self, meta, children):
        first, second, iterable, condition, actions = children
        names = (_ident(first),) + ((_ident(second),) if second is not None else ())
        return n.For(names, iterable, condition, tuple(actions), _span(meta))

    def index(self, meta, children):
        value, key = children
        return n.Index(value, key, _span(meta))

    def print_(self, meta, children):
        return n.Print(children[0], _span(meta))

    def warn(self, meta, children):
        return n.Warn(children[0], _span(meta))

    def fail(self, meta, children):
        return n.Fail(children[0], _span(meta))

    def write_file(self, meta, children):
        text, path = children
        return n.WriteFile("write", text, path, _span(meta))

    def append_file(self, meta, children):
        text, path = children
        return n.WriteFile("append", text, path, _span(meta))

    def write_row(self, meta, children):
        row, path, options = children
        return n.WriteRow(row, path, tuple(options or ()), _span(meta))

    def post(self, meta, children):
        kind, body, url, options, otherwise = children
        return n.Post(_ident(kind), body, url, tuple(options or ()), otherwise, _span(meta))

    def record(self, meta, children):
        return n.Record(_span(meta))

    def set_(self, meta, children):
        token, index, op, value = children
        return n.Set(_ident(token), op, value, _span(meta), index)

    def cooldown(self, meta, children):
        count, token = children
        return n.Cooldown(count, _ident(token) if token is not None else None, _span(meta))

    def call(self, meta, children):
        token, arguments = children
        args, keywords = arguments or ((), ())
        return n.CallPython(_ident(token), args, keywords, _span(meta))

    def effect(self, meta, children):
        group, name, arguments = children
        args, keywords = arguments or ((), ())
        return n.Effect(_ident(group), _ident(name), args, keywords, _span(meta))

    def actions(self, meta, children):
        return tuple(children)

    # -- rules
    def label(self, meta, children):
        return _ident(children[0])

    def events(self, meta, children):
        return tuple(_ident(t) for t in children)

    def condition(self, meta, children):
        return children[0]

    def rule(self, meta, children):
        label, events, *clauses, condition, actions = children
        filters = tuple(c for c in clauses if not isinstance(c, n.Priority))
        priorities = [c for c in clauses if isinstance(c, n.Priority)]
        if len(priorities) > 1:
            raise CbdslSyntaxError(Diagnostic("E218", "priority given twice in one rule",
                                              priorities[1].span, self.path, self.text))
        return n.Rule(events, actions, filters, condition,
                      priorities[0] if priorities else None, label, _span(meta))

    # -- declarations
    def param_decl(self, meta, children):
        token, value = children
        return n.ParamDecl(_ident(token), value, None, _span(meta))

    def param_decl_typed(self, meta, children):
        token, type_name, default = children
        return n.ParamDecl(_ident(token), default, _ident(type_name), _span(meta))

    def require(self, meta, children):
        condition, message = children
        return n.Require(condition, message, _span(meta))

    def expose(self, meta, children):
        token, value = children
        return n.Expose(_ident(token), value, _span(meta))

    def var_decl(self, meta, children):
        kept, token, value = children
        return n.VarDecl(_ident(token), value, _span(meta), kept is not None)

    def keep(self, meta, children):
        return True

    def import_(self, meta, children):
        (token,) = children
        return n.Import(n.String(unescape(str(token)[1:-1]), _tspan(token)), _span(meta))

    def dotted_name(self, meta, children):
        return tuple(_ident(t) for t in children)

    def use(self, meta, children):
        name, arguments, priority = children
        args, keywords = arguments or ((), ())
        return n.Use(name, args, keywords, _span(meta), priority)

    def param_default(self, meta, children):
        token, value = children
        return n.ParamDecl(_ident(token), value, None, _span(meta))

    def param_typed(self, meta, children):
        token, type_name, default = children
        return n.ParamDecl(_ident(token), default, _ident(type_name), _span(meta))

    def params(self, meta, children):
        return tuple(_present(children))

    def doc(self, meta, children):
        return unescape(str(children[0])[1:-1])

    def param_list(self, meta, children):
        (params,) = children
        return params or ()

    def callback_def(self, meta, children):
        token, params, extends, doc, *body = children
        return n.CallbackDef(_ident(token), tuple(params or ()), tuple(body), doc, _span(meta),
                             extends)

    def extends(self, meta, children):
        name, arguments = children
        args, keywords = arguments or ((), ())
        return n.Use(name, args, keywords, _span(meta))

    def start(self, meta, children):
        return n.Program(tuple(children), self.path, self.text, _span(meta))


def build(tree: lark.Tree, text: str = "", path: str = "<string>") -> n.Program:
    """Build the `Program` node from a parse tree made by `cbdsl.parser.parse_tree`."""
    try:
        return Builder(text, path).transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, CbdslSyntaxError):
            raise exc.orig_exc from None
        raise
