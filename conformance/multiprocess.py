"""Compiled rules in real multi-process jobs on 127.0.0.1: two TensorFlow workers, two JAX ones.

A job is two processes on 127.0.0.1 that train one model together: TensorFlow's
`MultiWorkerMirroredStrategy` (a `TF_CONFIG` per worker, one CPU each), or JAX through
`keras.distribution.initialize` (a coordinator on 127.0.0.1, one CPU device per process) with a
`DataParallel` distribution over both processes' devices. Every process runs `fit` and the
callbacks, and writes what it saw to a JSON file of its own; the parent compares.

- `decisions`: ReduceLROnPlateau and EarlyStopping (`restore_best_weights`), each once as
  Keras's class and once as the rule file; the file actions (CSVLogger, RemoteMonitor to a
  local HTTP server, ModelCheckpoint, a `write`/`append` policy) as Keras's classes and as rule
  files; and, for the fault runs, BackupAndRestore with both policies, uninterrupted.
- `fault` (TensorFlow): the BackupAndRestore run again; in its first start one worker stops
  mid-epoch and the parent kills it with SIGKILL (and then the other, left waiting in a
  collective); the job is started again and resumes from the backup.
- `single`: the same runs in one plain process, the single-process reference.

Run: `KERAS_BACKEND=tensorflow python -m cbdsl.conformance.multiprocess` prints one JSON line,
the report of `run_backend`; `problems(report)` lists where it falls short.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

WORLD = 2  # processes in a job
EPOCHS = 12
KILL_AT = 4  # the epoch (0-based) in which the fault run's victim is killed, after 2 batches
VICTIM = 0  # the rank killed: the first process, the one that writes the backup
JOB_TIMEOUT = 300  # seconds one start of a job may take (two processes, every run)
RUNS = ("reduce_lr_on_plateau", "early_stopping", "files", "backup")


# -- what runs in each process ------------------------------------------------------------------


def _callbacks(run: str, who: str, rank: int, folder: Path, url: str) -> list[Any]:
    """The callbacks of one run: Keras's classes (`who="keras"`) or the rule files."""
    import keras

    from cbdsl import callbacks as drop_ins

    ns = keras.callbacks if who == "keras" else drop_ins
    if run == "reduce_lr_on_plateau":
        return [ns.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=1e-3,
                                     cooldown=1, verbose=1)]
    if run == "early_stopping":
        return [ns.EarlyStopping(monitor="val_loss", patience=2, min_delta=1e-3,
                                 restore_best_weights=True, verbose=1)]
    if run == "files":
        made = [
            ns.CSVLogger(str(folder / f"{who}-shared.csv")),  # one path for both processes
            ns.CSVLogger(str(folder / f"{who}-{rank}.csv")),  # a path per process
            ns.RemoteMonitor(root=url, path=f"/{who}", send_as_json=True),
            ns.ModelCheckpoint(str(folder / f"{who}-ckpt-{rank}" / "m-{epoch:02d}.keras"),
                               monitor="val_loss", save_best_only=True),
        ]
        if who == "cbdsl":
            import cbdsl

            made += cbdsl.compile(LOG_POLICY, path=str(folder / "epochs.log"))
        return made
    if run == "backup":
        # Keras's class writes its backup from every process: two processes writing one HDF5
        # file fail to lock it, so each has a folder of its own; the rule file writes from
        # the first process only, and every process reads that one backup
        backup = f"keras-backup-{rank}" if who == "keras" else "cbdsl-backup"
        return [ns.BackupAndRestore(str(folder / backup)),
                ns.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1,
                                     min_delta=1e-3, cooldown=2, verbose=1),
                ns.EarlyStopping(monitor="val_loss", patience=3, min_delta=5e-3,
                                 restore_best_weights=True, verbose=1)]
    raise ValueError(f"no run {run!r}; runs: {', '.join(RUNS)}")


LOG_POLICY = """
callback epoch_log(path = "epochs.log") {
  on train_begin do write "" to path
  on epoch_end do append json({"epoch": epoch, "loss": loss}) to path
}
"""

# the state that a resumed fit must have back, under the Keras class's attribute names
STATE_ATTRIBUTES = {"ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
                    "EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch")}


def _state_of(callbacks: list[Any]) -> list[dict[str, Any]]:
    out = []
    for cb in callbacks:
        values = {}
        for name in STATE_ATTRIBUTES.get(type(cb).__name__, ()):
            if hasattr(cb, name):
                value = getattr(cb, name)
                values[name] = float(value) if isinstance(value, float | np.floating) else value
        out.append(values)
    return out


class _Probe:
    """Learning rate, logs and the callbacks' state per epoch; in a fault run, the stop."""

    def __init__(self, callbacks: list[Any], trace: Path | None, stop_at: tuple[int, int] | None,
                 marker: Path | None):
        import keras

        self.epochs: list[dict[str, Any]] = []
        self.callbacks, self.trace, self.stop_at, self.marker = callbacks, trace, stop_at, marker
        self.epoch = 0
        probe = self

        class Probe(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                probe.epoch = epoch
                probe.begin_state = _state_of(probe.callbacks)

            def on_train_batch_begin(self, batch, logs=None):
                if probe.stop_at == (probe.epoch, batch):  # wait here to be killed
                    assert probe.marker is not None
                    probe.marker.write_text(str(os.getpid()))
                    time.sleep(JOB_TIMEOUT)

            def on_epoch_end(self, epoch, logs=None):
                lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                entry = {"epoch": epoch, "lr": lr, "begin_state": probe.begin_state,
                         "logs": {k: float(v) for k, v in (logs or {}).items()}}
                probe.epochs.append(entry)
                if probe.trace is not None:  # kept whole when the process is killed
                    with probe.trace.open("a", encoding="utf-8") as f:
                        f.write(json.dumps(entry) + "\n")

        self.callback = Probe()


def _data(rank: int, world: int) -> tuple[Any, Any, dict[str, Any]]:
    """The seeded data of `cbdsl.conformance.fit`, as each backend's data-parallel fit takes
    it; the global batch of every step holds the same 16 samples as in one process."""
    import keras

    from cbdsl.conformance.fit import data

    x, y = data()
    train, val = (x[:72], y[:72]), (x[72:], y[72:])
    backend = keras.backend.backend()
    if world == 1:
        return train, val, {"batch_size": 16}
    if backend == "tensorflow":  # the global batch, split between the workers by TensorFlow
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = \
            tf.data.experimental.AutoShardPolicy.DATA

        def dataset(xy):
            return tf.data.Dataset.from_tensor_slices(xy).batch(16).with_options(options)

        return (dataset(train), None), dataset(val), {}
    # JAX: each process gives its half of every batch (`auto_shard_dataset=False`)
    return ((train[0][rank::world], train[1][rank::world]),
            (val[0][rank::world], val[1][rank::world]), {"batch_size": 16 // world})


def _train(make: Callable[[], list[Any]], scope: Callable[[], Any], rank: int, world: int, *,
           trace: Path | None = None, stop_at: tuple[int, int] | None = None,
           marker: Path | None = None) -> dict[str, Any]:
    import io

    import keras

    keras.utils.set_random_seed(11)
    with scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2), loss="mse")
    callbacks = make()
    probe = _Probe(callbacks, trace, stop_at, marker)
    (x, y), val, extra = _data(rank, world)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        history = model.fit(x, y, validation_data=val, epochs=EPOCHS, shuffle=False, verbose=0,
                            callbacks=[*callbacks, probe.callback], **extra)
    return {
        "lr": [e["lr"] for e in probe.epochs],
        "epochs": [e["epoch"] for e in probe.epochs],
        "begin_state": [e["begin_state"] for e in probe.epochs],
        "val_loss": [e["logs"].get("val_loss") for e in probe.epochs],
        "history_epoch": list(history.epoch),
        "printed": out.getvalue(),
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
        "end_state": _state_of(callbacks),
    }


def keras_multi_worker_fixes() -> None:
    """Let Keras 3's TensorFlow `fit` run under `MultiWorkerMirroredStrategy` at all.

    Keras 3 (3.15 here) fails there twice before a callback runs: its symbolic build reduces a
    nested batch of per-replica values, which the collective strategy refuses ("Attempt to
    convert a value (PerReplica...)"), and it averages each step's scalar logs across the
    workers along an axis they do not have ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388). Both are mended here, in the job's processes
    only, the logs averaged over the workers as the strategy means: the callbacks (Keras's and
    the rule files' alike) then see one value, the same on every worker.
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(
                strategy):
            def mean(v: Any) -> Any:
                if not isinstance(v, tf.distribute.DistributedValues):
                    return v
                rank = strategy.experimental_local_results(v)[0].shape.rank
                return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    def _maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build


def _join(backend: str, rank: int, world: int, ports: list[int]) -> Callable[[], Any]:
    """Join the job (before the backend computes anything); the scope models are built in."""
    if world == 1:
        return contextlib.nullcontext
    if backend == "tensorflow":
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": rank}})
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        assert strategy.num_replicas_in_sync == world, strategy.num_replicas_in_sync
        keras_multi_worker_fixes()
        return strategy.scope
    if backend == "jax":
        import keras

        keras.distribution.initialize(f"127.0.0.1:{ports[0]}", world, rank)
        devices = keras.distribution.list_devices("cpu")
        assert len(devices) == world, devices
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
        return contextlib.nullcontext
    raise SystemExit(f"no multi-process job for the {backend} backend here")


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One process of a job: join it, train its runs, return what it saw."""
    import keras

    backend = keras.backend.backend()
    folder = Path(args.folder)
    scope = _join(backend, args.rank, args.world, args.ports)
    results: dict[str, Any] = {"backend": backend, "rank": args.rank, "world": args.world,
                               "pid": os.getpid(), "runs": {}}
    if args.job == "fault":
        stop_at = (KILL_AT, 2) if args.kill and args.rank == VICTIM else None
        results["runs"]["backup"] = {args.who: _train(
            lambda: _callbacks("backup", args.who, args.rank, folder, args.url), scope,
            args.rank, args.world, trace=folder / f"trace-{args.who}-{args.rank}.jsonl",
            stop_at=stop_at, marker=folder / "killme")}
        return results
    for run in RUNS:
        runs = results["runs"][run] = {}
        for who in ("keras", "cbdsl"):
            sub = folder / run
            sub.mkdir(exist_ok=True)
            runs[who] = _train(lambda run=run, who=who, sub=sub: _callbacks(
                run, who, args.rank, sub, args.url), scope, args.rank, args.world)
    return results


# -- the parent: jobs started, bounded, cleaned up ----------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (each bound once by the system, then let go)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cannot_run(backend: str) -> str | None:
    """Why the installed `backend` cannot run a multi-process job on the CPU; None if it can."""
    if importlib.util.find_spec(backend) is None:
        return f"{backend} is not installed (pip install 'cbdsl[{backend}]')"
    if backend == "jax":
        import jax

        if "jax_cpu_collectives_implementation" not in jax.config.values:
            return (f"jax {jax.__version__} has no collectives between processes on the CPU; "
                    "a jax with the option jax_cpu_collectives_implementation has them "
                    "(jax 0.10.2 does, gloo by default)")
    elif backend == "torch":
        return "the torch backend has no multi-process job here"
    return None


def _env(backend: str) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "",
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
           "XLA_FLAGS": ""}
    env.pop("TF_CONFIG", None)
    if backend == "jax":
        import jax

        if jax.config.values.get("jax_cpu_collectives_implementation") in (None, "none"):
            env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    return env


class JobError(RuntimeError):
    """A process of a job failed or ran out of time: its status and the end of its stderr."""


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def start_job(backend: str, folder: Path, *, job: str = "decisions", world: int = WORLD,
              who: str = "cbdsl", kill: bool = False, url: str = "",
              timeout: float = JOB_TIMEOUT) -> list[dict[str, Any] | None]:
    """Start the `world` processes of a job, wait for them (at most `timeout` seconds) and
    return what each reported, by rank.

    With `kill`, the victim process stops mid-epoch and writes a marker; it is then killed
    with SIGKILL, the other process a few seconds later if it is still waiting, and their
    reports are None. Each process runs in a session of its own; whatever happens, no process
    of the job outlives this call.

    Raises:
        JobError: a process exited with an error or the job ran out of time.
    """
    ports = free_ports(world)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "killme"
    marker.unlink(missing_ok=True)
    processes, logs = [], []
    try:
        for rank in range(world):
            log = (folder / f"{job}-{who}-{rank}.err").open("w+", encoding="utf-8")
            logs.append(log)
            command = [sys.executable, "-m", "cbdsl.conformance.multiprocess", "--worker",
                       "--job", job, "--rank", str(rank), "--world", str(world), "--ports",
                       *map(str, ports), "--folder", str(folder), "--who", who, "--url", url,
                       "--out", str(folder / f"{job}-{who}-{rank}.json")]
            if kill:
                command.append("--kill")
            processes.append(subprocess.Popen(command, env=_env(backend), stdout=log,
                                              stderr=subprocess.STDOUT,
                                              start_new_session=True))
        deadline = time.monotonic() + timeout
        killed = False
        while any(p.poll() is None for p in processes):
            if time.monotonic() > deadline:
                raise JobError(f"the {backend} {job} job ran past {timeout:.0f}s"
                               + _tails(logs))
            if kill and not killed and marker.exists():
                os.kill(processes[VICTIM].pid, signal.SIGKILL)
                killed = True
                survivor_deadline = time.monotonic() + 10
                while time.monotonic() < survivor_deadline and any(
                        p.poll() is None for p in processes):
                    time.sleep(0.2)
                for p in processes:  # left waiting for the killed one in a collective
                    _kill(p)
                    p.wait()
                break
            time.sleep(0.2)
        if kill and not killed:
            raise JobError(f"the {backend} {job} job ended before its worker was killed"
                           + _tails(logs))
        if kill:
            return [None] * world
        for rank, p in enumerate(processes):
            if p.returncode != 0:
                raise JobError(f"process {rank} of the {backend} {job} job exited with status "
                               f"{p.returncode}" + _tails(logs))
        return [json.loads((folder / f"{job}-{who}-{rank}.json").read_text(encoding="utf-8"))
                for rank in range(world)]
    finally:
        for p in processes:
            _kill(p)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        for log in logs:
            log.close()


def _tails(logs: list[Any]) -> str:
    out = []
    for rank, log in enumerate(logs):
        log.flush()
        log.seek(0)
        lines = [line for line in log.read().splitlines() if line.strip()][-15:]
        out.append(f"\n--- process {rank}:\n" + "\n".join(lines))
    return "".join(out)


class Posts:
    """A local HTTP server on 127.0.0.1 that keeps every POST: `(path, body)`."""

    def __init__(self) -> None:
        received = self.received = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append((self.path, body.decode("utf-8")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Posts:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _files(folder: Path) -> dict[str, Any]:
    """What the `files` runs left: each file's text, or the weights of each saved model."""
    import keras

    out: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            continue
        name = str(path.relative_to(folder))
        if path.suffix == ".keras":
            model = keras.saving.load_model(path, compile=False)
            out[name] = [np.asarray(w).tolist() for w in model.get_weights()]
        else:
            out[name] = path.read_text(encoding="utf-8")
    return out


@contextlib.contextmanager
def _folder(folder: str | Path | None) -> Iterator[Path]:
    if folder is not None:
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory() as made:
        yield Path(made)


def run_backend(backend: str, folder: str | Path | None = None,
                timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    """Every job of `backend`: the single-process reference, the two-process `decisions` job
    and (TensorFlow) the fault runs; the report `problems` reads.

    Args:
        backend: `tensorflow` or `jax`.
        folder: where the jobs write (a temporary folder, removed after, when None).
        timeout: seconds each start of a job may take.

    Returns:
        `{backend, skipped}` when the backend cannot run a multi-process job here; else
        `{backend, world, single, ranks, posts, files, fault, wall_s, versions}`.
    """
    why = cannot_run(backend)
    if why:
        return {"backend": backend, "skipped": why}
    started = time.perf_counter()
    with _folder(folder) as root, Posts() as posts:
        single = start_job(backend, root / "single", world=1, url=posts.url,
                           timeout=timeout)[0]
        single_posts = list(posts.received)
        posts.received.clear()
        ranks = start_job(backend, root / "job", url=posts.url, timeout=timeout)
        report: dict[str, Any] = {
            "backend": backend, "world": WORLD, "single": single, "ranks": ranks,
            "posts": list(posts.received), "single_posts": single_posts,
            "files": _files(root / "job" / "files"),
            "single_files": _files(root / "single" / "files"), "fault": None}
        if backend == "tensorflow":
            report["fault"] = _fault(backend, root / "fault", posts.url, timeout)
    report["versions"] = _versions(backend)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def _fault(backend: str, root: Path, url: str, timeout: float) -> dict[str, Any]:
    """Per policy: a first start killed mid-training, a second that resumes; the traces of
    every rank, both starts together, and what each process reported at its end."""
    out = {}
    for who in ("keras", "cbdsl"):
        start_job(backend, root, job="fault", who=who, kill=True, url=url, timeout=timeout)
        first = {rank: _trace(root / f"trace-{who}-{rank}.jsonl") for rank in range(WORLD)}
        ranks = start_job(backend, root, job="fault", who=who, url=url, timeout=timeout)
        both = {rank: _trace(root / f"trace-{who}-{rank}.jsonl") for rank in range(WORLD)}
        out[who] = {"first_epochs": {r: len(first[r]) for r in first},
                    "trace": both, "ranks": ranks}
    return out


def _trace(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _versions(backend: str) -> dict[str, str]:
    import importlib.metadata

    names = ["keras", backend] + (["jaxlib"] if backend == "jax" else [])
    out = {}
    for name in names:
        for dist in (name, f"{name}-cpu"):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                out[name] = importlib.metadata.version(dist)
                break
    return out


# -- what must hold -----------------------------------------------------------------------------


def _close(a: Any, b: Any, rel: float = 1e-4, abs_: float = 1e-5) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rel, abs_) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel, abs_) for k in a)
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    return a == b


DECIDED = ("lr", "epochs", "history_epoch", "printed", "val_loss", "weights", "end_state")


def problems(report: dict[str, Any]) -> list[str]:
    """Where a `run_backend` report falls short of what a multi-process job must show; empty
    when all holds.

    - every process of the job makes the same decisions, with the same final weights, as
      Keras's classes in the same job, and the same as every other process;
    - the decisions (learning rates, stop epoch) equal the single-process run's, and the
      weights are close to them (the same sums, added in another order);
    - `write`, `append`, `write row` and `post` act once per event across the job; Keras's
      ModelCheckpoint and the rule file save the same models on every process;
    - the fault runs resume from the same epoch as Keras's class, with every rule's state and
      the learning rate as in the uninterrupted job, so that their traces are equal.
    """
    if report.get("skipped"):
        return []
    found: list[str] = []
    ranks, single = report["ranks"], report["single"]
    for run in RUNS:
        for rank, result in enumerate(ranks):
            pair = result["runs"][run]
            for key in DECIDED:
                if key == "end_state" and run == "files":
                    continue  # the rule files add a callback of their own there
                if pair["cbdsl"][key] != pair["keras"][key]:
                    found.append(f"{run}, process {rank}: {key} differs from Keras's class: "
                                 f"{_short(pair['cbdsl'][key])} != {_short(pair['keras'][key])}")
            if result["runs"][run] != ranks[0]["runs"][run]:
                found.append(f"{run}: process {rank} saw otherwise than process 0")
        theirs, ours = single["runs"][run]["keras"], ranks[0]["runs"][run]["cbdsl"]
        for key in ("lr", "epochs", "history_epoch", "end_state")[:3 if run == "files" else 4]:
            if not _close(ours[key], theirs[key]):
                found.append(f"{run}: {key} differs from the single-process run: "
                             f"{_short(ours[key])} != {_short(theirs[key])}")
        if not _close(ours["weights"], theirs["weights"]):
            found.append(f"{run}: the final weights are not those of the single-process run")
    found += _file_problems(report)
    if report.get("fault") is not None:
        found += _fault_problems(report)
    return found


def _file_problems(report: dict[str, Any]) -> list[str]:
    found = []
    files, single_files = report["files"], report["single_files"]
    epochs = len(report["ranks"][0]["runs"]["files"]["cbdsl"]["epochs"])
    # write row: one line per epoch in the shared file, and only the first process's own file
    if len(files.get("cbdsl-shared.csv", "").splitlines()) != len(
            single_files.get("cbdsl-shared.csv", "").splitlines()):
        found.append("write row: the shared CSV file has not the single-process run's lines")
    if files.get("cbdsl-shared.csv") != files.get("keras-0.csv"):
        found.append("write row: the shared CSV file is not what Keras's CSVLogger writes on "
                     "the first process")
    if "cbdsl-0.csv" not in files or any(f"cbdsl-{r}.csv" in files
                                         for r in range(1, report["world"])):
        found.append("write row: a process other than the first wrote its own CSV file, or "
                     "the first did not")
    # write and append: one line per epoch
    lines = [json.loads(line) for line in files.get("epochs.log", "").splitlines()]
    if [line["epoch"] for line in lines] != list(range(epochs)):
        found.append(f"append: {len(lines)} lines for {epochs} epochs in epochs.log")
    # post: once per epoch from the rule file, with what Keras's RemoteMonitor sends
    ours = [body for path, body in report["posts"] if path == "/cbdsl"]
    theirs = [body for path, body in report["posts"] if path == "/keras"]
    if len(ours) != epochs:
        found.append(f"post: {len(ours)} requests for {epochs} epochs")
    if sorted(ours * report["world"]) != sorted(theirs):
        found.append("post: the requests differ from those of Keras's RemoteMonitor")
    # save model: the same files with the same weights as Keras's ModelCheckpoint
    for rank in range(report["world"]):
        keras_saved = {k.split("/", 1)[1]: v for k, v in files.items()
                       if k.startswith(f"keras-ckpt-{rank}/")}
        ours_saved = {k.split("/", 1)[1]: v for k, v in files.items()
                      if k.startswith(f"cbdsl-ckpt-{rank}/")}
        if not keras_saved or ours_saved != keras_saved:
            found.append(f"save model, process {rank}: {sorted(ours_saved)} differ from "
                         f"ModelCheckpoint's {sorted(keras_saved)}")
    return found


def _fault_problems(report: dict[str, Any]) -> list[str]:
    found = []
    fault = report["fault"]
    for rank in range(report["world"]):
        reference = report["ranks"][rank]["runs"]["backup"]["cbdsl"]
        trace = fault["cbdsl"]["trace"][rank]
        resumed_at = fault["cbdsl"]["ranks"][rank]["runs"]["backup"]["cbdsl"]["epochs"][:1]
        keras_at = fault["keras"]["ranks"][rank]["runs"]["backup"]["keras"]["epochs"][:1]
        if resumed_at != keras_at or resumed_at != [KILL_AT]:
            found.append(f"backup, process {rank}: resumed at {resumed_at}, Keras's class at "
                         f"{keras_at}, killed in epoch {KILL_AT}")
        done = [{k: e[k] for k in ("epoch", "lr", "begin_state")} for e in trace
                if e["epoch"] < (resumed_at or [0])[0]] + \
            _trace_of(fault["cbdsl"]["ranks"][rank]["runs"]["backup"]["cbdsl"])
        expected = _trace_of(reference)
        if done != expected:
            found.append(f"backup, process {rank}: the killed and resumed job's trace differs "
                         f"from the uninterrupted one's:\n  {_short(done)}\n  "
                         f"{_short(expected)}")
        resumed = fault["cbdsl"]["ranks"][rank]["runs"]["backup"]["cbdsl"]
        if resumed["end_state"] != reference["end_state"] or not _close(
                resumed["weights"], reference["weights"]):
            found.append(f"backup, process {rank}: the resumed job ends otherwise than the "
                         "uninterrupted one")
    return found


def _trace_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"epoch": e, "lr": lr, "begin_state": s} for e, lr, s in
            zip(result["epochs"], result["lr"], result["begin_state"], strict=True)]


def _short(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 400 else text[:397] + "..."


def main(argv: list[str] | None = None) -> int:
    """`python -m cbdsl.conformance.multiprocess`: the report of `KERAS_BACKEND`'s jobs (one
    JSON line); with `--worker`, one process of a job."""
    parser = argparse.ArgumentParser(prog="python -m cbdsl.conformance.multiprocess")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--job", default="decisions", choices=("decisions", "fault"))
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world", type=int, default=WORLD)
    parser.add_argument("--ports", type=int, nargs="+", default=[])
    parser.add_argument("--folder")
    parser.add_argument("--who", default="cbdsl", choices=("keras", "cbdsl"))
    parser.add_argument("--url", default="")
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args)
        Path(args.out).write_text(json.dumps(result), encoding="utf-8")
        return 0
    report = run_backend(os.environ.get("KERAS_BACKEND", "tensorflow"))
    report["problems"] = problems(report)
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
