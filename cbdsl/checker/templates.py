"""Templates: the named fields of `print`, `save` and friends, and which fields are refused."""

from __future__ import annotations

import string

from cbdsl.language.formats import spec_problem

_FORMATTER = string.Formatter()
def template_specs(text: str) -> list[tuple[str, str]]:
    """Each field's name and format spec."""
    try:
        return [(name, spec or "") for _, name, spec, _ in _FORMATTER.parse(text) if name]
    except ValueError:
        return []


def template_fields(text: str) -> list[str]:
    try:
        return [name for _, name, _, _ in _FORMATTER.parse(text) if name]
    except ValueError:
        return []


def template_problem(text: str) -> str | None:
    """Why a template is refused (attribute or index access, conversions, bad braces)."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        return f"malformed template: {exc}"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not all(part.isidentifier() for part in name.split(".", 1)):
            return (f"template field '{{{name}}}' must be a plain name or TRACKER.field"
                    if name else
                    "template fields must be named: '{}' is not allowed")
        if conversion:
            return (f"template field '{{{name}!{conversion}}}' uses a conversion; "
                    f"drop '!{conversion}'")
        if spec and "{" in spec:
            return f"template field '{{{name}}}' has a nested field in its format spec"
        problem = spec_problem(spec or "")
        if problem:
            return f"template field '{{{name}:{spec}}}': {problem}"
    return None
