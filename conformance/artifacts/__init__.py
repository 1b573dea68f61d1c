"""Artifact specs: callbacks judged by the files, requests, output and weights they leave."""

# Keras is imported only when a scenario runs, so that importing this package leaves the
# choice of backend open. Each Keras callback has its module (csv_logger, model_checkpoint,
# ...), holding its scenario functions and its `SPEC`; `registry` lists them.

# False makes a new model for every fit (slower; the same artifacts): see `models`
REUSE_MODELS = True

from cbdsl.conformance.artifacts.compare import MAX_DIFFERENCES, divergence  # noqa: E402
from cbdsl.conformance.artifacts.csv_logger import folder_contents  # noqa: E402
from cbdsl.conformance.artifacts.http_server import (  # noqa: E402
    MAX_REQUESTS,
    SERVER_TIMEOUT,
    Recorder,
    closed_port_root,
    comparable,
)
from cbdsl.conformance.artifacts.models import (  # noqa: E402
    CLASSIFIER_BATCHES,
    classifier_data,
    classifier_model,
    fit_classifier,
    fit_regression,
    regression_data,
    regression_model,
)
from cbdsl.conformance.artifacts.registry import ARTIFACT_SPECS  # noqa: E402
from cbdsl.conformance.artifacts.remote_monitor import HEADERS  # noqa: E402
from cbdsl.conformance.artifacts.running import QUIET, check, run_scenario  # noqa: E402
from cbdsl.conformance.artifacts.spec import (  # noqa: E402
    SEED,
    Artifact,
    ArtifactSpec,
    Factory,
    Run,
    Scenario,
    ScenarioResult,
    describe_error,
)

__all__ = [
    "ARTIFACT_SPECS",
    "CLASSIFIER_BATCHES",
    "HEADERS",
    "MAX_DIFFERENCES",
    "MAX_REQUESTS",
    "QUIET",
    "REUSE_MODELS",
    "SEED",
    "SERVER_TIMEOUT",
    "Artifact",
    "ArtifactSpec",
    "Factory",
    "Recorder",
    "Run",
    "Scenario",
    "ScenarioResult",
    "check",
    "classifier_data",
    "classifier_model",
    "closed_port_root",
    "comparable",
    "describe_error",
    "divergence",
    "fit_classifier",
    "fit_regression",
    "folder_contents",
    "regression_data",
    "regression_model",
    "run_scenario",
]
