"""Write an experiment to disk: results.json, report.md, per-user metrics and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facetrec import __version__
from facetrec.evaluation.experiment import Experiment


def summary_rows(experiment: Experiment) -> list[dict[str, Any]]:
    """One row per model: summary metrics, intervals and fit time (JSON-able)."""
    return [
        {
            "model": run.kind,
            "params": run.params,
            "metrics": {k: _num(v) for k, v in run.test.summary.items()},
            "ci95": {k: [_num(lo), _num(hi)] for k, (lo, hi) in run.test.ci.items()},
            "fit_seconds": round(run.fit_seconds, 3),
            "eval_seconds": round(run.test.seconds, 3),
            "tuning": [{"params": p, "validation": _num(s)} for p, s in run.tuning],
            "cold_items": None if run.cold is None else {k: _num(v) for k, v in run.cold.summary.items()},
            "warm_items": None if run.warm is None else {k: _num(v) for k, v in run.warm.summary.items()},
            "other": {k: _num(v) for k, v in run.other.items()},
        }
        for run in experiment.runs
    ]


def write_report(experiment: Experiment, directory: str | Path) -> list[Path]:
    """Write the experiment's files into ``directory``; returns their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    first = experiment.runs[0].test
    header = {
        "dataset": experiment.dataset,
        "protocol": experiment.split.protocol,
        "split": experiment.split.sizes(),
        "settings": first.settings,
        "seed": experiment.seed,
        "first_event_per_item_only": experiment.first_only,
        "facetrec_version": __version__,
    }
    paths = [out / "results.json", out / "report.md", out / "per_user.parquet"]
    paths[0].write_text(json.dumps({**header, "models": summary_rows(experiment)}, indent=2) + "\n")
    paths[1].write_text(_markdown(experiment, header))
    _per_user_frame(experiment).to_parquet(paths[2])
    paths += _plots(experiment, out)
    return paths


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _per_user_frame(experiment: Experiment) -> pd.DataFrame:
    frames = []
    for run in experiment.runs:
        users = experiment.split.test.targets.users.ids[run.test.users]
        frames.append(pd.DataFrame({"model": run.kind, "user_id": users, **run.test.per_user}))
    return pd.concat(frames, ignore_index=True)


def _markdown(experiment: Experiment, header: dict[str, Any]) -> str:
    metrics = list(experiment.runs[0].test.summary)
    settings = header["settings"]
    lines = [
        f"# {experiment.dataset}: {experiment.split.protocol} evaluation",
        "",
        f"Ranking: {settings['ranking']} over {experiment.split.train.n_items:,} items; history items "
        f"{'excluded' if settings['exclude_history'] else 'NOT excluded'} from the ranking; "
        f"{settings['users']:,} test users, {settings['targets']:,} targets "
        f"({settings['targets_already_in_history']:,} already in the user's history). Seed {experiment.seed}. "
        + ("Only each user's first event per item was kept. " if experiment.first_only else "")
        + "Intervals are 95 % bootstrap intervals over users.",
        "",
        "| model | " + " | ".join(metrics) + " | fit s |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    for run in experiment.runs:
        cells = []
        for name in metrics:
            value = run.test.summary[name]
            low, high = run.test.ci.get(name, (np.nan, np.nan))
            cells.append(f"{value:.4f}" + (f" [{low:.4f}, {high:.4f}]" if np.isfinite(low) else ""))
        lines.append(f"| {run.kind} | " + " | ".join(cells) + f" | {run.fit_seconds:.1f} |")
    cold_runs = [r for r in experiment.runs if r.cold is not None and r.warm is not None]
    if cold_runs:
        names = list(cold_runs[0].cold.summary)
        lines += [
            "",
            f"## Cold-start items ({cold_runs[0].cold.settings['targets']:,} test targets on items never "
            "seen in training)",
            "",
            "| model | " + " | ".join(f"{n} cold / warm" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for r in cold_runs:
            cells = [f"{r.cold.summary[n]:.4f} / {r.warm.summary[n]:.4f}" for n in names]
            lines.append(f"| {r.kind} | " + " | ".join(cells) + " |")
    other_runs = [r for r in experiment.runs if r.other]
    if other_runs:
        lines += ["", "## Rating and click prediction", ""]
        lines += [f"- {r.kind}: " + ", ".join(f"{k} = {v:.4g}" for k, v in r.other.items()) for r in other_runs]
    lines += ["", "Parameters: " + "; ".join(f"{r.kind} {r.params or 'defaults'}" for r in experiment.runs), ""]
    return "\n".join(lines)


def _plots(experiment: Experiment, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    accuracy = [m for m in experiment.runs[0].test.per_user if m.split("@")[0] in ("ndcg", "hr", "recall", "mrr")]
    if accuracy:
        fig, axes = plt.subplots(1, len(accuracy), figsize=(3.2 * len(accuracy), 3.2), squeeze=False)
        for ax, metric in zip(axes[0], accuracy, strict=True):
            names = [r.kind for r in experiment.runs]
            values = [r.test.summary[metric] for r in experiment.runs]
            errors = np.array(
                [
                    [v - r.test.ci[metric][0], r.test.ci[metric][1] - v] if metric in r.test.ci else [0, 0]
                    for v, r in zip(values, experiment.runs, strict=True)
                ]
            ).T
            ax.bar(names, values, yerr=errors, capsize=3, color="#4C72B0")
            ax.set_title(metric)
            ax.tick_params(axis="x", rotation=45)
        fig.suptitle(f"{experiment.dataset} ({experiment.split.protocol}), 95 % CI")
        fig.tight_layout()
        paths.append(out / "metrics.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    summary = experiment.runs[0].test.summary
    diversity = next((m for m in ("ild@10", "category_ild@10", "coverage@10") if m in summary), None)
    if "ndcg@10" in summary and diversity:
        fig, ax = plt.subplots(figsize=(4.5, 3.8))
        for run in experiment.runs:
            ax.scatter(run.test.summary[diversity], run.test.summary["ndcg@10"])
            ax.annotate(
                run.kind,
                (run.test.summary[diversity], run.test.summary["ndcg@10"]),
                textcoords="offset points",
                xytext=(4, 4),
            )
        ax.set_xlabel(diversity)
        ax.set_ylabel("ndcg@10")
        ax.set_title("accuracy vs diversity")
        fig.tight_layout()
        paths.append(out / "accuracy_diversity.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
