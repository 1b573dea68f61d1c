"""`cbdsl explain`: one plain-English sentence per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

import cbdsl
from cbdsl.cli import main
from cbdsl.explain import explain

ROOT = Path(__file__).resolve().parent.parent


def sentences(text: str) -> list[str]:
    return explain(cbdsl.parse(text))


def test_the_mission_sentence_in_english():
    assert sentences("on epoch_end when val_loss stalls 5 do lr *= 0.2") == [
        "This file's own rules:",
        "- At the end of every epoch, if val_loss has not improved for 5 checks, multiply the "
        "learning rate by 0.2."]


def test_filters_labels_actions_and_options():
    (_, warm, stop) = sentences(
        "warmup: on epoch_begin before epoch 3 do lr = 0.01 * (epoch + 1)\n"
        "on epoch_end when val_acc stalls 4 with (mode = \"max\", min_delta = 0.01) as top "
        "do restore best weights of top, stop")
    assert warm == ("- warmup: At the start of every epoch, only in the first 3 epochs, set the "
                    "learning rate to 0.01 * (epoch + 1).")
    assert stop == ("- At the end of every epoch, if val_acc has not improved for 4 checks by "
                    "more than 0.01 going up, put back the best weights kept by top and stop "
                    "training.")


@pytest.mark.parametrize("path", sorted([*ROOT.glob("rules/*.cbd"), *ROOT.glob("examples/*.cbd"),
                                         ROOT / "cbdsl" / "data" / "demo.cbd"]),
                         ids=lambda p: p.name)
def test_every_shipped_rule_is_explained(path):
    program = cbdsl.parse(path)
    nodes = cbdsl.syntax.nodes
    rules = sum(isinstance(part, nodes.Rule)
                for item in program.items
                for part in (item.body if isinstance(item, nodes.CallbackDef) else [item]))
    lines = explain(program)
    assert sum(line.startswith("- ") and not line.startswith(("- Refuses", "- Shows"))
               for line in lines) == rules
    assert all("?" not in line for line in lines)


def test_cli_explains_a_file_and_refuses_one_that_does_not_check(tmp_path, capsys):
    good, bad = tmp_path / "good.cbd", tmp_path / "bad.cbd"
    good.write_text("on train_batch_end when loss is not finite do stop")
    bad.write_text("on epoch_ned do stop")
    assert main(["explain", str(good)]) == 0
    assert "After every training batch, if loss is not finite, stop training." in \
        capsys.readouterr().out
    assert main(["explain", str(bad)]) == 1
    assert "E201" in capsys.readouterr().err


def test_baseline_means_the_first_best_for_improves_and_a_bar_for_stalls():
    (_, improves, stalls) = sentences(
        "on epoch_end when val_loss improves with baseline = 0.5 do print \"better\"\n"
        "on epoch_end when val_loss stalls 3 with baseline = 0.5 do stop")
    assert "improves (the first best to beat is 0.5)" in improves
    assert "patience" not in improves
    assert "(patience resets only once it also beats 0.5)" in stalls


# ---------------------------------------------------------------- use and extends


def test_explain_follows_use_and_extends_into_their_files(tmp_path, capsys):
    (tmp_path / "lib.cbd").write_text(
        "callback Shrink(factor = 0.1, patience = 2) {\n"
        '  "Shrink the rate on a plateau."\n'
        "  require factor < 1.0 else \"factor must be below 1\"\n"
        "  on epoch_end when loss stalls patience do lr *= factor\n}\n")
    policy = tmp_path / "policy.cbd"
    policy.write_text('import "lib.cbd"\n'
                      "callback Stricter extends Shrink(patience = 1) {\n"
                      "  on epoch_end after 20 epochs do stop\n}\n"
                      "use Stricter(factor = 0.5)\n"
                      'use keras.early_stopping(monitor = "loss") priority 1\n')
    assert main(["explain", str(policy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Callback Stricter(factor = 0.1, patience = 1), built on Shrink(patience = 1): " \
           "Shrink the rate on a plateau." in lines
    assert ("- At the end of every epoch, if loss has not improved for patience checks, "
            "multiply the learning rate by factor. (from lib.cbd)") in lines
    assert "Uses Stricter(factor = 0.5), defined above." in lines
    used = next(i for i, line in enumerate(lines) if line.startswith("Uses keras.early_stop"))
    assert lines[used].startswith('Uses keras.early_stopping(monitor = "loss"), before the '
                                  "file's own rules (priority 1): EarlyStopping from ")
    assert any(line.startswith("  - plateau: At the end of every epoch") and "stop training" in line
               for line in lines[used + 1:])


def test_explain_python_comments_rules_from_the_base_s_file(tmp_path, capsys):
    (tmp_path / "lib.cbd").write_text(
        "callback Shrink(factor = 0.1) {\n"
        "  on epoch_end when loss stalls 2 do lr *= factor\n}\n")
    policy = tmp_path / "policy.cbd"
    policy.write_text('import "lib.cbd"\n'
                      "callback Stricter extends Shrink() {\n"
                      "  on epoch_end after 20 epochs do stop\n}\nuse Stricter()\n")
    assert main(["explain", "--python", str(policy)]) == 0
    text = capsys.readouterr().out
    assert "# lib.cbd, line 2: on epoch_end when loss stalls 2 do lr *= factor" in text
    assert "# line 3: on epoch_end after 20 epochs do stop" in text
