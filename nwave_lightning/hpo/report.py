"""Turn a finished experiment folder into a table and figures (from TensorBoard, via tbparse).

:func:`write_report` writes ``report.csv`` / ``report.md`` (one row per trial, best first, with the
float / chip-ready twin of the selected metric at each trial's best epoch) and the figures
``metric_vs_params.png`` and ``parallel_coordinates.png``; ``docs/tune-results.md`` describes their
columns. Command line (:mod:`nwave_lightning.cli.report`)::

    python -m nwave_lightning.cli.report ray_results/h1v2_snn_hpo --metric val_recall --mode max

Example:
    >>> import pandas as pd
    >>> table = pd.DataFrame({"trial": ["a", "b"], "best_value": [0.5, 0.9], "model.hidden": [32, 64]})
    >>> tuned_columns(table)
    ['model.hidden']
    >>> twin_column("val_chip_acc"), twin_column("train_loss")
    ('val_acc_at_best_epoch', None)
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import pandas as pd

from ..io import atomic_write
from .results import MetricNotReportedError, best_epoch_metrics, chip_twin, is_chip_metric, trial_outcome

__all__ = [
    "experiment_table",
    "markdown_table",
    "load_scalars",
    "plot_metric_vs_params",
    "plot_parallel_coordinates",
    "tuned_columns",
    "twin_column",
    "write_report",
]

_SUMMARY = ("trial", "status", "best_value", "best_epoch", "last_value", "epochs")
#: Suffix of the column holding the twin metric's value at each trial's best epoch.
TWIN_SUFFIX = "_at_best_epoch"


def twin_column(metric: str) -> str | None:
    """Report column of ``metric``'s float / chip-ready twin at the best epoch (``None``: no twin)."""
    twin = chip_twin(metric)
    return None if twin is None else f"{twin}{TWIN_SUFFIX}"


def _is_summary(column: str) -> bool:
    return column in _SUMMARY or str(column).endswith(TWIN_SUFFIX)


def _trial_dirs(experiment_dir: str) -> list[str]:
    if not os.path.isdir(experiment_dir):
        raise ValueError(f"experiment_dir={experiment_dir!r} is not a folder; pass <storage_path>/<experiment_name>")
    names = sorted(n for n in os.listdir(experiment_dir) if os.path.isfile(os.path.join(experiment_dir, n, "params.json")))
    if not names:
        raise ValueError(f"experiment_dir={experiment_dir!r} holds no trial folders (no */params.json); has it run?")
    return names


def load_scalars(experiment_dir: str) -> pd.DataFrame:
    """All TensorBoard scalars of the experiment: columns ``trial``, ``tag``, ``step``, ``value`` (a step
    logged twice, by a resumed trial, appears twice, in writing order)."""
    from tbparse import SummaryReader

    frames = []
    for name in _trial_dirs(experiment_dir):
        logdir = os.path.join(experiment_dir, name, "tensorboard")
        if not os.path.isdir(logdir):
            continue
        scalars = SummaryReader(logdir, extra_columns={"wall_time"}).scalars
        if len(scalars):
            scalars = scalars.sort_values(["tag", "step", "wall_time"], kind="stable")
            frames.append(scalars.assign(trial=name)[["trial", "tag", "step", "value"]])
    if not frames:
        return pd.DataFrame(columns=["trial", "tag", "step", "value"])
    return pd.concat(frames, ignore_index=True)


def _configs(experiment_dir: str) -> pd.DataFrame:
    rows = []
    for name in _trial_dirs(experiment_dir):
        with open(os.path.join(experiment_dir, name, "params.json"), encoding="utf-8") as handle:
            config = json.load(handle)
        status = trial_outcome(os.path.join(experiment_dir, name))
        rows.append({"trial": name, "status": status, **{k: _cell(v) for k, v in config.items()}})
    return pd.DataFrame(rows)


def _cell(value):
    return value if isinstance(value, (int, float, str, bool)) or value is None else json.dumps(value)


def tuned_columns(table: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between trials (what the search varied)."""
    return [c for c in table.columns if not _is_summary(c) and table[c].astype(str).nunique(dropna=False) > 1]


def experiment_table(experiment_dir: str, metric: str, mode: str = "max") -> pd.DataFrame:
    """One row per trial, best first (``docs/tune-results.md`` lists the columns)."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode={mode!r} must be 'min' or 'max'")
    configs = _configs(experiment_dir)
    scalars = load_scalars(experiment_dir)
    if len(scalars) and not (scalars["tag"] == metric).any():
        raise ValueError(f"metric={metric!r} is not among the logged tags; logged: {sorted(scalars['tag'].unique())}")
    twin = chip_twin(metric)
    twin_name = twin_column(metric) if twin is not None and (scalars["tag"] == twin).any() else None
    columns = ["trial", "best_value", "best_epoch", *([twin_name] if twin_name else []), "last_value", "epochs"]
    # A resumed trial logs its restarted epochs again: the value written last counts.
    latest = scalars.drop_duplicates(["trial", "tag", "step"], keep="last")
    rows = []
    for trial, group in latest.groupby("trial"):
        series = group[group["tag"] == metric].sort_values("step")
        if series.empty:
            continue
        # One row per epoch, read by the one definition of a trial's best epoch (the one best_model.pt holds).
        per_epoch = group.pivot(index="step", columns="tag", values="value").sort_index()
        try:
            best = best_epoch_metrics(per_epoch.assign(epoch=per_epoch.index), metric, mode)
        except MetricNotReportedError:  # no finite value
            best = {}
        row = {
            "trial": trial,
            "best_value": best.get(metric, math.nan),
            "best_epoch": int(best["epoch"]) if best else None,
            "last_value": float(series["value"].iloc[-1]),
            "epochs": int(series["step"].iloc[-1]),
        }
        if twin_name:
            row[twin_name] = best.get(twin, math.nan)
        rows.append(row)
    table = configs.merge(pd.DataFrame(rows, columns=columns), on="trial", how="left")
    front = ["trial", "status", *columns[1:]]
    table = table[front + [c for c in table.columns if c not in front]]
    # Stable: equal values keep the folder-name order, the tie rule of hpo.results.best_result.
    table = table.sort_values("best_value", ascending=(mode == "min"), na_position="last", kind="stable")
    return table.reset_index(drop=True)


def _numeric(column: pd.Series) -> tuple[pd.Series, list[str] | None]:
    """Numeric view of a column; categorical ones become codes (with their labels)."""
    values = pd.to_numeric(column, errors="coerce")
    if values.notna().all():
        return values.astype(float), None
    # map(str), not astype(str): pandas >= 3 keeps None / NaN missing under astype(str), and a
    # choice such as [None, "xavier_uniform"] must still be a category of its own ("None").
    text = column.map(str)
    labels = sorted(text.unique())
    return text.map({label: i for i, label in enumerate(labels)}).astype(float), labels


def _save_png(fig, path: str) -> str:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))


def plot_metric_vs_params(table: pd.DataFrame, metric: str, path: str) -> str:
    """Scatter of each trial's best ``metric`` against each tuned hyper-parameter."""
    # A bare Figure (no pyplot): nothing global changes, such as the backend of a notebook that calls this.
    from matplotlib.figure import Figure

    params = tuned_columns(table)
    cols = min(3, max(1, len(params)))
    rows = math.ceil(max(1, len(params)) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    twin = twin_column(metric)
    twin = twin if twin in table.columns else None
    for ax, param in zip(axes, params):
        x, labels = _numeric(table[param])
        ax.scatter(x, table["best_value"], s=28, alpha=0.8, label=metric)
        if twin is not None:
            ax.scatter(x, table[twin], s=28, facecolors="none", edgecolors="C1", label=f"{chip_twin(metric)} (same epoch)")
        if labels is not None:
            ax.set_xticks(range(len(labels)), [label[:14] for label in labels], rotation=30, ha="right", fontsize=7)
        elif (x > 0).all() and x.max() / x.min() > 30:
            ax.set_xscale("log")
        ax.set_xlabel(param, fontsize=8)
        ax.set_ylabel(f"best {metric}", fontsize=8)
    if twin is not None and params:
        axes[0].legend(fontsize=7)
    for ax in axes[len(params):]:
        ax.axis("off")
    if not params:
        axes[0].text(0.5, 0.5, "no tuned hyper-parameters", ha="center", va="center")
    fig.suptitle(f"{metric} vs tuned hyper-parameters ({len(table)} trials)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.2 * rows)))
    return _save_png(fig, path)


def plot_parallel_coordinates(table: pd.DataFrame, metric: str, path: str) -> str:
    """Parallel coordinates: hyper-parameters (scaled to [0, 1]) and the metric, coloured by the metric."""
    from matplotlib import colormaps, colors
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure

    axes_names = [*tuned_columns(table), "best_value"]
    scaled, tick_labels = {}, {}
    for name in axes_names:
        x, labels = _numeric(table[name])
        span = x.max() - x.min()
        scaled[name] = (x - x.min()) / span if span > 0 else x * 0 + 0.5
        tick_labels[name] = labels or [f"{x.min():.3g}", f"{x.max():.3g}"]
    score = table["best_value"].astype(float)
    finite = score[score.notna()]
    norm = colors.Normalize(finite.min() if len(finite) else 0, finite.max() if len(finite) else 1)
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(min(24, max(6, 1.2 * len(axes_names))), 4.5))
    ax = fig.subplots()
    positions = range(len(axes_names))
    for i in range(len(table)):
        ys = [scaled[name].iloc[i] for name in axes_names]
        value = score.iloc[i]
        ax.plot(positions, ys, color=cmap(norm(value)) if math.isfinite(value) else "0.7", alpha=0.8)
    for pos, name in zip(positions, axes_names):
        ax.axvline(pos, color="0.3", linewidth=0.8)
        labels = tick_labels[name]
        ax.text(pos, -0.08, str(labels[0])[:12], ha="center", va="top", fontsize=7)
        ax.text(pos, 1.04, str(labels[-1])[:12], ha="center", va="bottom", fontsize=7)
    names = [n if n != "best_value" else f"best {metric}" for n in axes_names]
    ax.set_xticks(list(positions), names, rotation=20, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    ax.set_title(f"Parallel coordinates ({len(table)} trials)")
    fig.tight_layout()
    return _save_png(fig, path)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (no extra dependency).

    >>> print(markdown_table(pd.DataFrame({"trial": ["a"], "best_value": [0.123456]})), end="")
    | trial | best_value |
    | --- | --- |
    | a | 0.1235 |
    """

    def fmt(value) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_report(
    experiment_dir: str, metric: str, mode: str = "max", out_dir: str | None = None, top_k: int | None = None
) -> dict[str, str]:
    """Write ``report.csv``, ``report.md`` and the two figures; returns their paths by name."""
    out_dir = out_dir or os.path.join(experiment_dir, "report")
    table = experiment_table(experiment_dir, metric, mode)
    # The Markdown view keeps what differs between trials; report.csv has every config key.
    shown = table[[c for c in table.columns if _is_summary(c)] + tuned_columns(table)]
    shown = shown.head(top_k) if top_k else shown
    text = f"# {os.path.basename(os.path.normpath(experiment_dir))}: {metric} ({mode})\n\n"
    twin = twin_column(metric)
    if twin in table.columns:
        kind = "the float network's" if is_chip_metric(metric) else "the chip-ready network's (to_chip(net))"
        text += f"`{twin}`: {kind} `{chip_twin(metric)}` at each trial's best epoch (the epoch best_model.pt holds).\n\n"
    text += markdown_table(shown)
    return {
        "csv": atomic_write(os.path.join(out_dir, "report.csv"), lambda tmp: table.to_csv(tmp, index=False)),
        "markdown": atomic_write(os.path.join(out_dir, "report.md"), lambda tmp: pathlib.Path(tmp).write_text(text, "utf-8")),
        "metric_vs_params": plot_metric_vs_params(table, metric, os.path.join(out_dir, "metric_vs_params.png")),
        "parallel_coordinates": plot_parallel_coordinates(table, metric, os.path.join(out_dir, "parallel_coordinates.png")),
    }
