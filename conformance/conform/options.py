"""What `cbdsl conform` takes: backends, devices, the suite's options, exit statuses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BACKENDS = ("tensorflow", "jax", "torch")
DEVICES = ("cpu", "gpu")
EXAMPLES, QUICK_EXAMPLES = 1000, 25
EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input to `cbdsl conform` (or to `run_spec`): one line for the user, exit status 2."""


@dataclass(frozen=True)
class Column:
    """One backend on one device: a column of the table, a process of its own."""

    backend: str
    device: str

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.device}"


@dataclass
class SuiteOptions:
    """What `cbdsl conform` runs.

    Attributes:
        backends: the Keras backends, each in a process of its own.
        devices: `cpu`, `gpu` or both.
        specs: the rule files to run (all built-ins when empty): decision specs
            (`cbdsl.conformance.specs`) and artifact specs (`cbdsl.conformance.artifacts`);
            the language cases run only when this is empty.
        examples: generated traces per built-in.
        quick: run the real fits on one backend only, and there the artifacts' quick
            subset.
        jobs: how many backend processes run at once.
        seed: hypothesis's seed for the generated traces (random when None).
    """

    backends: Sequence[str] = BACKENDS
    devices: Sequence[str] = DEVICES
    specs: Sequence[str] = ()
    examples: int = EXAMPLES
    quick: bool = False
    jobs: int = 2
    seed: int | None = None
