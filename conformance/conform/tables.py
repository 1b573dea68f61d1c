"""Printing reports: the suite's table, failures, known differences and timings; --impl's."""

from __future__ import annotations

from typing import Any


def render_suite(data: dict[str, Any], console: Any) -> None:
    """Print the table of rule files x backend and device, the failures, and the timings."""
    from rich.table import Table
    from rich.text import Text

    notes: dict[str, int] = {}

    def note(reason: str) -> str:
        return f"[{notes.setdefault(reason, len(notes) + 1)}]"

    keys = list(data["columns"])
    table = Table(title="cbdsl conform: each rule file against its Keras class")
    table.add_column("rule file")
    for key in keys:
        table.add_column(key.replace("/", "\n"), justify="center")
    for row in data["rows"]:
        texts = []
        for key in keys:
            cell = data["cells"][row][key]
            if cell["status"] == "skipped":
                texts.append(Text.assemble(("skipped ", "yellow"), note(cell["reason"])))
            elif cell["status"] == "fail":
                bad = [f"{name} {s['failed']}/{s['failed'] + s['passed']}"
                       if name != "differential" else name
                       for name, s in cell["sections"].items() if s["status"] == "fail"]
                texts.append(Text.assemble(("FAIL", "bold red"), " " + ", ".join(bad)
                                           if bad else " " + note(cell.get("reason", ""))))
            else:
                skipped = [f"{name} {note(s['reason'])}" for name, s in cell["sections"].items()
                           if s["status"] == "skipped"]
                known = sum(len(s.get("xfailed", [])) for s in cell["sections"].values())
                texts.append(Text.assemble(
                    ("pass", "green"),
                    (f" ({known} known difference{'s' * (known != 1)})", "yellow") if known
                    else "",
                    ("\n" + ", ".join(skipped) + " skipped") if skipped else ""))
        table.add_row(row, *texts)
    console.print(table)
    for reason, number in notes.items():
        console.print(Text(f"[{number}] {reason}", style="dim"), soft_wrap=True)
    _render_failures(data, console)
    _render_known(data, console)
    _render_timings(data, console)


def _render_failures(data: dict[str, Any], console: Any) -> None:
    from rich.rule import Rule
    from rich.text import Text

    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for row in data["rows"]:
        for key, cell in data["cells"][row].items():
            for section, result in cell["sections"].items():
                for failure in result.get("failures", []):
                    what = (row, section, failure["name"], failure["divergence"])
                    seen.setdefault(what, []).append(key)
    for (row, section, name, divergence), keys in seen.items():
        console.print(Rule(f"{row} · {section} · {name} · on {', '.join(keys)}",
                           style="red"))
        console.print(Text(divergence), soft_wrap=True)


def _render_known(data: dict[str, Any], console: Any) -> None:
    """The drop-ins' known differences from Keras that showed, once each."""
    from rich.text import Text

    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for row in data["rows"]:
        for key, cell in data["cells"][row].items():
            for section, result in cell["sections"].items():
                for known in result.get("xfailed", []):
                    seen.setdefault((row, section, known["name"], known["reason"]),
                                    []).append(key)
    if not seen:
        return
    console.print(Text("Known differences of the drop-ins (expected failures; the report "
                       "holds each divergence):", style="yellow"))
    for (row, section, name, reason), keys in seen.items():
        console.print(Text(f"  {row} · {section} · {name} · on {', '.join(keys)}: {reason}"),
                      soft_wrap=True)


def _render_timings(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not data["timings"]:
        return
    keys = list(data["timings"])
    order = ["startup", "language", "cases", "differential", "fit", "artifacts", "distributed",
             "coverage", "total"]
    names = [s for s in order if any(s in data["timings"][k] for k in keys)]
    table = Table(title="Time per section (seconds)")
    table.add_column("section")
    for key in keys:
        table.add_column(key, justify="right")
    for name in names:
        table.add_row(name, *(f"{data['timings'][k][name]:.1f}" if name in data["timings"][k]
                              else "-" for k in keys))
    console.print(table)
    options = data["options"]
    console.print(f"wall time {data['wall_s']:.1f}s, {options['jobs']} backend process"
                  f"{'es' * (options['jobs'] != 1)} at a time, {options['examples']} generated"
                  f" traces per rule file{' (--quick)' if options['quick'] else ''}, seed "
                  f"{options['seed']}")



STYLE = {"pass": "green", "fail": "bold red", "xfail": "yellow", "xpass": "bold red",
         "skipped": "yellow"}


def render_impl(data: dict[str, Any], console: Any) -> None:
    """Print each case's verdict, then each failure's first divergence side by side."""
    from rich.rule import Rule
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{data['impl']} against the {data['spec']} spec "
                        f"(Keras {data['keras']}, {data['backend']} backend)")
    for column in ("case", "result", "what it checks"):
        table.add_column(column, overflow="fold")
    for r in data["results"]:
        table.add_row(r["name"], Text(r["status"].upper() if r["status"] in ("fail", "xpass")
                                      else r["status"], style=STYLE[r["status"]]),
                      r.get("reason") or r["description"] + (
                          f" (expected to fail: {r['xfail_reason']})"
                          if r.get("xfail_reason") else ""))
    console.print(table)
    for r in data["results"]:
        if r["status"] in ("fail", "xfail"):
            console.print(Rule(f"{data['spec']}/{r['name']}: "
                               f"{'expected failure' if r['status'] == 'xfail' else 'FAIL'}",
                               style=STYLE[r["status"]]))
            console.print(Text(r["divergence"]), soft_wrap=True)
        elif r["status"] == "xpass":
            console.print(Rule(f"{data['spec']}/{r['name']}: XPASS", style="bold red"))
            console.print(f"{r['name']} is listed as an expected failure but passes: "
                          "remove it from the xfail file")
    s = data["summary"]
    console.print(f"{s['pass']} passed, {s['fail']} failed, {s['xfail']} expected failures, "
                  f"{s['xpass']} unexpectedly passed, {s['skipped']} skipped in "
                  f"{data['wall_s']:.1f}s")
