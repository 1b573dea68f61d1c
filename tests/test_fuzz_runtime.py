"""Run-time fuzzing: a policy that `cbdsl check` accepts never fails inside cbdsl as it runs."""

from __future__ import annotations

import random
import re
from pathlib import Path

import fuzz_runtime as fr
import pytest

import cbdsl

PROGRAMS = 300  # drawn; about half pass the checker


@pytest.fixture(scope="module")
def harness() -> fr.Harness:
    return fr.harness()


def test_the_corpus_checks_clean():
    for name, text in fr.corpus().items():
        if name.startswith("fuzz_corpus/"):
            assert not cbdsl.check(text).diagnostics, name  # no warnings either


def test_mutants_and_written_policies_often_pass_the_checker():
    accepted = 0
    for seed in range(60):
        for text in (fr.corpus_mutant(random.Random(seed)),
                     fr.written_policy(random.Random(seed))):
            try:
                cbdsl.check(text)
                accepted += 1
            except cbdsl.CbdslError:
                pass
    assert accepted >= 50


@pytest.mark.parametrize(("text", "kind", "detail"), [
    ("on epoch_end when val_loss stalls 2 do lr *= 0.5", "clean", ""),
    ("on epoch_ned do stop", "rejected", "E201"),
    ('on epoch_end do fail "stopped"', "cbdsl", "fail"),
    ('on epoch_end do write row {"a": 1} to "" ', "cbdsl", "E406"),
    ('on epoch_end do write "x" to "/tmp/outside.txt"', "sandbox", "SandboxViolation"),
    ('on epoch_end do save weights "/tmp/outside.weights.h5"', "sandbox", "SandboxViolation"),
    ('on epoch_end do tensorboard.scalar("/tmp/outside", "a", 1, 0)', "sandbox",
     "SandboxViolation"),
])
def test_the_harness_sorts_outcomes(harness, text, kind, detail):
    outcome = fr.run_program(text, seed=1, style="fit")
    assert outcome.kind == kind, outcome
    assert detail in (outcome.code, outcome.error, ""), outcome


def test_posts_reach_no_server_and_give_up_at_once(harness):
    outcome = fr.run_program('on epoch_end do post json {} to "http://example.com/x"', seed=1)
    assert outcome.kind == "cbdsl" and outcome.error == "ConnectionError", outcome


def test_a_program_running_too_long_is_stopped_where_it_is(harness):
    outcome = fr.run_program('on train_batch_end do print "{loss}"', seed=1, limit_s=1e-6)
    assert outcome.kind == "internal" and outcome.error == "ProgramTimeout", outcome


def test_the_minimiser_keeps_only_what_the_failure_needs():
    text = ("param p = 3\n"
            "# a comment\n"
            "on epoch_begin do lr = 0.1\n"
            "on epoch_end when (loss > 2) and val_loss stalls 5 do stop, print \"{loss}\"\n")

    def still(candidate: str) -> bool:
        return "stalls" in candidate and cbdsl_parses(candidate)

    small = fr.minimise(text, still, budget_s=20)
    assert "stalls" in small and "comment" not in small and "epoch_begin" not in small
    assert len(small) < len(text) / 2


def cbdsl_parses(text: str) -> bool:
    try:
        cbdsl.parse(text)
    except cbdsl.CbdslError:
        return False
    return True


def test_accepted_policies_never_fail_inside_cbdsl():
    tally = fr.fuzz(drawn=PROGRAMS, jobs=1, seed=0, batch=PROGRAMS, minimise_s=4,
                    minimise_total=20)
    assert tally.accepted > PROGRAMS // 3, tally.summary()
    assert not tally.internal, "\n" + tally.summary() + "\n\n" + tally.describe_findings()


REGRESSIONS = sorted((Path(__file__).parent / "fuzz_regressions").glob("*.cbd"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_every_program_the_fuzzer_found_now_runs_or_fails_as_a_cbdsl_error(path):
    # each raised a Python exception from inside cbdsl once: now it is refused by the check,
    # runs, or stops with a CbdslError (a positioned run-time error), as the language promises
    text = path.read_text()
    seed = int(re.search(r"seed: (\d+)", text).group(1))
    style = re.search(r"logs: (\w+)", text).group(1)
    outcome = fr.run_program(text, seed=seed, style=style)
    assert outcome.kind in ("rejected", "clean", "cbdsl", "documented"), outcome
