"""The specs: per built-in, the reference Keras class, the drop-in, and how cases build them."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Factory = Callable[..., Any]


@dataclass(frozen=True)
class Spec:
    """One callback specification.

    Attributes:
        name: the rule file's name (`early_stopping`).
        keras_name: the class name in `keras.callbacks` (or Keras 2's `tf_keras.callbacks`).
        keras2: whether the reference is Keras 2's (`tf_keras`), as for BaseLogger.
        rule_file_arguments: how the rule file itself (`--impl FILE.cbd`) takes the class's
            arguments where the language has no such value, as the drop-in passes them
            (BaseLogger's `stateful_metrics`, a list of names, as a table `{name: true}`);
            None where they are the same.
    """

    name: str
    keras_name: str
    keras2: bool = False
    rule_file_arguments: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def reference(self) -> Factory:
        """The reference class, or raise `LookupError` saying why it is not available."""
        if self.keras2:
            if importlib.util.find_spec("tf_keras") is None:
                raise LookupError(f"{self.keras_name} is Keras 2's: pip install tf-keras")
            import tf_keras

            return getattr(tf_keras.callbacks, self.keras_name)
        import keras

        return getattr(keras.callbacks, self.keras_name)

    def cbdsl(self) -> Factory:
        """The drop-in built from the rule file of the same name."""
        from cbdsl import callbacks

        return getattr(callbacks, self.keras_name)


def _names_as_table(arguments: dict[str, Any]) -> dict[str, Any]:
    """BaseLogger's `stateful_metrics` (names, or None) as the rule file takes it."""
    if "stateful_metrics" not in arguments:
        return arguments
    names = arguments["stateful_metrics"]
    return {**arguments, "stateful_metrics": {name: True for name in names or ()}}


SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("early_stopping", "EarlyStopping"),
    Spec("reduce_lr_on_plateau", "ReduceLROnPlateau"),
    Spec("terminate_on_nan", "TerminateOnNaN"),
    Spec("learning_rate_scheduler", "LearningRateScheduler"),
    Spec("history", "History"),
    Spec("base_logger", "BaseLogger", keras2=True, rule_file_arguments=_names_as_table),
    Spec("lambda_callback", "LambdaCallback"),
]}


def arguments(spec: str, params: dict[str, Any], calls: list, *, for_reference: bool
              ) -> dict[str, Any]:
    """The constructor arguments of a case's `params`, for the reference or a candidate.

    Two specs take Python functions, which a data file cannot hold:

    - `learning_rate_scheduler`: `schedule` is `{"table": {epoch: lr}}` (a step schedule),
      `{"exponential": [initial, rate]}` (`initial * rate ** epoch`) or
      `{"halve_after": epoch}` (`lr` until then, `lr / 2` after). The reference always gets
      a Python function; a candidate gets the table, the expression text or the same
      function, as `schedule_as` says (`python` by default).
    - `lambda_callback`: `hooks` lists hook names; each gets a function that appends
      `[hook, *args]` to `calls`.
    """
    params = dict(params)
    if spec == "learning_rate_scheduler":
        given, how = params.pop("schedule"), params.pop("schedule_as", "python")
        params["schedule"] = _schedule(given, how if not for_reference else "python")
    elif spec == "lambda_callback":
        params = {hook: _recorder(hook, calls) for hook in params.pop("hooks", [])}
    elif spec == "base_logger" and not for_reference and params.get("stateful_metrics"):
        params["stateful_metrics"] = list(params["stateful_metrics"])
    return params


def _schedule(given: dict[str, Any], how: str) -> Any:
    if "table" in given:
        table = {int(k): v for k, v in given["table"].items()}
        if how == "table":
            return table

        def step(epoch: int, lr: float) -> float:
            keys = [k for k in table if k <= epoch]
            return float(table[max(keys)]) if keys else lr
        return step
    if "exponential" in given:
        initial, rate = given["exponential"]
        if how == "text":
            return f"{initial!r} * {rate!r} ** epoch"
        return lambda epoch, lr: initial * rate ** epoch
    if "halve_after" in given:
        after = given["halve_after"]
        if how == "text":
            return f"lr if epoch < {after} else lr / 2"
        return lambda epoch, lr: lr if epoch < after else lr / 2
    if "returns" in given:  # a schedule that breaks Keras's contract (returns an int)
        value = given["returns"]
        return lambda epoch, lr: value
    raise ValueError(f"unknown schedule {given!r}")


def _recorder(hook: str, calls: list) -> Callable[..., None]:
    def record(*args: Any, **kwargs: Any) -> None:
        copy = [dict(a) if isinstance(a, dict) else a for a in args]
        if kwargs:  # how the hook was called is behaviour too: `logs=` by keyword or not
            copy.append({k: dict(v) if isinstance(v, dict) else v for k, v in kwargs.items()})
        calls.append([hook, *copy])
    return record
