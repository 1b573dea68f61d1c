"""TensorBoard summaries and profiling, written with TensorFlow's summary API on any backend."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

import numpy as np

from cbdsl.runtime.effects.base import _fail, _resources


def _summary() -> Any:
    try:
        import tensorflow.summary as summary
    except ImportError:
        raise ImportError("TensorBoard summaries are written with TensorFlow: "
                          "pip install tensorflow (tensorflow-cpu)") from None
    return summary


def _writer(cb: Any, directory: str) -> Any:
    writers = _resources(cb).setdefault("writers", {})
    if directory not in writers:
        writers[directory] = _summary().create_file_writer(directory)
    return writers[directory]


def tensorboard_scalar(cb: Any, *, where: str, dir: Any, tag: Any, value: Any,
                       step: Any) -> str:
    with _writer(cb, str(dir)).as_default():
        _summary().scalar(str(tag), value, step=step)
    return ""


def tensorboard_push_writer(cb: Any, *, where: str, dir: Any, step: Any,
                            recording: Any = True) -> str:
    """Make a directory's writer the default one, with `step` the default step and `recording`
    the condition of every summary written, until `tensorboard.pop_writer()`: what Keras's
    TensorBoard does (`_push_writer`) so that summaries a model writes itself while training
    or evaluating (`tf.summary.scalar` in a layer's `call`) go to `train/` or `validation/`.
    As the class's, the condition is a callable and the step a Python int: a traced train
    function reads both as it is traced."""
    summary, recorded = _summary(), bool(recording)
    contexts = (_writer(cb, str(dir)).as_default(int(step)),
                summary.record_if(lambda: recorded))
    _resources(cb).setdefault("pushed", []).append(contexts)
    contexts[0].__enter__()
    contexts[1].__enter__()
    return ""


def tensorboard_pop_writer(cb: Any, *, where: str) -> str:
    """Restore the default writer, step and condition `tensorboard.push_writer` replaced."""
    pushed = _resources(cb).get("pushed")
    if pushed:
        contexts = pushed.pop()
        contexts[1].__exit__(*sys.exc_info())
        contexts[0].__exit__(*sys.exc_info())
    return ""


def tensorboard_histograms(cb: Any, *, where: str, dir: Any, step: Any,
                           images: Any = False) -> str:
    """Every weight of every layer as a histogram (and an image), as Keras's TensorBoard."""
    writer, summary = _writer(cb, str(dir)), _summary()
    with writer.as_default():
        for layer in cb.model.layers:
            for weight in layer.weights:
                name = weight.path.replace(":", "_")
                summary.histogram(f"{name}/histogram", weight, step=step)
                if images:
                    image = _weight_image(weight)
                    if image is not None:
                        summary.image(f"{name}/image", image, step=step)
        writer.flush()
    return f"histograms at step {step}"


def _weight_image(weight: Any) -> np.ndarray | None:
    """A weight as a batch of images: as Keras's TensorBoard lays biases, kernels, filters."""
    from keras import backend, ops

    image = ops.squeeze(weight)
    shape = image.shape
    if len(shape) == 1:  # a bias
        image = ops.reshape(image, [1, shape[0], 1, 1])
    elif len(shape) == 2:  # a dense kernel, wider than tall
        if shape[0] > shape[1]:
            image = ops.transpose(image)
            shape = image.shape
        image = ops.reshape(image, [1, shape[0], shape[1], 1])
    elif len(shape) == 3:  # a convolution's kernel
        if backend.image_data_format() == "channels_last":
            image = ops.transpose(image, [2, 0, 1])
            shape = image.shape
        image = ops.reshape(image, [shape[0], shape[1], shape[2], 1])
    image = ops.convert_to_numpy(image)
    return image if image.ndim == 4 and image.shape[-1] in (1, 3, 4) else None


def tensorboard_model_config(cb: Any, *, where: str, dir: Any) -> str:
    """The model's configuration at step 0, for the conceptual graph (Sequential, Functional)."""
    from keras.src.callbacks.tensorboard import keras_model_summary

    if type(cb.model).__name__ not in ("Functional", "Sequential"):
        return ""
    with _writer(cb, str(dir)).as_default():
        keras_model_summary("keras", cb.model, step=0)
    return "model summary"


def tensorboard_graph(cb: Any, *, where: str, dir: Any) -> str:
    train_fn = getattr(cb.model, "train_function", None)
    if not hasattr(train_fn, "function_spec"):  # a traced TensorFlow function only
        return ""
    fn = getattr(train_fn, "_concrete_stateful_fn", None) or \
        train_fn._concrete_variable_creation_fn
    with _writer(cb, str(dir)).as_default():
        _summary().graph(fn.graph)
    return "train graph"


def tensorboard_projector(cb: Any, *, where: str, dir: Any, metadata: Any = None) -> str:
    """The projector's configuration for the Embedding layers, as Keras's TensorBoard writes."""
    from google.protobuf import text_format
    from keras.layers import Embedding
    from tensorboard.plugins import projector

    config = projector.ProjectorConfig()
    left = dict(metadata) if isinstance(metadata, dict) else None
    for layer in cb.model.layers:
        if isinstance(layer, Embedding):
            embedding = config.embeddings.add()
            embedding.tensor_name = "layer_with_weights-0/embeddings/.ATTRIBUTES/VARIABLE_VALUE"
            if isinstance(metadata, str):
                embedding.metadata_path = metadata
            elif left is not None and layer.name in left:
                embedding.metadata_path = left.pop(layer.name)
    if left:
        raise _fail("Unrecognized `Embedding` layer names passed to "
                    "`keras.callbacks.TensorBoard` `embeddings_metadata` argument: "
                    f"{left.keys()}", where)
    os.makedirs(str(dir), exist_ok=True)
    with open(os.path.join(str(dir), "projector_config.pbtxt"), "w") as f:
        f.write(text_format.MessageToString(config))
    return "projector config"


def _profiling(cb: Any) -> Any:
    """The backend's profiler (`keras.src.backend.tensorboard`), or None where Keras's
    TensorBoard profiles nothing: JAX before Python 3.12 (with Keras's warning, once), and
    backends with no profiler (torch, numpy, openvino)."""
    from keras.src import backend

    if backend.backend() == "jax" and sys.version_info < (3, 12):
        if not _resources(cb).get("warned"):
            _resources(cb)["warned"] = True
            warnings.warn("Profiling with the jax backend requires python >= 3.12.",
                          stacklevel=2)
        return None
    return getattr(backend, "tensorboard", None)


def tensorboard_trace(cb: Any, *, where: str, dir: Any, on: Any, step: Any = 0) -> str:
    """Start the graph trace and the profiler, or write the trace (as `batch_<step>`) and stop
    the profiler, as Keras's TensorBoard does (a profiler that fails is logged, not raised)."""
    profiler, resources = _profiling(cb), _resources(cb)
    if profiler is None:
        return ""
    summary = _summary()
    if on:
        summary.trace_on(graph=True, profiler=False)
        if not resources.get("profiling"):
            try:
                profiler.start_trace(str(dir))
                resources["profiling"] = True
            except Exception as exc:  # as Keras: the training goes on without a profile
                logging.getLogger("keras").error("Failed to start profiler: %s", exc)
        return "trace on"
    with _writer(cb, str(dir)).as_default():
        summary.trace_export(name=f"batch_{int(step)}", step=int(step))
    if resources.pop("profiling", False):
        try:
            profiler.stop_trace(save=True)
        except Exception as exc:
            logging.getLogger("keras").error("Failed to stop profiler: %s", exc)
    return f"trace written at step {step}"


def tensorboard_batch_trace(cb: Any, *, where: str, on: Any, batch: Any = 0) -> str:
    """Mark a batch in the profile: begin (`on = true`) or end the step `batch`."""
    profiler, resources = _profiling(cb), _resources(cb)
    if profiler is None or not resources.get("profiling"):
        return ""
    if on:
        resources["batch_trace"] = profiler.start_batch_trace(batch)
    elif resources.get("batch_trace") is not None:
        profiler.stop_batch_trace(resources.pop("batch_trace"))
    return ""


def tensorboard_close(cb: Any, *, where: str) -> str:
    for writer in _resources(cb).pop("writers", {}).values():
        writer.close()
    return ""
