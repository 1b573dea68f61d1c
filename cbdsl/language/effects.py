"""Effects as data: each runtime I/O primitive's name, typed arguments, events and meaning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cbdsl.language.types import rule_literal

# ------------------------------------------------------------------ effects

# Effects: the runtime's input/output primitives, written `group.name(args)` as actions
# (`progress.update(seen, values = logs)`). Rule files decide when and with what; an effect
# only does the I/O, with Keras's own utilities where Keras has one.


@dataclass(frozen=True)
class EffectParam:
    """One argument of an effect: its name, type (`str`, `number`, `bool`, `table`, `any`)."""

    name: str
    type: str
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Effect:
    """A runtime primitive with side effects, called as an action.

    Attributes:
        name: `group.name`, as written in rule files.
        params: the arguments, positional in this order, or by keyword.
        doc: what it does, in one sentence.
        events: the events where it may run (None: any event).
        handles: the Python objects it keeps open, readable as the callback's attributes
            under these names (Keras's, such as ProgbarLogger's `progbar`); none before use.
        would: what a dry run reports instead of running it, after "would ": a template of
            its arguments (`{dir}`), where `{flag:if true|if false}` picks by a flag's truth.
    """

    name: str
    params: tuple[EffectParam, ...]
    doc: str
    events: frozenset[str] | None = None
    handles: tuple[str, ...] = ()
    would: str = ""

    def signature(self) -> str:
        args = [p.name if p.required else f"{p.name} = {rule_literal(p.default)}"
                for p in self.params]
        return f"{self.name}({', '.join(args)})"

    def would_do(self, arguments: dict[str, Any]) -> str:
        """What a dry run reports for a call with these (bound) arguments.

        Example: `EFFECTS["backup.clear"].would_do({"dir": "ckpt"})` is
        `"would remove the backup files in ckpt"`.
        """
        return "would " + self.would.format_map({k: _Shown(v) for k, v in arguments.items()})


class _Shown:
    """An argument as a dry run's report shows it: text as it is, `none`, `true`, `false`;
    with the spec `a|b`, `a` when the value is true, else `b`."""

    def __init__(self, value: Any):
        self.value = value

    def __format__(self, spec: str) -> str:
        if "|" in spec:
            yes, no = spec.split("|", 1)
            return yes if self.value else no
        if self.value is None or isinstance(self.value, bool):
            return rule_literal(self.value)
        return format(self.value, spec)


def _opt(name: str, type_: str, default: Any = None) -> EffectParam:
    return EffectParam(name, type_, False, default)


EFFECTS: dict[str, Effect] = {
    e.name: e
    for e in [
        Effect("progress.start", (EffectParam("target", "number"), _opt("verbose", "number", 1)),
               "draw a new progress bar (Keras's Progbar) of `target` steps (none: unknown)",
               handles=("progbar",), would="draw a new progress bar"),
        Effect("progress.update", (EffectParam("current", "number"), _opt("values", "table"),
                                   _opt("finalize", "bool", False), _opt("target", "number"),
                                   _opt("verbose", "number", 1)),
               "move the progress bar to step `current`, showing `values`; `finalize` ends the "
               "bar, first setting its target when one is given (a bar of `target` and "
               "`verbose` is drawn when none was started)", handles=("progbar",),
               would="move the progress bar to step {current}{finalize: and end it|}"),
        Effect("ema.swap", (), "exchange the model's trainable weights and the optimizer's "
               "moving averages of them (an optimizer with use_ema=True)",
               would="swap the model's weights with the EMA weights (the optimizer's moving "
               "averages)"),
        Effect("ema.finalize", (), "set the optimizer's moving averages to the model's weights",
               would="set the EMA weights (the optimizer's moving averages) to the model's "
               "weights"),
        Effect("backup.store", (EffectParam("dir", "str"), EffectParam("epochs_done", "number"),
                                _opt("batch_index", "number", 0),
                                _opt("keep_previous", "bool", False)),
               "back up the training state to a directory: the weights (with the optimizer's), "
               "the epochs done (where a resumed fit starts), the batch index, and the state of "
               "every compiled callback of the fit; "
               "`keep_previous` keeps the last backup beside the new one",
               frozenset({"epoch_end", "train_batch_end"}),
               would="back up the training state to {dir} (epochs done: {epochs_done})"),
        Effect("backup.resume", (EffectParam("dir", "str"),),
               "resume from a directory's backup, if there is one: the weights, the epoch to "
               "start at, and the state of every compiled callback (falls back to the kept "
               "previous backup when the latest cannot be read)", frozenset({"train_begin"}),
               would="resume from the backup in {dir}, if there is one"),
        Effect("backup.clear", (EffectParam("dir", "str"),),
               "remove a directory's backup files, and the directory when nothing else is in it",
               would="remove the backup files in {dir}"),
        Effect("tensorboard.scalar", (EffectParam("dir", "str"), EffectParam("tag", "str"),
                                      EffectParam("value", "number"), EffectParam("step", "any")),
               "write one scalar summary to the event file of a directory",
               would="write the scalar summary {tag} = {value} at step {step} to {dir}"),
        Effect("tensorboard.push_writer", (EffectParam("dir", "str"), EffectParam("step", "number"),
                                           _opt("recording", "bool", True)),
               "make a directory's event file the default one for the summaries a model writes "
               "itself, at `step`, recorded only while `recording` holds (as do the summaries "
               "written meanwhile), until `tensorboard.pop_writer()`",
               would="make the event file of {dir} the default one, at step {step}"),
        Effect("tensorboard.pop_writer", (),
               "put back the default event file, step and condition before the latest "
               "`tensorboard.push_writer`",
               would="put back the default event file that the latest push replaced"),
        Effect("tensorboard.histograms", (EffectParam("dir", "str"), EffectParam("step", "number"),
                                          _opt("images", "bool", False)),
               "write a histogram of every weight of every layer (and, with `images`, each "
               "weight as an image, as Keras's TensorBoard draws them)",
               would="write a histogram{images: and an image|} of every weight at step {step} "
               "to {dir}"),
        Effect("tensorboard.model_config", (EffectParam("dir", "str"),),
               "write the model's configuration (the Keras conceptual graph) at step 0",
               would="write the model's configuration to {dir}"),
        Effect("tensorboard.graph", (EffectParam("dir", "str"),),
               "write the graph of the model's train function (TensorFlow only)",
               would="write the graph of the model's train function to {dir}"),
        Effect("tensorboard.projector", (EffectParam("dir", "str"), _opt("metadata", "any")),
               "write the embedding projector's configuration for the model's Embedding layers",
               would="write the embedding projector's configuration to {dir}"),
        Effect("tensorboard.trace", (EffectParam("dir", "str"), EffectParam("on", "bool"),
                                     _opt("step", "number", 0)),
               "start (`on = true`) or stop and write (at `step`) a profiler trace",
               would="{on:start a profiler trace in|stop the profiler trace and write it, at "
               "step {step}, to} {dir}"),
        Effect("tensorboard.batch_trace", (EffectParam("on", "bool"), _opt("batch", "number", 0)),
               "while the profiler runs, mark the start (`on = true`) or the end of a batch",
               would="mark the {on:start of batch {batch}|end of the batch} in the profiler trace"),
        Effect("tensorboard.close", (), "flush and close every event file this callback opened",
               would="flush and close the event files this callback opened"),
    ]
}

