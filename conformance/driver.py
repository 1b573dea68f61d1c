"""Drives any Keras callback over a trace of events as `fit` would, recording all it does.

The stub model and the driver are the product's (`cbdsl.dryrun`, which `cbdsl replay` uses);
this module adds the comparison the suite judges outcomes with.
"""

from __future__ import annotations

import math
from typing import Any

from cbdsl.dryrun import INSPECTED, Outcome, StubModel, Trace, drive, plain

__all__ = ["INSPECTED", "Outcome", "StubModel", "Trace", "drive", "equal", "plain"]


def equal(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN and floats compare bit for bit (0.0 != -0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
