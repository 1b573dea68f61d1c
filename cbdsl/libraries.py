"""Rule libraries: what each one found by `use lib.rule` holds, for `cbdsl list`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cbdsl.checker import INVALID, REQUIRED, ParamInfo
from cbdsl.checker.libraries import find_libraries
from cbdsl.diagnostics import CbdslError, Diagnostic
from cbdsl.language import rule_literal


@dataclass(frozen=True)
class LibraryRule:
    """One rule file of a library, as `use LIBRARY.RULE(...)` names it.

    Attributes:
        library: the library's name (`keras`, `team`).
        rule: the file's name without `.cbd`.
        callbacks: `(name, signature, first line of its doc)` per callback it defines.
        path: the file.
        error: the first diagnostic, when the file does not check or its library's name is
            found in more than one place (E209, naming each).
    """

    library: str
    rule: str
    callbacks: tuple[tuple[str, str, str], ...]
    path: str
    error: str = ""


def catalog(base: str | None = None) -> list[LibraryRule]:
    """Every rule of every library visible from `base` (a folder; default the working one),
    in the search order `use` follows (docs/libraries.md)."""
    import cbdsl

    out = []
    for library, places in sorted(find_libraries(None, base).items()):
        clash = "" if len(places) == 1 else Diagnostic(
            "E209", f"library '{library}' is found in {len(places)} places: "
            + "; ".join(place.describe() for place in places), path=str(places[0].folder),
        ).render()
        for place in places:
            for path in sorted(place.folder.glob("*.cbd")):
                try:
                    checked = cbdsl.check(path)
                except CbdslError as exc:
                    first = exc.errors[0] if exc.errors else exc.diagnostics[0]
                    out.append(LibraryRule(library, path.stem, (), str(path),
                                           clash or first.render()))
                    continue
                defs = [d for d in checked.definitions.values()
                        if d.node is not None and Path(d.path) == path]
                out.append(LibraryRule(library, path.stem, tuple(
                    (d.name, signature(d.params), (d.doc or "").strip().splitlines()[0]
                     if d.doc else "") for d in defs), str(path), clash))
    return out


def signature(params: dict[str, ParamInfo]) -> str:
    """`(monitor = "val_loss", patience = 0, schedule: schedule)`, as the file declares them."""
    parts = []
    for name, info in params.items():
        typed = info.node.type_name is not None
        if info.default is REQUIRED or info.default is INVALID or (
                typed and info.node.default is None):
            parts.append(f"{name}: {info.type}")
        elif typed:
            parts.append(f"{name}: {info.type} = {rule_literal(info.default)}")
        else:
            parts.append(f"{name} = {rule_literal(info.default)}")
    return f"({', '.join(parts)})"


def provider(folder: str | Path) -> dict[str, str]:
    """Where a library's folder comes from, for `cbdsl list`.

    Returns:
        `package` and `version` of the distribution that provides it (cbdsl itself for the
        built-in `keras` library, a pip package through the `cbdsl.rules` entry points),
        both empty for a plain folder (beside the file or on CBDSL_PATH).
    """
    from importlib import metadata, resources

    folder = Path(folder).resolve()
    if folder == Path(str(resources.files("cbdsl.rules"))).resolve():
        return {"package": "cbdsl", "version": _version("cbdsl")}
    for entry in metadata.entry_points(group="cbdsl.rules"):
        try:
            found = Path(str(resources.files(entry.value))).resolve()
        except (ModuleNotFoundError, TypeError, ValueError):
            continue
        if found == folder:
            dist = getattr(entry, "dist", None)
            return {"package": dist.name if dist else entry.value,
                    "version": dist.version if dist else ""}
    return {"package": "", "version": ""}


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""
