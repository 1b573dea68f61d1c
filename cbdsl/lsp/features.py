"""Editor features of a rule file, as Language Server Protocol data (lsprotocol types).

Every answer comes from the command line's own stages: diagnostics from the checker, hover
text from the language tables and `cbdsl explain`, formatting from `cbdsl fmt`, definitions
from the checker's resolution of names, uses and libraries.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from lsprotocol import types as t

from cbdsl import language
from cbdsl.checker import REQUIRED, Definition
from cbdsl.checker.libraries import find_libraries
from cbdsl.diagnostics import CbdslError, Diagnostic, Span, suggestion
from cbdsl.explain import Explainer
from cbdsl.fmt import format_source
from cbdsl.libraries import signature
from cbdsl.lsp.analysis import Analysis, Lines, definition_at, every_node, file_of, nodes_at
from cbdsl.syntax import nodes as n
from cbdsl.syntax.parser import lark_parser

SOURCE = "cbdsl"


def uri_of(path: str) -> str:
    """A file's `file://` URI."""
    return Path(path).resolve().as_uri()


def _range(lines: Lines, span: Span | None) -> t.Range:
    if span is None:
        return t.Range(t.Position(0, 0), t.Position(0, lines.units(0, len(lines.lines[0]))))
    (line, char), (end_line, end_char) = lines.span(span)
    return t.Range(t.Position(line, char), t.Position(end_line, end_char))


@functools.lru_cache(maxsize=64)
def _file_lines(path: str, mtime: float, encoding: str) -> Lines:
    try:
        return Lines(Path(path).read_text("utf-8"), encoding)
    except (OSError, UnicodeDecodeError):
        return Lines("", encoding)


def lines_of(path: str, analysis: Analysis, encoding: str) -> Lines:
    """The lines of `path`: the analysed text when it is that file, else the file on disk."""
    if os.path.abspath(path) == os.path.abspath(analysis.path):
        return Lines(analysis.text, encoding)
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        mtime = 0.0
    return _file_lines(os.path.abspath(path), mtime, encoding)


def location(path: str, span: Span | None, analysis: Analysis, encoding: str) -> t.Location:
    """A place in a file (the analysed one, or another on disk) as an editor location."""
    target = file_of(path)
    return t.Location(uri_of(target), _range(lines_of(target, analysis, encoding), span))


# ------------------------------------------------------------------ diagnostics


def diagnostics(analysis: Analysis, encoding: str = "utf-16") -> list[t.Diagnostic]:
    """Every diagnostic of `cbdsl check`, with its code, full range and notes. A finding in
    another file (a used library's, an imported file's) is shown at the line that brings it
    in, naming where it is."""
    lines = Lines(analysis.text, encoding)
    here = os.path.abspath(analysis.path)
    out = []
    for diagnostic in analysis.diagnostics:
        span, message, related = diagnostic.span, diagnostic.message, list(diagnostic.related)
        if diagnostic.path not in ("<string>", "") and \
                os.path.abspath(file_of(diagnostic.path)) != here:
            bringing = next((s for _, p, s in related
                             if os.path.abspath(file_of(p)) == here), None)
            where = f"{os.path.basename(diagnostic.path)}"
            if diagnostic.span is not None:
                where += f":{diagnostic.span.line}:{diagnostic.span.column}"
                related.insert(0, ("reported here", diagnostic.path, diagnostic.span))
            message, span = f"{where}: {message}", bringing
        if diagnostic.hint:
            message += f" ({diagnostic.hint})"
        out.append(t.Diagnostic(
            range=_range(lines, span), message=message, source=SOURCE, code=diagnostic.code,
            severity=(t.DiagnosticSeverity.Warning if diagnostic.severity == "warning"
                      else t.DiagnosticSeverity.Error),
            related_information=[
                t.DiagnosticRelatedInformation(location(p, s, analysis, encoding), m)
                for m, p, s in related] or None,
            data={"suggestion": suggestion(diagnostic.hint)} if suggestion(diagnostic.hint)
            else None))
    return out


def code_actions(analysis: Analysis, uri: str, wanted: t.Range,
                 encoding: str = "utf-16") -> list[t.CodeAction]:
    """A quick fix per did-you-mean diagnostic in `wanted`: replace the name with the
    suggested one."""
    out = []
    for diagnostic, shown in zip(analysis.diagnostics, diagnostics(analysis, encoding),
                                 strict=True):
        name = suggestion(diagnostic.hint)
        if name is None or diagnostic.span is None or shown.range.start.line > wanted.end.line \
                or shown.range.end.line < wanted.start.line:
            continue
        if os.path.abspath(file_of(diagnostic.path)) != \
                os.path.abspath(analysis.path):
            continue
        edit = _name_edit(analysis, diagnostic, name, encoding)
        if edit is None:
            continue
        out.append(t.CodeAction(
            title=f"Change to '{name}'", kind=t.CodeActionKind.QuickFix, diagnostics=[shown],
            is_preferred=True, edit=t.WorkspaceEdit(changes={uri: [edit]})))
    return out


def _name_edit(analysis: Analysis, diagnostic: Diagnostic, name: str,
               encoding: str) -> t.TextEdit | None:
    """The edit that puts `name` in place of the misspelt name the diagnostic points at:
    the span itself when it is one name, else the first name in it."""
    span = diagnostic.span
    text = analysis.text[span.start:span.end]
    match = re.search(r"[A-Za-z_]\w*", text)
    if match is None:
        return None
    lines = Lines(analysis.text, encoding)
    start, end = lines.position(span.start + match.start()), lines.position(span.start +
                                                                            match.end())
    return t.TextEdit(t.Range(t.Position(*start), t.Position(*end)), name)


# ------------------------------------------------------------------------ hover


def _markdown(*parts: str) -> t.MarkupContent:
    return t.MarkupContent(t.MarkupKind.Markdown, "\n\n".join(p for p in parts if p))


def _code(text: str) -> str:
    return f"```cbdsl\n{text}\n```"


def function_signature(function: language.Function) -> str:
    """`clip(number, number, number) -> number`, from the function's table entry."""
    args = [arg.type for arg in function.args]
    required = len(args) - function.optional
    shown = ", ".join(args[:required])
    if function.optional:
        rest = ", ".join(args[required:])
        shown += f"[, {rest}]" if shown else f"[{rest}]"
    if function.variadic:
        shown += ", ..."
    return f"{function.name}({shown}) -> {function.result}"


def event_text(event: language.Event, written: str) -> str:
    if not event.hook:
        return (f"`{written}`: not a Keras hook; raised when a rule reads a metric the event's "
                "logs lack.")
    alias = f" (Keras's alias of `{event.name}`)" if written != event.name else ""
    return (f"`{written}`{alias}: the Keras hook `{event.hook}` "
            f"({event.phase}, {event.level} level).")


def hover(analysis: Analysis, offset: int, encoding: str = "utf-16") -> t.Hover | None:
    """What the thing at `offset` is: an event's Keras hook, a rule's sentence, a predicate's
    meaning, a function's signature, a name's declaration and docstring."""
    if analysis.program is None:
        return None
    path = nodes_at(analysis.program, offset)
    if not path:
        return None
    found = _hover_text(analysis, path, offset)
    if found is None:
        return None
    text, node = found
    lines = Lines(analysis.text, encoding)
    return t.Hover(contents=_markdown(*text), range=_range(lines, node.span))


def _hover_text(analysis: Analysis, path: list[Any], offset: int) -> tuple[list[str], Any] | None:
    node, parent = path[-1], (path[-2] if len(path) > 1 else None)
    words = Explainer(analysis.text)
    scope = definition_at(analysis, path)
    if isinstance(node, n.Ident):
        if isinstance(parent, n.Rule) and node in parent.events and any(
                e is node for e in parent.events):
            event = language.resolve_event(node.name)
            if event is None:
                return [f"`{node.name}`: not an event"], node
            return [event_text(event, node.name)], node
        if isinstance(parent, n.Rule) and parent.label is node:
            return [words.rule(parent)], node
        if isinstance(parent, n.Call) and parent.func is node:
            function = language.FUNCTIONS.get(node.name)
            if function is None:
                return None
            return [_code(function_signature(function)), function.doc], node
        if isinstance(parent, n.Effect):
            effect = language.EFFECTS.get(parent.full_name)
            if effect is None:
                return None
            return [_code(effect.signature()), effect.doc], parent
        if isinstance(parent, n.Use) and any(i is node for i in parent.name):
            return _callback_text(analysis, parent, path), node
        if isinstance(parent, n.Keyword) and parent.name is node and len(path) > 2 \
                and isinstance(path[-3], n.Use):  # an argument of a used callback
            found = used_definition(analysis, path[-3], path)
            info = found.params.get(node.name) if found is not None else None
            if info is None:
                return None
            return [f"parameter `{node.name}` ({info.type}) of", *_definition_text(found)], node
        if isinstance(parent, n.CallbackDef) and parent.name is node:
            definition = analysis.checked.definitions.get(node.name) if analysis.checked \
                else None
            return _definition_text(definition) if definition else None, node
        if isinstance(parent, n.Attribute):
            if parent.attr is node:
                doc = language.TRACKER_FIELDS.get(node.name)
                return ([f"`{parent.value.name}.{node.name}`: {doc}"] if doc else None), node
            return _name_text(analysis, scope, node.name, path), node
        if isinstance(parent, n.Restore | n.Cooldown) and parent.tracker is node:
            return _name_text(analysis, scope, node.name, path), node
        if isinstance(parent, n.CallPython) and parent.func is node:
            return _name_text(analysis, scope, node.name, path), node
        if isinstance(parent, n.Set) and parent.var is node:
            return _name_text(analysis, scope, node.name, path), node
        if isinstance(parent, n.ParamDecl | n.VarDecl) and parent.name is node:
            return _name_text(analysis, scope, node.name, path), node
        if isinstance(parent, n.Assign) and parent.target is node:
            doc = language.TARGETS.get(node.name)
            return ([f"`{node.name}`: {doc}"] if doc else None), node
        if isinstance(parent, n.Option):
            owner = next((p for p in reversed(path) if isinstance(p, n.Stalls | n.Improves)),
                         None)
            options = (language.TRACKER_OPTIONS["stalls" if isinstance(owner, n.Stalls)
                                                else "improves"] if owner is not None else
                       {o.name: o for a in language.ACTIONS.values()
                        for o in a.options.values()})
            option = options.get(node.name)
            return ([f"`{node.name}` ({option.type}): {option.doc}"] if option else None), node
        return None
    if isinstance(node, n.Name):
        return _name_text(analysis, scope, node.id, path), node
    if isinstance(node, n.Stalls | n.Improves | n.IsNan | n.IsFinite):
        key = {n.Stalls: "stalls", n.Improves: "improves", n.IsNan: "is nan",
               n.IsFinite: "is finite"}[type(node)]
        parts = [language.PREDICATE_MEANINGS[key], f"Here: {words.expr(node)}."]
        if key in language.TRACKER_OPTIONS:
            parts.append("Options: " + ", ".join(
                f"`{o.name}`" for o in language.TRACKER_OPTIONS[key].values())
                + "; fields (with `as NAME`): "
                + ", ".join(f"`{f}`" for f in language.TRACKER_FIELDS))
        return parts, node
    if isinstance(node, n.Rule):
        return [words.rule(node)], node
    if isinstance(node, n.Use):
        return _callback_text(analysis, node, path), node
    if isinstance(node, n.CallbackDef) and analysis.checked is not None:
        definition = analysis.checked.definitions.get(node.name.name)
        return (_definition_text(definition) if definition else None), node
    return None


def _definition_text(definition: Definition) -> list[str]:
    where = os.path.basename(definition.path)
    return [_code(f"callback {definition.name}{signature(definition.params)}"),
            (definition.doc or "").strip(), f"Defined in `{where}`."]


def _callback_text(analysis: Analysis, use: n.Use, path: list[Any]) -> list[str] | None:
    definition = used_definition(analysis, use, path)
    return _definition_text(definition) if definition is not None else None


def used_definition(analysis: Analysis, use: n.Use, path: list[Any]) -> Definition | None:
    """The definition a `use` or `extends` names, as the checker resolved it."""
    checked = analysis.checked
    if checked is None:
        return None
    for instance in checked.instances:
        if instance.span == use.span and instance.label == use.dotted:
            return instance.definition
    if len(use.name) == 1:
        return checked.definitions.get(use.dotted)
    from cbdsl.checker.resolve import resolve_definition

    try:
        return resolve_definition(use.dotted, os.path.dirname(os.path.abspath(analysis.path)))
    except (CbdslError, OSError):
        return None


def _name_text(analysis: Analysis, scope: Definition | None, name: str,
               path: list[Any]) -> list[str] | None:
    declared = declaration(analysis, scope, name)
    if declared is not None:
        kind, node, where = declared
        text = _source_of(analysis, where, node.span)
        owner = "" if scope is None or scope is (analysis.checked and analysis.checked.main) \
            else f" of `{scope.name}`"
        parts = [f"{kind}{owner}", _code(text)]
        if kind == "parameter" and scope is not None and scope.doc:
            parts.append(scope.doc.strip())
        comment = _comment_above(analysis, where, node.span)
        if comment:
            parts.append(comment)
        return parts
    if name in language.BUILTIN_NAMES:
        return [f"`{name}`: {language.BUILTIN_NAMES[name]}"]
    return [f"`{name}`: a metric, read from the event's logs"]


def declaration(analysis: Analysis, scope: Definition | None,
                name: str) -> tuple[str, Any, str] | None:
    """Where `name` is declared in `scope`: `(kind, node, file)`, kind being `parameter`,
    `state variable` or `tracker`; None for built-in names and metrics."""
    checked = analysis.checked
    if scope is None or checked is None:
        return None
    info = scope.params.get(name)
    if info is not None and info.node is not None:
        return "parameter", info.node, _param_file(analysis, info.node, scope)
    for var in scope.variables:
        if var.name.name == name:
            return "state variable", var, checked.origin(var, scope)[0]
    for rule in scope.rules:
        for node in every_node(rule):
            if isinstance(node, n.Stalls | n.Improves) and node.alias is not None \
                    and node.alias.name == name:
                return "tracker", node, checked.origin(rule, scope)[0]
    return None


def _param_file(analysis: Analysis, node: n.ParamDecl, scope: Definition) -> str:
    if analysis.program is not None and any(item is node for item in
                                            every_node(analysis.program)):
        return analysis.path
    for definition in (scope, *analysis.checked.definitions.values()):
        if definition.node is not None and any(p is node for p in definition.node.params):
            return definition.path
    return scope.path


def _source_of(analysis: Analysis, path: str, span: Span) -> str:
    text = analysis.text if os.path.abspath(path) == os.path.abspath(analysis.path) else \
        lines_of(file_of(path), analysis, "utf-32").text
    return " ".join(text[span.start:span.end].split())


def _comment_above(analysis: Analysis, path: str, span: Span) -> str:
    """The comment lines just above a declaration, as its docstring."""
    lines = lines_of(file_of(path), analysis, "utf-32").lines
    found = []
    for line in reversed(lines[:max(span.line - 1, 0)]):
        if not line.strip().startswith("#"):
            break
        found.append(line.strip().lstrip("#").strip())
    return " ".join(reversed(found))


# ------------------------------------------------------------------- definition


def definition(analysis: Analysis, offset: int,
               encoding: str = "utf-16") -> list[t.Location] | None:
    """Where the thing at `offset` is declared: a `use`d or `extend`ed callback (in this
    file, another or an installed library), an imported file, a parameter, a state variable,
    a named tracker."""
    if analysis.program is None:
        return None
    path = nodes_at(analysis.program, offset)
    if not path:
        return None
    node, parent = path[-1], (path[-2] if len(path) > 1 else None)
    if isinstance(node, n.String) and isinstance(parent, n.Import):
        target = os.path.join(os.path.dirname(os.path.abspath(analysis.path)), node.value)
        if os.path.isfile(target):
            return [t.Location(uri_of(target), t.Range(t.Position(0, 0), t.Position(0, 0)))]
        return None
    use = node if isinstance(node, n.Use) else parent if isinstance(parent, n.Use) else None
    if use is not None:
        found = used_definition(analysis, use, path)
        if found is None:
            return None
        span = found.node.name.span if found.node is not None else None
        return [location(found.path, span, analysis, encoding)]
    name = None
    if isinstance(node, n.Name):
        name = node.id
    elif isinstance(node, n.Ident) and (
            (isinstance(parent, n.Attribute) and parent.value is node)
            or (isinstance(parent, n.Restore | n.Cooldown) and parent.tracker is node)
            or (isinstance(parent, n.CallPython) and parent.func is node)
            or (isinstance(parent, n.Set) and parent.var is node)):
        name = node.name
    if name is None:
        return None
    declared = declaration(analysis, definition_at(analysis, path), name)
    if declared is None:
        return None
    kind, decl, where = declared
    span = decl.alias.span if kind == "tracker" else decl.name.span
    return [location(where, span, analysis, encoding)]


# --------------------------------------------------------------------- symbols


def symbols(analysis: Analysis, encoding: str = "utf-16") -> list[t.DocumentSymbol]:
    """The file's outline: callbacks (with their parameters, variables and labelled rules),
    and its own parameters, variables, uses and labelled rules."""
    if analysis.program is None:
        return []
    lines = Lines(analysis.text, encoding)

    def symbol(name: str, kind: t.SymbolKind, node: Any, chosen: Any, detail: str = "",
               children: list[t.DocumentSymbol] | None = None) -> t.DocumentSymbol:
        return t.DocumentSymbol(name=name, kind=kind, range=_range(lines, node.span),
                                selection_range=_range(lines, chosen.span), detail=detail,
                                children=children)

    def items(parts) -> list[t.DocumentSymbol]:
        out = []
        for item in parts:
            if isinstance(item, n.Rule) and item.label is not None:
                out.append(symbol(item.label.name, t.SymbolKind.Event, item, item.label,
                                  "on " + ", ".join(e.name for e in item.events)))
            elif isinstance(item, n.ParamDecl):
                out.append(symbol(item.name.name, t.SymbolKind.Property, item, item.name,
                                  "parameter"))
            elif isinstance(item, n.VarDecl):
                out.append(symbol(item.name.name, t.SymbolKind.Variable, item, item.name,
                                  "state variable"))
            elif isinstance(item, n.Use):
                out.append(symbol(item.dotted, t.SymbolKind.Module, item, item.name[-1], "use"))
            elif isinstance(item, n.CallbackDef):
                doc = (item.doc or "").strip().splitlines()
                out.append(symbol(item.name.name, t.SymbolKind.Class, item, item.name,
                                  doc[0] if doc else "callback",
                                  items((*item.params, *item.body))))
        return out

    return items(analysis.program.items)


# ------------------------------------------------------------------ formatting


def formatting(analysis: Analysis, encoding: str = "utf-16") -> list[t.TextEdit] | None:
    """`cbdsl fmt`'s layout as one edit of the whole text; None when the text does not
    parse (its diagnostics say why), no edit when it is laid out already."""
    try:
        formatted = format_source(analysis.text, analysis.path)
    except CbdslError:
        return None
    if formatted == analysis.text:
        return []
    lines = Lines(analysis.text, encoding)
    end = lines.position(len(analysis.text))
    return [t.TextEdit(t.Range(t.Position(0, 0), t.Position(*end)), formatted)]


# ------------------------------------------------------------------ completion

_WORD = re.compile(r"[A-Za-z_]\w*$")
_COMMENTS_AND_STRINGS = re.compile(r"#[^\n]*|\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?")


def _item(label: str, kind: t.CompletionItemKind, detail: str = "",
          doc: str = "") -> t.CompletionItem:
    return t.CompletionItem(label=label, kind=kind, detail=detail or None,
                            documentation=_markdown(doc) if doc else None)


def completion(analysis: Analysis, offset: int,
               scope_from: Analysis | None = None) -> list[t.CompletionItem]:
    """What may be written at `offset` of the (possibly half-typed) text.

    Args:
        analysis: the text as it is now.
        offset: the cursor.
        scope_from: an analysis whose program parsed (the latest that did), read for the
            names in scope when the text as it is does not parse.
    """
    text = analysis.text
    before = text[:offset]
    word = _WORD.search(before)
    head = before[:len(before) - len(word[0])] if word else before
    known = analysis if analysis.program is not None else scope_from or analysis
    used = re.search(r"\b(use|extends)\s+([\w.]*)$", before)
    if used:
        return _library_items(analysis, used[2])
    dotted = re.search(r"(?<![\w.])([A-Za-z_]\w*)\.(\w*)$", before)
    if dotted:
        return _member_items(known, dotted[1], offset)
    clean = _COMMENTS_AND_STRINGS.sub(lambda m: " " * len(m[0]), head)
    if _in_string_or_comment(head):
        return []
    previous = re.findall(r"[A-Za-z_]\w*|\S", clean)
    last = previous[-1] if previous else ""
    if last in ("param", "var", "callback", "as", "expose", "for", "import"):
        return []  # a new name, or a path
    keywords = _keywords(head)
    items = [_item(k, t.CompletionItemKind.Keyword) for k in sorted(keywords or ())
             if k != "NAME"]
    clause = _last_clause(previous)
    if clause == "on" and (last == "on" or last == ","):
        return _unique(_event_items(), items)
    if clause in ("", "{", "}") and last in ("", "{", "}"):
        return items  # a statement starts: the grammar's words
    if last == "of":
        return _tracker_items(known, offset)
    if last == "call":
        return [i for i in _scope_items(known, offset) if i.detail == "parameter (python)"]
    if last == "set":
        return [i for i in _scope_items(known, offset) if i.detail == "state variable"]
    if last == "post":
        return [_item(k, t.CompletionItemKind.Keyword) for k in language.POST_KINDS]
    if last == "log":
        return _metric_items(known, text)
    options = re.search(r"\b(stalls|improves|row|post)\b[^()]*\bwith\s*\(([^()]*)$", clean)
    if options and (options[2].strip() == "" or options[2].rstrip().endswith(",")):
        return _option_items(options[1])
    if clause == "on" and keywords is not None and "NAME" not in keywords:
        return items
    if clause == "do" and last in ("do", ",", "("):
        return _unique(_action_items(), _target_items(), _effect_group_items(), items)
    return _unique(_expression_items(known, text, offset), items)


def _unique(*groups: list[t.CompletionItem]) -> list[t.CompletionItem]:
    """The items of every group, the first of each label only (richer groups come first)."""
    seen: dict[str, t.CompletionItem] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item.label, item)
    return list(seen.values())


def _in_string_or_comment(head: str) -> bool:
    """Whether the end of `head` is inside a string or a comment (both end with their line)."""
    line, quote, index = head[head.rfind("\n") + 1:], None, 0
    while index < len(line):
        char = line[index]
        if quote is not None:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return True
        index += 1
    return quote is not None


def _last_clause(words: list[str]) -> str:
    for word in reversed(words):
        if word in ("on", "when", "do", "every", "after", "from", "before", "once", "priority",
                    "{", "}", "use", "param", "var", "callback", "require", "expose", "import"):
            return word
    return ""


def _keywords(clean: str) -> set[str] | None:
    """The words the grammar takes next after `clean` (from the parser's own tables); None
    when the text before is not a prefix of a rule file. `NAME` stands for any name."""
    parser = lark_parser()
    try:
        interactive = parser.parse_interactive(clean, start="start")
        interactive.exhaust_lexer()
        accepts = interactive.accepts()
    except Exception:  # any malformed text before the cursor: no keyword list
        return None
    out = set()
    for terminal in accepts:
        if terminal == "NAME":
            out.add("NAME")
            continue
        try:
            pattern = parser.get_terminal(terminal).pattern
        except KeyError:
            continue
        value = getattr(pattern, "value", "")
        if pattern.type == "str" and re.fullmatch(r"[a-z_]+", value):
            out.add(value)
    return out


def _event_items() -> list[t.CompletionItem]:
    items = [_item(name, t.CompletionItemKind.Event, event.hook or "signal",
                   event_text(event, name)) for name, event in language.EVENTS.items()]
    items += [_item(alias, t.CompletionItemKind.Event, language.EVENTS[target].hook,
                    event_text(language.EVENTS[target], alias))
              for alias, target in language.EVENT_ALIASES.items()]
    return items


def _action_items() -> list[t.CompletionItem]:
    seen, items = set(), []
    for action in language.ACTIONS.values():
        if action.node == "Effect":
            continue
        for form in re.split(r", (?=[a-z]+ )", action.syntax):
            word = re.match(r"[a-z]+", form)
            if word and word[0] not in seen and word[0] not in language.TARGETS:
                seen.add(word[0])
                items.append(_item(word[0], t.CompletionItemKind.Keyword, action.syntax,
                                   action.doc))
    return items


def _target_items() -> list[t.CompletionItem]:
    return [_item(name, t.CompletionItemKind.Property, "target", doc)
            for name, doc in language.TARGETS.items()]


def _effect_group_items() -> list[t.CompletionItem]:
    groups = sorted({name.split(".")[0] for name in language.EFFECTS})
    return [_item(g, t.CompletionItemKind.Module, "effect group", ", ".join(
        e.signature() for name, e in language.EFFECTS.items() if name.startswith(g + ".")))
        for g in groups]


def _option_items(owner: str) -> list[t.CompletionItem]:
    if owner in language.TRACKER_OPTIONS:
        options = language.TRACKER_OPTIONS[owner]
    else:
        node = "WriteRow" if owner == "row" else "Post"
        options = language.ACTIONS[node].options
    return [_item(o.name, t.CompletionItemKind.Property, o.type, o.doc)
            for o in options.values()]


def _member_items(known: Analysis | None, name: str, offset: int) -> list[t.CompletionItem]:
    effects = [(full.split(".", 1)[1], e) for full, e in language.EFFECTS.items()
               if full.split(".")[0] == name]
    if effects:
        return [_item(member, t.CompletionItemKind.Method, e.signature(), e.doc)
                for member, e in effects]
    return [_item(field, t.CompletionItemKind.Field, language.TRACKER_FIELD_TYPES[field], doc)
            for field, doc in language.TRACKER_FIELDS.items()]


def _scope(known: Analysis | None, offset: int) -> Definition | None:
    if known is None or known.program is None:
        return None
    return definition_at(known, nodes_at(known.program, min(offset, len(known.text))))


def _tracker_items(known: Analysis | None, offset: int) -> list[t.CompletionItem]:
    return [i for i in _scope_items(known, offset) if i.detail == "tracker"]


def _scope_items(known: Analysis | None, offset: int) -> list[t.CompletionItem]:
    scope = _scope(known, offset)
    if scope is None:  # nothing parsed yet: the declarations as written
        text = known.text[:offset] if known is not None else ""
        return [_item(name, t.CompletionItemKind.Variable, kind)
                for kind, pattern in (("parameter", r"\bparam\s+([A-Za-z_]\w*)"),
                                      ("state variable", r"\bvar\s+([A-Za-z_]\w*)"))
                for name in dict.fromkeys(re.findall(pattern, text))]
    items = []
    for name, info in scope.params.items():
        default = "" if info.default is REQUIRED else f" = {language.rule_literal(info.default)}" \
            if info.node is None or info.node.default is not None else ""
        detail = "parameter (python)" if info.type == "python" else "parameter"
        items.append(_item(name, t.CompletionItemKind.Variable, detail,
                           f"`{name}: {info.type}{default}`"))
    for var in scope.variables:
        items.append(_item(var.name.name, t.CompletionItemKind.Variable, "state variable"))
    for rule in scope.rules:
        for node in every_node(rule):
            if isinstance(node, n.Stalls | n.Improves) and node.alias is not None:
                items.append(_item(node.alias.name, t.CompletionItemKind.Variable, "tracker",
                                   "fields: " + ", ".join(language.TRACKER_FIELDS)))
    return items


def _metric_items(known: Analysis | None, text: str) -> list[t.CompletionItem]:
    """The metric names the file reads: plain names that are no declaration or built-in, and
    the strings given to `metric(...)`, `has(...)` and `monitor` parameters."""
    names: set[str] = set()
    declared: set[str] = set()
    if known is not None and known.program is not None:
        for node in every_node(known.program):
            if isinstance(node, n.Name):
                names.add(node.id)
            elif isinstance(node, n.ParamDecl | n.VarDecl):
                declared.add(node.name.name)
            elif isinstance(node, n.Stalls | n.Improves) and node.alias is not None:
                declared.add(node.alias.name)
            elif isinstance(node, n.For):
                declared.update(i.name for i in node.names)
    names.update(re.findall(r"\b(?:metric|has)\(\s*\"(\w+)\"", text))
    names.update(re.findall(r"\bmonitor\s*=\s*\"(\w+)\"", text))
    names -= declared | set(language.BUILTIN_NAMES) | set(language.FUNCTIONS)
    return [_item(name, t.CompletionItemKind.Value, "metric") for name in sorted(names)]


def _expression_items(known: Analysis | None, text: str,
                      offset: int) -> list[t.CompletionItem]:
    functions = [_item(f.name, t.CompletionItemKind.Function, function_signature(f), f.doc)
                 for f in language.FUNCTIONS.values()]
    builtins = [_item(name, t.CompletionItemKind.Constant, "built-in", doc)
                for name, doc in language.BUILTIN_NAMES.items()]
    return _unique(_scope_items(known, offset), _metric_items(known, text), functions, builtins)


def _library_items(analysis: Analysis, dotted: str) -> list[t.CompletionItem]:
    """After `use` or `extends`: the libraries and the file's callbacks; after `LIBRARY.`,
    the library's rules (its files) and callbacks."""
    path = analysis.path if os.path.isfile(analysis.path) else None
    base = os.path.dirname(os.path.abspath(analysis.path))
    libraries = find_libraries(path, base)
    if "." not in dotted:
        items = [_item(name, t.CompletionItemKind.Module, "rule library",
                       "; ".join(p.describe() for p in places))
                 for name, places in sorted(libraries.items())]
        items += [_item(name, t.CompletionItemKind.Class, "callback")
                  for name in re.findall(r"\bcallback\s+([A-Za-z_]\w*)", analysis.text)]
        return items
    library = dotted.rsplit(".", 1)[0]
    items = []
    for place in libraries.get(library, [])[:1]:
        for file in sorted(place.folder.glob("*.cbd")):
            doc = _first_doc(file)
            items.append(_item(file.stem, t.CompletionItemKind.Class, "rule file", doc))
            for name in _callbacks_in(file):
                items.append(_item(name, t.CompletionItemKind.Class, f"callback in {file.name}",
                                   doc))
    return items


@functools.lru_cache(maxsize=256)
def _file_text(path: str, mtime: float) -> str:
    try:
        return Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _text_of(file: Path) -> str:
    try:
        return _file_text(str(file), file.stat().st_mtime)
    except OSError:
        return ""


def _callbacks_in(file: Path) -> list[str]:
    return re.findall(r"^\s*callback\s+([A-Za-z_]\w*)", _text_of(file), re.M)


def _first_doc(file: Path) -> str:
    match = re.search(r"\{\s*\"([^\"\n]*)\"", _text_of(file))
    return match[1] if match else ""
