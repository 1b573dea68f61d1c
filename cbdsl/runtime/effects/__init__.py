"""The effects: progress bars, EMA swaps, backups and TensorBoard summaries, run by rule actions.

Each effect is called as `IMPLEMENTATIONS[name](cb, where=..., **arguments)` with the arguments
the checker bound (see `cbdsl.language.EFFECTS`, where each effect is described as data), and
returns the text its firing shows in the timeline ("" for none). Rule files decide when and
with what; an effect does the I/O, with Keras's and TensorFlow's own utilities where they have
one. Keras is imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from cbdsl.runtime.effects.backup import (
    backup_clear,
    backup_resume,
    backup_store,
    join_fit,
    run_deferred,
    take_restored,
)
from cbdsl.runtime.effects.base import EffectError
from cbdsl.runtime.effects.ema import ema_finalize, ema_swap
from cbdsl.runtime.effects.progress import progress_display_base, progress_start, progress_update
from cbdsl.runtime.effects.tensorboard import (
    tensorboard_batch_trace,
    tensorboard_close,
    tensorboard_graph,
    tensorboard_histograms,
    tensorboard_model_config,
    tensorboard_pop_writer,
    tensorboard_projector,
    tensorboard_push_writer,
    tensorboard_scalar,
    tensorboard_trace,
)

IMPLEMENTATIONS: dict[str, Callable[..., str]] = {
    "progress.start": progress_start,
    "progress.update": progress_update,
    "ema.swap": ema_swap,
    "ema.finalize": ema_finalize,
    "backup.store": backup_store,
    "backup.resume": backup_resume,
    "backup.clear": backup_clear,
    "tensorboard.scalar": tensorboard_scalar,
    "tensorboard.push_writer": tensorboard_push_writer,
    "tensorboard.pop_writer": tensorboard_pop_writer,
    "tensorboard.histograms": tensorboard_histograms,
    "tensorboard.model_config": tensorboard_model_config,
    "tensorboard.graph": tensorboard_graph,
    "tensorboard.projector": tensorboard_projector,
    "tensorboard.trace": tensorboard_trace,
    "tensorboard.batch_trace": tensorboard_batch_trace,
    "tensorboard.close": tensorboard_close,
}

__all__ = ["IMPLEMENTATIONS", "EffectError", "join_fit", "progress_display_base",
           "run_deferred", "take_restored"]
