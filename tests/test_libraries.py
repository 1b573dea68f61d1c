"""Rule libraries: folders, CBDSL_PATH, pip packages (entry points), and `cbdsl list`."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sysconfig
import textwrap
import venv

import pytest

import cbdsl
from cbdsl.cli import main
from cbdsl.libraries import catalog

STRICT_STOP = '''
callback StrictStop(monitor = "val_loss", patience = 3) {
  "Stop when the monitored metric has not improved for `patience` epochs."
  on epoch_end when metric(monitor) stalls patience and epoch > 0 do stop
}
'''


def test_catalog_lists_the_builtin_library_with_signatures():
    rules = {f"{r.library}.{r.rule}": r for r in catalog()}
    (name, sig, doc) = rules["keras.reduce_lr_on_plateau"].callbacks[0]
    assert name == "ReduceLROnPlateau"
    assert sig.startswith('(monitor = "val_loss", factor = 0.1, patience = 10')
    assert doc == "Reduce the learning rate when a metric has stopped improving."
    assert rules["keras.learning_rate_scheduler"].callbacks[0][1] == \
        "(schedule: schedule, verbose = 0)"


def test_use_names_a_library_rule_by_file_or_by_callback():
    by_file = cbdsl.compile("use keras.early_stopping(patience = 3)")
    by_name = cbdsl.compile("use keras.EarlyStopping(patience = 3)")
    assert type(by_file[0]).__name__ == type(by_name[0]).__name__ == "EarlyStopping"
    assert by_file[0].arguments["patience"] == 3


def test_folder_libraries_and_broken_files_are_listed(tmp_path, capsys):
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "strict_stop.cbd").write_text(STRICT_STOP)
    (tmp_path / "team" / "broken.cbd").write_text("on epoch_ned do stop")
    assert main(["list", "--dir", str(tmp_path), "--format", "json"]) == 1
    listed = {f"{r['library']}.{r['rule']}": r for r in json.loads(capsys.readouterr().out)}
    assert listed["team.strict_stop"]["callbacks"] == [
        ["StrictStop", '(monitor = "val_loss", patience = 3)',
         "Stop when the monitored metric has not improved for `patience` epochs."]]
    assert "E201" in listed["team.broken"]["error"]
    # a folder has no package; the built-in library is cbdsl's own, with its version
    from importlib.metadata import version

    assert (listed["team.strict_stop"]["package"], listed["team.strict_stop"]["version"]) == \
        ("", "")
    assert listed["keras.early_stopping"]["package"] == "cbdsl"
    assert listed["keras.early_stopping"]["version"] == version("cbdsl")


def test_list_text_keeps_names_whole_and_says_where_each_library_comes_from(
        tmp_path, capsys, monkeypatch):
    from importlib.metadata import version

    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "strict_stop_with_a_rather_long_rule_name.cbd").write_text(STRICT_STOP)
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert f"team  (folder: {tmp_path / 'team'})" in lines
    assert any(line.startswith(f"keras  (cbdsl {version('cbdsl')}: ") for line in lines)
    assert "  team.strict_stop_with_a_rather_long_rule_name" in lines
    assert "  keras.reduce_lr_on_plateau" in lines
    # signatures break between parameters only, aligned after the bracket
    start = lines.index("    EarlyStopping(monitor = \"val_loss\",")
    indent = " " * len("    EarlyStopping(")
    assert lines[start + 1] == indent + "min_delta: float = 0, patience = 0,"
    assert all(len(line) <= 60 for line in lines
               if not line.startswith(("Rule", "keras  (", "team  (")))


def test_a_pip_package_ships_a_library_through_entry_points(tmp_path):
    package = tmp_path / "team-rules"
    (package / "team_rules").mkdir(parents=True)
    (package / "team_rules" / "__init__.py").write_text('"""Team rule library."""\n')
    (package / "team_rules" / "strict_stop.cbd").write_text(STRICT_STOP)
    (package / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "team-rules"
        version = "1.0.0"

        [project.entry-points."cbdsl.rules"]
        team = "team_rules"

        [tool.setuptools]
        packages = ["team_rules"]

        [tool.setuptools.package-data]
        team_rules = ["*.cbd"]
    """))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # the new environment sees this one's packages (cbdsl, keras, setuptools) as a site dir,
    # so that their own .pth files (an editable install's finder) are processed too
    target = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                             "['purelib'])"], capture_output=True, text=True, check=True)
    outer = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    lines = [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(outer)
             if os.path.isdir(p)]
    with open(os.path.join(target.stdout.strip(), "outer.pth"), "w") as pth:
        pth.write("\n".join(lines) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", str(package)], check=True,
                   capture_output=True, text=True)
    policy = tmp_path / "policy.cbd"
    policy.write_text("use team.strict_stop(patience = 2)\n")
    listed = subprocess.run([python, "-m", "cbdsl", "list", "--format", "json", "--dir",
                             str(tmp_path / "nowhere")], capture_output=True, text=True,
                            env={**os.environ, "CBDSL_PATH": ""})
    assert listed.returncode == 0, listed.stderr[-2000:]
    listed = {f"{r['library']}.{r['rule']}": r for r in json.loads(listed.stdout)}
    assert {"team.strict_stop", "keras.early_stopping"} <= set(listed)
    assert (listed["team.strict_stop"]["package"], listed["team.strict_stop"]["version"]) == \
        ("team-rules", "1.0.0")
    checked = subprocess.run([python, "-m", "cbdsl", "check", str(policy)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # and in this environment, without the package, the library is unknown
    with pytest.raises(cbdsl.CbdslCheckError) as exc:
        cbdsl.check(policy)
    assert "no rule library named 'team'" in str(exc.value)


EXTENDED = '''
callback StrictStop extends keras.early_stopping(patience = 3, restore_best_weights = true) {
  "EarlyStopping that waits 3 epochs and restores the best weights."
}
'''


def test_extends_builds_on_a_library_rule_with_new_defaults():
    import keras

    from cbdsl.conformance import first_divergence, run_trace

    (strict,) = cbdsl.compile(EXTENDED + "use StrictStop(min_delta = 0.05)")
    assert strict.arguments["patience"] == 3 and strict.arguments["restore_best_weights"]
    assert type(strict).__doc__.startswith("EarlyStopping that waits 3 epochs")
    case = {"spec": "early_stopping", "params": {}, "trace": [
        {"logs": {"val_loss": v}} for v in (1.0, 0.9, 0.88, 0.87, 0.86, 0.7, 0.69)]}
    expected = run_trace(case, lambda: keras.callbacks.EarlyStopping(
        patience=3, restore_best_weights=True, min_delta=0.05))
    actual = run_trace(case, lambda: strict)
    assert first_divergence(expected, actual) is None
    assert expected["final"]["weights"] == 1  # it stopped and restored the best epoch


def test_extends_reports_bad_overrides_at_their_names():
    with pytest.raises(cbdsl.CbdslCheckError) as exc:
        cbdsl.check("callback S extends keras.early_stopping(patiense = 3, patience = \"x\") {}"
                    "\nuse S()")
    text = str(exc.value)
    assert "1:41: error E212: 'keras.early_stopping' has no parameter 'patiense'" in text
    assert "did you mean 'patience'?" in text
    assert "error E221: 'patience' takes int, got str" in text


# An `acme` library laid out as a team ships it: a callback extending one of another file,
# one built on a base that an imported file defines, and one on a base earlier in its file.
ACME = {
    "strict_stop.cbd": STRICT_STOP,
    "patient_stop.cbd": '''
callback PatientStop extends acme.strict_stop(patience = 10) {
  "StrictStop with a longer patience."
}
''',
    "plateau_shrink.cbd": '''
import "shared/base.cbd"

callback PlateauShrink extends AcmePlateauBase(factor = 0.5) {
  "Halve the learning rate on a plateau."
}
''',
    "warmup.cbd": '''
callback Ramp(length = 3) {
  on epoch_begin when epoch < length do lr = 0.01 * (epoch + 1)
}
callback Warmup extends Ramp(length = 2) {
  "Two epochs of warm-up."
}
''',
    "shared/base.cbd": '''
callback AcmePlateauBase(monitor = "val_loss", factor = 0.1, patience = 5) {
  on epoch_end when metric(monitor) stalls patience do lr *= factor
}
''',
}


def write_tree(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def check_error(source, path=None) -> cbdsl.CbdslCheckError:
    with pytest.raises(cbdsl.CbdslCheckError) as exc:
        cbdsl.check(path if path is not None else source)
    return exc.value


def test_a_used_file_is_the_whole_program_it_is(tmp_path):
    write_tree(tmp_path / "acme", ACME)
    policy = tmp_path / "policy.cbd"
    policy.write_text("use acme.plateau_shrink(patience = 2)\nuse acme.Warmup()\n"
                      "use acme.patient_stop()\n")
    shrink, warmup, patient = cbdsl.compile(policy)
    assert shrink.arguments == {"monitor": "val_loss", "factor": 0.5, "patience": 2}
    assert warmup.arguments == {"length": 2}
    assert patient.arguments["patience"] == 10
    # the library's files check alone too, the same way
    for name in ("plateau_shrink", "warmup", "patient_stop"):
        cbdsl.check(tmp_path / "acme" / f"{name}.cbd")


def test_diagnostics_inside_a_used_file_point_at_the_using_line(tmp_path):
    write_tree(tmp_path / "acme", {**ACME, "shared/base.cbd": ACME["shared/base.cbd"].replace(
        "epoch_end", "epoch_ned")})
    policy = tmp_path / "policy.cbd"
    policy.write_text("\nuse acme.plateau_shrink(patience = 2)\n")
    (diagnostic,) = check_error(None, policy).diagnostics  # no E212 follows from it
    assert diagnostic.code == "E201" and diagnostic.path.endswith("base.cbd")
    assert [(m, p, s.line) for m, p, s in diagnostic.related] == [
        ("used here", str(policy), 2)]
    assert diagnostic.to_dict()["related"][0]["message"] == "used here"
    # the used file's own uses are checked too, at their lines
    (tmp_path / "acme" / "shared" / "base.cbd").write_text(ACME["shared/base.cbd"])
    (tmp_path / "acme" / "warmup.cbd").write_text(
        ACME["warmup.cbd"] + "use keras.early_stopping(patiense = 1)\n")
    policy.write_text("use acme.Warmup()\n")
    (diagnostic,) = check_error(None, policy).diagnostics
    assert (diagnostic.code, os.path.basename(diagnostic.path), diagnostic.span.line) == (
        "E212", "warmup.cbd", 8)


def test_cycles_are_reported_wherever_they_are_reached(tmp_path):
    write_tree(tmp_path / "acme", {
        "loop.cbd": 'import "other.cbd"\ncallback Loop() { on epoch_end do stop }\n',
        "other.cbd": 'import "loop.cbd"\n',
        "a.cbd": "callback A extends acme.b() {}\n",
        "b.cbd": "callback B extends acme.a() {}\n",
        "early.cbd": "callback Early extends acme.Late() {}\ncallback Late() {}\n",
    })
    policy = tmp_path / "policy.cbd"
    for rule, where in (("loop", "other.cbd"), ("a", "b.cbd"), ("early", "early.cbd")):
        policy.write_text(f"use acme.{rule}()\n")
        codes = [(d.code, os.path.basename(d.path), d.related[-1][0])
                 for d in check_error(None, policy).diagnostics]
        assert ("E213", where, "used here") in codes, codes


def test_a_broken_file_breaks_only_the_lookups_that_need_it(tmp_path):
    write_tree(tmp_path / "acme", {**ACME, "anneal.cbd": "on epoch_end do\n"})
    policy = tmp_path / "policy.cbd"
    policy.write_text("use acme.StrictStop(patience = 2)\nuse acme.strict_stop()\n")
    assert len(cbdsl.compile(policy)) == 2
    policy.write_text("use acme.anneal()\n")
    (diagnostic,) = check_error(None, policy).diagnostics
    assert diagnostic.code == "E102" and diagnostic.related[0][0] == "used here"
    policy.write_text("use acme.Cosine()\n")
    (diagnostic,) = check_error(None, policy).diagnostics
    assert diagnostic.hint == "it has: anneal, patient_stop, plateau_shrink, strict_stop, " \
        "warmup (anneal.cbd could not be read)"


def test_a_library_name_found_in_two_places_is_an_error_naming_both(tmp_path, monkeypatch,
                                                                    capsys):
    write_tree(tmp_path / "project" / "acme", ACME)
    write_tree(tmp_path / "elsewhere" / "acme", {"strict_stop.cbd": STRICT_STOP})
    monkeypatch.setenv("CBDSL_PATH", str(tmp_path / "elsewhere"))
    policy = tmp_path / "project" / "policy.cbd"
    policy.write_text("use acme.strict_stop()\n")
    (diagnostic,) = check_error(None, policy).diagnostics
    assert diagnostic.code == "E209" and diagnostic.span.line == 1
    assert diagnostic.message == (
        f"library 'acme' is found in 2 places: folder beside the file "
        f"({tmp_path / 'project' / 'acme'}); folder on CBDSL_PATH "
        f"({tmp_path / 'elsewhere' / 'acme'})")
    assert main(["list", "--dir", str(tmp_path / "project"), "--format", "json"]) == 1
    listed = json.loads(capsys.readouterr().out)
    assert {r["error"].split(": ", 1)[1].split(":")[0] for r in listed
            if r["library"] == "acme"} == {"error E209"}
    # a folder named like the built-in library clashes with it too
    write_tree(tmp_path / "project" / "keras", {"early_stopping.cbd": STRICT_STOP})
    policy.write_text("use keras.early_stopping()\n")
    assert "the built-in library" in check_error(None, policy).diagnostics[0].message


def test_a_library_refers_to_itself_from_its_source_folder(tmp_path, monkeypatch):
    source = write_tree(tmp_path / "acme-rules" / "src" / "acme_rules", ACME)
    (tmp_path / "acme-rules" / "pyproject.toml").write_text(
        '[project]\nname = "acme-rules"\nversion = "1.0"\n\n'
        '[project.entry-points."cbdsl.rules"]\nacme = "acme_rules"\n')
    for name in ("patient_stop", "plateau_shrink", "warmup"):
        cbdsl.check(source / f"{name}.cbd")
    # and it wins over a folder of that name elsewhere: the file's own library is itself
    write_tree(tmp_path / "other" / "acme", {"strict_stop.cbd": "callback Other() {}\n"})
    monkeypatch.setenv("CBDSL_PATH", str(tmp_path / "other"))
    patient = cbdsl.check(source / "patient_stop.cbd").definitions["PatientStop"]
    assert patient.params["patience"].default == 10
    # a project names a folder library of its own in [tool.cbdsl.libraries]
    write_tree(tmp_path / "team-project" / "rules" / "team", ACME)
    (tmp_path / "team-project" / "pyproject.toml").write_text(
        '[tool.cbdsl.libraries]\nacme = "rules/team"\n')
    (tmp_path / "team-project" / "policy.cbd").write_text("use acme.patient_stop()\n")
    assert cbdsl.check(tmp_path / "team-project" / "policy.cbd").instances


def test_a_plain_folder_library_is_named_after_its_folder_from_inside(tmp_path):
    write_tree(tmp_path / "team", {"strict_stop.cbd": STRICT_STOP,
                                   "patient.cbd": "callback Patient extends team.StrictStop("
                                                  "patience = 9) {}\n"})
    (patient,) = [d for d in cbdsl.check(tmp_path / "team" / "patient.cbd").definitions.values()
                  if d.name == "Patient"]
    assert patient.params["patience"].default == 9
