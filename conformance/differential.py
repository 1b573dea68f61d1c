"""Differential testing: hypothesis-generated traces through the reference and a candidate."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from cbdsl.conformance.runner import first_divergence, run_trace
from cbdsl.conformance.specs import SPECS, arguments

NAN, INF = float("nan"), float("inf")

# Multiples of 1/8 add up exactly in floating point, so `min_delta` ties happen for real.
GRID = st.integers(0, 16).map(lambda i: i / 8)
VALUES = st.one_of(GRID, GRID, st.floats(0, 4, width=32),
                   st.sampled_from([NAN, INF, -INF, 1e-40, 0.0, 1e30]))
DELTAS = st.sampled_from([0, 0.125, 0.25, 1e-4, -0.125])
MODES = st.sampled_from(["auto", "min", "max"])
ACC_METRIC = [{"name": "acc", "direction": "up"}]


def _epochs(monitor: str, values: st.SearchStrategy, max_epochs: int = 12
            ) -> st.SearchStrategy[list[dict]]:
    """Epoch logs where the monitor is there nine times in ten (a missing metric otherwise)."""
    entry = st.tuples(values, st.integers(0, 9)).map(
        lambda p: {"logs": {"loss": 1.0, **({monitor: p[0]} if p[1] else {})}})
    return st.lists(entry, min_size=1, max_size=max_epochs)


@st.composite
def early_stopping(draw) -> dict[str, Any]:
    monitor = draw(st.sampled_from(["val_loss", "val_acc", "val_loss", "val_score"]))
    params = {"monitor": monitor, "patience": draw(st.integers(0, 4)),
              "min_delta": draw(DELTAS), "mode": draw(MODES),
              "baseline": draw(st.one_of(st.none(), GRID)),
              "restore_best_weights": draw(st.booleans()),
              "start_from_epoch": draw(st.integers(0, 3)), "verbose": draw(st.integers(0, 1))}
    return {"params": params, "trace": draw(_epochs(monitor, VALUES)),
            "model": {"metrics": ACC_METRIC}}


@st.composite
def reduce_lr_on_plateau(draw) -> dict[str, Any]:
    monitor = draw(st.sampled_from(["val_loss", "val_acc", "val_loss"]))
    params = {"monitor": monitor, "patience": draw(st.integers(0, 3)),
              "factor": draw(st.sampled_from([0.1, 0.5, 0.9, 0.2, 1.0])),
              "min_delta": draw(DELTAS), "mode": draw(MODES),
              "cooldown": draw(st.integers(0, 3)),
              "min_lr": draw(st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.025])),
              "verbose": draw(st.integers(0, 1))}
    return {"params": params, "trace": draw(_epochs(monitor, VALUES, 14)),
            "model": {"metrics": ACC_METRIC,
                      "learning_rate": draw(st.sampled_from([0.1, 0.2, 0.05, 0.3]))}}


def _batches(values: st.SearchStrategy, max_batches: int = 4) -> st.SearchStrategy[list]:
    entry = st.tuples(values, st.integers(0, 9)).map(
        lambda p: {"loss": p[0]} if p[1] else {})
    return st.lists(entry, max_size=max_batches)


@st.composite
def terminate_on_nan(draw) -> dict[str, Any]:
    losses = st.one_of(GRID, st.sampled_from([NAN, INF, -INF]))
    trace = draw(st.lists(_batches(losses).map(lambda b: {"batches": b, "logs": {"loss": 1.0}}),
                          min_size=1, max_size=5))
    return {"params": {"raise_error": draw(st.booleans())}, "trace": trace}


@st.composite
def learning_rate_scheduler(draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["table", "exponential", "halve_after"]))
    if kind == "table":
        keys = draw(st.lists(st.integers(0, 8), min_size=1, max_size=4, unique=True))
        schedule = {"table": {str(k): draw(GRID.map(lambda v: v / 10 + 0.001)) for k in keys}}
        how = draw(st.sampled_from(["python", "table"]))
    elif kind == "exponential":
        schedule = {"exponential": [draw(st.sampled_from([0.1, 0.05, 0.3])),
                                    draw(st.sampled_from([0.9, 0.5, 0.99]))]}
        how = draw(st.sampled_from(["python", "text"]))
    else:
        schedule = {"halve_after": draw(st.integers(0, 6))}
        how = draw(st.sampled_from(["python", "text"]))
    params = {"schedule": schedule, "schedule_as": how, "verbose": draw(st.integers(0, 1))}
    trace = [{"logs": {"loss": 1.0}}] * draw(st.integers(1, 10))
    return {"params": params, "trace": trace,
            "model": {"learning_rate": draw(st.sampled_from([0.1, 0.2, 0.05]))}}


KEYS = st.sampled_from(["loss", "val_loss", "acc", "lr"])


@st.composite
def history(draw) -> dict[str, Any]:
    logs = st.dictionaries(KEYS, VALUES, max_size=4).map(lambda d: {"logs": d})
    return {"params": {}, "trace": draw(st.lists(logs, min_size=1, max_size=8))}


@st.composite
def base_logger(draw) -> dict[str, Any]:
    names = ["loss", "acc", "mae"]
    batch = st.fixed_dictionaries(
        {"size": st.integers(1, 8)},
        optional={"loss": GRID, "acc": GRID, "mae": VALUES, "num_steps": st.integers(1, 3)})
    epoch = st.lists(batch, max_size=4).map(lambda b: {"batches": b,
                                                        "logs": {"loss": 0.0, "acc": 0.0}})
    stateful = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
    metrics = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    return {"params": {"stateful_metrics": stateful} if stateful else {},
            "trace": draw(st.lists(epoch, min_size=1, max_size=4)),
            "fit_params": {"metrics": metrics}}


@st.composite
def lambda_callback(draw) -> dict[str, Any]:
    hooks = draw(st.lists(st.sampled_from(
        ["on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
         "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"]),
        unique=True))
    epoch = _batches(GRID, 3).map(lambda b: {"batches": b, "logs": {"loss": 1.0}})
    return {"params": {"hooks": hooks}, "trace": draw(st.lists(epoch, min_size=1, max_size=3))}


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[dict]]] = {
    "early_stopping": early_stopping, "reduce_lr_on_plateau": reduce_lr_on_plateau,
    "terminate_on_nan": terminate_on_nan, "learning_rate_scheduler": learning_rate_scheduler,
    "history": history, "base_logger": base_logger, "lambda_callback": lambda_callback,
}


def cases(spec: str) -> st.SearchStrategy[dict[str, Any]]:
    """Generated cases of one spec (params, trace, model), in the case-file format."""
    return STRATEGIES[spec]().map(lambda c: {"spec": spec, "name": "generated", **c})


def divergence(case: dict[str, Any], candidate: Callable[..., Any],
               reference: Callable[..., Any] | None = None, *,
               python_functions: bool = False) -> str | None:
    """Drive the reference and `candidate` over the same case; None when they agree,
    otherwise the first difference rendered side by side (with the case's params).

    `python_functions` gives the candidate Python functions, as the reference gets them,
    whatever the case's `schedule_as` says (see `cbdsl.conformance.run_case`).
    """
    reference = reference or SPECS[case["spec"]].reference()
    expected = run_trace(case, reference, for_reference=True, attributes="stored")
    # every attribute Keras's class stores, but those of arguments the two are given in other
    # forms (a schedule as text for the candidate, a function for the reference)
    given = [arguments(case["spec"], case.get("params", {}), [], for_reference=side)
             for side in (True, python_functions)]
    stored = expected.get("final", {}).get("attributes", {})
    wanted = [name for name in stored
              if name not in given[0] or _same(given[0][name], given[1].get(name))]
    if stored:
        expected["final"]["attributes"] = {name: stored[name] for name in wanted}
    found = first_divergence(expected, run_trace(case, candidate, attributes=wanted,
                                                 for_reference=python_functions))
    if found is None:
        return None
    trace = json.dumps(case["trace"])
    if len(trace) > 600:
        trace = trace[:597] + "..."
    return f"{case['spec']} with params {case['params']}\ntrace: {trace}\n{found}"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # arrays and other values without a plain equality
        return False


class Diverged(AssertionError):
    """A generated trace on which the candidate did not do what the reference did."""


def search(spec: str, candidate: Callable[..., Any], *, examples: int = 1000,
           seed: int | None = None, reference: Callable[..., Any] | None = None,
           python_functions: bool = False,
           progress: Callable[[int], None] | None = None) -> str | None:
    """Run `examples` generated traces of `spec` through the reference and `candidate`.

    Args:
        spec: the spec's name (`early_stopping`).
        candidate: builds the callback under test from a case's arguments.
        examples: how many traces to generate.
        seed: hypothesis's seed, for a run that can be repeated; random when None.
        reference: the reference class (default: the spec's Keras class).
        python_functions: as in `divergence`.
        progress: called with the number of traces run so far, every few traces.

    Returns:
        None when every trace agreed; otherwise the first divergence found, shrunk by
        hypothesis to a smallest trace, rendered side by side with the case's params.
    """
    from hypothesis import HealthCheck, Verbosity, given, settings
    from hypothesis import seed as hypothesis_seed

    reference = reference or SPECS[spec].reference()
    count = [0]
    every = max(1, examples // 20)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              verbosity=Verbosity.quiet)
    @given(cases(spec))
    def agree(case: dict[str, Any]) -> None:
        count[0] += 1
        if progress is not None and count[0] % every == 0 and count[0] <= examples:
            progress(count[0])
        try:
            found = divergence(case, candidate, reference, python_functions=python_functions)
        except Exception as error:  # the harness itself failed on this trace
            raise Diverged(f"{spec} with params {case['params']}\nrunning the trace raised "
                           f"{type(error).__name__}: {error}") from error
        if found is not None:
            raise Diverged(found)

    if seed is not None:
        agree = hypothesis_seed(seed)(agree)
    try:
        agree()
    except Diverged as found:
        return str(found)
    return None
