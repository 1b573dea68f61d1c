"""How fast the language server answers on every keystroke state of the shipped rule files.

`python bench/lsp.py [--every-character] [--stdio N] [--json PATH]`

In process, for every prefix of every file in `rules/`, `examples/` and `cbdsl/data/demo.cbd`
(cut at each token's start, middle and end; at every character with `--every-character`), it
times what the server does for each request kind: the diagnostics of the edit (parse, check,
conversion), completion at the cursor, hover and definition at the cursor, document symbols,
and formatting of each whole file. Then, over stdio, it starts `cbdsl lsp` and times the round
trip of a sample of N edits per file (didChange until publishDiagnostics) and of a completion,
hover, definition and symbols request after each. It prints the median, p95 and max per kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOWEST: dict[str, str] = {}  # request kind -> the prefix that took longest in process
FILES = sorted([*ROOT.glob("rules/*.cbd"), *ROOT.glob("examples/*.cbd"),
                ROOT / "cbdsl" / "data" / "demo.cbd"])


def cuts(text: str, every_character: bool) -> list[int]:
    if every_character:
        return list(range(len(text) + 1))
    from cbdsl.syntax.parser import lark_parser

    found = {0, len(text)}
    for token in lark_parser().lex(text):
        found.update((token.start_pos, (token.start_pos + token.end_pos) // 2, token.end_pos))
    return sorted(found)


def in_process(every_character: bool) -> tuple[dict[str, list[float]], int]:
    from cbdsl.lsp import analyze, features

    times: dict[str, list[float]] = defaultdict(list)
    count = 0
    where = ""
    analyze((ROOT / "rules" / "early_stopping.cbd").read_text("utf-8"))  # the parser loaded

    def timed(kind: str, call, *args):
        start = time.perf_counter()
        result = call(*args)
        took = time.perf_counter() - start
        if not times[kind] or took > max(times[kind]):
            SLOWEST[kind] = where
        times[kind].append(took)
        return result

    def diagnose(text: str, path: str):
        analysis = analyze(text, path)
        features.diagnostics(analysis)
        return analysis

    for path in FILES:
        text = path.read_text("utf-8")
        latest = None
        for cut in cuts(text, every_character):
            prefix, where = text[:cut], f"{path.relative_to(ROOT)}[:{cut}]"
            analysis = timed("diagnostics", diagnose, prefix, str(path))
            latest = analysis if analysis.program is not None else latest
            timed("completion", features.completion, analysis, cut, latest)
            timed("hover", features.hover, analysis, cut)
            timed("definition", features.definition, analysis, cut)
            timed("symbols", features.symbols, analysis)
            count += 1
        timed("formatting", features.formatting, analyze(text, str(path)))
    return times, count


async def over_stdio(sample: int) -> dict[str, list[float]]:
    from lsprotocol import types as t
    from pygls.lsp.client import LanguageClient

    times: dict[str, list[float]] = defaultdict(list)
    client = LanguageClient("bench", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: t.PublishDiagnosticsParams) -> None:
        published.put_nowait(params)

    await client.start_io(sys.executable, "-m", "cbdsl", "lsp")
    await client.initialize_async(t.InitializeParams(capabilities=t.ClientCapabilities(),
                                                     root_uri=ROOT.as_uri()))
    client.initialized(t.InitializedParams())
    for path in FILES:
        text = path.read_text("utf-8")
        uri = path.as_uri()
        document = t.TextDocumentIdentifier(uri=uri)
        client.text_document_did_open(t.DidOpenTextDocumentParams(
            t.TextDocumentItem(uri=uri, language_id="cbdsl", version=0, text="")))
        await published.get()
        step = max(1, len(text) // sample)
        for version, cut in enumerate(range(step, len(text) + step, step), start=1):
            prefix = text[:min(cut, len(text))]
            lines = prefix.split("\n")
            end = t.Position(len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2)
            start = time.perf_counter()
            client.text_document_did_change(t.DidChangeTextDocumentParams(
                t.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [t.TextDocumentContentChangeWholeDocument(text=prefix)]))
            await published.get()
            times["diagnostics"].append(time.perf_counter() - start)
            requests = {
                "completion": (client.text_document_completion_async,
                               t.CompletionParams(document, end)),
                "hover": (client.text_document_hover_async, t.HoverParams(document, end)),
                "definition": (client.text_document_definition_async,
                               t.DefinitionParams(document, end)),
                "symbols": (client.text_document_document_symbol_async,
                            t.DocumentSymbolParams(document)),
            }
            for kind, (request, params) in requests.items():
                start = time.perf_counter()
                await request(params)
                times[kind].append(time.perf_counter() - start)
        start = time.perf_counter()
        await client.text_document_formatting_async(t.DocumentFormattingParams(
            document, t.FormattingOptions(tab_size=2, insert_spaces=True)))
        times["formatting"].append(time.perf_counter() - start)
        client.text_document_did_close(t.DidCloseTextDocumentParams(document))
        await published.get()
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def figures(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for kind, values in times.items():
        ordered = sorted(values)
        out[kind] = {"n": len(values), "median_ms": statistics.median(ordered) * 1000,
                     "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
                     "max_ms": ordered[-1] * 1000}
    return out


def show(title: str, table: dict[str, dict[str, float]]) -> None:
    print(title)
    print(f"  {'request':<12} {'n':>7} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for kind, row in table.items():
        print(f"  {kind:<12} {row['n']:>7} {row['median_ms']:>10.1f} {row['p95_ms']:>8.1f} "
              f"{row['max_ms']:>8.1f}  {row.get('slowest', '')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every-character", action="store_true",
                        help="cut at every character, not at token boundaries (slow)")
    parser.add_argument("--stdio", type=int, default=20, metavar="N",
                        help="edits per file sent over stdio (20; 0 skips the stdio run)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    times, count = in_process(args.every_character)
    report = {"files": [str(p.relative_to(ROOT)) for p in FILES], "prefixes": count,
              "in_process": figures(times)}
    for kind, row in report["in_process"].items():
        row["slowest"] = SLOWEST.get(kind, "")
    show(f"in process: {count} prefixes of {len(FILES)} files", report["in_process"])
    if args.stdio:
        report["stdio"] = figures(asyncio.run(over_stdio(args.stdio)))
        show(f"over stdio (cbdsl lsp): about {args.stdio} edits per file, round trips",
             report["stdio"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
