"""Compiled rules to a generated Callback subclass, one per definition and bound arguments."""

from __future__ import annotations

import functools
from typing import Any

from cbdsl import language
from cbdsl.checker import (
    Definition,
)
from cbdsl.compiler.definitions import DefinitionCompiler
from cbdsl.runtime import effects
from cbdsl.runtime.callback import compiled_base, make_hook
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions


def build_class(definition: Definition, params: dict[str, Any], label: str) -> type:
    """Generate the Callback subclass for one definition with bound parameters."""
    compiler = DefinitionCompiler(definition, params, label)
    compiler.check_requirements()
    rules_by_event = compiler.rules()
    initial = {}
    for var in definition.variables:
        value = compiler.constant(var.value, f"the initial value of '{var.name.name}'")
        initial[var.name.name] = functools.partial(_copy, value)
    tracker_names = tuple(dict.fromkeys(
        t.name for rules in rules_by_event.values() for r in rules for t in r.trackers))
    events = {language.EVENTS[e] for e in rules_by_event}
    needs_epoch = any((e.level == "batch" and e.phase == "train") or e.name == "train_end"
                      for e in events)
    counts_steps = any(e.name in ("train_batch_begin", "train_batch_end") for e in events)
    if needs_epoch:
        events.add(language.EVENTS["epoch_begin"])
        rules_by_event.setdefault("epoch_begin", [])
    if counts_steps:
        events.add(language.EVENTS["train_batch_end"])
        rules_by_event.setdefault("train_batch_end", [])
    events.add(language.EVENTS["train_begin"])
    namespace: dict[str, Any] = {
        "definition_name": definition.name,
        "rules_by_event": rules_by_event,
        "initial_variables": initial,
        "tracker_names": tracker_names,
        "kept": frozenset({v.name.name for v in definition.variables if v.kept} | {
            t.name for rules in rules_by_event.values() for r in rules for t in r.trackers
            if t.kept}),
        "trackers_by_event": {e: [t for r in rules for t in r.trackers]
                              for e, rules in rules_by_event.items()},
        "__doc__": definition.doc or f"Compiled from the cbdsl rules of '{definition.name}'.",
        "__module__": "cbdsl.compiled",
    }
    records = any(isinstance(a, n.Record) for r in definition.rules for a in r.actions)
    if records:
        events.add(language.EVENTS["train_end"])
        rules_by_event.setdefault("train_end", [])
        namespace["records"] = True
    for event in events:
        if event.level != "signal":
            namespace[event.hook] = make_hook(event, needs_epoch, counts_steps, records)
    bases: tuple[type, ...] = (compiled_base(),)
    if any(isinstance(a, n.Effect) and a.group.name == "progress"
           for r in definition.rules for a in flat_actions(r.actions)):
        bases += (effects.progress_display_base(),)  # Keras then adds no bar of its own
    return type(_class_name(definition.name), bases, namespace)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _class_name(name: str) -> str:
    if name[:1].isupper():
        return name
    return "".join(part.capitalize() for part in name.split("_")) or "Policy"
