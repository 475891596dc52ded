"""Write an experiment to disk: results.json, report.md, per-user metrics and PNG plots.

:func:`results_document` is the JSON form (what ``results.json`` holds and what
``facetrec evaluate --json`` prints): per model its metrics with 95 % intervals, which metrics
it is best on, its ratio to the best model on the main metric (with a paired bootstrap
interval), fit and evaluation seconds, its main metric per user group (with 95 % intervals and
the best-worst gap) and the exposure share of each item group beside its catalogue share.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facetrec import __version__
from facetrec.evaluation.experiment import Experiment, ModelRun, RatioCI, higher_is_better


def summary_rows(experiment: Experiment) -> list[dict[str, Any]]:
    """One row per model: summary metrics, intervals, best flags, ratio to the best, times (JSON-able)."""
    best = experiment.best()
    rows = []
    for run in experiment.runs:
        ratio = experiment.ratios.get(run.kind)
        rows.append(
            {
                "model": run.kind,
                "params": run.params,
                "metrics": {k: _num(v) for k, v in run.test.summary.items()},
                "ci95": {k: [_num(lo), _num(hi)] for k, (lo, hi) in run.test.ci.items()},
                "best": {metric: run.kind in kinds for metric, kinds in best.items()},
                "best_on_main_metric": run.kind in best.get(experiment.main_metric, ()),
                "ratio_to_best": None if ratio is None else _ratio_json(experiment, ratio),
                "fit_seconds": round(run.fit_seconds, 3),
                "eval_seconds": round(run.test.seconds, 3),
                "tuning": [{"params": p, "validation": _num(s)} for p, s in run.tuning],
                "cold_items": None if run.cold is None else {k: _num(v) for k, v in run.cold.summary.items()},
                "warm_items": None if run.warm is None else {k: _num(v) for k, v in run.warm.summary.items()},
                "other": {k: _num(v) for k, v in run.other.items()},
                "user_groups": _user_groups_json(run),
                "exposure_by_group": {
                    name: [
                        {"group": s.group, "exposure": _num(s.exposure), "catalogue": _num(s.catalogue)} for s in shares
                    ]
                    for name, shares in run.exposure.items()
                },
            }
        )
    return rows


def _user_groups_json(run: ModelRun) -> dict[str, Any]:
    out = {}
    for name, (scores, gap) in run.user_groups.items():
        out[name] = {
            "groups": [
                {"group": s.group, "mean": _num(s.mean), "ci95": [_num(s.ci_low), _num(s.ci_high)], "users": s.users}
                for s in scores
            ],
            "gap": None
            if gap is None
            else {
                "best": gap.best,
                "worst": gap.worst,
                "gap": _num(gap.gap),
                "ci95": [_num(gap.ci_low), _num(gap.ci_high)],
            },
        }
    return out


def results_document(experiment: Experiment) -> dict[str, Any]:
    """The whole experiment as one JSON-able dict: what results.json holds and ``--json`` prints."""
    first = experiment.runs[0].test
    best = experiment.best()
    return {
        "dataset": experiment.dataset,
        "protocol": experiment.split.protocol,
        "split": experiment.split.sizes(),
        "settings": first.settings,
        "seed": experiment.seed,
        "first_event_per_item_only": experiment.first_only,
        "facetrec_version": __version__,
        "main_metric": experiment.main_metric,
        "best": {metric: list(kinds) for metric, kinds in best.items()},
        "higher_is_better": {metric: higher_is_better(metric) for metric in best},
        "models": summary_rows(experiment),
    }


def write_report(experiment: Experiment, directory: str | Path) -> list[Path]:
    """Write the experiment's files into ``directory``; returns their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    document = results_document(experiment)
    header = {k: v for k, v in document.items() if k != "models"}
    paths = [out / "results.json", out / "report.md", out / "per_user.parquet"]
    paths[0].write_text(json.dumps(document, indent=2) + "\n")
    paths[1].write_text(_markdown(experiment, header))
    _per_user_frame(experiment).to_parquet(paths[2])
    paths += _plots(experiment, out)
    return paths


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def _ratio_json(experiment: Experiment, ratio: RatioCI) -> dict[str, Any]:
    best = experiment.best().get(experiment.main_metric, ())
    return {
        "metric": experiment.main_metric,
        "best_model": best[0] if best else None,
        "ratio": _num(ratio.ratio),
        "ci95": [_num(ratio.low), _num(ratio.high)],
        "users": ratio.n_users,
    }


def ratio_text(ratio: RatioCI | None) -> str:
    """'0.93 [0.90, 0.96]', '1 (best)' or 'n/a': a ratio to the best and its interval, for tables."""
    if ratio is None or not np.isfinite(ratio.ratio):
        return "n/a"
    if ratio.ratio == 1 and ratio.low == 1 and ratio.high == 1:
        return "1 (best)"
    interval = f" [{ratio.low:.3f}, {ratio.high:.3f}]" if np.isfinite(ratio.low) else ""
    return f"{ratio.ratio:.3f}{interval}"


def _per_user_frame(experiment: Experiment) -> pd.DataFrame:
    frames = []
    for run in experiment.runs:
        users = experiment.split.test.targets.users.ids[run.test.users]
        frames.append(pd.DataFrame({"model": run.kind, "user_id": users, **run.test.per_user}))
    return pd.concat(frames, ignore_index=True)


def _markdown(experiment: Experiment, header: dict[str, Any]) -> str:
    metrics = list(experiment.runs[0].test.summary)
    settings = header["settings"]
    best = experiment.best()
    main = experiment.main_metric
    lines = [
        f"# {experiment.dataset}: {experiment.split.protocol} evaluation",
        "",
        f"Ranking: {settings['ranking']} over {experiment.split.train.n_items:,} items; history items "
        f"{'excluded' if settings['exclude_history'] else 'NOT excluded'} from the ranking; "
        f"{settings['users']:,} test users, {settings['targets']:,} targets "
        f"({settings['targets_already_in_history']:,} already in the user's history). Seed {experiment.seed}. "
        + ("Only each user's first event per item was kept. " if experiment.first_only else "")
        + "Intervals are 95 % bootstrap intervals over users. **Bold**: the best model for the metric "
        + f"(lower is better for {', '.join(m for m in metrics if not higher_is_better(m)) or 'none'}). "
        + f"Ratio: the model's mean {main} over the best model's, with a 95 % paired bootstrap interval "
        + "(the same users resampled for both).",
        "",
        "| model | " + " | ".join(metrics) + f" | ratio to best {main} | fit s | eval s |",
        "|---|" + "---|" * (len(metrics) + 3),
    ]
    for run in experiment.runs:
        cells = []
        for name in metrics:
            value = run.test.summary[name]
            low, high = run.test.ci.get(name, (np.nan, np.nan))
            text = f"{value:.4f}"
            if run.kind in best.get(name, ()):
                text = f"**{text}**"
            cells.append(text + (f" [{low:.4f}, {high:.4f}]" if np.isfinite(low) else ""))
        ratio = ratio_text(experiment.ratios.get(run.kind))
        lines.append(
            f"| {run.kind} | " + " | ".join(cells) + f" | {ratio} | {run.fit_seconds:.1f} | {run.test.seconds:.1f} |"
        )
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
    lines += _group_lines(experiment)
    lines += ["", "Parameters: " + "; ".join(f"{r.kind} {r.params or 'defaults'}" for r in experiment.runs), ""]
    return "\n".join(lines)


def _group_lines(experiment: Experiment) -> list[str]:
    """Markdown: the main metric per user group, and the exposure of the popularity buckets."""
    main, lines = experiment.main_metric, []
    for name in experiment.runs[0].user_groups:
        lines += ["", f"## {main} by user group: {name} (95 % bootstrap intervals; gap = best - worst group)", ""]
        scores = experiment.runs[0].user_groups[name][0]
        lines += ["| model | " + " | ".join(f"{s.group} ({s.users:,} users)" for s in scores) + " | gap |"]
        lines += ["|---|" + "---|" * (len(scores) + 1)]
        for run in experiment.runs:
            scores, gap = run.user_groups[name]
            cells = [f"{s.mean:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]" for s in scores]
            gap_text = "" if gap is None else f"{gap.gap:.4f} [{gap.ci_low:.4f}, {gap.ci_high:.4f}]"
            lines.append(f"| {run.kind} | " + " | ".join(cells) + f" | {gap_text} |")
    buckets = [run for run in experiment.runs if "popularity" in run.exposure]
    if buckets:
        shares = buckets[0].exposure["popularity"]
        lines += ["", "## Exposure share by popularity bucket (catalogue share in brackets)", ""]
        lines += ["| model | " + " | ".join(f"{s.group} ({s.catalogue:.1%})" for s in shares) + " |"]
        lines += ["|---|" + "---|" * len(shares)]
        lines += [
            f"| {r.kind} | " + " | ".join(f"{s.exposure:.1%}" for s in r.exposure["popularity"]) + " |" for r in buckets
        ]
    return lines


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
