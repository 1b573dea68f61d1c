"""The language server: pygls wiring of the features in `cbdsl.lsp.features`, over stdio."""

from __future__ import annotations

from dataclasses import dataclass

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from cbdsl.lsp import features
from cbdsl.lsp.analysis import Analysis, Lines, analyze


@dataclass
class _Document:
    analysis: Analysis
    parsed: Analysis | None  # the latest analysis whose text parsed


class CbdslLanguageServer(LanguageServer):
    """A pygls server that analyses each open rule file once per change.

    Args:
        name: the server's name, as it tells the editor.
        version: its version.
    """

    def __init__(self, name: str = "cbdsl", version: str = "0.1.0"):
        super().__init__(name, version)
        self.documents: dict[str, _Document] = {}

    @property
    def encoding(self) -> str:
        """The position encoding agreed with the editor (`utf-16` unless it offered others)."""
        kind = getattr(self.workspace, "position_encoding", None) or "utf-16"
        return str(getattr(kind, "value", kind))

    def analysis(self, uri: str) -> _Document:
        """The analysis of the document's current text (made when the text changed)."""
        document = self.workspace.get_text_document(uri)
        text = document.source
        known = self.documents.get(uri)
        if known is not None and known.analysis.text == text:
            return known
        path = to_fs_path(uri) or uri
        analysis = analyze(text, path)
        parsed = analysis if analysis.program is not None else (known.parsed if known else None)
        self.documents[uri] = _Document(analysis, parsed)
        return self.documents[uri]

    def offset(self, uri: str, position: t.Position) -> int:
        text = self.analysis(uri).analysis.text
        return Lines(text, self.encoding).offset(position.line, position.character)

    def at(self, uri: str, offset: int) -> Analysis:
        """The analysis to read at `offset`: the current one when it parsed, else the latest
        one that parsed if the text up to `offset` is unchanged since."""
        document = self.analysis(uri)
        if document.analysis.program is not None or document.parsed is None:
            return document.analysis
        old, new = document.parsed.text, document.analysis.text
        same = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                    min(len(old), len(new)))
        return document.parsed if offset < same else document.analysis

    def publish(self, uri: str) -> None:
        analysis = self.analysis(uri).analysis
        self.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=uri, diagnostics=features.diagnostics(analysis, self.encoding)))


def make_server() -> CbdslLanguageServer:
    """The server with every feature registered."""
    from cbdsl import __version__

    server = CbdslLanguageServer("cbdsl", __version__)

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CbdslLanguageServer, params: t.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CbdslLanguageServer, params: t.DidChangeTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CbdslLanguageServer, params: t.DidSaveTextDocumentParams) -> None:
        ls.documents.pop(params.text_document.uri, None)  # the files it uses may have changed
        ls.publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CbdslLanguageServer, params: t.DidCloseTextDocumentParams) -> None:
        ls.documents.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=params.text_document.uri, diagnostics=[]))

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(ls: CbdslLanguageServer, params: t.HoverParams) -> t.Hover | None:
        uri = params.text_document.uri
        offset = ls.offset(uri, params.position)
        return features.hover(ls.at(uri, offset), offset, ls.encoding)

    @server.feature(t.TEXT_DOCUMENT_COMPLETION,
                    t.CompletionOptions(trigger_characters=[".", " ", ",", "("]))
    def completion(ls: CbdslLanguageServer, params: t.CompletionParams) -> t.CompletionList:
        uri = params.text_document.uri
        document = ls.analysis(uri)
        offset = ls.offset(uri, params.position)
        items = features.completion(document.analysis, offset, document.parsed)
        return t.CompletionList(is_incomplete=False, items=items)

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: CbdslLanguageServer,
                   params: t.DefinitionParams) -> list[t.Location] | None:
        uri = params.text_document.uri
        offset = ls.offset(uri, params.position)
        return features.definition(ls.at(uri, offset), offset, ls.encoding)

    @server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: CbdslLanguageServer,
                params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
        document = ls.analysis(params.text_document.uri)
        return features.symbols(document.analysis if document.analysis.program is not None
                                else document.parsed or document.analysis, ls.encoding)

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: CbdslLanguageServer,
                   params: t.DocumentFormattingParams) -> list[t.TextEdit] | None:
        return features.formatting(ls.analysis(params.text_document.uri).analysis, ls.encoding)

    @server.feature(t.TEXT_DOCUMENT_CODE_ACTION,
                    t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix]))
    def code_action(ls: CbdslLanguageServer,
                    params: t.CodeActionParams) -> list[t.CodeAction]:
        uri = params.text_document.uri
        return features.code_actions(ls.analysis(uri).analysis, uri, params.range, ls.encoding)

    return server


def serve() -> None:
    """Run the server over stdin and stdout until the editor ends it."""
    make_server().start_io()
