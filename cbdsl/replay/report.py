"""A sweep's report: the terminal table, and the figure of epochs saved against regret."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cbdsl.replay.sweep import Sweep


def _setting_text(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in setting.items()) or "(defaults)"


def _value(value: Any) -> str:
    """A parameter's value as a rule file writes it."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    return repr(value) if isinstance(value, str) else str(value)


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def sweep_table(result: Sweep, title: str = "Replay") -> Any:
    """A `rich.table.Table`: per setting, runs stopped early, epochs run of recorded and per
    cent saved, mean and worst regret of the monitored value kept, runs replayed exactly, and
    a mark on the Pareto front."""
    from rich.table import Table

    front = set(result.pareto())
    first = result.settings[0] if result.settings else None
    judged = f"{first.monitor}, {first.direction}" if first else ""
    table = Table(title=title, caption=(
        f"stopped: runs stopped early; regret: how much worse the kept {judged} is than "
        "the run's best (worst: the largest); exact: runs whose learning rate never left the "
        "recorded one; * on the Pareto front"))
    # one column per parameter the settings give, so that no value is cut to fit
    names = list(dict.fromkeys(k for s in result.settings for k in s.setting))
    for name in names or ["setting"]:
        table.add_column(name, no_wrap=True)
    for name in ("stopped", "epochs run", "saved", "mean regret", "worst", "exact"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("", overflow="fold")
    for i, s in enumerate(result.settings):
        replayed = len(s.replayed)
        notes = []
        if s.failed:
            notes.append(f"{s.failed} failed")
        counterfactual = [r for r in s.replayed if r.counterfactual_from is not None]
        if counterfactual:
            first_cf = min(r.counterfactual_from for r in counterfactual)  # type: ignore[type-var]
            notes.append(f"{len(counterfactual)} counterfactual (from epoch {first_cf})")
        unverified = sum(r.lr_unverified for r in s.replayed)
        if unverified:
            notes.append(f"{unverified} lr unverified")
        given = [_value(s.setting[k]) if k in s.setting else "" for k in names] if names \
            else ["(defaults)"]
        table.add_row(
            *given, f"{s.stopped_early}/{replayed}",
            f"{s.epochs_run:,}/{s.epochs_recorded:,}", f"{s.saved_percent:.1f}%",
            _number(s.mean_regret), _number(s.worst_regret), f"{s.exact}/{replayed}",
            ("* " if i in front else "") + "; ".join(notes))
    return table


_NAMED = 8  # settings a figure names each of; beyond, only the Pareto front's


def plot_sweep(result: Sweep, path: str | Path) -> Path:
    """Save a figure: one point per setting, epochs saved (per cent) against mean regret, the
    worst regret as a bar above it, and the Pareto front joined and marked.

    Args:
        result: from `sweep`.
        path: the image to write (its suffix picks the format: `.png`, `.svg`, `.pdf`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    front = result.pareto()
    xs = [s.saved_percent for s in result.settings]
    ys = [s.mean_regret for s in result.settings]
    worst = [s.worst_regret for s in result.settings]
    ax.scatter(xs, ys, color="tab:blue", zorder=3, label="setting (mean regret)")
    ax.vlines(xs, ys, worst, color="tab:blue", alpha=0.25, label="to the worst regret")
    if front:
        ordered = sorted(front, key=lambda i: xs[i])
        ax.plot([xs[i] for i in ordered], [ys[i] for i in ordered], color="tab:red",
                marker="o", markerfacecolor="none", markersize=11, zorder=4,
                label="Pareto front")
    # every setting named where few; else the front's (the table names them all)
    named = [i for i in range(len(xs)) if len(xs) <= _NAMED or i in front]
    for k, i in enumerate(sorted(named, key=lambda i: xs[i])):
        ax.annotate(_setting_text(result.settings[i].setting), (xs[i], ys[i]),
                    textcoords="offset points", xytext=(6, 6 if k % 2 else -12), fontsize=7,
                    color="tab:red" if i in front else "black")
    shown = [y for y in (*ys, *worst) if math.isfinite(y) and y > 0]
    if shown and max(shown) > 100 * min(shown):  # regrets spread over decades
        ax.set_yscale("symlog", linthresh=min(shown))
    ax.margins(x=0.15, y=0.1)
    first = result.settings[0] if result.settings else None
    ax.set_xlabel("epochs saved (% of the epochs recorded)")
    ax.set_ylabel(f"regret of the kept {first.monitor if first else 'value'}")
    runs = len(first.runs) if first else 0
    ax.set_title(f"{len(result.settings)} settings over {runs} recorded runs")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
