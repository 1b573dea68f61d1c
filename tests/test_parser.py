"""The parser and tree builder: every construct of the grammar becomes the right node, and
malformed text becomes a CbdslSyntaxError whose rendered message is in words."""

from __future__ import annotations

import re

import pytest

import cbdsl
from cbdsl.diagnostics import CbdslSyntaxError, Span
from cbdsl.syntax import nodes as n
from cbdsl.syntax.parser import decode, describe_expected, read_source

MISSION = "on epoch_end when val_loss stalls 5 do lr *= 0.2"


# ---------------------------------------------------------------- helpers


def I(name: str) -> n.Ident:  # noqa: E743 - short constructors keep the expected trees readable
    return n.Ident(name)


def N(value) -> n.Number:
    return n.Number(value)


def V(name: str) -> n.Name:
    return n.Name(name)


def S(value: str) -> n.String:
    return n.String(value)


def only(text: str):
    """The single item of a program."""
    (item,) = cbdsl.parse(text).items
    return item


def cond(expr: str) -> n.Node:
    """The condition of `on epoch_end when EXPR do stop`."""
    return only(f"on epoch_end when {expr} do stop").condition


def acts(text: str) -> tuple:
    """The actions of `on epoch_end do TEXT`."""
    return only(f"on epoch_end do {text}").actions


def rule(*actions, events=("epoch_end",), **fields) -> n.Rule:
    return n.Rule(tuple(I(e) for e in events), tuple(actions) or (n.Stop(),), **fields)


def syntax_error(text: str) -> CbdslSyntaxError:
    with pytest.raises(CbdslSyntaxError) as info:
        cbdsl.parse(text)
    return info.value


# ---------------------------------------------------------------- mission


def test_mission_sentence_parses_verbatim_into_its_nodes():
    program = cbdsl.parse(MISSION)
    assert program == n.Program((
        n.Rule(events=(I("epoch_end"),),
               actions=(n.Assign(I("lr"), "*=", N(0.2)),),
               condition=n.Stalls(V("val_loss"), N(5))),
    ))
    (r,) = program.items
    assert r.filters == () and r.priority is None and r.label is None
    assert r.condition.options == () and r.condition.alias is None
    assert type(r.condition.count.value) is int and type(r.actions[0].value.value) is float


def test_mission_sentence_spans_point_at_the_text():
    (r,) = cbdsl.parse(MISSION).items
    assert r.span == Span(1, 1, 1, 49, 0, 48)
    assert r.events[0].span == Span(1, 4, 1, 13, 3, 12)
    assert r.condition.span == Span(1, 19, 1, 36, 18, 35)
    assert r.condition.subject.span == Span(1, 19, 1, 27, 18, 26)
    assert r.condition.count.span == Span(1, 35, 1, 36, 34, 35)
    assert r.actions[0].span == Span(1, 40, 1, 49, 39, 48)
    assert r.actions[0].target.span == Span(1, 40, 1, 42, 39, 41)
    for node in (r, r.condition, r.actions[0]):
        assert MISSION[node.span.start:node.span.end] == {
            n.Rule: MISSION, n.Stalls: "val_loss stalls 5", n.Assign: "lr *= 0.2"}[type(node)]


def test_spans_are_not_part_of_equality_so_layout_does_not_matter():
    laid_out = """
        # the mission, spread over lines
        on   epoch_end          # event
            when val_loss
                 stalls 5       # patience
            do lr *= 0.2
    """
    assert cbdsl.parse(laid_out) == cbdsl.parse(MISSION)
    (r,) = cbdsl.parse(laid_out).items
    assert (r.span.line, r.span.end_line) == (3, 6)
    assert r.condition.count.span.line == 5


def test_program_keeps_path_and_source_outside_equality():
    program = cbdsl.syntax.parser.parse(MISSION, "policy.cbd")
    assert program.path == "policy.cbd" and program.source == MISSION
    assert program == cbdsl.parse(MISSION)


def test_empty_and_comment_only_files_are_empty_programs():
    assert cbdsl.parse("") == n.Program(())
    assert cbdsl.parse("  \n\t# nothing here\n   # or here\n") == n.Program(())


# ------------------------------------------------------------------ rules


def test_event_lists_and_aliases_are_plain_names():
    assert only("on epoch_end, train_batch_end,batch_end do stop") == rule(
        events=("epoch_end", "train_batch_end", "batch_end"))
    # event names are not keywords: a typo parses, the checker reports it
    assert only("on epoch_ned do stop") == rule(events=("epoch_ned",))


def test_label():
    r = only("plateau: on epoch_end do stop")
    assert r == rule(label=I("plateau"))
    assert r.label.span == Span(1, 1, 1, 8, 0, 7)


@pytest.mark.parametrize(("text", "node"), [
    ("every 5", n.Every(N(5))),
    ("every 5 epochs", n.Every(N(5), I("epochs"))),
    ("every 1 epoch", n.Every(N(1), I("epoch"))),
    ("every 100 steps", n.Every(N(100), I("steps"))),
    ("every 2 batches", n.Every(N(2), I("batches"))),
    ("every 3 * k batch", n.Every(n.BinOp("*", N(3), V("k")), I("batch"))),
    ("after 10", n.After(N(10))),
    ("after 10 epochs", n.After(N(10), I("epochs"))),
    ("after 1 step", n.After(N(1), I("step"))),
    ("from epoch 3", n.After(N(3), I("epoch"))),
    ("from batch warmup", n.After(V("warmup"), I("batch"))),
    ("before epoch 20", n.Before(N(20), I("epoch"))),
    ("before steps 500", n.Before(N(500), I("steps"))),
    ("once at epoch 7", n.Once(N(7), I("epoch"))),
    ("once at batch 0", n.Once(N(0), I("batch"))),
])
def test_each_filter(text, node):
    assert only(f"on epoch_end {text} do stop") == rule(filters=(node,))


def test_filters_keep_their_order_and_priority_goes_apart():
    r = only("on train_batch_end every 2 steps priority -1 after 10 before epoch 20 "
             "once at batch 3 when loss > 1 do stop")
    assert r == rule(
        events=("train_batch_end",),
        filters=(n.Every(N(2), I("steps")), n.After(N(10)), n.Before(N(20), I("epoch")),
                 n.Once(N(3), I("batch"))),
        priority=n.Priority(n.Unary("-", N(1))),
        condition=n.Compare(V("loss"), ((">", N(1)),)))


def test_priority():
    assert only("on epoch_end priority 2 do stop") == rule(priority=n.Priority(N(2)))
    assert only("on epoch_end priority p do stop").priority == n.Priority(V("p"))


def test_priority_twice_is_refused_with_the_second_one_marked():
    error = syntax_error("on epoch_end priority 1 priority 2 do stop")
    assert error.code == "E218"
    assert str(error) == (
        "<string>:1:25: error E218: priority given twice in one rule\n"
        "1 | on epoch_end priority 1 priority 2 do stop\n"
        "                            ^^^^^^^^^^")


# ------------------------------------------------------------- conditions


def test_boolean_operators_and_their_precedence():
    a, b, c = V("a"), V("b"), V("c")
    assert cond("a and b or not c") == n.BoolOp("or", n.BoolOp("and", a, b), n.Unary("not", c))
    assert cond("a or b and c") == n.BoolOp("or", a, n.BoolOp("and", b, c))
    assert cond("not a and b") == n.BoolOp("and", n.Unary("not", a), b)
    assert cond("not not a") == n.Unary("not", n.Unary("not", a))
    assert cond("a and b and c") == n.BoolOp("and", n.BoolOp("and", a, b), c)
    assert cond("a or (b or c)") == n.BoolOp("or", a, n.BoolOp("or", b, c))


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_each_comparison(op):
    assert cond(f"val_loss {op} 0.5") == n.Compare(V("val_loss"), ((op, N(0.5)),))


def test_comparison_chains_are_one_node():
    assert cond("0 < lr <= 1 != x") == n.Compare(
        N(0), (("<", V("lr")), ("<=", N(1)), ("!=", V("x"))))
    assert cond("not a < b") == n.Unary("not", n.Compare(V("a"), (("<", V("b")),)))


def test_arithmetic_precedence_and_associativity():
    a, b, c, d = V("a"), V("b"), V("c"), V("d")
    assert cond("a + b * c - d / 2 > 0").first == n.BinOp(
        "-", n.BinOp("+", a, n.BinOp("*", b, c)), n.BinOp("/", d, N(2)))
    assert cond("a - b - c > 0").first == n.BinOp("-", n.BinOp("-", a, b), c)
    assert cond("a // b % c > 0").first == n.BinOp("%", n.BinOp("//", a, b), c)
    assert cond("(a + b) * c > 0").first == n.BinOp("*", n.BinOp("+", a, b), c)
    # ** binds tighter than unary minus on its left, and is right-associative
    assert cond("-a ** 2 > 0").first == n.Unary("-", n.BinOp("**", a, N(2)))
    assert cond("a ** b ** c > 0").first == n.BinOp("**", a, n.BinOp("**", b, c))
    assert cond("a ** -b > 0").first == n.BinOp("**", a, n.Unary("-", b))
    assert cond("+a > -(b)").first == n.Unary("+", a)
    assert cond("+a > -(b)").rest == ((">", n.Unary("-", b)),)


def test_conditional_expression():
    assert acts("lr = lr * 0.5 if epoch > 3 else lr") == (n.Assign(
        I("lr"), "=", n.Conditional(n.BinOp("*", V("lr"), N(0.5)),
                                    n.Compare(V("epoch"), ((">", N(3)),)), V("lr"))),)
    # `else` takes a whole expression: conditionals nest to the right
    assert acts("lr = 1 if a else 2 if b else 3")[0].value == n.Conditional(
        N(1), V("a"), n.Conditional(N(2), V("b"), N(3)))


def test_tables():
    assert acts("lr = lookup({3: 0.05, 6: 0.01,}, epoch)")[0].value == n.Call(
        I("lookup"), (n.Table(((N(3), N(0.05)), (N(6), N(0.01)))), V("epoch")))
    assert acts("lr = piecewise({}, epoch)")[0].value.args[0] == n.Table(())
    assert acts('lr = lookup({"a": 1 if x else 2}, k)')[0].value.args[0] == n.Table(
        ((S("a"), n.Conditional(N(1), V("x"), N(2))),))


def test_function_calls():
    assert cond("max(lr * 0.5, 1e-6) > 0").first == n.Call(
        I("max"), (n.BinOp("*", V("lr"), N(0.5)), N(1e-6)))
    assert cond("f() > 0").first == n.Call(I("f"))
    assert cond("round(x, ndigits = 2,) > 0").first == n.Call(
        I("round"), (V("x"),), (n.Keyword(I("ndigits"), N(2)),))
    # `log` is an action word and also the logarithm
    assert cond("log(x, 10) > 0").first == n.Call(I("log"), (V("x"), N(10)))
    assert cond('metric("val_acc") > 0').first == n.Call(I("metric"), (S("val_acc"),))
    assert cond("abs(abs(x)) > 0").first == n.Call(I("abs"), (n.Call(I("abs"), (V("x"),)),))


def test_attributes_read_tracker_fields():
    assert cond("plateau.wait > 2").first == n.Attribute(I("plateau"), I("wait"))
    # `best` is also a word of `restore best weights`, and still a field name
    assert cond("plateau.best < 0.5").first == n.Attribute(I("plateau"), I("best"))
    attr = cond("p.best_epoch > 2").first
    assert attr == n.Attribute(I("p"), I("best_epoch"))
    assert attr.attr.span == Span(1, 21, 1, 31, 20, 30)


def test_literals_and_names():
    assert cond("x == true").rest[0][1] == n.Bool(True)
    assert cond("x == false").rest[0][1] == n.Bool(False)
    assert cond("x == none").rest[0][1] == n.NoneLit()
    assert cond("x == inf").rest[0][1] == V("inf")
    # counter words are keywords in filters and names in expressions
    for word in ("epoch", "epochs", "batch", "batches", "step", "steps"):
        assert cond(f"{word} > 1").first == V(word)
    # so is `cooldown`, which is also an action
    assert cond("cooldown > 1").first == V("cooldown")


@pytest.mark.parametrize(("text", "value"), [
    ("5", 5), ("0", 0), ("007", 7), ("0.2", 0.2), ("5.", 5.0), (".5", 0.5), ("1e-4", 1e-4),
    ("2E3", 2000.0), ("1.5e+2", 150.0),
])
def test_numbers(text, value):
    number = cond(f"x > {text}").rest[0][1]
    assert number == N(value) and type(number.value) is type(value)


def test_number_out_of_range_is_refused():
    error = syntax_error("on epoch_end when 1e999 > a do stop")
    assert str(error) == (
        "<string>:1:19: error E106: number 1e999 is out of range\n"
        "1 | on epoch_end when 1e999 > a do stop\n"
        "                      ^^^^^ use the name 'inf' for infinity")


@pytest.mark.parametrize(("text", "value"), [
    ('"plain"', "plain"),
    ("'single'", "single"),
    (r'"a \"quoted\" word"', 'a "quoted" word'),
    (r"'it\'s'", "it's"),
    (r'"tab\tnewline\nback\\slash"', "tab\tnewline\nback\\slash"),
    (r'"unknown \q escape"', r"unknown \q escape"),
    ('"# not a comment"', "# not a comment"),
    ('"ckpt/e{epoch:03d}.keras"', "ckpt/e{epoch:03d}.keras"),
])
def test_strings(text, value):
    assert acts(f"print {text}") == (n.Print(S(value)),)


# ------------------------------------------------------------ predicates


def test_stalls():
    assert cond("val_loss stalls 5") == n.Stalls(V("val_loss"), N(5))
    assert cond("metric(monitor) stalls 3 * patience") == n.Stalls(
        n.Call(I("metric"), (V("monitor"),)), n.BinOp("*", N(3), V("patience")))
    assert cond("val_loss stalls cooldown") == n.Stalls(V("val_loss"), V("cooldown"))


def test_stalls_with_one_option_and_alias():
    assert cond("val_loss stalls 5 with min_delta = 1e-4 as plateau") == n.Stalls(
        V("val_loss"), N(5), (n.Option(I("min_delta"), N(1e-4)),), I("plateau"))


def test_stalls_with_several_options():
    assert cond('val_acc stalls 3 with (mode = "max", min_delta = 0.1, baseline = -1,'
                ' weights = true,)') == n.Stalls(V("val_acc"), N(3), (
                    n.Option(I("mode"), S("max")),
                    n.Option(I("min_delta"), N(0.1)),
                    n.Option(I("baseline"), n.Unary("-", N(1))),
                    n.Option(I("weights"), n.Bool(True))))


def test_mode_written_as_a_bare_word_reads_as_the_string():
    for mode in ("min", "max", "auto"):
        assert cond(f"x stalls 3 with mode = {mode}").options == (
            n.Option(I("mode"), S(mode)),)
    # any other bare word stays a name (the checker judges it)
    assert cond("x stalls 3 with mode = m").options == (n.Option(I("mode"), V("m")),)


def test_stalls_inside_a_larger_condition():
    assert cond("val_loss stalls 12 as stopper and epoch > 0") == n.BoolOp(
        "and", n.Stalls(V("val_loss"), N(12), (), I("stopper")),
        n.Compare(V("epoch"), ((">", N(0)),)))


def test_improves():
    assert cond("val_acc improves") == n.Improves(V("val_acc"))
    assert cond("val_acc improves with mode = max as best_acc") == n.Improves(
        V("val_acc"), (n.Option(I("mode"), S("max")),), I("best_acc"))
    assert cond("val_loss improves with (min_delta = 0.01, baseline = 1)") == n.Improves(
        V("val_loss"), (n.Option(I("min_delta"), N(0.01)), n.Option(I("baseline"), N(1))))


@pytest.mark.parametrize(("text", "node"), [
    ("loss is nan", n.IsNan(V("loss"))),
    ("loss is not nan", n.IsNan(V("loss"), negated=True)),
    ("loss is finite", n.IsFinite(V("loss"))),
    ("loss is not finite", n.IsFinite(V("loss"), negated=True)),
    ("loss * 2 is not finite", n.IsFinite(n.BinOp("*", V("loss"), N(2)), negated=True)),
    ("not loss is nan", n.Unary("not", n.IsNan(V("loss")))),
])
def test_nan_and_finite_predicates(text, node):
    assert cond(text) == node


def test_negated_and_plain_predicates_differ():
    assert cond("loss is nan") != cond("loss is not nan")
    assert cond("loss is finite") != cond("loss is not finite")


# --------------------------------------------------------------- actions


@pytest.mark.parametrize("op", ["=", "+=", "-=", "*=", "/="])
def test_learning_rate_assignment_and_compound_ops(op):
    assert acts(f"lr {op} 0.5") == (n.Assign(I("lr"), op, N(0.5)),)
    assert acts(f"learning_rate {op} x") == (n.Assign(I("learning_rate"), op, V("x")),)


def test_stop():
    assert acts("stop") == (n.Stop(),)


def test_save():
    assert acts('save model "ckpt/e{epoch:03d}.keras"') == (
        n.Save("model", S("ckpt/e{epoch:03d}.keras")),)
    assert acts("save weights path") == (n.Save("weights", V("path")),)


def test_restore_best_weights():
    assert acts("restore best weights") == (n.Restore(),)
    r = acts("restore best weights of stopper")
    assert r == (n.Restore(I("stopper")),)
    assert r[0].tracker.span == Span(1, 41, 1, 48, 40, 47)


def test_log_print_warn():
    assert acts("log lr_now = lr * 1") == (
        n.Log(I("lr_now"), n.BinOp("*", V("lr"), N(1))),)
    assert acts('print "epoch {epoch}"') == (n.Print(S("epoch {epoch}")),)
    assert acts('warn "loss is {loss:.3f}"') == (n.Warn(S("loss is {loss:.3f}")),)


@pytest.mark.parametrize("op", ["=", "+=", "-=", "*=", "/="])
def test_set(op):
    assert acts(f"set hits {op} 1") == (n.Set(I("hits"), op, N(1)),)


def test_cooldown_action():
    assert acts("cooldown 2") == (n.Cooldown(N(2)),)
    assert acts("cooldown cooldown") == (n.Cooldown(V("cooldown")),)


def test_call():
    assert acts("call hook()") == (n.CallPython(I("hook")),)
    assert acts("call hook(logs, epoch, tag = 'x',)") == (n.CallPython(
        I("hook"), (V("logs"), V("epoch")), (n.Keyword(I("tag"), S("x")),)),)


def test_several_actions_keep_their_order():
    assert acts('lr *= 0.3, cooldown 1, stop, restore best weights, print "x"') == (
        n.Assign(I("lr"), "*=", N(0.3)), n.Cooldown(N(1)), n.Stop(), n.Restore(),
        n.Print(S("x")))


# ---------------------------------------------------------- declarations


def test_param_and_var():
    assert only("param patience = 5") == n.ParamDecl(I("patience"), N(5))
    # typed as a callback's parameters are
    assert only("param hook: python = none") == n.ParamDecl(I("hook"), n.NoneLit(), I("python"))
    assert only("param path: str") == n.ParamDecl(I("path"), None, I("str"))
    assert only("var best_loss = inf") == n.VarDecl(I("best_loss"), V("inf"))
    assert only('var table = {0: "a"}') == n.VarDecl(I("table"), n.Table(((N(0), S("a")),)))


def test_import():
    item = only('import "lib/common.cbd"')
    assert item == n.Import(S("lib/common.cbd"))
    assert item.path.span == Span(1, 8, 1, 24, 7, 23)


def test_use_with_arguments():
    item = only('use keras.early_stopping(3, "val_loss", patience = 3, cooldown = 1,)')
    assert item == n.Use(
        (I("keras"), I("early_stopping")), (N(3), S("val_loss")),
        (n.Keyword(I("patience"), N(3)), n.Keyword(I("cooldown"), N(1))))
    assert item.dotted == "keras.early_stopping"
    assert only("use shrink()") == n.Use((I("shrink"),))
    assert only("use a.b.c(weights = true)") == n.Use(
        (I("a"), I("b"), I("c")), (), (n.Keyword(I("weights"), n.Bool(True)),))


def test_callback_block_with_typed_params_defaults_and_docstring():
    text = '''
    callback shrink(monitor = "val_loss", factor = 0.2, filepath: str, cooldown = 0,
                    hook: python,) {
        "Shrink the learning rate when the monitored metric stops improving."
        var hits = 0
        on epoch_end when metric(monitor) stalls 5 do lr *= factor, set hits += 1
        var other = 1
    }
    '''
    assert only(text) == n.CallbackDef(
        I("shrink"),
        (n.ParamDecl(I("monitor"), S("val_loss")),
         n.ParamDecl(I("factor"), N(0.2)),
         n.ParamDecl(I("filepath"), None, I("str")),
         n.ParamDecl(I("cooldown"), N(0)),
         n.ParamDecl(I("hook"), None, I("python"))),
        (n.VarDecl(I("hits"), N(0)),
         rule(n.Assign(I("lr"), "*=", V("factor")), n.Set(I("hits"), "+=", N(1)),
              condition=n.Stalls(n.Call(I("metric"), (V("monitor"),)), N(5))),
         n.VarDecl(I("other"), N(1))),
        "Shrink the learning rate when the monitored metric stops improving.")


def test_callback_block_without_params_doc_or_body():
    assert only("callback nothing() {}") == n.CallbackDef(I("nothing"))
    assert only("callback nothing() {}").doc is None
    assert only("callback a() { on epoch_end do stop }") == n.CallbackDef(
        I("a"), (), (rule(),))
    # a string that is not first in the block is not a docstring
    error = syntax_error('callback a() { on epoch_end do stop "doc" }')
    assert error.code == "E100"


def test_cooldown_is_a_parameter_name():
    program = cbdsl.parse("""
        callback plateau(patience = 5, cooldown = 2) {
            on epoch_end when val_loss stalls patience do lr *= 0.5, cooldown cooldown
        }
        use plateau(cooldown = 0)
    """)
    definition, use = program.items
    assert definition.params[1] == n.ParamDecl(I("cooldown"), N(2))
    assert definition.body[0].actions[1] == n.Cooldown(V("cooldown"))
    assert use.keywords == (n.Keyword(I("cooldown"), N(0)),)


def test_a_whole_file_keeps_item_order():
    program = cbdsl.parse("""
        # policy
        param patience = 3   # overridable
        var seen = 0
        import "common.cbd"
        callback a() { }
        use a()
        warmup: on epoch_begin before epoch 3 do lr = 0.06 * (epoch + 1) / 3
    """)
    assert [type(item) for item in program.items] == [
        n.ParamDecl, n.VarDecl, n.Import, n.CallbackDef, n.Use, n.Rule]
    assert program.items[-1] == rule(
        n.Assign(I("lr"), "=", n.BinOp("/", n.BinOp("*", N(0.06), n.BinOp("+", V("epoch"),
                                                                          N(1))), N(3))),
        events=("epoch_begin",), label=I("warmup"), filters=(n.Before(N(3), I("epoch")),))


def test_shipped_demo_policy_parses():
    from cbdsl.cli import demo_policy_text

    program = cbdsl.parse(demo_policy_text())
    assert [item.label.name for item in program.items if isinstance(item, n.Rule)] == [
        "warmup", "plateau", "early_stop", "nan_guard"]


def test_keywords_are_reserved():
    for word in ("on", "do", "when", "stop", "every", "stalls", "if"):
        assert syntax_error(f"on epoch_end do lr = {word}").code in ("E100", "E102")
    assert syntax_error("param on = 1").code == "E100"


# --------------------------------------------------------- syntax errors


@pytest.mark.parametrize(("text", "rendered"), [
    pytest.param(
        "on epoch_end when val_loss stalls 5 lr *= 0.2",
        "<string>:1:37: error E100: unexpected name 'lr'; expected 'do'\n"
        "1 | on epoch_end when val_loss stalls 5 lr *= 0.2\n"
        "                                        ^^",
        id="missing-do"),
    pytest.param(
        "on epoch_end when val_loss stalls do lr *= 0.2",
        "<string>:1:35: error E100: unexpected 'do'; expected an expression\n"
        "1 | on epoch_end when val_loss stalls do lr *= 0.2\n"
        "                                      ^^",
        id="missing-expression-after-stalls"),
    pytest.param(
        "on epoch_end do lr @= 2",
        "<string>:1:20: error E101: unexpected character '@'\n"
        "1 | on epoch_end do lr @= 2\n"
        "                       ^",
        id="unexpected-character"),
    pytest.param(
        'on epoch_end\n  do print "stopped at {epoch}\n',
        "<string>:2:12: error E101: unterminated string\n"
        '2 |   do print "stopped at {epoch}\n'
        "               ^ close it with a matching quote on the same line",
        id="unterminated-string"),
    pytest.param(
        "on epoch_end when val_loss stalls 5 do lr *=",
        "<string>:1:45: error E102: unexpected end of input; expected an expression\n"
        "1 | on epoch_end when val_loss stalls 5 do lr *=\n"
        "                                                ^",
        id="end-of-input"),
    pytest.param(
        "on epoch_end",
        "<string>:1:13: error E102: unexpected end of input; expected ',', 'after', 'before', "
        "'do', 'every', 'from', 'once', 'priority' or 'when'\n"
        "1 | on epoch_end\n"
        "                ^",
        id="end-of-input-after-events"),
    pytest.param(
        "on epoch_end do",
        "<string>:1:16: error E102: unexpected end of input; expected an action\n"
        "1 | on epoch_end do\n"
        "                   ^",
        id="end-of-input-before-action"),
    pytest.param(
        "on epoch_end do lr *= 0.2 )",
        "<string>:1:27: error E100: unexpected ')'; expected 'callback', 'import', 'on', "
        "'param', 'use', 'var', a name or end of input\n"
        "1 | on epoch_end do lr *= 0.2 )\n"
        "                              ^",
        id="junk-after-a-rule"),
    pytest.param(
        "on 5 do stop",
        "<string>:1:4: error E100: unexpected number 5; expected a name\n"
        "1 | on 5 do stop\n"
        "       ^",
        id="number-for-event"),
    pytest.param(
        "import policy",
        "<string>:1:8: error E100: unexpected name 'policy'; expected a string\n"
        "1 | import policy\n"
        "           ^^^^^^",
        id="import-needs-a-string"),
    pytest.param(
        "on epoch_end do save ckpt 'x'",
        "<string>:1:22: error E100: unexpected name 'ckpt'; expected 'model' or 'weights'\n"
        "1 | on epoch_end do save ckpt 'x'\n"
        "                         ^^^^",
        id="save-what"),
    pytest.param(
        "callback a(p = 1 { }",
        "<string>:1:18: error E100: unexpected '{'; expected ')', ',' or an operator\n"
        "1 | callback a(p = 1 { }\n"
        "                     ^",
        id="unclosed-params"),
    pytest.param(
        "on epoch_end when x stalls 3 with do stop",
        "<string>:1:35: error E100: unexpected 'do'; expected '(' or a name\n"
        "1 | on epoch_end when x stalls 3 with do stop\n"
        "                                      ^^",
        id="with-needs-an-option"),
    pytest.param(
        "on epoch_end when loss is do stop",
        "<string>:1:27: error E100: unexpected 'do'; expected 'finite', 'nan' or 'not'\n"
        "1 | on epoch_end when loss is do stop\n"
        "                              ^^",
        id="is-what"),
    pytest.param(
        "on epoch_end\twhen\tloss > 1 do stop stop",
        "<string>:1:36: error E100: unexpected 'stop'; expected ',', 'callback', 'import', 'on', "
        "'param', 'use', 'var', a name or end of input\n"
        "1 | on epoch_end when loss > 1 do stop stop\n"
        "                                       ^^^^",
        id="tabs-keep-the-caret-aligned"),
])
def test_syntax_error_rendering(text, rendered):
    error = syntax_error(text)
    assert str(error) == rendered
    assert error.diagnostics[0].code == rendered.split(" error ")[1][:4]


def test_end_of_input_on_a_trailing_newline_shows_the_empty_last_line():
    error = syntax_error("on epoch_end do lr *=\n")
    assert str(error) == (
        "<string>:2:1: error E102: unexpected end of input; expected an expression\n"
        "2 | \n"
        "    ^")


def test_control_characters_do_not_shift_the_shown_line():
    # Lark numbers lines by \n only; the excerpt must show the same line with the caret under
    # the offending character (\f and \r are whitespace, \u2028 is not a line break here)
    error = syntax_error("\f on epoch_end\rdo lr = @")
    assert str(error) == (
        "<string>:1:24: error E101: unexpected character '@'\n"
        "1 |   on epoch_end do lr = @\n"
        "                           ^")
    error = syntax_error("on epoch_end when x\u2028 do stop")
    assert str(error) == (
        "<string>:1:20: error E101: unexpected character 0x2028\n"
        "1 | on epoch_end when x  do stop\n"
        "                       ^")


def test_error_on_a_later_line_shows_that_line():
    error = syntax_error("# policy\non epoch_end do stop\non epoch_end do lr ** 2\n")
    assert str(error) == (
        "<string>:3:20: error E100: unexpected '**'; expected '*=', '+=', '-=', '/=' or '='\n"
        "3 | on epoch_end do lr ** 2\n"
        "                       ^^")
    assert error.diagnostics[0].span == Span(3, 20, 3, 22, 49, 51)


def test_nul_and_other_unprintable_characters_are_named_by_code():
    error = syntax_error("on epoch_end \x00 do stop")
    assert error.diagnostics[0].message == "unexpected character 0x00"
    assert error.diagnostics[0].span == Span(1, 14, 1, 15, 13, 14)


def test_syntax_errors_name_the_file():
    with pytest.raises(CbdslSyntaxError) as info:
        cbdsl.syntax.parser.parse("on epoch_end do", "rules/plateau.cbd")
    assert str(info.value).startswith("rules/plateau.cbd:1:16: error E102: ")


# Every prefix of this file is a syntax error or a valid program; each error must be in words.
RICH = """\
param patience = 3
var hits = 0
import "common.cbd"
callback shrink(monitor = "val_loss", factor = 0.2, filepath: str, cooldown = 0) {
    "doc"
    on epoch_end when metric(monitor) stalls patience with (mode = "min", min_delta = 1e-4)
        as plateau do lr *= factor, cooldown cooldown, set hits += 1
}
use shrink(patience = 2)
use team.x(1, k = {1: 2})
early: on epoch_end, train_batch_end every 2 epochs after 1 from epoch 2 before epoch 9
    once at epoch 3 priority -1
    when not (a < b <= c) and x is not finite or y improves as best_y
        and plateau.best > max(1, 2) ** 2 // 3 % 4 and (1 if z else 2) != 0 or k is nan
    do stop, save model "m", save weights "w.weights.h5", restore best weights of best_y,
       log k = log(2), print "p", warn "w", call hook(logs, x = 1), lr = -1 + +2
"""
_ALLOWED_WORDS = {"a name", "a number", "a string", "end of input", "an expression",
                  "an action", "an operator", "..."}
_TERMINAL_NAME = re.compile(r"\$END|__ANON|\b(?:[A-Z][A-Z0-9]*_?)+\b")


def _expected_words(message: str) -> list[str]:
    if "; expected " not in message:
        return []
    listed = message.split("; expected ", 1)[1]
    return re.split(r", | or ", listed)


def test_every_prefix_of_a_rich_program_fails_in_words():
    assert isinstance(cbdsl.parse(RICH), n.Program)
    tokens = list(re.finditer(r'"[^"]*"|\w+|\*\*|//|<=|>=|==|!=|[+*/-]=|\S', RICH))
    messages = set()
    for token in tokens:
        prefix = RICH[:token.end()]
        try:
            cbdsl.parse(prefix)
        except CbdslSyntaxError as exc:
            (diag,) = exc.diagnostics
            assert diag.code in ("E100", "E102"), (prefix, diag)
            messages.add(diag.message)
            assert str(exc).splitlines()[0].endswith(f"error {diag.code}: {diag.message}")
            assert not _TERMINAL_NAME.search(diag.message), diag.message
            for word in _expected_words(diag.message):
                assert word in _ALLOWED_WORDS or re.fullmatch(r"'[^']+'", word), (word, prefix)
    assert len(messages) > 20  # the prefixes reach many different parser states


def test_describe_expected_turns_terminals_into_words():
    assert describe_expected({"DO"}) == "'do'"
    assert describe_expected({"$END"}) == "end of input"
    assert describe_expected({"NAME", "COOLDOWN"}) == "a name"
    assert describe_expected({"RPAR", "COMMA"}) == "')' or ','"
    assert describe_expected(set()) == ""
    assert describe_expected({"NAME", "NUMBER", "LPAR", "MINUS", "STRING", "COOLDOWN",
                              "NOT", "EPOCH"}) == "an expression"


# ------------------------------------------------------ reading and decoding


def test_decode_refuses_bytes_that_are_not_utf8_at_the_first_bad_byte():
    with pytest.raises(CbdslSyntaxError) as info:
        decode(b"on epoch_end\n  do \xff stop", "p.cbd")
    assert str(info.value) == (
        "p.cbd:2:6: error E103: byte 0xff at offset 18 is not UTF-8 text\n"
        "2 |   do \ufffd stop\n"
        "         ^")
    assert decode("on épocha".encode()) == "on épocha"


def test_read_source(tmp_path):
    path = tmp_path / "p.cbd"
    path.write_text(MISSION, encoding="utf-8")
    assert read_source(path) == MISSION
    assert cbdsl.parse(path) == cbdsl.parse(MISSION)
    assert cbdsl.parse(path).path == str(path)
    with pytest.raises(CbdslSyntaxError) as info:
        read_source(tmp_path / "missing.cbd")
    assert str(info.value) == (
        f"{tmp_path / 'missing.cbd'}: error E213: cannot read rule file: No such file or "
        "directory")
    with pytest.raises(CbdslSyntaxError) as info:
        read_source("bad\x00name.cbd")
    assert info.value.code == "E213"


@pytest.mark.parametrize(("text", "word"), [("var row = 1", "row"), ("param post = 2", "post"),
                                            ("on epoch_end when row > 1 do stop", "row")])
def test_a_reserved_word_used_as_a_name_says_so(text, word):
    with pytest.raises(CbdslSyntaxError) as info:
        cbdsl.parse(text)
    assert info.value.diagnostics[0].hint == (
        f"'{word}' is a reserved word: choose another name (a metric of that name is read "
        f'with metric("{word}"))')


def test_a_missing_condition_is_not_taken_for_a_reserved_name():
    with pytest.raises(CbdslSyntaxError) as info:
        cbdsl.parse("on epoch_end when do stop")
    assert info.value.diagnostics[0].hint is None
