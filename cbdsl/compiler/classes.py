"""Compiled rules to a generated Callback subclass, one per definition and bound arguments."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from cbdsl import language
from cbdsl.checker import Definition
from cbdsl.compiler.definitions import DefinitionCompiler, class_name
from cbdsl.runtime import effects, standin
from cbdsl.runtime.callback import compiled_base, make_hook
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions


@dataclass
class CompiledDefinition:
    """A definition's rules compiled for one binding of its parameters: what a compiled
    callback's class (or, for a drop-in, its instance) holds."""

    rules_by_event: dict[str, list[Any]]
    initial_variables: dict[str, Any]
    tracker_names: tuple[str, ...]
    kept: frozenset[str]
    trackers_by_event: dict[str, list[Any]]
    events: set[language.Event] = field(default_factory=set)
    needs_epoch: bool = False
    counts_steps: bool = False
    records: bool = False
    exposed: dict[str, Any] = field(default_factory=dict)
    rest_parameter: str | None = None
    handles: tuple[str, ...] = ()

    def members(self) -> dict[str, Any]:
        """The attributes a compiled callback reads its rules from."""
        return {"rules_by_event": self.rules_by_event,
                "initial_variables": self.initial_variables,
                "tracker_names": self.tracker_names, "kept": self.kept,
                "trackers_by_event": self.trackers_by_event, "records": self.records,
                "exposed": self.exposed, "rest_parameter": self.rest_parameter,
                "handles": self.handles}


def compile_definition(definition: Definition, params: dict[str, Any],
                       label: str) -> CompiledDefinition:
    """Compile one definition's rules with bound parameters (requirements checked first)."""
    compiler = DefinitionCompiler(definition, params, label)
    compiler.check_requirements()
    rules_by_event = compiler.rules()
    initial = {}
    for var in definition.variables:
        value = compiler.constant(var.value, f"the initial value of '{var.name.name}'")
        initial[var.name.name] = functools.partial(_copy, value)
    tracker_names = tuple(dict.fromkeys(
        t.name for rules in rules_by_event.values() for r in rules for t in r.trackers))
    kept = frozenset({v.name.name for v in definition.variables if v.kept} | {
        t.name for rules in rules_by_event.values() for r in rules for t in r.trackers
        if t.kept})
    events, needs_epoch, counts_steps, records = hook_events(definition, set(rules_by_event))
    for event in events:  # the hooks of events with no rules run none (train_begin: no `_run`)
        if event.level != "signal" and event.name != "train_begin":
            rules_by_event.setdefault(event.name, [])
    return CompiledDefinition(
        rules_by_event, initial, tracker_names, kept,
        {e: [t for r in rules for t in r.trackers] for e, rules in rules_by_event.items()},
        events, needs_epoch, counts_steps, records, compiler.exposures(),
        next((k for k, info in definition.params.items() if info.type == "keywords"), None),
        handles_of(definition))


def handles_of(definition: Definition) -> tuple[str, ...]:
    """The names under which a definition's actions and effects keep Python objects open
    (`csv_file`, `progbar`): attributes of the callback, none until first used."""
    found: dict[str, None] = {}
    for rule in definition.rules:
        for action in flat_actions(rule.actions):
            spec = language.EFFECTS.get(action.full_name) if isinstance(action, n.Effect) \
                else language.ACTIONS.get(type(action).__name__)
            found.update(dict.fromkeys(spec.handles if spec is not None else ()))
    return tuple(found)


def hook_events(definition: Definition,
                ruled: set[str]) -> tuple[set[language.Event], bool, bool, bool]:
    """The events whose hooks a callback overrides, given the events that have rules: those,
    the epoch's start where batch rules need the epoch, the end of train batches where steps
    are counted, `train_begin` (state is reset there) and `train_end` for a History and to
    close a file that `write row` keeps open."""
    events = {language.EVENTS[e] for e in ruled}
    needs_epoch = any((e.level == "batch" and e.phase == "train") or e.name == "train_end"
                      for e in events)
    counts_steps = any(e.name in ("train_batch_begin", "train_batch_end") for e in events)
    if needs_epoch:
        events.add(language.EVENTS["epoch_begin"])
    if counts_steps:
        events.add(language.EVENTS["train_batch_end"])
    events.add(language.EVENTS["train_begin"])
    actions = [a for r in definition.rules for a in flat_actions(r.actions)]
    records = any(isinstance(a, n.Record) for a in actions)
    if records or any(isinstance(a, n.WriteRow) for a in actions):  # history; a file to close
        events.add(language.EVENTS["train_end"])
    return events, needs_epoch, counts_steps, records


def class_bases(definition: Definition) -> tuple[type, ...]:
    """The compiled base, and Keras's ProgbarLogger for rules that draw a progress bar (so
    that Keras adds no bar of its own; a dry run without Keras draws none)."""
    bases: tuple[type, ...] = (compiled_base(),)
    if not standin.active() and any(isinstance(a, n.Effect) and a.group.name == "progress"
           for r in definition.rules for a in flat_actions(r.actions)):
        bases += (effects.progress_display_base(),)
    return bases


def build_class(definition: Definition, params: dict[str, Any], label: str) -> type:
    """Generate the Callback subclass for one definition with bound parameters."""
    compiled = compile_definition(definition, params, label)
    namespace: dict[str, Any] = {
        "definition_name": definition.name,
        **compiled.members(),
        "__doc__": definition.doc or f"Compiled from the cbdsl rules of '{definition.name}'.",
        "__module__": "cbdsl.compiled",
    }
    for event in compiled.events:
        if event.level != "signal":
            namespace[event.hook] = make_hook(event, compiled.needs_epoch, compiled.counts_steps,
                                              compiled.records)
    return type(class_name(definition.name), class_bases(definition), namespace)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value
