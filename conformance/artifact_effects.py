"""Artifact specs of the callbacks built on effects: ProgbarLogger, SwapEMAWeights,
BackupAndRestore and TensorBoard, each judged side by side with the Keras class.

ProgbarLogger's artifact is what it prints, with Keras's `Progbar` on a clock that advances a
fixed step per reading (so the lines, and which updates are drawn, do not depend on the
machine); SwapEMAWeights's the weights at each epoch's start and end, the validation losses and
what evaluate returns; BackupAndRestore's the backup's files, the epoch a restarted `fit`
resumes at and the weights it ends with, after a real subprocess was killed with SIGKILL
mid-training; TensorBoard's every summary read back from the event files with TensorBoard's
own reader (tags, steps and values; timings as their tags and steps only).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts import Artifact, ArtifactSpec, Run, Scenario

SEED = 3
KILL_TIMEOUT = 300  # seconds a killed or resumed training subprocess may take


def _model(embedding: bool = False, use_ema: bool = False) -> Any:
    """A small seeded regression model whose names are all given, so that two models made
    one after the other have the same configuration (TensorBoard writes it)."""
    import keras

    keras.utils.set_random_seed(SEED)
    if embedding:
        layers = [keras.Input((4,), name="tokens", dtype="int32"),
                  keras.layers.Embedding(10, 3, name="embed"), keras.layers.Flatten(name="flat"),
                  keras.layers.Dense(1, name="out")]
    else:
        layers = [keras.Input((4,), name="features"), keras.layers.Dense(3, name="hidden"),
                  keras.layers.Dense(1, name="out")]
    model = keras.Sequential(layers, name="net")
    optimizer = keras.optimizers.SGD(0.1, name="sgd", use_ema=use_ema, ema_momentum=0.9,
                                     ema_overwrite_frequency=None)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


def _data(embedding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """50 seeded samples: 3 batches of 16 for training and one of 10 for validation."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, (50, 4)).astype("int32") if embedding else \
        rng.random((50, 4)).astype("float32")
    y = (np.asarray(x, "float32").sum(axis=1, keepdims=True) / 4).astype("float32")
    return x, y


def _weights(model: Any) -> list:
    return [np.asarray(w).tolist() for w in model.get_weights()]


def _fit(model: Any, callbacks: list, *, epochs: int = 3, verbose: Any = 0,
         validation: bool = True, embedding: bool = False, **kwargs: Any) -> Any:
    x, y = _data(embedding)
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=verbose,
                     validation_split=0.2 if validation else 0.0, callbacks=callbacks, **kwargs)


# ------------------------------------------------------------------ ProgbarLogger


class _Clock:
    """`time` for Keras's Progbar: each reading 37.5 ms after the last."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        self.now += 0.0375
        return self.now


@contextlib.contextmanager
def _steady_clock():
    from keras.src.utils import progbar

    real, progbar.time = progbar.time, _Clock()
    try:
        yield
    finally:
        progbar.time = real


def _batches():
    """Batches from a generator: `fit` knows no number of steps."""
    x, y = _data()
    for start in range(0, 40, 16):
        yield x[start:start + 16], y[start:start + 16]


def progbar_logger(run: Run, *, verbose: Any = 1, epochs: int = 3, standalone: bool = False,
                   reuse: bool = False, unknown_steps: bool = False) -> Artifact:
    """Fit (and evaluate and predict) with the logger; the artifact is what was printed."""
    model = _model()
    with _steady_clock():
        logger = run.build()
        if unknown_steps:
            run.attempt(lambda: model.fit(_batches(), epochs=epochs, verbose=verbose,
                                          callbacks=[logger]))
        else:
            run.attempt(lambda: _fit(model, [logger], epochs=epochs, verbose=verbose))
        if standalone:
            x, y = _data()
            again = logger if reuse else run.build()
            run.attempt(lambda: model.evaluate(x, y, batch_size=16, verbose=verbose,
                                               callbacks=[again]))
            run.attempt(lambda: model.predict(x, batch_size=16, verbose=verbose,
                                              callbacks=[again]))
    return {}


PROGBAR = "progbar_logger"
PROGBAR_SCENARIOS = (
    Scenario("verbose_1", "fit with validation, verbose=1: a bar per epoch, drawn as batches "
             "end", progbar_logger, {"verbose": 1}, quick=True),
    Scenario("verbose_2", "verbose=2: one line per epoch", progbar_logger, {"verbose": 2}),
    Scenario("verbose_auto", "verbose='auto' draws as 1", progbar_logger, {"verbose": "auto"}),
    Scenario("one_epoch", "one epoch: no 'Epoch 1/1' line", progbar_logger, {"epochs": 1}),
    Scenario("evaluate_and_predict", "evaluate and predict on their own, each with a new "
             "logger: their bars", progbar_logger, {"epochs": 1, "standalone": True}),
    Scenario("reused_after_fit", "the logger of a fit, used again: evaluate stays silent, "
             "predict draws", progbar_logger, {"epochs": 1, "standalone": True, "reuse": True}),
    Scenario("unknown_steps", "a generator: the first epoch's bar learns the steps, later "
             "bars keep them", progbar_logger, {"unknown_steps": True}),
)


# ----------------------------------------------------------------- SwapEMAWeights


def swap_ema_weights(run: Run, *, use_ema: bool = True, swap_on_epoch: bool = False,
                     predict: bool = False) -> Artifact:
    """Fit with validation, then evaluate (and predict) with the callback; the weights seen
    at each epoch's start and end and as each evaluation begins (by a callback listed after:
    the weights evaluation runs on), after each call, and the losses validation and evaluate
    report."""
    import keras

    model = _model(use_ema=use_ema)
    seen: list[list] = []

    def probe(event: str):
        return lambda epoch, logs=None: seen.append([event, epoch, _weights(model)])

    class Watcher(keras.callbacks.Callback):
        on_epoch_begin = staticmethod(probe("epoch_begin"))
        on_epoch_end = staticmethod(probe("epoch_end"))

        def on_test_begin(self, logs=None):
            seen.append(["test_begin", None, _weights(model)])

    watcher = Watcher()
    swapper = run.build(swap_on_epoch=swap_on_epoch)
    history = run.attempt(lambda: _fit(model, [swapper, watcher]))
    out: dict[str, Any] = {"seen": seen, "history": history.history if history else None,
                           "after_fit": _weights(model)}
    if history is None:
        return out
    x, y = _data()
    out["evaluate"] = model.evaluate(x, y, batch_size=16, verbose=0,
                                     callbacks=[swapper, watcher])
    out["after_evaluate"] = _weights(model)
    if predict:
        out["predicted"] = np.asarray(model.predict(x[:4], verbose=0,
                                                    callbacks=[swapper])).tolist()
        out["after_predict"] = _weights(model)
        again = _fit(model, [swapper], epochs=1)
        out["next_fit"] = {"history": again.history, "weights": _weights(model)}
    return out


EMA = "swap_ema_weights"
EMA_SCENARIOS = (
    Scenario("evaluate", "validation and evaluate run on the averages, training on the "
             "trained weights", swap_ema_weights, quick=True),
    Scenario("swap_on_epoch", "the averages in the model from each epoch's end to the next "
             "epoch's start; training ends with them", swap_ema_weights,
             {"swap_on_epoch": True}),
    Scenario("predict_leaves_averages", "predict swaps the averages in and, as Keras's class "
             "does, never back: the next fit starts from them", swap_ema_weights,
             {"predict": True}),
    Scenario("no_ema", "an optimizer without use_ema: the ValueError at the first swap",
             swap_ema_weights, {"use_ema": False}),
)


# -------------------------------------------------------------- BackupAndRestore


def factory_path(factory: Any) -> str:
    """`module:name` of a factory, for a subprocess to import it."""
    return f"{factory.__module__}:{factory.__qualname__}"


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def backup_and_restore(run: Run, *, kill_at: int | None = 2, epochs: int = 5,
                       corrupt: bool = False, **arguments: Any) -> Artifact:
    """Train in a subprocess that is killed with SIGKILL as epoch `kill_at` begins, then
    start the same training again (here, on a fresh model), which resumes from the backup.

    Returns:
        `backup`: the backup folder's files and their training metadata when the first
        process was killed; `resumed`: the epochs the second training ran and the weights it
        ended with; `left`: the files left when it finished.
    """
    backup = run.path("backup")
    run.calls.append({"backup_dir": backup, **arguments})
    spec = json.dumps({"factory": factory_path(run.factory), "arguments": arguments,
                       "backup_dir": backup, "epochs": epochs})
    out: dict[str, Any] = {}
    if kill_at is not None:
        _killed(spec, kill_at)
        out["backup"] = _listing(backup)
        if corrupt:  # the latest weights cannot be read: the kept previous ones are used
            Path(backup, "latest.weights.h5").write_bytes(b"not an HDF5 file")
    result = train(json.loads(spec), None)  # resumed here, on a fresh model
    if "error" in result:
        run.error = result["error"]
    out["resumed"] = result.get("resumed")
    out["left"] = _listing(backup)
    return out


def _listing(folder: str) -> dict[str, Any] | None:
    if not os.path.isdir(folder):
        return None
    listing: dict[str, Any] = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith("cbdsl_"):
            continue  # the rules' own file (and its previous copy) is not Keras's
        if name.startswith("training_metadata.json"):
            data = json.loads(Path(path).read_text())
            listing[name] = {"epoch": data.get("epoch"), "batch": data.get("batch")}  # Keras's
        elif name.endswith((".h5", ".bkp")):
            listing[name] = "file"
    return listing


def _killed(spec: str, kill_at: int) -> list[Any]:
    """Run the training until epoch `kill_at` begins, then kill it with SIGKILL; the trace
    it printed until then (see `train`)."""
    command = [sys.executable, "-m", "cbdsl.conformance.artifact_effects", spec, str(kill_at)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    trace: list[Any] = []
    try:
        for line in process.stdout:
            if line.startswith("TRACE "):
                trace.append(json.loads(line[6:]))
            if line.strip() == "WAITING":
                break
        else:
            raise RuntimeError(f"the training to kill ended first (exit {process.wait()})")
        process.send_signal(signal.SIGKILL)
        process.wait(KILL_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    return trace


def killed_then_resumed(spec: dict[str, Any], kill_at: int) -> list[Any]:
    """The trace of a training killed (SIGKILL, in a subprocess) as epoch `kill_at` begins,
    followed by the trace of the same training started again here, resuming from its backup.
    """
    before = _killed(json.dumps(spec), kill_at)
    return before + train(spec, None)["trace"]


def train(spec: dict[str, Any], kill_at: int | None) -> dict[str, Any]:
    """The training of `backup_and_restore`, in this process: a fresh seeded model, the
    callback under test, the `policies` of the spec (`[[module:factory, arguments], ...]`),
    and, with `kill_at`, a callback that waits to be killed as that epoch begins.

    At each epoch's end the trace gets `[epoch, learning rate, firings]`, the firings being
    the compiled policies' timeline entries of that epoch; each is also printed as a
    `TRACE` line, so that what a killed process did is known.
    """
    import keras

    from cbdsl.conformance.artifacts import describe_error

    class WaitToBeKilled(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == kill_at:
                print("WAITING", flush=True)
                signal.pause()

    model = _model()
    trace: list[Any] = []

    def record(epoch: int, logs: Any = None) -> None:
        firings = [str(f) for p in policies for f in getattr(p, "timeline", ())
                   if f.epoch == epoch]
        lr = float(np.asarray(model.optimizer.learning_rate))
        trace.append([epoch, lr, firings])
        print("TRACE " + json.dumps(trace[-1]), flush=True)

    try:
        callback = _import(spec["factory"])(backup_dir=spec["backup_dir"], **spec["arguments"])
        policies = [_import(path)(**arguments) for path, arguments in spec.get("policies", ())]
        recorder = keras.callbacks.LambdaCallback(on_epoch_end=record)
        extra = [WaitToBeKilled()] if kill_at is not None else []
        history = _fit(model, [callback, *policies, recorder, *extra], epochs=spec["epochs"])
    except Exception as error:  # refusing, or failing in a fit, is behaviour too
        return {"error": describe_error(error), "trace": trace}
    return {"resumed": {"epochs": history.epoch, "weights": _weights(model)}, "trace": trace}


BACKUP = "backup_and_restore"
BACKUP_SCENARIOS = (
    Scenario("killed_and_resumed", "killed as epoch 3 begins: the new process resumes at "
             "epoch 3 with the weights of epoch 2's end", backup_and_restore, quick=True),
    Scenario("batch_frequency", "save_freq=2 (batches, across epochs): killed as epoch 3 "
             "begins, resumed from the last batch backup", backup_and_restore,
             {"save_freq": 2}),
    Scenario("double_checkpoint", "double_checkpoint=True and the latest weights unreadable: "
             "the previous backup is used", backup_and_restore,
             {"double_checkpoint": True, "corrupt": True}),
    Scenario("keep_checkpoint", "delete_checkpoint=False: the backup stays after training",
             backup_and_restore, {"delete_checkpoint": False}),
    Scenario("uninterrupted", "no backup to resume from: all epochs, and nothing left",
             backup_and_restore, {"kill_at": None}),
    Scenario("bad_save_freq", "save_freq='batch': the ValueError", backup_and_restore,
             {"kill_at": None, "save_freq": "batch"}),
)


# -------------------------------------------------------------------- TensorBoard


def tensorboard(run: Run, *, epochs: int = 3, evaluate: bool = True, embedding: bool = False,
                **arguments: Any) -> Artifact:
    """Fit with validation (then evaluate) with the callback writing to `logs/`; every
    summary read back with TensorBoard's reader."""
    model = _model(embedding=embedding)
    log_dir = run.path("logs")
    callback = run.attempt(lambda: run.build(log_dir=log_dir, **arguments))
    if callback is None:
        return {}
    run.attempt(lambda: _fit(model, [callback], epochs=epochs, embedding=embedding))
    if evaluate and run.error is None:
        x, y = _data(embedding)
        run.attempt(lambda: model.evaluate(x, y, batch_size=16, verbose=0, callbacks=[callback]))
    return {"logs": read_logs(log_dir)}


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
    _tb("bad_profile_batch", "profile_batch='1,2,3': the ValueError", profile_batch="1,2,3"),
)


EFFECT_SPECS = (
    ArtifactSpec(PROGBAR, "ProgbarLogger", PROGBAR_SCENARIOS),
    ArtifactSpec(EMA, "SwapEMAWeights", EMA_SCENARIOS),
    ArtifactSpec(BACKUP, "BackupAndRestore", BACKUP_SCENARIOS),
    ArtifactSpec(TENSORBOARD, "TensorBoard", TENSORBOARD_SCENARIOS),
)


def main(argv: list[str]) -> None:
    """`python -m cbdsl.conformance.artifact_effects SPEC [KILL_AT]`: one training of
    `backup_and_restore`; its result is the last line printed (JSON)."""
    spec = json.loads(argv[0])
    result = train(spec, int(argv[1]) if len(argv) > 1 else None)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
