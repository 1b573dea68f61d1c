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
