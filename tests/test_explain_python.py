"""`cbdsl explain --python`: the Keras code written out from a rule file does what it compiles to.

Every rule file shipped (rules/, examples/, the demo policy) is written out as Python, run
with `exec`, and driven side by side with the compiled rules by the conformance driver: over
the recorded conformance cases, hypothesis-generated traces of each built-in, and seeded
random traces of the examples. The two outcomes (`Outcome.to_json()`) must be equal, with
two differences that are not behaviour: an error the compiled rule raises as a cbdsl class
(`RuleFailure`, `MetricDirectionError`) is raised by the written code as its Keras base
(`RuntimeError`, `ValueError`), and state the written class has no use for is not kept: no
`stopped_epoch` where nothing stops, no `wait` for an `improves` (both always 0 in the
compiled callback).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import cbdsl
from cbdsl.cli import main
from cbdsl.conformance import StubModel, case_paths, drive, first_divergence, load_case
from cbdsl.conformance.differential import cases
from cbdsl.conformance.driver import equal, plain
from cbdsl.conformance.specs import SPECS, arguments
from cbdsl.pythonize import NotExpressibleError, pythonize

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted(ROOT.glob("rules/*.cbd"))
EXAMPLES = sorted(ROOT.glob("examples/*.cbd"))
DEMO = ROOT / "cbdsl" / "data" / "demo.cbd"
SHIPPED = [*RULES, *EXAMPLES, DEMO]
# Shipped rule files that cannot be written out as plain Keras code, with the reason. Every
# shipped file can; `test_not_expressible_*` below show the error for features that cannot.
NOT_EXPRESSIBLE: dict[str, str] = {
    "model_checkpoint.cbd": "fill() and the tracker option 'only'",
    "progbar_logger.cbd": "the effects progress.start and progress.update",
    "swap_ema_weights.cbd": "the effects ema.swap and ema.finalize",
    "swap_ema_after_predict.cbd": "the effect ema.swap (it extends swap_ema_weights.cbd)",
    "backup_and_restore.cbd": "the effects backup.store, backup.resume and backup.clear",
    "tensorboard.cbd": "the tensorboard effects",
}

NAN, INF = math.nan, math.inf


def written(source) -> tuple[dict, str]:
    """The module written out for a rule file (a path or text), executed in a fresh namespace."""
    text = pythonize(cbdsl.check(source))
    namespace: dict = {"__name__": "written"}
    exec(compile(text, "<written>", "exec"), namespace)
    return namespace, text


def only_class(path: Path):
    """The written class of a file holding one callback definition (or only top-level rules)."""
    namespace, _ = written(path)
    classes = [v for v in namespace.values()
               if isinstance(v, type) and issubclass(v, keras.callbacks.Callback)]
    assert len(classes) == 1, classes
    return classes[0]


def run(factory, kwargs: dict, trace: list, *, model: dict | None = None,
        fit_params: dict | None = None, calls: list | None = None) -> dict:
    """Build a callback and drive it over a trace, as the conformance runner does."""
    model = model or {}
    stub = StubModel(model.get("learning_rate", 0.1), model.get("metrics"),
                     model.get("schedule", False))
    try:
        callback = factory(**kwargs)
    except Exception as error:  # refusing the arguments is behaviour too
        return plain({"events": [], "final": {}, "error": {
            "type": type(error).__name__, "bases": [k.__name__ for k in type(error).__mro__],
            "message": str(error), "at": "construction"}})
    params = {"epochs": len(trace), "steps": None, "verbose": 0, **(fit_params or {})}
    return drive(callback, trace, model=stub, fit_params=params, calls=calls).to_json()


def assert_same(python: dict, rules: dict, *, context: object = "") -> None:
    """The written code's outcome is the compiled rules' (see the module docstring)."""
    python, rules = json.loads(json.dumps(python)), json.loads(json.dumps(rules))
    p_err, r_err = python.pop("error"), rules.pop("error")
    assert (p_err is None) == (r_err is None), (context, p_err, r_err)
    if p_err is not None:
        assert p_err["type"] in r_err["bases"], (context, p_err, r_err)
        assert (p_err["message"], p_err["at"]) == (r_err["message"], r_err["at"]), context
    for name in ("stopped_epoch", "wait"):  # state the written class has no use for
        if name not in python["final"]:
            assert rules["final"].pop(name, 0) == 0, (context, name)
    if not equal(python, rules):
        found = first_divergence(rules, python) or \
            f"final: {python['final']} != {rules['final']}"
        raise AssertionError(f"{context}\n{found}")


# ------------------------------------------------------------------ every file


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_rule_file_is_written_out_as_valid_python(path):
    if path.name in NOT_EXPRESSIBLE:
        with pytest.raises(NotExpressibleError):
            written(path)
        return
    namespace, text = written(path)
    classes = [v for v in namespace.values()
               if isinstance(v, type) and issubclass(v, keras.callbacks.Callback)]
    assert classes, text
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import) else
                              [ast.alias(node.module or "")])}
    assert imported <= {"json", "math", "os", "warnings", "keras", "numpy", "requests",
                        "absl"}, imported  # absl: Keras's logger, a dependency of Keras
    checked = cbdsl.check(path)
    rules = [r for d in [*checked.definitions.values(), checked.main]
             if d.path == checked.program.path for r in d.rules]
    for rule in rules:  # a comment above each rule gives its source line
        assert f"# line {rule.span.line}: " in text


@pytest.mark.skipif(shutil.which("ruff") is None and
                    subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                   capture_output=True).returncode != 0,
                    reason="ruff is not installed")
def test_written_code_is_ruff_clean(tmp_path):
    for path in SHIPPED:
        try:
            (tmp_path / f"{path.stem}_written.py").write_text(written(path)[1])
        except NotExpressibleError:  # reported by test_every_shipped_rule_file_...
            continue
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
                           str(ROOT / "pyproject.toml"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------- the built-ins: recorded and generated traces


SPEC_FILES = {spec: ROOT / "rules" / f"{spec}.cbd" for spec in SPECS}


def spec_pair(spec: str):
    """The written class and the compiled drop-in of one built-in."""
    return only_class(SPEC_FILES[spec]), SPECS[spec].cbdsl()


def compare_case(case: dict, python_cls, compiled) -> None:
    spec = case["spec"]
    params = dict(case.get("params", {}))
    # a schedule given as text is the rule language's own: the written class takes the same
    # schedule as a function (see test_written_scheduler_refuses_text_schedules)
    as_function = params.get("schedule_as") == "text"
    outcomes = []
    for factory in (python_cls, compiled):
        calls: list = []
        kwargs = arguments(spec, params, calls, for_reference=as_function)
        outcomes.append(run(factory, kwargs, case["trace"], model=case.get("model"),
                            fit_params={"steps": case.get("steps"),
                                        **case.get("fit_params", {})}, calls=calls))
    assert_same(*outcomes, context=f"{spec} {case.get('name')} params {params}")


@pytest.mark.parametrize("path", [p for p in case_paths() if p.parent.name in SPECS],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_conformance_case(path):
    case = load_case(path)
    compare_case(case, *spec_pair(case["spec"]))


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_generated_traces(spec):
    python_cls, compiled = spec_pair(spec)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(spec))
    def agree(case):
        compare_case(case, python_cls, compiled)

    agree()


def test_written_scheduler_refuses_text_schedules():
    cls = only_class(SPEC_FILES["learning_rate_scheduler"])
    with pytest.raises(TypeError, match="a schedule given as text needs cbdsl"):
        cls(schedule="0.1 * 0.9 ** epoch")
    # a table and a function are taken as the compiled callback takes them
    assert cls(schedule={0: 0.5}).schedule == {0: 0.5}


def test_written_early_stopping_reads_like_keras():
    _, text = written(SPEC_FILES["early_stopping"])
    assert "class EarlyStopping(keras.callbacks.Callback):" in text
    assert ('def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, '
            'mode="auto",') in text
    assert "self.model.stop_training = True" in text
    assert "self.model.set_weights(self.best_weights)" in text
    assert "warnings.warn(" in text
    assert "self.wait += 1" in text


# --------------------------------------------------- the examples: seeded random traces


POOL = [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 0.25, 0.75, NAN, INF, 1e-40, 3.0]


def random_trace(rng: random.Random, metrics: tuple[str, ...], *, batches: bool,
                 missing: float = 0.1) -> list[dict]:
    trace = []
    for _ in range(rng.randint(1, 10)):
        logs = {m: rng.choice(POOL) if rng.random() < 0.7 else rng.uniform(0, 3)
                for m in metrics if rng.random() >= missing}
        step: dict = {"logs": logs}
        if batches:
            step["batches"] = [{"loss": rng.choice(POOL), "size": rng.randint(1, 4)}
                               for _ in range(rng.randint(0, 3))]
        trace.append(step)
    return trace


EXAMPLE_RUNS = {
    # file: (argument sets, metrics in the epoch logs, whether train batches run, missing rate)
    "batch_print.cbd": ([{}], ("loss",), True, 0.0),
    "custom_callback.cbd": ([{}], ("loss", "mean_absolute_error"), True, 0.1),
    "custom_learning_rate_scheduler.cbd": (
        [{}, {"schedule": {0: 0.3, 2: 0.01}}, {"schedule": {}}], ("loss",), False, 0.0),
    "early_stopping_at_min_loss.cbd": (
        [{"patience": p} for p in range(4)], ("loss",), False, 0.1),
    "loss_and_error_printing.cbd": ([{}], ("loss", "mean_absolute_error"), True, 0.0),
    "demo.cbd": ([{"patience": p} for p in (1, 2, 3)], ("loss", "val_loss"), False, 0.1),
}


def test_every_example_has_a_random_trace_run():
    not_expressible = {"json_logging.cbd", *NOT_EXPRESSIBLE}
    assert {p.name for p in EXAMPLES} - not_expressible <= set(EXAMPLE_RUNS)


@pytest.mark.parametrize("name", sorted(EXAMPLE_RUNS))
def test_example_on_random_traces(name):
    path = DEMO if name == "demo.cbd" else ROOT / "examples" / name
    python_cls = only_class(path)
    argument_sets, metrics, batches, missing = EXAMPLE_RUNS[name]
    rng = random.Random(f"explain-python {name}")
    for i in range(300):
        kwargs = argument_sets[i % len(argument_sets)]
        trace = random_trace(rng, metrics, batches=batches, missing=missing)
        assert_same(run(python_cls, kwargs, trace),
                    run(lambda **kw: cbdsl.compile(path, **kw)[0], kwargs, trace),
                    context=f"{name} {kwargs} {trace}")


def test_json_logging_writes_the_same_file(tmp_path):
    path = ROOT / "examples" / "json_logging.cbd"
    python_cls = only_class(path)
    rng = random.Random("explain-python json_logging")
    for i in range(40):
        trace = random_trace(rng, ("loss",), batches=False, missing=0.0)
        files = []
        for kind in ("python", "rules"):
            target = tmp_path / kind / f"run{i}" / "loss_log.json"
            factory = python_cls if kind == "python" else (
                lambda **kw: cbdsl.compile(path, **kw)[0])
            outcome = run(factory, {"path": str(target)}, trace)
            files.append((outcome, target.read_text()))
        assert_same(files[0][0], files[1][0])
        assert files[0][1] == files[1][1]
        assert files[0][1].count("\n") == len(trace)


def play(callback, script: list[tuple[str, int | None, dict | None]]) -> list[str]:
    """Call hooks that `fit` does not (evaluate's, predict's) and collect what they print."""
    callback.set_model(StubModel())
    callback.set_params({"epochs": 1, "steps": 1, "verbose": 0})
    printed = []
    for hook, index, logs in script:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            getattr(callback, f"on_{hook}")(*([] if index is None else [index]), logs)
        printed.append(out.getvalue())
    return printed


@pytest.mark.parametrize("name", ["custom_callback.cbd", "loss_and_error_printing.cbd"])
def test_evaluate_and_predict_hooks(name):
    path = ROOT / "examples" / name
    script = [("test_begin", None, None), ("test_batch_begin", 0, {}),
              ("test_batch_end", 0, {"loss": 0.5, "mean_absolute_error": 0.25}),
              ("test_batch_end", 1, {"loss": 2.0}), ("test_end", None, {"loss": 1.25}),
              ("predict_begin", None, None), ("predict_batch_begin", 0, {}),
              ("predict_batch_end", 0, {"outputs": 1}), ("predict_end", None, {})]
    expected = play(cbdsl.compile(path)[0], script)
    assert play(only_class(path)(), script) == expected
    assert any(expected)


# ------------------------------------------------------ language features, one by one

# Small policies over the features the shipped files do not all use: filters on every
# counter, cooldown, several trackers, `improves`, loops, tables, division by zero, logs
# written, `fail`, stopping inside batches, metric_missing handlers, `use`.
FEATURES = {
    "filters": """
        on epoch_end every 2 do log seen_every = epoch
        on epoch_end after 3 do log seen_after = 1
        on epoch_begin once at epoch 2 priority 1 do lr = 0.05
        on epoch_begin before epoch 1 do lr *= 2
        on train_batch_end every 2 steps do log steps_seen = step
        on train_batch_begin from batch 1 when step >= 0 do lr -= 0.001
        on train_batch_begin every 3 steps do log begin_step = step
    """,
    "trackers": """
        var fired = 0
        shrink: on epoch_end when val_loss stalls 2 with min_delta = 0.25 and lr > 0.01
          do lr /= 2, cooldown 1, set fired += 1
        top: on epoch_end when val_acc improves with (mode = "max", baseline = 0.5) as up
          do log best_acc = up.best, log best_at = up.best_epoch
        on epoch_end when loss stalls 3 with mode = "min" as flat and val_loss is finite
          do stop, print "flat since {flat.best_epoch}: best {flat.best}"
        on train_end when up.best != none and up.best > 0.75
          do print "good run: {up.best:.3f} at {up.best_epoch}, stopped {stopped_epoch}"
    """,
    "tables_and_loops": """
        var counts = {}
        var names = ""
        var ratio = 0.0
        on epoch_end
          do for name, value in logs when value is not nan do (
               set counts[name] = lookup(counts, name, 0) + 1),
             set names = keys(counts),
             set ratio = loss / val_loss if has("loss") and has("val_loss") else -1,
             log ratio = ratio,
             for name, count in counts when name != "loss" do (log [name + "_n"] = count)
        on train_end do print "{names} {ratio}"
        on epoch_end when has("loss") and loss > 2.5 do fail "loss {loss} too high at {epoch}"
    """,
    "batches": """
        var worst = 0.0
        on train_batch_end when has("loss") and loss is not nan and loss > worst
          do set worst = loss
        on train_batch_end when has("loss") and loss is nan do stop
        on epoch_end do log worst = worst, set worst = 0.0
        on epoch_end when epoch >= 1 and val_loss > 1.5 do print "high at {epoch}: {val_loss}"
    """,
    "handlers": """
        on epoch_end from epoch 1 when val_loss stalls 1 with mode = "min" do lr *= 0.5
        on metric_missing from epoch 2
          do warn "no {missing} at epoch {epoch}; have: {available}", log missing_seen = 1
    """,
    "modes": """
        callback A(monitor = "val_acc", mode = "auto") {
          on epoch_end when metric(monitor) stalls 1 with mode = mode do log hit = epoch
        }
        use A()
        use A(monitor = "val_loss")
        use A(monitor = "val_score")
    """,
    "improves_and_extends": """
        callback C(b = none, keep = true) {
          on epoch_end when val_loss improves with (mode = "min", baseline = b, weights = keep)
                                                  as i
            do print "improved {i.best} at {i.best_epoch}"
          on train_end when keep do restore best weights of i
        }
        callback D extends C(b = 1.0) {
          on epoch_end when 0.5 < loss <= 2 != val_loss do log mid = 1
        }
        use C()
        use D(keep = false)
    """,
    "uses": """
        param patience = 2
        on epoch_end every 3 do lr *= 0.9
        use keras.early_stopping(monitor = "val_loss", patience = patience, mode = "min",
                                 restore_best_weights = true)
        use keras.terminate_on_nan()
    """,
}


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_language_feature_on_random_traces(name):
    source = FEATURES[name]
    namespace, text = written(source)
    factory = namespace.get("make_callbacks") or next(
        v for v in namespace.values()
        if isinstance(v, type) and issubclass(v, keras.callbacks.Callback))
    rng = random.Random(f"explain-python feature {name}")
    for _ in range(200):
        trace = random_trace(rng, ("loss", "val_loss", "val_acc"), batches=True)
        python = factory()
        compiled = cbdsl.compile(source)
        model = {"metrics": [{"name": "acc", "direction": "up"}]}
        python = python if isinstance(python, list) else [python]
        assert [type(p).__name__ for p in python] == [type(c).__name__ for c in compiled]
        for py_cb, rule_cb in zip(python, compiled, strict=True):
            assert_same(run(lambda py_cb=py_cb: py_cb, {}, trace, model=model),
                        run(lambda rule_cb=rule_cb: rule_cb, {}, trace, model=model),
                        context=f"{name}: {trace}\n{text}")


def test_use_statements_become_a_factory_with_the_files_parameters():
    namespace, text = written(FEATURES["uses"])
    assert "def make_callbacks(patience=2):" in text
    made = namespace["make_callbacks"](patience=5)
    assert [type(cb).__name__ for cb in made] == ["Policy", "EarlyStopping", "TerminateOnNaN"]
    assert made[1].patience == 5 and made[1].restore_best_weights is True


def test_python_hooks_reach_used_callbacks_in_the_factory_as_in_compile():
    source = ("param h: python = none\n"
              "callback notify(on_epoch: python = none, h: python = none) {\n"
              "    on epoch_end do call on_epoch(epoch), call h(epoch + 10)\n}\n"
              "use notify(h = h)\n")
    namespace, text = written(source)
    assert "def make_callbacks(h=None, on_epoch=None):" in text
    seen = []
    made = namespace["make_callbacks"](h=seen.append, on_epoch=seen.append)
    compiled = cbdsl.compile(source, h=seen.append, on_epoch=seen.append)
    trace = [{"logs": {"loss": 1.0}}] * 2
    assert_same(run(lambda: made[0], {}, trace), run(lambda: compiled[0], {}, trace))
    assert seen == [0, 10, 1, 11] * 2


@pytest.mark.parametrize("source", [
    "on epoch_end when val_score stalls 1 do stop",
    'param mode = "auto"\non epoch_end when val_score stalls 1 with mode = mode do stop',
])
def test_an_unknown_direction_is_worded_alike(source):
    namespace, _ = written(source)
    trace = [{"logs": {"loss": 1.0, "val_score": 0.5}}]
    python = run(namespace["Policy"], {}, trace)
    rules = run(lambda: cbdsl.compile(source)[0], {}, trace)
    assert_same(python, rules)
    assert ("with mode = " in python["error"]["message"]) == ("param mode" not in source)


# ------------------------------------------------------------- what cannot be written


@pytest.mark.parametrize(("source", "feature", "line"), [
    ("param p = 1\non epoch_end priority p do lr *= 0.5\non epoch_end do lr *= 2",
     "a priority given by a parameter", 2),
    ("on epoch_end when epoch > 2 or val_loss > 1 do stop",
     "happens only when the part of the condition before it lets it", 1),
    ('param who = "x"\non epoch_end do print who + "!"',
     "a template computed by an expression", 2),
])
def test_not_expressible_names_the_feature_and_the_rule(source, feature, line):
    with pytest.raises(NotExpressibleError) as caught:
        pythonize(cbdsl.check(source))
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E601"
    assert feature in diagnostic.message
    assert diagnostic.span.line == line
    assert f":{line}:" in caught.value.render() and "^" in caught.value.render()


def test_a_guarded_metric_read_is_written_out():
    _, text = written('on epoch_end when has("val_loss") and val_loss > 1 do stop')
    assert 'logs.get("val_loss") is not None and logs["val_loss"] > 1' in text


# ------------------------------------------------------------------------- real fit


@pytest.mark.fit
def test_real_fit_written_classes_act_as_the_compiled_rules():
    """A short `model.fit` with the written ReduceLROnPlateau and EarlyStopping, then with
    the compiled rule files: the same learning rate at every epoch, the same stop."""
    es_cls, rlr_cls = only_class(SPEC_FILES["early_stopping"]), \
        only_class(SPEC_FILES["reduce_lr_on_plateau"])
    from cbdsl.callbacks import EarlyStopping, ReduceLROnPlateau

    es_args = {"monitor": "loss", "patience": 3, "min_delta": 0.05, "restore_best_weights": True}
    rlr_args = {"monitor": "loss", "patience": 1, "factor": 0.5, "min_delta": 0.05}

    def fit(make_es, make_rlr):
        keras.utils.set_random_seed(3)
        rng = np.random.default_rng(3)
        x = rng.normal(size=(64, 4)).astype("float32")
        y = (x @ rng.normal(size=(4, 1))).astype("float32")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
        rates = []
        record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: rates.append(
            float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
        es, rlr = make_es(**es_args), make_rlr(**rlr_args)
        history = model.fit(x, y, epochs=40, batch_size=16, verbose=0,
                            callbacks=[rlr, es, record])
        return rates, len(history.history["loss"]), es.stopped_epoch, \
            [w.tolist() for w in model.get_weights()]

    python, compiled = fit(es_cls, rlr_cls), fit(EarlyStopping, ReduceLROnPlateau)
    assert python[0] == compiled[0]
    assert python[1:] == compiled[1:]
    assert python[1] < 40 and min(python[0]) < 0.05, "the run shows nothing: no stop, no cut"


# --------------------------------------------------------------------------- CLI


def test_cli_prints_the_python(tmp_path, capsys):
    policy = tmp_path / "policy.cbd"
    policy.write_text("on epoch_end when val_loss stalls 5 do lr *= 0.2\n")
    assert main(["explain", str(policy), "--python"]) == 0
    out = capsys.readouterr().out
    namespace: dict = {}
    exec(compile(out, "policy.py", "exec"), namespace)
    assert issubclass(namespace["Policy"], keras.callbacks.Callback)
    assert "self.model.optimizer.learning_rate = lr * 0.2" in out


def test_cli_reports_what_cannot_be_written(tmp_path, capsys):
    policy = tmp_path / "policy.cbd"
    policy.write_text("param p = 1\non epoch_end priority p do lr *= 0.5\n")
    assert main(["explain", str(policy), "--python"]) == 1
    err = capsys.readouterr().err
    assert "E601" in err and "priority given by a parameter" in err and ":2:" in err


def test_imported_and_library_rules_carry_their_own_source_lines(tmp_path):
    (tmp_path / "base.cbd").write_text("# shared\non epoch_end when loss is nan do stop\n")
    main_file = tmp_path / "main.cbd"
    main_file.write_text('import "base.cbd"\nuse keras.terminate_on_nan()\n'
                         'on epoch_begin once at epoch 0 do print "go"\n')
    namespace, text = written(main_file)
    assert "# base.cbd, line 2: on epoch_end when loss is nan do stop" in text
    assert "# line 3: on epoch_begin once at epoch 0 do print \"go\"" in text
    assert "Written out from terminate_on_nan.cbd." in text
    made = namespace["make_callbacks"]()
    assert [type(cb).__name__ for cb in made] == ["Main", "TerminateOnNaN"]


def test_templates_count_every_counter_from_1_and_expressions_from_0():
    # one convention where a person reads a number: epoch, batch and step alike are 1-based
    # in text, and Keras's 0-based indices in expressions (docs/language.md, "Numbering")
    source = ('on train_batch_end do print "e{epoch} b{batch} s{step}", log s = step\n'
              'on epoch_end do print "epoch {epoch} of {epochs}"\n')
    written_cls = next(v for v in written(source)[0].values() if isinstance(v, type)
                       and issubclass(v, keras.callbacks.Callback))
    outputs = []
    for cb in (cbdsl.compile(source)[0], written_cls()):
        cb.set_model(StubModel(0.1))
        cb.set_params({"epochs": 2, "steps": 2, "verbose": 0})
        printed, steps = io.StringIO(), []
        with contextlib.redirect_stdout(printed):
            cb.on_train_begin({})
            for epoch in range(2):
                cb.on_epoch_begin(epoch, {})
                for batch in range(2):
                    logs = {"loss": 1.0}
                    cb.on_train_batch_end(batch, logs)
                    steps.append(logs["s"])
                cb.on_epoch_end(epoch, {"loss": 1.0})
        outputs.append((printed.getvalue().split("\n"), steps))
    assert outputs[0] == outputs[1]
    lines, steps = outputs[0]
    assert lines[:3] == ["e1 b1 s1", "e1 b2 s2", "epoch 1 of 2"]
    assert lines[5] == "epoch 2 of 2" and lines[4] == "e2 b2 s4"
    assert steps == [0, 1, 2, 3]


def test_a_metric_missing_from_a_message_is_skipped_with_a_warning_alike():
    # the compiled rule reads every metric its actions need before the first one runs: a
    # missing one warns (Keras's words) and skips the rule; the written code does the same
    source = 'on epoch_end do log seen = 1, print "{val_loss:.3f}"\n'
    written_cls = next(v for v in written(source)[0].values() if isinstance(v, type)
                       and issubclass(v, keras.callbacks.Callback))
    for cb in (cbdsl.compile(source)[0], written_cls()):
        cb.set_model(StubModel(0.1))
        cb.set_params({"epochs": 1, "steps": 1, "verbose": 0})
        logs = {"loss": 1.0}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), pytest.warns(
                UserWarning, match="conditioned on metric `val_loss` which is not available"):
            cb.on_epoch_end(0, logs)
        assert printed.getvalue() == "" and "seen" not in logs, type(cb)
