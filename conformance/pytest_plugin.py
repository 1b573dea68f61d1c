"""A pytest plugin: one test per conformance case, run against your own callback class.

Installed with cbdsl (entry point `pytest11`, name `cbdsl`; `-p no:cbdsl` turns it off)::

    import pytest
    from mypackage.callbacks import EarlyStopping

    @pytest.mark.cbdsl_conformance("early_stopping", xfail="early_stopping.xfail",
                                   generated=200)
    def test_early_stopping(conformance_case):
        conformance_case.check(EarlyStopping)

collects `test_early_stopping[early_stopping/plateau_stops]` and one test per other case of
the spec (and, with `generated=N`, one that runs N generated traces against Keras's class).
A failing case fails with its first divergence side by side; the cases the xfail file names
are strict expected failures. The frameworks' own deprecation warnings while a case runs
(`THIRD_PARTY_WARNINGS`) are ignored in these tests, and only there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

MARKER = "cbdsl_conformance"

# What the frameworks warn about themselves while a case runs, none of it about the callback
# under test: Keras reading a variable through NumPy 2 (every learning rate the driver
# reads), and TensorFlow's and JAX's own deprecations. Ignored in the cases' tests only.
THIRD_PARTY_WARNINGS = (
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning:keras",
    "ignore::DeprecationWarning:tensorflow",
    "ignore::DeprecationWarning:jax",
)


class ConformanceCase:
    """One case of a spec, to check an implementation against.

    Attributes:
        spec: the spec's name (`early_stopping`).
        name: the case's name (`tie_at_min_delta`), or `generated`.
        case: the loaded case file (None for `generated`).
        examples: for `generated`, how many traces to run.
    """

    def __init__(self, spec: str, name: str, case: dict[str, Any] | None = None,
                 examples: int = 0):
        self.spec, self.name, self.case, self.examples = spec, name, case, examples

    def __repr__(self) -> str:
        return f"ConformanceCase({self.spec}/{self.name})"

    def divergence(self, factory: Callable[..., Any], *, python_functions: bool = True,
                   tolerance: float | None = None, seed: int | None = None) -> str | None:
        """None when `factory` passes the case; otherwise its first divergence, rendered.

        Args:
            factory: builds the callback under test from the case's arguments.
            python_functions: give function-valued arguments as Python functions (a
                `LearningRateScheduler`'s schedule), as Keras's classes take them; False
                for cbdsl's rule files, which also take tables and expression text.
            tolerance: relative tolerance for floats; default the case's own, else exact.
            seed: for `generated`, hypothesis's seed.
        """
        if self.case is None:
            from cbdsl.conformance.differential import search
            from cbdsl.conformance.specs import SPECS

            try:
                reference = SPECS[self.spec].reference()
            except LookupError as why:
                pytest.skip(str(why))
            return search(self.spec, factory, examples=self.examples, seed=seed,
                          reference=reference, python_functions=python_functions)
        from cbdsl.conformance.runner import run_case

        result = run_case(self.case, factory, tolerance=tolerance,
                          python_functions=python_functions)
        return None if result.passed else result.divergence

    def check(self, factory: Callable[..., Any], **options: Any) -> None:
        """Fail the test, with the first divergence side by side, unless `factory` passes.

        Args:
            factory: builds the callback under test from the case's arguments.
            **options: as for `divergence`.
        """
        found = self.divergence(factory, **options)
        if found is not None:
            where = f" ({self.case['path']})" if self.case else ""
            pytest.fail(f"{self.spec}/{self.name}{where} diverges from Keras:\n{found}",
                        pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(spec, xfail=None, generated=0): run the test once per case of a "
        "cbdsl conformance spec; it takes the `conformance_case` fixture. `xfail` is an xfail "
        "file (relative to the test file) or a list of case names; `generated=N` adds N "
        "generated traces against Keras's class.")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None or "conformance_case" not in metafunc.fixturenames:
        return
    from cbdsl.conformance.conform import UsageError
    from cbdsl.conformance.runner import case_paths, load_case
    from cbdsl.conformance.specs import SPECS

    spec = marker.args[0] if marker.args else marker.kwargs.get("spec")
    if spec not in SPECS:
        pytest.fail(f"@pytest.mark.{MARKER}: unknown spec {spec!r}; specs: {', '.join(SPECS)}",
                    pytrace=False)
    xfail = marker.kwargs.get("xfail")
    generated = int(marker.kwargs.get("generated", 0))
    try:
        expected = _expected(xfail, spec, Path(str(metafunc.definition.path)).parent)
    except UsageError as error:
        pytest.fail(f"@pytest.mark.{MARKER}: {error}", pytrace=False)
    params = []
    for path in case_paths(spec):
        case = load_case(path)
        params.append(_param(ConformanceCase(spec, case["name"], case), expected))
    if generated > 0:
        params.append(_param(ConformanceCase(spec, "generated", None, generated), expected))
    metafunc.parametrize("conformance_case", params)


def _expected(xfail: str | Iterable[str] | None, spec: str, folder: Path) -> dict[str, str]:
    from cbdsl.conformance.conform.xfail import expected_failures

    return expected_failures(xfail, spec, folder)


def _param(case: ConformanceCase, expected: dict[str, str]) -> Any:
    marks = [pytest.mark.filterwarnings(f) for f in THIRD_PARTY_WARNINGS]
    if case.name in expected:
        reason = expected[case.name] or "listed as an expected failure"
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(case, id=f"{case.spec}/{case.name}", marks=marks)


@pytest.fixture
def conformance_case(request: pytest.FixtureRequest) -> ConformanceCase:
    """The case a `cbdsl_conformance`-marked test runs (the marker parametrizes it)."""
    pytest.fail(f"the conformance_case fixture needs @pytest.mark.{MARKER}(SPEC) on the test",
                pytrace=False)
