"""Where rule libraries are found: the file's own project, folders, CBDSL_PATH, packages."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Library:
    """One place a library name is found.

    Attributes:
        name: the name `use NAME.RULE` gives it.
        folder: the folder holding its `.cbd` files.
        source: where the name comes from, in words (`package acme-rules 1.0`, `folder`, ...).
    """

    name: str
    folder: Path
    source: str

    def describe(self) -> str:
        """`package acme-rules 1.0 (/site-packages/acme_rules)`, as diagnostics name it."""
        return f"{self.source} ({self.folder})"


def find_libraries(path: str | None, base: str | None = None) -> dict[str, list[Library]]:
    """Every library visible from a rule file, each name with the places it is found.

    The search order is in two tiers:

    1. The file's own project: the library whose folder holds the file (an installed
       package's, the built-in one, or one its project declares), then the libraries its
       project declares: the nearest `pyproject.toml` above the file names them in its
       `cbdsl.rules` entry points (`acme = "acme_rules"`, the package's source folder) or in
       `[tool.cbdsl.libraries]` (`acme = "path/to/folder"`). Such a name is found there and
       nowhere else, so a library refers to itself by its name before and after install.
    2. Everywhere else, all at once: the file's own folder under its folder's name, the
       folders beside the file that hold `.cbd` files, those on `CBDSL_PATH`, the packages
       registered in the `cbdsl.rules` entry-point group, and the built-in `keras` library.
       A name found in two folders here is a clash (the caller reports it), never a merge.

    Args:
        path: the rule file (`None` or `"<string>"` for text that is not a file).
        base: the folder to look from when `path` is not a file (default: the working one).

    Returns:
        Each name with its places: one place for a name of the first tier or a unique name,
        more when the name clashes.
    """
    is_file = bool(path) and path not in ("<string>", "") and not path.startswith("<")
    start = Path(os.path.abspath(os.path.dirname(path) if is_file else base or os.getcwd()))
    own = Path(path).resolve() if is_file else start.resolve()
    installed = installed_libraries()
    first: dict[str, Library] = {}
    for library in installed:
        if own.is_relative_to(library.folder):
            first.setdefault(library.name, library)
    project = project_libraries(start)
    for library in project:
        if own.is_relative_to(library.folder):
            first.setdefault(library.name, library)
    for library in project:
        first.setdefault(library.name, library)

    places: list[Library] = []
    if is_file and start.name.isidentifier():
        places.append(Library(start.name, start, "the folder holding the file"))
    places += _folders_in(start, "folder beside the file")
    for entry in os.environ.get("CBDSL_PATH", "").split(os.pathsep):
        if entry:
            places += _folders_in(Path(os.path.abspath(entry)), "folder on CBDSL_PATH")
    places += installed
    found: dict[str, list[Library]] = {name: [library] for name, library in first.items()}
    for library in places:
        if library.name in first:
            continue
        same = found.setdefault(library.name, [])
        if not any(_same_folder(library.folder, other.folder) for other in same):
            same.append(library)
    return found


def _folders_in(root: Path, source: str) -> list[Library]:
    if not root.is_dir():
        return []
    return [Library(child.name, child, source) for child in sorted(root.iterdir())
            if child.is_dir() and child.name.isidentifier() and any(child.glob("*.cbd"))]


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a == b


def installed_libraries() -> list[Library]:
    """Libraries that pip packages register (`[project.entry-points."cbdsl.rules"]`, each
    naming a package whose folder holds `.cbd` files), and the built-in `keras` library.
    Entries that do not resolve to a folder are left out."""
    from importlib.metadata import entry_points

    out = []
    for entry in entry_points(group="cbdsl.rules"):
        try:
            folder = Path(str(resources.files(entry.value)))
        except (ImportError, TypeError, ValueError):
            continue
        if folder.is_dir():
            dist = entry.dist
            what = "the built-in library" if entry.value == "cbdsl.rules" else \
                f"package {dist.name} {dist.version}" if dist is not None else "a package"
            out.append(Library(entry.name, folder.resolve(), what))
    builtin = Path(str(resources.files("cbdsl.rules"))).resolve()
    if not any(lib.name == "keras" and lib.folder == builtin for lib in out):
        out.append(Library("keras", builtin, "the built-in library"))
    return out


def project_libraries(start: Path) -> list[Library]:
    """The libraries the nearest `pyproject.toml` at or above `start` declares: its
    `cbdsl.rules` entry points, found in its source tree, and `[tool.cbdsl.libraries]`."""
    for folder in (start, *start.parents):
        config = folder / "pyproject.toml"
        if config.is_file():
            try:
                return _declared(str(config), config.stat().st_mtime_ns)
            except OSError:
                return []
    return []


@functools.lru_cache(maxsize=64)
def _declared(config: str, _mtime: int) -> list[Library]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    root = Path(config).parent
    try:
        with open(config, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    out = []
    source = f"declared by {config}"
    tables = data.get("tool", {}).get("cbdsl", {}).get("libraries", {})
    for name, folder in tables.items() if isinstance(tables, dict) else ():
        if isinstance(folder, str) and (root / folder).is_dir():
            out.append(Library(name, (root / folder).resolve(), source))
    points = data.get("project", {}).get("entry-points", {}).get("cbdsl.rules", {})
    mapping = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    for name, package in points.items() if isinstance(points, dict) else ():
        if not isinstance(package, str) or any(lib.name == name for lib in out):
            continue
        folder = _package_folder(root, package, mapping if isinstance(mapping, dict) else {})
        if folder is not None:
            out.append(Library(name, folder.resolve(), source))
    return out


def _package_folder(root: Path, package: str, mapping: dict) -> Path | None:
    """Where a package's source is: `[tool.setuptools.package-dir]`, `src/`, or the root."""
    parts = package.split(".")
    for i in range(len(parts), -1, -1):
        prefix = ".".join(parts[:i])
        if prefix in mapping and isinstance(mapping[prefix], str):
            folder = root / mapping[prefix] / Path(*parts[i:]) if parts[i:] else \
                root / mapping[prefix]
            return folder if folder.is_dir() else None
    for candidate in (root / Path(*parts), root / "src" / Path(*parts)):
        if candidate.is_dir():
            return candidate
    return None
