"""Regenerate every case's `expected` outcome by running the reference Keras class on it.

Run: python -m cbdsl.conformance.record [SPEC...]   (all specs when none are named)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cbdsl.conformance.runner import case_paths, load_case, run_trace
from cbdsl.conformance.specs import SPECS


def record(path: Path) -> bool:
    """Write the reference's outcome into the case file; True when it changed."""
    case = load_case(path)
    reference = SPECS[case["spec"]].reference()
    expected = run_trace(case, reference, for_reference=True)
    if case.get("expected") == expected:
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    data["expected"] = expected
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    specs = (argv if argv is not None else sys.argv[1:]) or list(SPECS)
    changed = 0
    for spec in specs:
        if spec not in SPECS:
            print(f"unknown spec '{spec}'; specs: {', '.join(SPECS)}", file=sys.stderr)
            return 2
        for path in case_paths(spec):
            changed += record(path)
    print(f"recorded {len(case_paths()) if not argv else 'the named'} cases; {changed} changed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
