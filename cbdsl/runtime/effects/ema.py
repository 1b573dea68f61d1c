"""EMA swaps: the model's weights and the optimizer's moving averages exchanged (SwapEMAWeights)."""

from __future__ import annotations

import functools
from typing import Any

from cbdsl.runtime.effects.base import _fail, _resources


@functools.cache
def _keras_swap_ema_weights() -> type:
    """Keras's own SwapEMAWeights, from the module that defines it: `keras.callbacks` is
    public and users may patch it (`keras.callbacks.SwapEMAWeights = cbdsl.callbacks...`)."""
    from keras.src.callbacks.swap_ema_weights import SwapEMAWeights

    return SwapEMAWeights


def _ema_swapper(cb: Any, where: str) -> Any:
    """Keras's own SwapEMAWeights, used for its swap arithmetic (bit-exact on each backend)."""
    optimizer = cb.model.optimizer
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if not hasattr(optimizer, "optimizers") and \
            not hasattr(optimizer, "_model_variables_moving_average"):
        raise _fail("SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                    f"Received: use_ema={getattr(optimizer, 'use_ema', False)}", where)
    swapper = _resources(cb).get("ema")
    if swapper is None:
        swapper = _resources(cb)["ema"] = _keras_swap_ema_weights()()
    swapper.set_model(cb.model)
    return swapper


def ema_swap(cb: Any, *, where: str) -> str:
    _ema_swapper(cb, where)._swap_variables()
    return "swap EMA weights"


def ema_finalize(cb: Any, *, where: str) -> str:
    _ema_swapper(cb, where)._finalize_ema_values()
    return "EMA weights set to the model's"
