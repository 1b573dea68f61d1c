"""Xfail files and lists: the expected failures of a spec, one case name a line."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cbdsl.conformance.conform.options import UsageError


def read_xfail(path: str | os.PathLike[str], spec: str) -> dict[str, str]:
    """The expected failures of `spec` in an xfail file: `{case name: reason}`.

    One name a line: a case of the spec (its file's stem, as `tie_at_min_delta`), or
    `generated` for the generated traces; `SPEC/NAME` names a case of one spec (lines of
    other specs are skipped, so one file can serve several). `#` starts a comment, which
    after a name is the reason. Blank lines are skipped.

    Raises:
        UsageError: the file cannot be read, or names a case the spec does not have.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read xfail file {path}: {error.strerror}") from None
    return _names(lines, spec, f"{path}:")


def expected_failures(xfail: str | os.PathLike[str] | Iterable[str] | None, spec: str,
                      folder: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The expected failures of `spec` given as an xfail file or as a list of names.

    Args:
        xfail: the path of an xfail file (`read_xfail`), or names as its lines name cases
            (`tie_at_min_delta`, `generated`, `SPEC/NAME`, a `#` comment as the reason);
            None for none.
        spec: the spec's name.
        folder: what a relative path is relative to (default: the current folder).

    Returns:
        `{case name: reason}`.

    Raises:
        UsageError: a name the spec does not have, or a file that cannot be read.
    """
    if xfail is None:
        return {}
    if isinstance(xfail, str | os.PathLike):
        return read_xfail(Path(folder or ".") / xfail, spec)
    return _names(list(xfail), spec, "xfail item ")


def _names(lines: list[str], spec: str, where: str) -> dict[str, str]:
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.runner import case_paths

    if spec in ARTIFACT_SPECS:
        known = {s.name for s in ARTIFACT_SPECS[spec].scenarios}
    else:
        known = {p.stem for p in case_paths(spec)} | {"generated"}
    names: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        entry, _, comment = line.partition("#")
        entry = entry.strip()
        if not entry:
            continue
        owner, slash, name = entry.rpartition("/")
        if slash and owner != spec:
            continue
        if name not in known:
            raise UsageError(f"{where}{number}: {spec} has no case {name!r}"
                             f"{_did_you_mean(name, known)}")
        names[name] = comment.strip()
    return names


def _did_you_mean(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
