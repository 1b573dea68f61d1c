"""`mode = "auto"` from a log's metric names: the directions Keras's built-in metrics declare."""

from __future__ import annotations

import re

# The names Keras 3 gives its built-in metrics and losses in the logs, with the direction each
# declares (`Metric._direction`: "up" maximises, "down" minimises), as `model.compile` makes
# them from strings and classes. `tests/test_replay_sweep.py` checks the table against Keras.
KERAS_METRIC_DIRECTIONS: dict[str, str] = {
    **dict.fromkeys((
        "accuracy", "acc", "binary_accuracy", "categorical_accuracy",
        "sparse_categorical_accuracy", "top_k_categorical_accuracy",
        "sparse_top_k_categorical_accuracy", "auc", "precision", "recall",
        "precision_at_recall", "recall_at_precision", "sensitivity_at_specificity",
        "specificity_at_sensitivity", "f1_score", "fbeta_score", "r2_score", "io_u",
        "binary_io_u", "mean_io_u", "one_hot_io_u", "one_hot_mean_io_u",
        "pearson_correlation", "concordance_correlation", "cosine_similarity"), "up"),
    **dict.fromkeys((
        "loss", "mean_squared_error", "mse", "mean_absolute_error", "mae",
        "mean_absolute_percentage_error", "mape", "mean_squared_logarithmic_error", "msle",
        "root_mean_squared_error", "logcosh", "log_cosh_error", "hinge", "squared_hinge",
        "categorical_hinge", "kl_divergence", "kld", "poisson", "binary_crossentropy", "bce",
        "categorical_crossentropy", "sparse_categorical_crossentropy"), "down"),
}
_BY_LENGTH = sorted(KERAS_METRIC_DIRECTIONS, key=len, reverse=True)


def metric_direction(name: str) -> str | None:
    """The direction Keras's metric of that log name declares: `"up"`, `"down"`, or None.

    `val_` is dropped, and the `_1` Keras adds to a second metric of one kind; a multi-output
    model's `dense_accuracy` or `out_loss` goes by its metric's name (`loss` and `*_loss`
    minimise).

    Args:
        name: a metric's name in the logs (`val_accuracy`).
    """
    base = re.sub(r"_\d+$", "", name.removeprefix("val_"))
    if base in KERAS_METRIC_DIRECTIONS:
        return KERAS_METRIC_DIRECTIONS[base]
    for known in _BY_LENGTH:
        if base.endswith("_" + known):
            return KERAS_METRIC_DIRECTIONS[known]
    return None


def stand_in_metrics(names: list[str]) -> list[dict[str, str | None]]:
    """`StubModel`'s compiled-metric stand-ins for a log's names, each with its direction, so
    that the runtime resolves `mode = "auto"` from them as it does from a model's metrics."""
    seen = dict.fromkeys(re.sub(r"_\d+$", "", n.removeprefix("val_")) for n in names)
    seen.update(dict.fromkeys(n.removeprefix("val_") for n in names))
    return [{"name": n, "direction": metric_direction(n)} for n in seen
            if metric_direction(n) is not None]
