"""Stateful predicates as data: `stalls` and `improves`, their options and tracker fields."""

from __future__ import annotations

from cbdsl.language.actions import Option

MODES = ("auto", "min", "max")

# What each predicate means, exactly (docs/language.md says it at length): hover text in editors.
PREDICATE_MEANINGS = {
    "stalls": "`X stalls N` is Keras's patience: at each check `wait += 1` (counted before the "
              "comparison; a running cooldown uses up one check instead and holds `wait` at 0); "
              "if X improves on the best so far (strictly, by `min_delta`), `best = X` and "
              "`wait = 0` (once X also beats `baseline`); otherwise it is true when "
              "`wait >= N` and no cooldown runs. When its rule fires, `wait` restarts at 0 "
              "unless the rule stops training.",
    "improves": "`X improves` is true on a check where X improves on its best so far, by "
                "Keras's test (strict, by `min_delta`; `baseline` is the first best to beat); "
                "the first value always becomes the best.",
    "is nan": "`X is nan` is true when X is NaN (`is not nan`: when it is not).",
    "is finite": "`X is finite` is true when X is neither NaN nor infinite (`is not finite`: "
                 "when it is NaN or infinite).",
}

_COMMON = (
    Option("min_delta", "number",
           "the least change that counts as an improvement (sign ignored)", 0.0),
    Option("weights", "bool", "keep the weights of the best check, for `restore best weights`"),
    Option("only", "bool",
           "check only at events where this condition holds (elsewhere: false, no update)"),
    Option("keep", "bool",
           "keep the best value and counters across `fit` calls (default: start afresh)", False),
)

TRACKER_OPTIONS: dict[str, dict[str, Option]] = {
    "stalls": {o.name: o for o in (
        Option("mode", "str", "'min', 'max' or 'auto' (Keras's rule: loss goes down, else the "
               "metric's own direction, else an error)", "auto"),
        _COMMON[0],
        Option("baseline", "number", "a value to beat before patience is reset"),
        *_COMMON[1:])},
    "improves": {o.name: o for o in (
        Option("mode", "str", "'min', 'max' or 'auto'", "auto"),
        _COMMON[0],
        Option("baseline", "number", "the initial best value to beat"),
        *_COMMON[1:])},
}
TRACKER_FIELDS = {
    "best": "the best value seen so far (none before the first check)",
    "wait": "checks since the last improvement",
    "best_epoch": "the epoch of the best value",
    "value": "the value seen at the latest check",
    "direction": "\"min\" or \"max\", once the first check has fixed it (none before)",
}
# The type of each tracker field: `best`, `value` and `direction` are none before the first
# check (a guard such as `when t.best != none`, or the tracker's own predicate being true,
# makes them present).
TRACKER_FIELD_TYPES = {"best": "number?", "wait": "int", "best_epoch": "int",
                       "value": "number?", "direction": "str?"}
