"""TensorBoard's scenarios: every summary written, read back with TensorBoard's own reader."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.models import fit_named, named_data, named_model
from cbdsl.conformance.artifacts.spec import SEED, Artifact, ArtifactSpec, Run, Scenario


def tensorboard(run: Run, *, epochs: int = 3, evaluate: bool = True, embedding: bool = False,
                custom_summary: bool = False, run_eagerly: bool = False,
                **arguments: Any) -> Artifact:
    """Fit with validation (then evaluate) with the callback writing to `logs/`; every
    summary read back with TensorBoard's reader. With `custom_summary` the model writes a
    summary of its own in a layer's `call` (`run_eagerly`: untraced)."""
    model = summary_model(run_eagerly) if custom_summary else named_model(embedding=embedding)
    log_dir = run.path("logs")
    callback = run.attempt(lambda: run.build(log_dir=log_dir, **arguments))
    if callback is None:
        return {}
    run.attempt(lambda: fit_named(model, [callback], epochs=epochs, embedding=embedding))
    if evaluate and run.error is None:
        x, y = named_data(embedding)
        run.attempt(lambda: model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[callback]))
    return {"logs": read_logs(log_dir)}


def summary_model(run_eagerly: bool = False) -> Any:
    """The named model with a first layer that writes `tf.summary.scalar("custom_summary",
    sum of its inputs)` as it is called, as in Keras's own TensorBoard test; compiled without
    XLA, where summaries cannot be written (a new model each time: a traced train function
    keeps the writer it was traced with)."""
    import keras
    import tensorflow as tf

    class CustomSummary(keras.layers.Layer):
        def call(self, x):
            value = keras.ops.sum(x)
            if keras.backend.backend() != "tensorflow":  # a tensor TensorFlow can read
                try:
                    value = keras.ops.convert_to_numpy(value)
                except Exception:  # traced (JAX building the model): no value to write
                    return x
            tf.summary.scalar("custom_summary", value)
            return x

        def compute_output_shape(self, input_shape):  # built without calling `call`
            return input_shape

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((4,), name="features"),
                              CustomSummary(name="summarize"),
                              keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(1, name="out")], name="net")
    model.compile(optimizer=keras.optimizers.SGD(0.1, name="sgd"), loss="mse", metrics=["mae"],
                  jit_compile=False, run_eagerly=run_eagerly)
    return model


def read_logs(log_dir: str) -> dict[str, Any]:
    """Each run folder's summaries, `{tag: [[step, value], ...]}`, read with TensorBoard's
    `EventAccumulator` (nothing purged); other files by name. Images and text as digests,
    tensors of more than 16 numbers as their shape and sum, speeds as `"timing"`, a profiled
    batch's graphs as `"trace"`."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    if not os.path.isdir(log_dir):
        return {}
    out: dict[str, Any] = {}
    for entry in sorted(os.listdir(log_dir)):
        folder = os.path.join(log_dir, entry)
        if not os.path.isdir(folder):
            out[entry] = Path(folder).read_text() if entry.endswith(".pbtxt") else "file"
            continue
        files = sorted(n for n in os.listdir(folder) if not n.startswith("events.out."))
        accumulator = ea.EventAccumulator(folder, size_guidance={ea.TENSORS: 0},
                                          purge_orphaned_data=False)
        accumulator.Reload()
        tags = accumulator.Tags()
        summaries: dict[str, Any] = {}
        for tag in tags.get("tensors", []):
            values = []
            for event in accumulator.Tensors(tag):
                array = tensor_util.make_ndarray(event.tensor_proto)
                # a profiled batch's graphs depend on what the process traced before
                values.append([event.step, "timing" if "steps_per_second" in tag
                               else "trace" if tag.startswith("batch_") and array.dtype == object
                               else _summary_value(array)])
            summaries[tag] = sorted(values, key=json.dumps)
        out[entry] = {"summaries": summaries, "graph": bool(tags.get("graph")),
                      "run_metadata": sorted(tags.get("run_metadata", [])), "files": files}
    return out


def _summary_value(array: np.ndarray) -> Any:
    if array.dtype == object:  # strings: images (PNG), a model's configuration (JSON)
        return [hashlib.sha256(x).hexdigest()[:16] if isinstance(x, bytes) else x
                for x in array.ravel().tolist()]
    if array.size > 16:
        return {"shape": list(array.shape), "sum": float(np.asarray(array, "float64").sum())}
    return array.tolist()


def _tensorflow() -> str | None:
    if importlib.util.find_spec("tensorflow") is None:
        return "TensorBoard summaries are written with TensorFlow: pip install tensorflow-cpu"
    if importlib.util.find_spec("tensorboard") is None:
        return "reading event files needs TensorBoard: pip install tensorboard"
    return None


def _tb(name: str, description: str, quick: bool = False, **params: Any) -> Scenario:
    return Scenario(name, description, tensorboard, params, quick=quick, needs=_tensorflow)


TENSORBOARD = "tensorboard"
TENSORBOARD_SCENARIOS = (
    _tb("defaults", "epoch summaries, the learning rate, the model's configuration and graph, "
        "evaluate's results against iterations", quick=True),
    _tb("every_batch", "update_freq='batch': every batch's logs too", update_freq="batch"),
    _tb("every_other_batch", "update_freq=2: batch logs at even steps, and whatever is "
        "written while an odd step's condition holds is not", update_freq=2),
    _tb("histograms_and_images", "histogram_freq=1, write_images=True: each weight's histogram "
        "and image every epoch", histogram_freq=1, write_images=True),
    _tb("histograms_every_other_epoch", "histogram_freq=2 and no graph", histogram_freq=2,
        write_graph=False),
    _tb("steps_per_second", "write_steps_per_second=True with update_freq=3 (values are "
        "timings: tags and steps compared)", write_steps_per_second=True, update_freq=3),
    _tb("embeddings", "embeddings_freq=1 with metadata: the projector's configuration and a "
        "weights file per epoch", embedding=True, embeddings_freq=1,
        embeddings_metadata={"embed": "words.tsv"}),
    _tb("profile", "profile_batch=2: the graph trace of batch 2 and the profiler's files (no "
        "profile on JAX before Python 3.12, the ValueError on torch)", profile_batch=2),
    # no evaluate after the fit: the test function traced in the fit keeps the fit's
    # validation writer, closed as the fit ends, and Keras's class fails there too
    _tb("custom_summary", "a layer writing tf.summary.scalar in call() with update_freq=1: "
        "train/ and validation/ are the default writers, at each batch's step (on TensorFlow "
        "a traced function keeps the step of the batch it was traced in)", update_freq=1,
        custom_summary=True, evaluate=False),
    _tb("custom_summary_every_other_batch", "the same with update_freq=2: even steps only "
        "(on TensorFlow, traced at step 1, nothing)", update_freq=2, custom_summary=True,
        evaluate=False),
    _tb("custom_summary_eagerly", "the same with update_freq=2, run eagerly, then evaluate: "
        "each batch's summaries at its own step, those of even steps recorded",
        update_freq=2, custom_summary=True, run_eagerly=True),
    _tb("custom_summary_per_epoch", "the same with update_freq='epoch': no default writer, "
        "what the model writes goes nowhere", custom_summary=True, evaluate=False),
    _tb("bad_profile_batch", "profile_batch='1,2,3': the ValueError", profile_batch="1,2,3"),
)


SPEC = ArtifactSpec(TENSORBOARD, "TensorBoard", TENSORBOARD_SCENARIOS)
