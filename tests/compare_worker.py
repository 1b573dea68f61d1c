"""Runs in a subprocess per Keras backend: the fast improvement check against the backend's ops.

Prints one JSON line with every (value, reference, direction, min_delta) where they differ.
"""

from __future__ import annotations

import itertools
import json

import keras
import numpy as np

from cbdsl.runtime.monitor import _backend_compare, is_improvement

TINY = float(np.finfo(np.float32).tiny)
BIG = float(np.finfo(np.float32).max)
EDGES = [0.0, -0.0, 1.0, -1.0, 0.1, 1e-3, TINY, -TINY, TINY * 1.0000001, TINY / 2, TINY / 3,
         1e-45, 1.4e-45, 7e-46, -1e-44, 1e-39, 5e-39, BIG, -BIG, BIG * 1.00000001, 3.5e38, 1e39,
         float("inf"), float("-inf"), float("nan"), 1 + 2**-24, 1 + 2**-23, 1 - 2**-25, 2.5e-8]


def outcome(fn, *args):
    """The result, or the kind of error raised (TensorFlow refuses floats beyond float32)."""
    try:
        return fn(*args)
    except Exception as error:
        return type(error).__name__


def main() -> None:
    mismatches = []
    for value, reference in itertools.product(EDGES, EDGES):
        for direction, delta in itertools.product(("min", "max"), (0.0, 1e-4, TINY, 2**-24)):
            shifted = value - delta if direction == "max" else value + delta
            fast = outcome(is_improvement, value, reference, direction, delta)
            slow = outcome(_backend_compare, shifted, reference, direction)
            if fast != slow:
                mismatches.append([value, reference, direction, delta, fast, slow])
    print(json.dumps({"backend": keras.backend.backend(), "mismatches": mismatches,
                      "checked": len(EDGES) ** 2 * 8}))


if __name__ == "__main__":
    main()
