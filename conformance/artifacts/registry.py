"""ARTIFACT_SPECS: every callback judged by its artifacts, by rule file name, in table order."""

from cbdsl.conformance.artifacts import csv_logger, model_checkpoint, remote_monitor
from cbdsl.conformance.artifacts.effects import EFFECT_SPECS
from cbdsl.conformance.artifacts.spec import ArtifactSpec

ARTIFACT_SPECS: dict[str, ArtifactSpec] = {s.name: s for s in [
    csv_logger.SPEC, model_checkpoint.SPEC, remote_monitor.SPEC, *EFFECT_SPECS]}
