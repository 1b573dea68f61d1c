"""The language as data: events, names, types, functions, actions, predicates and effects.

Every stage reads these tables: the checker types and places what a rule file says from
them, the compiler and the runtime run from them, and the tools (`explain`, `cbdsl list`,
the Python writer, the lexer) describe from them. Adding a function, an action or an effect
starts with one entry here; the guard tests then say which stage still lacks it.

This package imports nothing else of cbdsl: every other package may import it.
"""

from cbdsl.language.actions import ACTIONS, POST_KINDS, POST_TIMEOUT, Action, Option
from cbdsl.language.effects import EFFECTS, Effect, EffectParam
from cbdsl.language.events import (
    BUILTIN_NAMES,
    BUILTIN_TYPES,
    EVENT_ALIASES,
    EVENTS,
    TARGETS,
    TRAIN_EVENTS,
    Event,
    name_available,
    resolve_event,
)
from cbdsl.language.functions import ARG_ACCEPTS, FUNCTIONS, Arg, Function
from cbdsl.language.predicates import (
    MODES,
    PREDICATE_MEANINGS,
    TRACKER_FIELD_TYPES,
    TRACKER_FIELDS,
    TRACKER_OPTIONS,
)
from cbdsl.language.types import (
    NUMBER_TYPES,
    PARAM_TYPES,
    accepts,
    is_number,
    narrowed,
    rule_literal,
    type_of_value,
)

__all__ = [
    "ACTIONS", "ARG_ACCEPTS", "BUILTIN_NAMES", "BUILTIN_TYPES", "EFFECTS", "EVENTS",
    "EVENT_ALIASES", "FUNCTIONS", "MODES", "NUMBER_TYPES", "PARAM_TYPES", "POST_KINDS",
    "POST_TIMEOUT", "PREDICATE_MEANINGS", "TARGETS", "TRACKER_FIELDS", "TRACKER_FIELD_TYPES",
    "TRACKER_OPTIONS",
    "TRAIN_EVENTS", "Action", "Arg", "Effect", "EffectParam", "Event", "Function", "Option",
    "accepts", "is_number", "name_available", "narrowed", "resolve_event", "rule_literal",
    "type_of_value",
]
