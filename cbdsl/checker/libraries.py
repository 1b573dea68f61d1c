"""Where rule libraries are found: folders beside the file, CBDSL_PATH, installed packages."""

from __future__ import annotations

import os
from collections import defaultdict
from importlib import resources
from pathlib import Path


def library_dirs(base: str | None) -> dict[str, list[Path]]:
    """Where `use lib.rule` looks for the library `lib`, in this order: a folder next to the
    file, a folder on CBDSL_PATH, a package registered in the `cbdsl.rules` entry-point group
    (`team = "team_rules"`), and the built-in `keras` library."""
    roots = [Path(base)] if base else [Path.cwd()]
    roots += [Path(p) for p in os.environ.get("CBDSL_PATH", "").split(os.pathsep) if p]
    found: dict[str, list[Path]] = defaultdict(list)
    for root in roots:
        if root.is_dir():
            for child in sorted(root.iterdir()):
                if child.is_dir() and any(child.glob("*.cbd")):
                    found[child.name].append(child)
    for name, folder in installed_libraries().items():
        found[name].append(folder)
    builtin = Path(str(resources.files("cbdsl.rules")))
    if builtin not in found["keras"]:
        found["keras"].append(builtin)
    return found


def installed_libraries() -> dict[str, Path]:
    """Rule libraries that pip packages register: `[project.entry-points."cbdsl.rules"]`,
    each naming a package whose folder holds `.cbd` files. Entries that do not resolve are
    left out (`cbdsl list` reports them)."""
    from importlib.metadata import entry_points

    out = {}
    for entry in entry_points(group="cbdsl.rules"):
        try:
            folder = Path(str(resources.files(entry.value)))
        except (ModuleNotFoundError, TypeError, ValueError):
            continue
        if folder.is_dir():
            out.setdefault(entry.name, folder)
    return out
