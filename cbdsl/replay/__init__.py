"""Dry runs: a policy's compiled callbacks driven over recorded training runs."""

from cbdsl.replay.directions import metric_direction
from cbdsl.replay.dry import Replay, plot, replay
from cbdsl.replay.logs import LogFormatError, Run, find_runs, read_log, read_runs, read_tensorboard
from cbdsl.replay.report import plot_sweep, sweep_table
from cbdsl.replay.sweep import (
    RunResult,
    SettingReport,
    Sweep,
    SweepError,
    parse_sweep,
    replay_run,
    settings_of,
    sweep,
)

__all__ = ["LogFormatError", "Replay", "Run", "RunResult", "SettingReport", "Sweep",
           "SweepError", "find_runs", "metric_direction", "parse_sweep", "plot", "plot_sweep",
           "read_log", "read_runs", "read_tensorboard", "replay", "replay_run", "settings_of",
           "sweep", "sweep_table"]
