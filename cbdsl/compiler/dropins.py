"""Callback classes generated from rule definitions: drop-ins that build like Keras's classes.

`callback_class(definition)` makes one class per definition. Its `__init__` takes the
definition's parameters as a Python signature (a parameter written without a default is
required; a `keywords` parameter is `**kwargs`, and the parameters after it are taken from
there by name), binds and checks them as `cbdsl.compile` does, and compiles the rules for the
instance. Its docstring is the definition's, with its arguments and state. Given Keras's own
class of the same name, the generated class subclasses it too, so that `isinstance` against
Keras's class holds (Keras's `fit` then adds no History or progress bar of its own beside a
drop-in one) while every hook Keras's class defines and the rules do not use is Keras's no-op
default: only the rules run.

Instances read and write their state under Keras's names: each argument by its name (a write
binds it anew, as Keras's classes read their attributes at each event), state variables, a
named tracker, and for a callback with one tracker Keras's MonitorCallback attributes (`wait`,
`best`, `best_epoch`, `best_weights`, `cooldown_counter`, `monitor_op`); writes change the
state the rules then use, and `on_train_begin` starts it afresh as Keras's classes do.
"""

from __future__ import annotations

import inspect
import os
import types
from typing import Any

from cbdsl import language
from cbdsl.checker import REQUIRED, Definition
from cbdsl.compiler.binding import bind
from cbdsl.compiler.classes import class_bases, class_name, compile_definition, hook_events
from cbdsl.runtime.callback import TRACKER_ALIASES, make_hook, single_tracker

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")


def signature_of(definition: Definition, keras_class: type | None = None) -> inspect.Signature:
    """The Python signature of a definition's parameters (annotations as Keras's class has
    them, where it has the same parameter)."""
    theirs = inspect.signature(keras_class).parameters if keras_class is not None else {}
    params, rest = [], False
    for name, info in definition.params.items():
        if rest:
            continue  # given through the keywords parameter, by name
        annotation = theirs[name].annotation if name in theirs else inspect.Parameter.empty
        if info.type == "keywords":
            rest = True
            params.append(inspect.Parameter(name, inspect.Parameter.VAR_KEYWORD,
                                            annotation=annotation))
            continue
        # `schedule: schedule` with no default is none in rule files, and required from Python
        unwritten = info.default is None and info.type in ("python", "schedule") \
            and info.node is not None and info.node.default is None
        default = inspect.Parameter.empty if info.default is REQUIRED or unwritten \
            else info.default
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=default, annotation=annotation))
    return inspect.Signature(params)


def docstring_of(definition: Definition, signature: inspect.Signature) -> str:
    """The generated class's docstring: the definition's, its arguments, its state."""
    lines = [definition.doc or f"Compiled from the cbdsl rules of '{definition.name}'.", "",
             f"Generated from `{os.path.basename(definition.path)}` by cbdsl.", "", "Args:"]
    for name, param in signature.parameters.items():
        info = definition.params[name]
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            names = list(definition.params)
            extra = names[names.index(name) + 1:]  # given through it, by name
            lines.append(f"    **{name}: other keyword arguments"
                         + (f" ({', '.join(extra)})." if extra else "."))
        elif param.default is inspect.Parameter.empty:
            lines.append(f"    {name}: {info.type}.")
        else:
            default = language.rule_literal(param.default)
            lines.append(f"    {name}: {info.type}, default {default}.")
    attributes = [f"    {e.name.name}: read live, as `{_source(definition, e.value)}`."
                  for e in definition.exposures]
    attributes += [f"    {v.name.name}: a state variable of the rules."
                   for v in definition.variables]
    if attributes:
        lines += ["", "Attributes:", *attributes]
    return "\n".join(lines) + "\n"


def _source(definition: Definition, node: Any) -> str:
    """An expression as its rule file writes it."""
    span = node.span
    return " ".join(definition.source[span.start:span.end].split()) or "?"


def callback_class(definition: Definition, keras_class: type | None = None,
                   module: str = "cbdsl.callbacks") -> type:
    """Generate the callback class of one rule definition.

    Args:
        definition: a checked definition (from `CheckedProgram.definitions`).
        keras_class: Keras's own class to stand in for, if any: the generated class
            subclasses it (its hooks that the rules do not use left as Keras's no-ops).
        module: the `__module__` the class reports.

    Returns:
        A subclass of `keras.callbacks.Callback` whose instances build like Keras's class.
    """
    signature = signature_of(definition, keras_class)
    events, needs_epoch, counts_steps, records = hook_events(
        definition, {e.name for r in definition.rules for i in r.events
                     if (e := language.resolve_event(i.name)) is not None})
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _init(self, *args, **kwargs)

    # on `__init__`, not the class: a subclass with an `__init__` of its own shows its own
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = signature.replace(
        parameters=[self_parameter, *signature.parameters.values()])
    namespace: dict[str, Any] = {
        "definition": definition, "definition_name": definition.name,
        "init_signature": signature, "__doc__": docstring_of(definition, signature),
        "__module__": module, "__qualname__": class_name(definition.name),
        "__init__": __init__, "__setattr__": _setattr,
        "records": records,
        "exposure_targets": _exposure_targets(definition),
        "caller_hooks": _caller_hooks(definition),
    }
    hooks = set()
    for event in events:
        if event.level != "signal":
            namespace[event.hook] = make_hook(event, needs_epoch, counts_steps, records)
            hooks.add(event.hook)
    bases = class_bases(definition)
    if keras_class is not None and not any(issubclass(b, keras_class) for b in bases):
        bases += (keras_class,)
        import keras

        for klass in keras_class.__mro__:  # Keras's own logic never runs beside the rules
            if klass in (keras.callbacks.Callback, object):
                continue
            for name in vars(klass):  # its hooks, and what `fit` calls first (set_model, ...)
                if (name.startswith("on_") or name in ("set_model", "set_params")) \
                        and name not in hooks and hasattr(keras.callbacks.Callback, name):
                    namespace[name] = getattr(keras.callbacks.Callback, name)
    namespace["generated_hooks"] = {h: namespace[h] for h in hooks}
    return type(class_name(definition.name), bases, namespace)


def _caller_hooks(definition: Definition) -> frozenset[str]:
    """The `python` parameters named after a Keras hook (`on_epoch_end`) of a definition whose
    rules only call the caller's functions (LambdaCallback): a function given for one is that
    hook of the instance, as Keras's LambdaCallback sets it."""
    from keras.src.callbacks.callback import Callback

    from cbdsl.syntax import nodes as n
    from cbdsl.syntax.walk import flat_actions

    if not all(isinstance(a, n.CallPython) for r in definition.rules
               for a in flat_actions(r.actions)):
        return frozenset()
    return frozenset(name for name, info in definition.params.items()
                     if info.type == "python" and name.startswith("on_")
                     and callable(getattr(Callback, name, None)))


def _exposure_targets(definition: Definition) -> dict[str, str]:
    """What a write to an exposed attribute writes: the state variable or tracker field it
    shows (`expose wait = watch.wait`); an attribute computed otherwise cannot be written."""
    from cbdsl.syntax import nodes as n

    variables = {v.name.name for v in definition.variables}
    out = {}
    for exposure in definition.exposures:
        value = exposure.value
        if isinstance(value, n.Name) and (value.id in variables or value.id in definition.params):
            out[exposure.name.name] = value.id  # a parameter is bound anew
        elif isinstance(value, n.Attribute):
            out[exposure.name.name] = f"{value.value.name}.{value.attr.name}"
    return out


def _init(self, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    bound = cls.init_signature.bind(*args, **kwargs)  # Python's TypeError for a bad call
    bound.apply_defaults()
    definition = cls.definition
    given: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if cls.init_signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            given.update(value)  # `bind` sorts declared names from the rest
        else:
            given[name] = value
    values = bind(definition, {k: _plain(v) for k, v in given.items()}, cls.__name__)
    import keras

    keras.callbacks.Callback.__init__(self)  # not Keras's class's own: the rules are the logic
    object.__setattr__(self, "arguments", values)
    _install(self, values)
    self.timeline = []
    self.reset_state()


def _install(self, values: dict[str, Any]) -> None:
    """Compile the rules for these arguments into the instance; batch hooks whose rules all
    dropped out (a Python hook not given) are Keras's defaults again, as in Keras's class."""
    import keras

    cls = type(self)
    compiled = compile_definition(cls.definition, values, cls.__name__)
    for name, value in compiled.members().items():
        object.__setattr__(self, name, value)
    for hook in _BATCH_HOOKS:
        event = hook.removeprefix("on_")
        if hook in cls.generated_hooks and getattr(cls, hook) is cls.generated_hooks[hook] \
                and not compiled.rules_by_event.get(event) \
                and language.EVENTS[event] not in compiled.events:
            default = getattr(keras.callbacks.Callback, hook)
            object.__setattr__(self, hook, types.MethodType(default, self))
    for hook in cls.caller_hooks:  # the caller's function is the hook itself
        if values.get(hook) is not None:
            object.__setattr__(self, hook, values[hook])
        elif hook in self.__dict__ and not isinstance(self.__dict__[hook], types.MethodType):
            del self.__dict__[hook]


def _plain(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _setattr(self, name: str, value: Any) -> None:
    cls = type(self)
    state = self.__dict__.get("state")
    if state is None or name in cls.__dict__ or name in ("state", "timeline", "arguments"):
        object.__setattr__(self, name, value)
        return
    if name in self.exposed:
        if name in self.arguments:  # `expose min_delta = abs(min_delta)`: the argument
            values = bind(cls.definition, {**self.arguments, name: _plain(value)}, cls.__name__)
            object.__setattr__(self, "arguments", values)
            _install(self, values)
            return
        target = cls.exposure_targets.get(name)
        if target is None:
            source = os.path.basename(cls.definition.path)
            raise AttributeError(f"'{cls.__name__}.{name}' is computed by the rules "
                                 f"(`expose {name} = ...` in {source}); it cannot be set")
        name = target  # a state variable or a tracker field, written below
        if "." in name:
            tracker, field = name.split(".")
            setattr(state.trackers[tracker], field, value)
            return
    if name in self.arguments:  # bound anew: the rules read it from the next event on
        values = bind(cls.definition, {**self.arguments, name: _plain(value)}, cls.__name__)
        object.__setattr__(self, "arguments", values)
        _install(self, values)
        return
    if name in state.variables:
        state.variables[name] = value
        return
    if name in ("stopped_epoch", "step"):
        setattr(state, name, value)
        return
    if self.records and name == "history":
        state.history = value
        return
    tracker = single_tracker(self)
    if tracker is not None and name in TRACKER_ALIASES:
        setattr(tracker, TRACKER_ALIASES[name], value)
        return
    object.__setattr__(self, name, value)
