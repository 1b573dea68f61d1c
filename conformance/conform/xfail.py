"""Xfail files: the expected failures of a spec, one case name a line."""

from __future__ import annotations

import os
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
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.runner import case_paths

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read xfail file {path}: {error.strerror}") from None
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
            raise UsageError(f"{path}:{number}: {spec} has no case {name!r}")
        names[name] = comment.strip()
    return names
