"""Format specs as templates take them: Python's mini-language, with bounds, and its types."""

from __future__ import annotations

import re

MAX_FORMAT_WIDTH = 1000  # width and precision of a format spec (docs/language.md, "Bounds")
# Python's format spec mini-language:
# [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC = re.compile(r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?z?#?0?"
                   r"(?P<width>\d+)?[,_]?(?:\.(?P<precision>\d+))?(?P<type>[bcdeEfFgGnosxX%])?",
                   re.DOTALL)
INT_CODES = frozenset("bcdoxXn")  # format types that take integers only
NUMBER_CODES = frozenset("eEfFgG%")  # and those that take any number


def spec_problem(spec: str) -> str | None:
    """Why a format spec is refused: not Python's mini-language, or a width or precision
    past MAX_FORMAT_WIDTH."""
    match = _SPEC.fullmatch(spec)
    if match is None:
        return f"'{spec}' is not a format spec"
    for part in ("width", "precision"):
        if match[part] is not None and int(match[part]) > MAX_FORMAT_WIDTH:
            return f"the {part} {int(match[part]):,} of '{spec}' is past {MAX_FORMAT_WIDTH}"
    return None


def spec_type(spec: str) -> str | None:
    """The type code of a valid format spec (`d` of `03d`), or None."""
    match = _SPEC.fullmatch(spec)
    return match["type"] if match is not None else None
