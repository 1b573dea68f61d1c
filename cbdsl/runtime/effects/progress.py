"""Progress bars: Keras's Progbar, started and moved by rules (ProgbarLogger)."""

from __future__ import annotations

import functools
from typing import Any

from cbdsl.runtime.effects.base import _resources


def progress_start(cb: Any, *, where: str, target: Any, verbose: Any = 1) -> str:
    from keras.utils import Progbar

    # every metric shown as it is, as Keras's ProgbarLogger asks (stateless_metrics=set())
    _resources(cb)["progbar"] = Progbar(target=target, verbose=verbose, unit_name="step",
                                        stateless_metrics=set())
    return ""


def progress_update(cb: Any, *, where: str, current: Any, values: Any = None,
                    finalize: Any = False, target: Any = None, verbose: Any = 1) -> str:
    bar = _resources(cb).get("progbar")
    if bar is None:
        progress_start(cb, where=where, target=target, verbose=verbose)
        bar = _resources(cb)["progbar"]
    if finalize and target is not None:
        bar.target = target
    bar.update(current, list((values or {}).items()), finalize=bool(finalize))
    return ""


@functools.cache
def progress_display_base() -> type:
    """A base that marks a compiled callback as the fit's progress display.

    Keras adds its own `ProgbarLogger` to `fit` unless a callback is one; a callback whose
    rules draw the bar takes its place. Only the type is borrowed: every hook is
    `Callback`'s no-op, so the class's behaviour is its rules'. Both classes come from the
    modules that define them, which Keras's `CallbackList` tests against, not from the public
    `keras.callbacks`, which users may patch (`keras.callbacks.ProgbarLogger = ...`).
    """
    from keras.src.callbacks.callback import Callback
    from keras.src.callbacks.progbar_logger import ProgbarLogger

    base, plain = ProgbarLogger, Callback
    names = [k for k, v in vars(base).items()
             if callable(v) and (k.startswith("on_") or k in ("__init__", "set_params"))]
    return type("ProgressDisplay", (base,), {k: getattr(plain, k) for k in names})
