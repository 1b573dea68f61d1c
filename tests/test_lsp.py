"""The language server end to end: a real LSP client talking to `cbdsl lsp` over stdio."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as t  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from cbdsl.cli import main  # noqa: E402
from cbdsl.explain import explain  # noqa: E402
from cbdsl.fmt import format_source  # noqa: E402
from cbdsl.language import PREDICATE_MEANINGS  # noqa: E402
from cbdsl.lsp import analyze, features  # noqa: E402
from cbdsl.syntax.parser import lark_parser, parse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("rules/*.cbd"), *ROOT.glob("examples/*.cbd"),
                  ROOT / "cbdsl" / "data" / "demo.cbd"])
asyncio = pytest.mark.asyncio(loop_scope="module")

POLICY = """\
param patience = 5

# a second chance before the rate is cut
callback shrink(factor = 0.2, patience = 2) {
  "Shrink the learning rate when val_loss stalls."
  var cuts = 0
  cut: on epoch_end when val_loss stalls patience as plateau and plateau.wait > 0
    do lr *= factor, set cuts += 1, print "cut {cuts}"
}

use shrink(factor = 0.5)
use keras.early_stopping(patience = 3)
on epoch_end when clip(loss, 0, 10) > patience do stop
"""


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "cbdsl", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(t.InitializeParams(
        capabilities=t.ClientCapabilities(), root_uri=ROOT.as_uri()))
    yield
    await lsp_client.shutdown_session()


async def opened(client: LanguageClient, path: Path, text: str) -> list[t.Diagnostic]:
    """Open `path` holding `text` in the editor; the diagnostics the server publishes."""
    uri = path.as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        t.TextDocumentItem(uri=uri, language_id="cbdsl", version=1, text=text)))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[uri])


async def changed(client: LanguageClient, path: Path, text: str, version: int):
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        t.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=version),
        [t.TextDocumentContentChangeWholeDocument(text=text)]))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[path.as_uri()])


def at(text: str, needle: str, shift: int = 0) -> t.Position:
    """The position of `needle` (plus `shift` characters) in `text`."""
    offset = text.index(needle) + shift
    line = text.count("\n", 0, offset)
    return t.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def doc(path: Path) -> t.TextDocumentIdentifier:
    return t.TextDocumentIdentifier(uri=path.as_uri())


def labels(result) -> list[str]:
    items = result.items if isinstance(result, t.CompletionList) else result
    return [item.label for item in items]


# --------------------------------------------------------------------- diagnostics


@asyncio
async def test_diagnostics_have_code_range_and_notes(client, tmp_path):
    text = "on epoch_end do lr = 0.1\non epoch_ned do lr = 0.2\non epoch_end do lr = 0.3\n"
    found = await opened(client, tmp_path / "p.cbd", text)
    by_code = {d.code: d for d in found}
    assert set(by_code) == {"E201", "E207"}
    unknown = by_code["E201"]
    assert unknown.range == t.Range(t.Position(1, 3), t.Position(1, 12))  # the whole name
    assert "unknown event 'epoch_ned'" in unknown.message
    assert unknown.severity == t.DiagnosticSeverity.Error and unknown.source == "cbdsl"
    conflict = by_code["E207"]
    assert conflict.range == t.Range(t.Position(2, 16), t.Position(2, 24))
    (note,) = conflict.related_information
    assert note.message == "the other write is here"
    assert note.location.uri == (tmp_path / "p.cbd").as_uri()
    assert note.location.range.start == t.Position(0, 16)


@asyncio
async def test_did_you_mean_is_a_quick_fix(client, tmp_path):
    path = tmp_path / "fix.cbd"
    text = "on epoch_ned when val_loss stalls 5 do lr *= 0.2\n"
    (diagnostic,) = await opened(client, path, text)
    actions = await client.text_document_code_action_async(t.CodeActionParams(
        doc(path), diagnostic.range, t.CodeActionContext(diagnostics=[diagnostic])))
    (action,) = actions
    assert action.kind == t.CodeActionKind.QuickFix and action.title == "Change to 'epoch_end'"
    (edit,) = action.edit.changes[path.as_uri()]
    assert edit.new_text == "epoch_end" and edit.range == diagnostic.range
    fixed = text[:3] + edit.new_text + text[12:]
    assert await changed(client, path, fixed, 2) == []


@asyncio
async def test_warnings_and_errors_of_used_files(client, tmp_path):
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "halt.cbd").write_text(
        "callback Stop() {\n  on epoch_end when val_loss stalls 2 do stop, lr = 0.1\n"
        "  on epoch_end do lr = 0.2\n}\n")
    text = "var unused = 1\nuse team.halt()\n"
    found = await opened(client, tmp_path / "main.cbd", text)
    warning = next(d for d in found if d.code == "W203")
    assert warning.severity == t.DiagnosticSeverity.Warning
    used = next(d for d in found if d.code == "E207")
    assert used.range.start.line == 1  # shown at the line that uses the file
    assert used.message.startswith("halt.cbd:3:")
    assert any(r.location.uri == (tmp_path / "team" / "halt.cbd").as_uri()
               for r in used.related_information)


# ---------------------------------------------------------------------------- hover


@asyncio
async def test_hover(client, tmp_path):
    path = tmp_path / "policy.cbd"
    assert await opened(client, path, POLICY) == []

    async def hover(needle: str, shift: int = 0) -> str:
        result = await client.text_document_hover_async(
            t.HoverParams(doc(path), at(POLICY, needle, shift)))
        assert result is not None, needle
        return result.contents.value

    assert "on_epoch_end" in await hover("epoch_end")
    sentence = [line for line in explain(parse(POLICY)) if "val_loss has not improved" in line]
    assert sentence and sentence[0].split("- ", 1)[1].removeprefix("cut: ") in \
        await hover("on epoch_end when val_loss stalls")
    stalls = await hover("stalls patience", 2)
    assert PREDICATE_MEANINGS["stalls"] in stalls and "val_loss has not improved" in stalls
    assert "clip(number, number, number) -> number" in await hover("clip")
    patience = await hover("patience as", 2)
    assert "parameter of `shrink`" in patience and "patience = 2" in patience
    assert "param patience = 5" in await hover("patience do")
    factor = await hover("= 0.5", -3)
    assert "Shrink the learning rate when val_loss stalls." in factor
    assert "callback shrink(factor = 0.2, patience = 2)" in factor
    keras = await hover("early_stopping")
    assert "callback EarlyStopping(monitor = \"val_loss\"" in keras
    assert "Stop training when a monitored metric has stopped improving." in keras
    assert "checks since the last improvement" in await hover("plateau.wait", 9)
    assert "state variable" in await hover("cuts += 1")


# ----------------------------------------------------------------------- completion


@asyncio
async def test_completion(client, tmp_path):
    path = tmp_path / "typing.cbd"
    await opened(client, path, POLICY)

    async def complete(text: str, version: int) -> list[str]:
        await changed(client, path, text, version)
        line = text.count("\n")
        result = await client.text_document_completion_async(t.CompletionParams(
            doc(path), t.Position(line, len(text.split("\n")[-1]))))
        return labels(result)

    events = await complete(POLICY + "on ", 2)
    assert {"epoch_end", "train_batch_end", "predict_end", "batch_end"} <= set(events)
    assert {"every", "after", "when", "do"} <= set(await complete(POLICY + "on epoch_end ", 3))
    actions = await complete(POLICY + "on epoch_end do ", 4)
    assert {"stop", "save", "restore", "lr", "progress", "tensorboard"} <= set(actions)
    assert set(await complete(POLICY + "on epoch_end do progress.", 5)) == {"start", "update"}
    inside = POLICY.replace("and plateau.wait > 0", "and plateau.")
    body = inside[:inside.index("plateau.") + len("plateau.")]
    assert {"best", "wait", "best_epoch"} <= set(await complete(body, 6))
    names = await complete(POLICY + "on epoch_end when ", 7)
    assert {"patience", "clip", "metric", "epoch", "loss", "val_loss"} <= set(names)
    assert "cuts" not in names  # a state variable of the callback, not of the file
    scoped = POLICY[:POLICY.index("    do lr")] + "    do set "
    assert await complete(scoped, 8) == ["cuts"]
    assert "keras" in await complete(POLICY + "use ", 9)
    rules = await complete(POLICY + "use keras.", 10)
    assert {"early_stopping", "EarlyStopping", "reduce_lr_on_plateau"} <= set(rules)
    assert "min_delta" in await complete(POLICY + "on epoch_end when loss stalls 2 with (", 11)
    assert {"on", "callback", "use", "param"} <= set(await complete("", 12))


# ----------------------------------------------------------------------- definition


@asyncio
async def test_definition(client, tmp_path):
    (tmp_path / "shared.cbd").write_text('callback Shared(n = 1) {\n  "Shared."\n'
                                         "  on epoch_end when epoch > n do stop\n}\n")
    text = 'import "shared.cbd"\nuse Shared(n = 2)\n' + POLICY
    path = tmp_path / "main.cbd"
    assert await opened(client, path, text) == []

    async def goto(needle: str, shift: int = 0) -> t.Location:
        (found,) = await client.text_document_definition_async(
            t.DefinitionParams(doc(path), at(text, needle, shift)))
        return found

    library = Path(str(resources.files("cbdsl.rules").joinpath("early_stopping.cbd")))
    keras = await goto("early_stopping")
    assert keras.uri == library.resolve().as_uri()
    assert keras.range.start == at(library.read_text(), "EarlyStopping(")
    shared = await goto("Shared(n")
    assert shared.uri == (tmp_path / "shared.cbd").as_uri() and shared.range.start.line == 0
    imported = await goto("shared.cbd")
    assert imported.uri == (tmp_path / "shared.cbd").as_uri()
    local = await goto("use shrink", 4)
    assert local.uri == path.as_uri() and local.range.start == at(text, "shrink(factor")
    assert (await goto("patience as")).range.start == at(text, "patience = 2")
    assert (await goto("patience do")).range.start == at(text, "patience = 5")
    assert (await goto("plateau.wait")).range.start == at(text, "plateau and")
    assert (await goto("cuts += 1")).range.start == at(text, "cuts = 0")


# ------------------------------------------------------------- symbols, formatting


@asyncio
async def test_symbols_and_formatting(client, tmp_path):
    path = tmp_path / "layout.cbd"
    text = "param   patience=5\ncallback C() {\n  tag: on epoch_end   do stop\n}\nuse C()\n"
    await opened(client, path, text)
    found = await client.text_document_document_symbol_async(
        t.DocumentSymbolParams(doc(path)))
    assert [(s.name, s.kind) for s in found] == [
        ("patience", t.SymbolKind.Property), ("C", t.SymbolKind.Class),
        ("C", t.SymbolKind.Module)]
    assert [(s.name, s.kind) for s in found[1].children] == [("tag", t.SymbolKind.Event)]
    (edit,) = await client.text_document_formatting_async(t.DocumentFormattingParams(
        doc(path), t.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edit.new_text == format_source(text) and edit.range.start == t.Position(0, 0)
    assert edit.range.end == t.Position(5, 0)


# ---------------------------------------------------------------- half-typed text


@asyncio
async def test_every_keystroke_of_a_shipped_file_answers(client, tmp_path):
    """A rule file typed out, a sample of its prefixes (each an edit), every request
    answered and diagnostics published for each."""
    text = (ROOT / "rules" / "reduce_lr_on_plateau.cbd").read_text()
    path = tmp_path / "typed.cbd"
    await opened(client, path, "")
    cuts = sorted({*range(0, len(text), 97), len(text)})
    for version, cut in enumerate(cuts, start=2):
        prefix = text[:cut]
        await changed(client, path, prefix, version)
        end = at(prefix + "\0", "\0")
        await client.text_document_completion_async(t.CompletionParams(doc(path), end))
        await client.text_document_hover_async(t.HoverParams(doc(path), end))
        await client.text_document_definition_async(t.DefinitionParams(doc(path), end))
        await client.text_document_document_symbol_async(t.DocumentSymbolParams(doc(path)))
    assert list(client.diagnostics[path.as_uri()]) == []  # the whole file checks clean
    assert client.error is None


def prefixes(text: str, most: int = 24) -> list[int]:
    """Where to cut a file: after every token, taken evenly to at most `most` cuts, and the
    middle of each of those tokens."""
    ends = sorted({token.end_pos for token in lark_parser().lex(text)} | {0, len(text)})
    step = max(1, len(ends) // most)
    cuts = set(ends[::step]) | {len(text)}
    cuts |= {max(0, cut - 1) for cut in list(cuts)}  # a name or a number half-typed
    return sorted(cuts)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_prefixes_of_shipped_files_are_analysed(path):
    """In process, the server's own analysis and features on a sample of each file's
    prefixes: never an exception. (`python bench/lsp.py` runs every token boundary and
    times each request.)"""
    text = path.read_text()
    latest = None
    for cut in prefixes(text):
        analysis = analyze(text[:cut], str(path))
        latest = analysis if analysis.program is not None else latest
        features.diagnostics(analysis)
        features.completion(analysis, cut, latest)
        for offset in (cut, cut // 2):
            features.hover(analysis, offset)
            features.definition(analysis, offset)
        features.symbols(analysis)
    assert analyze(text, str(path)).diagnostics == []


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_token_prefix_of_shipped_files_is_analysed(path):
    text = path.read_text()
    for token in lark_parser().lex(text):
        for cut in (token.start_pos, token.end_pos):
            features.diagnostics(analyze(text[:cut], str(path)))


def test_lsp_without_pygls_says_what_to_install(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "cbdsl.lsp.server", raising=False)
    monkeypatch.setitem(sys.modules, "pygls", None)
    monkeypatch.setitem(sys.modules, "pygls.lsp", None)
    monkeypatch.setitem(sys.modules, "pygls.lsp.server", None)
    assert main(["lsp"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "cbdsl[lsp]"' in err and "pygls" in err and "Traceback" not in err
