"""The artifact specs of the callbacks built on effects, and the helpers their tests use."""

from cbdsl.conformance.artifacts import (
    backup_and_restore,
    progbar_logger,
    swap_ema_weights,
    tensorboard,
)
from cbdsl.conformance.artifacts.backup_and_restore import killed_then_resumed, train
from cbdsl.conformance.artifacts.models import fit_named, named_data, named_model, weights_of
from cbdsl.conformance.artifacts.tensorboard import read_logs

EFFECT_SPECS = (progbar_logger.SPEC, swap_ema_weights.SPEC, backup_and_restore.SPEC,
                tensorboard.SPEC)

# the names tests/test_artifact_effects.py uses for the named model and its fit
_model, _data, _fit, _weights = named_model, named_data, fit_named, weights_of

__all__ = ["EFFECT_SPECS", "killed_then_resumed", "read_logs", "train"]
