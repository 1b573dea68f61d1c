"""Runs the conformance suite on one Keras backend and device, in a process of its own.

Run: `KERAS_BACKEND=jax python -m cbdsl.conformance.worker --device cpu` (what `cbdsl conform`
does once per backend and device). The decision specs' rows run the `cases`, `differential`
and `fit` sections, the artifact specs' rows the `artifacts` section (the `--quick` subset with
`--quick`), the `distributed` row the multi-process jobs. Writes JSON lines on standard output:
`plan` (the work ahead), `progress`, then `result` (per row, per section, with failures and
timings) or `skipped` (the device is not there, and why). Everything else the libraries print
goes to standard error.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

STARTED = time.perf_counter()
SECTIONS = ("language", "cases", "differential", "fit", "artifacts", "distributed")
GPU_SECTIONS = ("cases", "fit")  # generated traces and the language do not touch the device
# the sections of each kind of row: the language, a decision spec, an artifact spec
DECISION_SECTIONS = ("cases", "differential", "fit")
ARTIFACT_SECTIONS = ("artifacts",)
DISTRIBUTED = "distributed"  # the row and its one section: the multi-process jobs
# rough seconds per unit of work on a CPU, so the progress bar moves evenly
COST = {"language": 0.005, "case": 0.02, "example": 0.012, "fit": 2.0, "artifact": 1.0,
        "distributed": 300.0}


class Protocol:
    """JSON lines to the orchestrator, on the standard output the process started with."""

    def __init__(self) -> None:
        self.stream: TextIO = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)  # anything else written to standard output goes to standard error
        self.completed = 0.0

    def send(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()

    def advance(self, amount: float, what: str) -> None:
        self.completed += amount
        self.send("progress", completed=round(self.completed, 3), what=what)


def gpu_probe(backend: str) -> tuple[str | None, str]:
    """Whether `backend` sees a GPU: `(None, description)`, or `(reason it does not, "")`."""
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                built = "" if tf.test.is_built_with_cuda() else "; this build has no CUDA"
                return (f"no GPU visible to tensorflow (tf.config.list_physical_devices('GPU')"
                        f" is empty{built})"), ""
            details = tf.config.experimental.get_device_details(gpus[0])
            return None, f"{gpus[0].name} ({details.get('device_name', 'GPU')})"
        if backend == "jax":
            import jax

            try:
                devices = jax.devices("gpu")
            except RuntimeError as error:
                first = str(error).splitlines()[0] if str(error) else ""
                return (f"no GPU visible to jax (jax.devices('gpu') raised RuntimeError: "
                        f"{first})"), ""
            return None, f"{devices[0]} ({devices[0].device_kind})"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return None, f"cuda:0 ({torch.cuda.get_device_name(0)})"
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return None, "mps"
            why = (f"torch {torch.__version__} is built without CUDA"
                   if torch.version.cuda is None else "no CUDA device found")
            return f"no GPU visible to torch (torch.cuda.is_available() is False; {why})", ""
    except Exception as error:  # a broken install says so in the cell, not as a crash
        return f"{backend} failed to look for a GPU: {type(error).__name__}: {error}", ""
    return f"unknown backend {backend!r}", ""


def _section() -> dict[str, Any]:
    return {"status": "pass", "passed": 0, "failed": 0, "failures": []}


def _fail(section: dict[str, Any], name: str, divergence: str) -> None:
    section["failed"] += 1
    section["status"] = "fail"
    section["failures"].append({"name": name, "divergence": divergence})


def _skip(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason, "passed": 0, "failed": 0, "failures": []}


def _crash(error: BaseException) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    return "".join(lines[-6:]).rstrip()


def run_language(protocol: Protocol) -> dict[str, Any]:
    """The parse, check and compile cases of the language."""
    from cbdsl.conformance.runner import case_paths, load_case, run_language_case

    section = _section()
    for path in case_paths("language"):
        case = load_case(path)
        try:
            result = run_language_case(case)
        except Exception as error:
            _fail(section, case["name"], _crash(error))
        else:
            if result.passed:
                section["passed"] += 1
            else:
                _fail(section, case["name"], result.divergence)
        protocol.advance(COST["language"], f"language/{case['name']}")
    return section


def run_cases(spec: str, protocol: Protocol) -> dict[str, Any]:
    """A spec's recorded cases against its rule file, and Keras's class replayed on them
    (a recording the installed Keras no longer matches is a failure too)."""
    import keras

    from cbdsl.conformance.runner import (
        case_paths,
        first_divergence,
        load_case,
        run_case,
        run_trace,
    )
    from cbdsl.conformance.specs import SPECS

    section = _section()
    try:
        reference = SPECS[spec].reference()
    except LookupError as why:
        reference, section["note"] = None, f"Keras's class not replayed: {why}"
    for path in case_paths(spec):
        case = load_case(path)
        try:
            result = run_case(case, SPECS[spec].cbdsl())
            if result.passed:
                section["passed"] += 1
            else:
                _fail(section, case["name"], result.divergence)
            if reference is not None:
                replay = run_trace(case, reference, for_reference=True)
                found = first_divergence(case["expected"], replay)
                if found is not None:
                    _fail(section, f"{case['name']} (Keras replay)",
                          f"the recording is not what Keras {keras.__version__}'s "
                          f"{SPECS[spec].keras_name} does (re-record: python -m "
                          f"cbdsl.conformance.record {spec})\n{found}")
        except Exception as error:
            _fail(section, case["name"], _crash(error))
        protocol.advance(COST["case"], f"cases {spec}/{case['name']}")
    return section


def run_differential(spec: str, examples: int, seed: int | None,
                     protocol: Protocol) -> dict[str, Any]:
    """`examples` generated traces through Keras's class and the rule file."""
    from cbdsl.conformance.differential import search
    from cbdsl.conformance.specs import SPECS

    unit = COST["example"]
    try:
        reference = SPECS[spec].reference()
    except LookupError as why:
        protocol.advance(examples * unit, f"differential {spec}")
        return _skip(str(why))
    section = _section()
    done = [0]

    def progress(count: int) -> None:
        protocol.advance((count - done[0]) * unit, f"differential {spec} ({count}/{examples})")
        done[0] = count

    try:
        found = search(spec, SPECS[spec].cbdsl(), examples=examples, seed=seed,
                       reference=reference, progress=progress)
    except Exception as error:
        found = _crash(error)
    protocol.advance((examples - done[0]) * unit, f"differential {spec}")
    if found is None:
        section["passed"] = examples
    else:
        _fail(section, "generated", found)
    section["examples"] = examples
    return section


def run_fits(specs: list[str], protocol: Protocol, device: str = "cpu"
             ) -> dict[str, dict[str, Any]]:
    """Every real-fit pair of the given specs: the rule file's run against Keras's (on a
    GPU, a run whose weights are not on the GPU fails)."""
    from cbdsl.conformance import fit

    fit.deterministic()
    sections: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec in fit.NO_FIT:
            sections[spec] = _skip(fit.NO_FIT[spec])
    for name, (spec, _, _) in fit.RUNS.items():
        if spec not in specs:
            continue
        section = sections.setdefault(spec, _section())
        try:
            pair = fit.run_pair(name)
            found = fit.compare(pair)
            ran_on = pair["keras"]["device"]
            if found is None and device == "gpu" and not any(
                    word in ran_on.lower() for word in ("gpu", "cuda", "mps", "rocm")):
                found = f"the fit ran on {ran_on}, not on the GPU"
        except Exception as error:
            found = _crash(error)
        if found is None:
            section["passed"] += 1
        else:
            _fail(section, name, found)
        protocol.advance(COST["fit"], f"fit {name}")
    return sections


def run_artifacts(spec: str, protocol: Protocol, quick: bool = False) -> dict[str, Any]:
    """An artifact spec's scenarios (the `--quick` subset with `quick`): the drop-in's
    artifacts against Keras's class's, on real fits. A known difference of the drop-in
    (`ArtifactSpec.known`) that diverges is an expected failure (`xfailed`); one that no
    longer diverges fails, so the list stays true."""
    from cbdsl.conformance import artifacts, fit

    fit.deterministic()
    owner = artifacts.ARTIFACT_SPECS[spec]
    section = _section()
    section.update(xfailed=[], skipped=[])
    chosen = owner.selected(quick)
    if len(chosen) < len(owner.scenarios):
        section["left_out"] = {"count": len(owner.scenarios) - len(chosen),
                               "reason": "--quick runs a subset"}
    for scenario in chosen:
        try:
            result = artifacts.check(spec, scenario)
        except Exception as error:
            _fail(section, scenario.name, _crash(error))
        else:
            known = owner.known.get(scenario.name)
            if result.status == "skipped":
                section["skipped"].append({"name": scenario.name, "reason": result.reason})
            elif known is None and result.passed:
                section["passed"] += 1
            elif known is None:
                _fail(section, scenario.name, result.divergence)
            elif result.passed:
                _fail(section, scenario.name, f"listed as a known difference of the drop-in "
                      f"({known}) but now the same as Keras's: take it out of "
                      f"ARTIFACT_SPECS[{spec!r}].known")
            else:
                section["xfailed"].append({"name": scenario.name, "reason": known,
                                           "divergence": result.divergence})
        protocol.advance(COST["artifact"], f"artifacts {spec}/{scenario.name}")
    if not section["passed"] and not section["failed"] and not section["xfailed"]:
        reasons = sorted({s["reason"] for s in section["skipped"]})
        return {**_skip("; ".join(reasons) or "no scenario"), "skipped": section["skipped"]}
    return section


def run_distributed(protocol: Protocol) -> dict[str, Any]:
    """The multi-process jobs of this backend (`cbdsl.conformance.multiprocess`): two
    processes on 127.0.0.1 training together, the rule files beside Keras's classes, and
    (TensorFlow) a worker killed and the job resumed."""
    from cbdsl.conformance import multiprocess

    backend = os.environ.get("KERAS_BACKEND", "")
    why = multiprocess.cannot_run(backend)
    if why:
        protocol.advance(COST["distributed"], "distributed")
        return _skip(why)
    section = _section()
    try:
        found = multiprocess.problems(multiprocess.run_backend(backend))
    except Exception as error:
        found = [_crash(error)]
    for problem in found:
        _fail(section, problem.split(":", 1)[0], problem)
    if not found:
        section["passed"] = 1
    protocol.advance(COST["distributed"], "distributed")
    return section


def plan(specs: list[str], sections: list[str], examples: int, quick: bool = False) -> float:
    """The work ahead, in the units of `COST`."""
    from cbdsl.conformance import fit
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.runner import case_paths

    total = 0.0
    if "language" in sections:
        total += COST["language"] * len(case_paths("language"))
    if DISTRIBUTED in sections:
        total += COST["distributed"]
    for spec in specs:
        if spec in ARTIFACT_SPECS:
            if "artifacts" in sections:
                total += COST["artifact"] * len(ARTIFACT_SPECS[spec].selected(quick))
            continue
        if "cases" in sections:
            total += COST["case"] * len(case_paths(spec))
        if "differential" in sections:
            total += COST["example"] * examples
        if "fit" in sections:
            total += COST["fit"] * sum(1 for s, _, _ in fit.RUNS.values() if s == spec)
    return total


def versions(backend: str) -> dict[str, str]:
    """The versions that the results depend on."""
    import keras

    import cbdsl

    found = {"python": sys.version.split()[0], "cbdsl": cbdsl.__version__,
             "keras": keras.__version__}
    module = sys.modules.get(backend)
    found[backend] = getattr(module, "__version__", "?") if module else "?"
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the suite on the backend named by `KERAS_BACKEND` and the `--device` given."""
    parser = argparse.ArgumentParser(prog="python -m cbdsl.conformance.worker")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--spec", action="append", default=[])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--coverage", action="store_true")
    parser.add_argument("--quick", action="store_true", help="the artifacts' quick subset")
    args = parser.parse_args(argv)
    protocol = Protocol()
    backend = os.environ.get("KERAS_BACKEND", "")
    if importlib.util.find_spec(backend or "-") is None:
        protocol.send("skipped", reason=f"{backend or 'KERAS_BACKEND'} not installed")
        return 0
    device_name = "cpu"
    if args.device == "gpu":
        reason, device_name = gpu_probe(backend)
        if reason:
            protocol.send("skipped", reason=reason)
            return 0
    timings: dict[str, float] = {}
    import keras

    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.specs import SPECS

    if keras.backend.backend() != backend:
        protocol.send("skipped", reason=f"Keras runs {keras.backend.backend()}, not {backend}")
        return 0
    timings["startup"] = time.perf_counter() - STARTED
    specs = args.spec or [*SPECS, *ARTIFACT_SPECS]
    decisions = [s for s in specs if s in SPECS]
    sections = [s for s in args.sections.split(",") if s]
    protocol.send("plan", total=plan(specs, sections, args.examples, args.quick),
                  device=device_name)
    rows: dict[str, dict[str, Any]] = {}

    def timed(section: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return work()
        finally:
            timings[section] = timings.get(section, 0.0) + time.perf_counter() - start

    if "language" in sections:
        rows["language"] = {"language": timed("language", lambda: run_language(protocol))}
    for spec in decisions:
        row = rows.setdefault(spec, {})
        if "cases" in sections:
            row["cases"] = timed("cases", lambda spec=spec: run_cases(spec, protocol))
    for spec in decisions:
        if "differential" in sections:
            rows[spec]["differential"] = timed("differential", lambda spec=spec: (
                run_differential(spec, args.examples, args.seed, protocol)))
    if "fit" in sections:
        fits = timed("fit", lambda: run_fits(decisions, protocol, args.device))
        for spec, section in fits.items():
            rows[spec]["fit"] = section
    if "artifacts" in sections:
        for spec in specs:
            if spec in ARTIFACT_SPECS:
                rows.setdefault(spec, {})["artifacts"] = timed("artifacts", lambda spec=spec: (
                    run_artifacts(spec, protocol, args.quick)))
    if DISTRIBUTED in sections:
        rows[DISTRIBUTED] = {DISTRIBUTED: timed(DISTRIBUTED, lambda: run_distributed(protocol))}
    coverage = None
    if args.coverage:
        from cbdsl.conformance import coverage as cover
        from cbdsl.conformance.runner import case_paths, load_case

        coverage = timed("coverage", lambda: cover.matrix(
            [load_case(p) for p in case_paths()]))
    protocol.send("result", backend=backend, device=args.device, device_name=device_name,
                  versions=versions(backend), rows=rows, timings=timings, coverage=coverage)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
