"""BackupAndRestore's scenarios: a training killed with SIGKILL in a subprocess, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.models import fit_named, named_model, weights_of
from cbdsl.conformance.artifacts.spec import (
    Artifact,
    ArtifactSpec,
    Run,
    Scenario,
    describe_error,
)
from cbdsl.conformance.factories import factory_name, import_factory

KILL_TIMEOUT = 300  # seconds a killed or resumed training subprocess may take
# what the training subprocess runs (`main` below), by the module's name: importing it
# rather than running it with -m loads it once, as the package imports it too
ENTRY = ("import sys; from cbdsl.conformance.artifacts.backup_and_restore import main; "
         "main(sys.argv[1:])")


def backup_and_restore(run: Run, *, kill_at: int | None = 2, epochs: int = 5,
                       corrupt: bool = False, **arguments: Any) -> Artifact:
    """Train in a subprocess that is killed with SIGKILL as epoch `kill_at` begins, then
    start the same training again (here, on a fresh model), which resumes from the backup.
    The subprocess builds the callback from the factory's name (`factory_name`: `module:name`
    or a rule file's path), so the factory must have one.

    Returns:
        `backup`: the backup folder's files and their training metadata when the first
        process was killed; `resumed`: the epochs the second training ran and the weights it
        ended with; `left`: the files left when it finished.
    """
    backup = run.path("backup")
    run.calls.append({"backup_dir": backup, **arguments})
    spec = json.dumps({"factory": factory_name(run.factory), "arguments": arguments,
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
    command = [sys.executable, "-c", ENTRY, spec, str(kill_at)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    trace: list[Any] = []
    last = ""
    try:
        for line in process.stdout:
            if line.startswith("TRACE "):
                trace.append(json.loads(line[6:]))
            if line.strip() == "WAITING":
                break
            last = line.strip() or last
        else:
            raise RuntimeError(f"the training to kill ended first (exit {process.wait()})"
                               f"{_failure(last)}")
        process.send_signal(signal.SIGKILL)
        process.wait(KILL_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    return trace


def _failure(last: str) -> str:
    """What a training subprocess's result line (`main`) says went wrong, if anything."""
    try:
        error = json.loads(last).get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {error['type']}: {error['message']}" if isinstance(error, dict) else ""


def killed_then_resumed(spec: dict[str, Any], kill_at: int) -> list[Any]:
    """The trace of a training killed (SIGKILL, in a subprocess) as epoch `kill_at` begins,
    followed by the trace of the same training started again here, resuming from its backup.
    """
    before = _killed(json.dumps(spec), kill_at)
    return before + train(spec, None)["trace"]


def train(spec: dict[str, Any], kill_at: int | None) -> dict[str, Any]:
    """The training of `backup_and_restore`, in this process: a fresh seeded model, the
    callback under test (`factory`: `module:name` or a rule file, see `import_factory`), the
    `policies` of the spec (`[[name, arguments], ...]`, named the same way),
    and, with `kill_at`, a callback that waits to be killed as that epoch begins.

    At each epoch's end the trace gets `[epoch, learning rate, firings]`, the firings being
    the compiled policies' timeline entries of that epoch; each is also printed as a
    `TRACE` line, so that what a killed process did is known.
    """
    import keras

    class WaitToBeKilled(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == kill_at:
                print("WAITING", flush=True)
                signal.pause()

    model = named_model()
    trace: list[Any] = []

    def record(epoch: int, logs: Any = None) -> None:
        firings = [str(f) for p in policies for f in getattr(p, "timeline", ())
                   if f.epoch == epoch]
        lr = float(np.asarray(model.optimizer.learning_rate))
        trace.append([epoch, lr, firings])
        print("TRACE " + json.dumps(trace[-1]), flush=True)

    try:
        callback = import_factory(spec["factory"])(backup_dir=spec["backup_dir"],
                                                   **spec["arguments"])
        policies = [import_factory(name)(**arguments)
                    for name, arguments in spec.get("policies", ())]
        recorder = keras.callbacks.LambdaCallback(on_epoch_end=record)
        extra = [WaitToBeKilled()] if kill_at is not None else []
        history = fit_named(model, [callback, *policies, recorder, *extra], epochs=spec["epochs"])
    except Exception as error:  # refusing, or failing in a fit, is behaviour too
        return {"error": describe_error(error), "trace": trace}
    return {"resumed": {"epochs": history.epoch, "weights": weights_of(model)}, "trace": trace}


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

SPEC = ArtifactSpec(BACKUP, "BackupAndRestore", BACKUP_SCENARIOS)


def main(argv: list[str]) -> None:
    """`python -m cbdsl.conformance.artifacts.backup_and_restore SPEC [KILL_AT]`: one training of
    `backup_and_restore`; its result is the last line printed (JSON)."""
    spec = json.loads(argv[0])
    result = train(spec, int(argv[1]) if len(argv) > 1 else None)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
