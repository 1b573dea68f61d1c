"""A team's library end to end: a wheel built, installed in a fresh environment, used."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

ACME = {
    "acme_rules/__init__.py": '"""Acme\'s training rules."""\n',
    "acme_rules/strict_stop.cbd": '''
callback StrictStop extends keras.early_stopping() {
  "Keras's EarlyStopping, as Acme ships it."
}
''',
    "acme_rules/patient_stop.cbd": '''
callback PatientStop extends acme.strict_stop(patience = 4) {
  "StrictStop with a longer patience."
}
''',
    "acme_rules/plateau_shrink.cbd": '''
import "shared/base.cbd"

callback PlateauShrink extends AcmePlateauBase(factor = 0.5) {
  "Halve the learning rate on a plateau."
}
''',
    "acme_rules/shared/base.cbd": '''
callback AcmePlateauBase(monitor = "val_loss", factor = 0.1, patience = 5) {
  on epoch_end when metric(monitor) stalls patience do lr *= factor
}
''',
}

PYPROJECT = '''
[build-system]
requires = ["setuptools>=65"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"

[project.entry-points."cbdsl.rules"]
acme = "{package}"

[tool.setuptools]
packages = ["{package}"]

[tool.setuptools.package-data]
{package} = ["*.cbd", "shared/*.cbd"]
'''

POLICY = '''\
use acme.patient_stop(monitor = "loss")
use acme.plateau_shrink(patience = 2)
'''

FIT = '''
import numpy as np
import keras
import cbdsl

callbacks = cbdsl.load("policy.cbd")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
history = model.fit(x, x[:, :1], epochs=3, validation_split=0.25, verbose=0,
                    callbacks=callbacks)
print(type(callbacks[0]).__name__, type(callbacks[1]).__name__, len(history.history["loss"]))
'''

CONFORMANCE = '''
import pytest

import cbdsl


@pytest.mark.cbdsl_conformance("early_stopping", generated=5)
def test_strict_stop_is_early_stopping(conformance_case):
    conformance_case.check(cbdsl.callback_class("acme.strict_stop"))
'''


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def run(*args, cwd, env=None, ok=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "CBDSL_PATH": "", **(env or {})}, timeout=600)
    if ok:
        assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def outer_site_dirs() -> list[str]:
    """This environment's package folders (keras, the backends, pytest, pip)."""
    found = [sysconfig.get_paths()["purelib"], *site.getsitepackages(),
             *(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))]
    return [p for p in dict.fromkeys(found) if os.path.isdir(p)]


def wheel(tmp_path: Path, name: str, version: str, package: str = "acme_rules") -> Path:
    files = {key.replace("acme_rules/", f"{package}/"): text for key, text in ACME.items()}
    source = write(tmp_path / name, {**files, "pyproject.toml": PYPROJECT.format(
        name=name, version=version, package=package)})
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", dist, source, cwd=tmp_path)
    (built,) = dist.glob(f"{name.replace('-', '_')}-{version}-*.whl")
    return built


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment with cbdsl installed from this worktree; it reads this
    environment's packages through a .pth, so that nothing is downloaded."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    inner = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                cwd=folder).stdout.strip()
    # appended after the environment's own folder, so that what is installed there wins
    Path(inner, "outer.pth").write_text("".join(
        f"import site; site.addsitedir({p!r})\n" for p in outer_site_dirs()))
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
        "--no-index", REPO, cwd=folder)
    where = run(python, "-c", "import cbdsl; print(cbdsl.__file__)", cwd=folder).stdout
    assert where.startswith(str(folder)), where
    return python


def hooks_repository(folder: Path) -> str:
    """This worktree's files as a git repository pre-commit can install hooks from."""
    listed = run("git", "ls-files", "-co", "--exclude-standard", cwd=REPO).stdout.split()
    wanted = {"cbdsl", "grammar", "rules", "conformance", "pyproject.toml", "README.md",
              ".pre-commit-hooks.yaml"}
    for name in listed:
        if name.split("/")[0] in wanted and (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / name, folder / name)
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "hooks")
    return git(folder, "rev-parse", "HEAD").stdout.strip()


def git(folder: Path, *args) -> subprocess.CompletedProcess:
    return run("git", "-c", "user.name=t", "-c", "user.email=t@t", "-c",
               "commit.gpgsign=false", *args, cwd=folder)


@pytest.mark.slow
def test_a_library_wheel_installed_in_a_fresh_environment(tmp_path):
    acme = wheel(tmp_path, "acme-rules", "1.0.0")
    python = fresh_environment(tmp_path / "env")
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", acme,
        cwd=tmp_path)
    project = write(tmp_path / "project", {"policy.cbd": POLICY,
                                            "test_conformance.py": CONFORMANCE})

    listed = json.loads(run(python, "-m", "cbdsl", "list", "--format", "json",
                            cwd=project).stdout)
    rules = {f"{r['library']}.{r['rule']}": r for r in listed}
    assert {"acme.strict_stop", "acme.patient_stop", "acme.plateau_shrink",
            "keras.early_stopping"} <= set(rules)
    assert not any(r["error"] for r in listed)
    assert rules["acme.patient_stop"]["callbacks"][0][1].startswith('(monitor = "val_loss"')
    run(python, "-m", "cbdsl", "check", "--strict", "policy.cbd", cwd=project)
    explained = run(python, "-m", "cbdsl", "explain", "policy.cbd", cwd=project).stdout
    assert "acme.patient_stop" in explained and "acme.plateau_shrink" in explained
    run(python, "-m", "cbdsl", "fmt", "--check", "policy.cbd", cwd=project)
    (project / "fit.py").write_text(FIT)
    assert run(python, "fit.py", cwd=project).stdout.split() == [
        "PatientStop", "PlateauShrink", "3"]
    tested = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                 "test_conformance.py", cwd=project)
    summary = tested.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " failed" not in summary

    # a diagnostic in the installed library points at the policy's line
    (project / "bad.cbd").write_text("use acme.plateau_shrink(patiense = 2)\n")
    bad = run(python, "-m", "cbdsl", "check", "bad.cbd", cwd=project, ok=False)
    assert bad.returncode == 1 and "bad.cbd:1:25: error E212" in bad.stdout

    # a second package registering `acme`: every use of the name is an error naming both
    other = wheel(tmp_path / "fork", "acme-fork", "0.1.0", package="acme_fork")
    shutil.copytree(project, tmp_path / "fork" / "project")
    fork = fresh_environment(tmp_path / "fork" / "env")
    for built in (acme, other):
        run(fork, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
            "--force-reinstall", built, cwd=tmp_path)
    clash = run(fork, "-m", "cbdsl", "check", "policy.cbd", cwd=tmp_path / "fork" / "project",
                ok=False)
    assert clash.returncode == 1 and "error E209: library 'acme' is found in 2 places" in \
        clash.stdout
    assert "package acme-rules 1.0.0" in clash.stdout and "package acme-fork 0.1.0" in \
        clash.stdout


@pytest.mark.slow
def test_the_pre_commit_hooks_check_a_project_that_uses_a_library(tmp_path):
    pytest.importorskip("pre_commit", reason="pre-commit is not installed")
    acme = wheel(tmp_path, "acme-rules", "1.0.0")
    rev = hooks_repository(tmp_path / "hooks")
    project = write(tmp_path / "project", {"policy.cbd": POLICY})
    config = textwrap.dedent(f"""
        repos:
          - repo: {tmp_path / "hooks"}
            rev: {rev}
            hooks:
              - id: cbdsl-check
                additional_dependencies: ["{acme}"]
              - id: cbdsl-fmt
                additional_dependencies: ["{acme}"]
    """)
    (project / ".pre-commit-config.yaml").write_text(config)
    git(project, "init", "-q")
    git(project, "add", "-A")
    # the hooks' environment installs cbdsl and the library without downloads: their own
    # dependencies (keras, lark) are read from this environment
    env = {"PRE_COMMIT_HOME": str(tmp_path / "cache"), "PIP_NO_INDEX": "1",
           "PIP_NO_DEPS": "1", "PIP_NO_BUILD_ISOLATION": "0",
           "PYTHONPATH": os.pathsep.join(outer_site_dirs())}
    done = run(sys.executable, "-m", "pre_commit", "run", "--all-files", cwd=project, env=env,
               ok=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "cbdsl check" in done.stdout and "cbdsl fmt" in done.stdout
    # a policy mistake fails the hook, with its position
    (project / "policy.cbd").write_text(POLICY.replace("patience", "patiense"))
    git(project, "add", "-A")
    done = run(sys.executable, "-m", "pre_commit", "run", "--all-files", cwd=project, env=env,
               ok=False)
    assert done.returncode == 1 and "policy.cbd:2:25: error E212" in done.stdout
    # without the library in `additional_dependencies`, the hook's own environment lacks it
    (project / "policy.cbd").write_text(POLICY)
    (project / ".pre-commit-config.yaml").write_text(
        config.replace(f'additional_dependencies: ["{acme}"]', "verbose: true"))
    git(project, "add", "-A")
    done = run(sys.executable, "-m", "pre_commit", "run", "--all-files", cwd=project, env=env,
               ok=False)
    assert done.returncode == 1 and "error E206: no rule library named 'acme'" in done.stdout
