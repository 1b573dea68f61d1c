"""Guards of the architecture: every node kind, function, action and effect reaches every stage.

Adding a node kind, a function, an action or an effect means one entry in `cbdsl.language` (or
`cbdsl.syntax.nodes`) and one method in each stage that needs it; these tests name the stage
that lacks it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import typing
from pathlib import Path

import pytest

import cbdsl
from cbdsl import language
from cbdsl.checker.rules import RuleChecker
from cbdsl.checker.scope import Scope
from cbdsl.compiler.definitions import DefinitionCompiler
from cbdsl.compiler.expressions import ExprCompiler
from cbdsl.explain import Explainer
from cbdsl.language import types
from cbdsl.pythonize.classes import ClassWriter
from cbdsl.runtime.effects import IMPLEMENTATIONS
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import children, walk

ROOT = Path(__file__).resolve().parents[1]
NODES = sorted((c for c in vars(n).values()
                if isinstance(c, type) and issubclass(c, n.Node) and c is not n.Node),
               key=lambda c: c.__name__)
EXPRESSIONS = typing.get_args(n.Expr)
ACTIONS = typing.get_args(n.Action)
# Node kinds written in annotations; a field naming one of these (not `Ident`) holds children.
_NODE_WORDS = {c.__name__ for c in NODES} - {"Ident"} | {"Expr", "Action", "Filter", "Item"}


def _holds_nodes(annotation: str) -> bool:
    return bool(_NODE_WORDS & set(re.findall(r"\w+", annotation)))


@pytest.mark.parametrize("node", NODES, ids=lambda c: c.__name__)
def test_every_node_declares_exactly_the_fields_that_hold_its_children(node):
    fields = {f.name: f.type for f in dataclasses.fields(node)}
    assert set(node.children) <= set(fields), f"{node.__name__}.children names no field"
    holding = {name for name, annotation in fields.items() if _holds_nodes(str(annotation))}
    assert set(node.children) == holding, (
        f"{node.__name__}.children should be {sorted(holding)}")


def _every_node(value, out):
    """Every node under `value` by brute force over all dataclass fields (not `children`)."""
    if isinstance(value, n.Ident):
        return
    if isinstance(value, n.Node):
        out.append(value)
        for f in dataclasses.fields(value):
            _every_node(getattr(value, f.name), out)
    elif isinstance(value, tuple):
        for item in value:
            _every_node(item, out)


def _shipped_programs():
    for path in sorted([*ROOT.glob("rules/*.cbd"), *ROOT.glob("examples/*.cbd"),
                        *ROOT.glob("cbdsl/data/*.cbd")]):
        yield path.name, cbdsl.parse(path)


@pytest.mark.parametrize("name,program", list(_shipped_programs()), ids=lambda x: str(x)[:40])
def test_the_generic_walk_reaches_every_node_of_the_shipped_rule_files(name, program):
    brute: list = []
    _every_node(program, brute)
    walked = list(walk(program))
    assert sorted(map(id, walked)) == sorted(map(id, brute))
    # in source order: each node's children come after it, in their declared order
    position = {id(node): i for i, node in enumerate(walked)}
    for parent in walked:
        kids = [position[id(child)] for child in children(parent)]
        assert kids == sorted(kids) and all(k > position[id(parent)] for k in kids)


def test_every_node_kind_is_in_the_union_of_its_kind_that_the_stages_read():
    grouped = {*EXPRESSIONS, *ACTIONS, *typing.get_args(n.Filter), *typing.get_args(n.Item)}
    parts = {"Ident", "Keyword", "Option", "Priority", "Require", "Expose", "Program"}
    assert {c.__name__ for c in NODES if c not in grouped} == parts


@pytest.mark.parametrize("node", EXPRESSIONS, ids=lambda c: c.__name__)
def test_every_expression_kind_is_typed_compiled_and_written_as_python(node):
    name = node.__name__
    assert hasattr(Scope, f"type_{name}"), f"the checker's Scope has no type_{name}"
    assert hasattr(ExprCompiler, f"visit_{name}"), f"the compiler has no visit_{name}"
    assert hasattr(ClassWriter, f"write_{name}"), f"explain --python has no write_{name}"


@pytest.mark.parametrize("node", ACTIONS, ids=lambda c: c.__name__)
def test_every_action_kind_is_in_the_table_and_checked_compiled_explained_and_written(node):
    name = node.__name__
    assert name in language.ACTIONS, f"cbdsl.language.ACTIONS has no entry for {name}"
    assert hasattr(RuleChecker, f"check_{name}"), f"the checker has no check_{name}"
    assert hasattr(DefinitionCompiler, f"visit_{name}"), f"the compiler has no visit_{name}"
    assert hasattr(Explainer, f"explain_{name}"), f"explain has no explain_{name}"
    # explain --python writes every action or refuses it by name (E601)
    assert hasattr(ClassWriter, f"write_{name}") or name in ("Effect", "CallPython"), (
        f"explain --python has no write_{name}")


def test_the_actions_table_names_no_action_the_syntax_lacks():
    assert set(language.ACTIONS) == {a.__name__ for a in ACTIONS}


_SAMPLES = {"number": 2.0, "numeric": "3", "str": "a", "table": {1: 2.0}, "iterable": [2, 1],
            "sized": "ab", "any": 1.0}


@pytest.mark.parametrize("name", sorted(language.FUNCTIONS))
def test_every_function_is_run_typed_and_written_from_the_table(name):
    function = language.FUNCTIONS[name]
    plain = ("int", "float", "number", "bool", "str", "table", "list", "any")
    assert types.base_type(function.result) in plain and (
        function.result in plain or function.result.startswith(("table[", "list[")))
    assert all(a.type in language.ARG_ACCEPTS for a in function.args)
    if function.reads_event:  # the compiler gives these the event
        assert name in inspect.getsource(ExprCompiler.visit_Call), (
            f"the compiler does not build '{name}', which reads the event")
    else:  # the implementation takes as few and as many arguments as the table says
        most = function.min_args + 2 if function.max_args is None else function.max_args
        for count in {function.min_args, most}:
            args = [_SAMPLES[function.arg(k).type] for k in range(count)]
            with contextlib.suppress(ValueError, ArithmeticError):  # a value, not a count
                function.impl(*args)
    # explain --python: a template, a call_<name> method of its own, or a refusal (E601)
    if function.python is None and not hasattr(ClassWriter, f"call_{name}"):
        assert name in ("type", "format", "endswith", "fill"), (
            f"explain --python neither writes nor knowingly refuses '{name}'")


@pytest.mark.parametrize("name", sorted(set(language.EFFECTS) | set(IMPLEMENTATIONS)))
def test_every_effect_spec_has_an_implementation_taking_exactly_its_arguments(name):
    assert name in language.EFFECTS, f"the runtime implements '{name}', the language lacks it"
    assert name in IMPLEMENTATIONS, f"the language has '{name}', the runtime lacks it"
    spec = language.EFFECTS[name]
    params = inspect.signature(IMPLEMENTATIONS[name]).parameters
    given = {k: p for k, p in params.items() if k not in ("cb", "where")}
    assert list(given) == [p.name for p in spec.params], (
        f"'{name}': the implementation takes {list(given)}, the spec "
        f"{[p.name for p in spec.params]}")
    for p in spec.params:
        default = given[p.name].default
        if p.required:
            assert default is inspect.Parameter.empty, f"'{name}': '{p.name}' is required"
        else:
            assert default == p.default, (
                f"'{name}': '{p.name}' defaults to {default!r} in the runtime and "
                f"{p.default!r} in the spec")


def test_every_effect_is_explained_from_its_spec():
    program = cbdsl.parse("on epoch_end do ema.finalize()")
    assert language.EFFECTS["ema.finalize"].doc.split(";")[0] in \
        " ".join(__import__("cbdsl.explain", fromlist=["explain"]).explain(program))
