"""Popularity bias, exposure and accuracy by user group on ML-1M (SASRec's split) and Amazon Beauty
(S3-Rec's files), and what the two controls buy: leave-one-out, full ranking, history excluded.

    python benchmarks/fairness.py --datasets ml-1m,beauty --models ease,als

EASE and ALS take the settings benchmarks/public.py picked on the validation targets (its run
cache; --retune picks them again here, the same way). Each model is then evaluated as is
(control "none") and under each control at each knob value:

- xquad: the exposure-aware re-ranker (RankConfig diversity "xquad" over popularity buckets),
  knob ``lam`` (1 = relevance only);
- ipw: inverse-propensity-weighted training, knob ``ipw_power`` (a model parameter; models
  without it are skipped).

A control is named on the command line as NAME=V1,V2 (--control xquad=0.9,0.7); one whose
setting this checkout does not have is reported and skipped. Rows: {dataset, model, control,
metrics} with NDCG@10, long-tail share, exposure Gini and ARP at 10, and for each control its
change against "none" and whether it meets the goal (long-tail share and exposure Gini 30 %
better at no more than 2 % NDCG@10 loss); and {dataset, model, group, metrics} with NDCG@10 and
its 95 % bootstrap interval per user group (activity everywhere, gender and age on ML-1M) and
the best-worst gap. The trade-off curves go to results/fairness_tradeoff.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RunCache, data_root, write_results
from public import DATASETS, RUNS, key, load

METRICS = ("ndcg@10", "long_tail_share@10", "exposure_gini@10", "arp@10")
MODELS = ("ease", "als")
CONTROLS: dict[str, tuple[str, dict[str, Any], str, tuple[float, ...]]] = {
    "xquad": ("rank", {"diversity": "xquad", "exposure_groups": "popularity"}, "lam", (0.9, 0.7, 0.5, 0.3)),
    "ipw": ("model", {}, "ipw_power", (0.5, 1.0)),
}
"""Control name -> (where its settings go: RankConfig or the model's config, fixed settings, knob,
default knob values)."""
GOAL_GAIN, GOAL_LOSS = 0.30, 0.02
"""Long-tail share and exposure Gini at least 30 % better, NDCG@10 at most 2 % lower."""


def tuned(dataset: str, model: str, retune: bool, data: Any, split: Any) -> tuple[Any, dict[str, Any], str]:
    """The model fitted with the settings picked on validation: public.py's pick, or a fresh search."""
    from facetrec.evaluation.experiment import fit_best
    from facetrec.scoring.registry import SEARCH_SPACES, make_scorer

    cached = RunCache(RUNS, key).runs.get((dataset, model, 0))
    if cached is not None and not retune:
        params = cached["params"]
        return make_scorer(model, params, 0).fit(split.train, data.catalog, split.valid), params, "public.py"
    fitted = fit_best(model, [dict(c) for c in SEARCH_SPACES[model]], data, split, seed=0)
    return fitted.scorer, fitted.params, "validation search"


def knob_text(name: str, value: float) -> str:
    return f"{name} {CONTROLS[name][2]}={value:g}"


def run_dataset(name: str, models: list[str], controls: dict[str, tuple[float, ...]], args: Any) -> list[dict]:
    from facetrec.data.split import make_split
    from facetrec.evaluation.groups import group_scores, user_groups
    from facetrec.evaluation.protocol import EvalConfig, ItemSide, evaluate
    from facetrec.ranking import RankConfig
    from facetrec.scoring.registry import make_scorer, scorer_class

    data = load(name)
    split = make_split(data.interactions, "loo", 0)
    side = ItemSide.from_data(data.catalog, split.train)
    config = EvalConfig(metrics=METRICS, bootstrap=0)
    length = np.bincount(split.test.history.user_idx, minlength=split.test.history.n_users)
    labels = user_groups(data.user_attributes, length)
    rows: list[dict] = []
    for model in models:
        start = time.perf_counter()
        scorer, params, picked = tuned(name, model, args.retune, data, split)
        base = evaluate(scorer, split.test, config, side, name=model)
        say(f"{name} {model} {params} ({picked}): " + summary(base.summary, time.perf_counter() - start))
        rows.append({"dataset": name, "model": model, "control": "none", "params": params, "metrics": base.summary})
        for grouping, label in labels.items():
            scores, gap = group_scores(base.per_user["ndcg@10"], label[base.users], args.bootstrap, 0)
            for s in scores:
                metrics = {"ndcg@10": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "users": s.users}
                rows.append({"dataset": name, "model": model, "group": f"{grouping}: {s.group}", "metrics": metrics})
            if gap is not None:
                metrics = {"ndcg@10": gap.gap, "ci_low": gap.ci_low, "ci_high": gap.ci_high}
                group = f"{grouping}: gap {gap.best} - {gap.worst}"
                rows.append({"dataset": name, "model": model, "group": group, "metrics": metrics})
        for control, values in controls.items():
            where, fixed, knob, _ = CONTROLS[control]
            fields = (
                RankConfig.__dataclass_fields__
                if where == "rank"
                else scorer_class(model).config_class.__dataclass_fields__
            )
            absent = [f for f in (*fixed, knob) if f not in fields]
            if absent:
                owner = "RankConfig" if where == "rank" else f"the {model} model"
                say(f"{name} {model} {control}: skipped ({owner} has no {', '.join(absent)} in this checkout)")
                continue
            for value in values:
                start = time.perf_counter()
                if where == "rank":
                    result = evaluate(
                        scorer, split.test, config, side, name=model, ranking=RankConfig(**fixed, **{knob: value})
                    )
                else:
                    weighted = make_scorer(model, {**params, **fixed, knob: value}, 0)
                    result = evaluate(weighted.fit(split.train, data.catalog, split.valid), split.test, config, side)
                text = knob_text(control, value)
                say(f"{name} {model} {text}: " + summary(result.summary, time.perf_counter() - start))
                row = {"dataset": name, "model": model, "control": text, "metrics": result.summary}
                rows.append({**row, "vs_none": versus(result.summary, base.summary)})
    return rows


def say(line: str) -> None:
    print(line, flush=True)


def summary(metrics: dict[str, float], seconds: float) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f"  ({seconds:.0f} s)"


def versus(metrics: dict[str, float], none: dict[str, float]) -> dict[str, Any]:
    """Relative changes against the uncontrolled model, each signed so that positive is better."""
    ndcg = metrics["ndcg@10"] / none["ndcg@10"] - 1
    tail = metrics["long_tail_share@10"] / none["long_tail_share@10"] - 1
    gini = 1 - metrics["exposure_gini@10"] / none["exposure_gini@10"]
    met = tail >= GOAL_GAIN and gini >= GOAL_GAIN and ndcg >= -GOAL_LOSS
    return {"ndcg@10_change": ndcg, "long_tail_share_gain": tail, "exposure_gini_reduction": gini, "goal_met": met}


def plot(rows: list[dict], path: Path) -> None:
    """Long-tail share and exposure Gini against NDCG@10: one panel per dataset, a line per model and control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.8 * len(datasets), 7), squeeze=False)
    for column, dataset in enumerate(datasets):
        lists = [r for r in rows if r["dataset"] == dataset and "control" in r]
        for model in sorted({r["model"] for r in lists}):
            none = next(r for r in lists if r["model"] == model and r["control"] == "none")
            for control in sorted({r["control"].split()[0] for r in lists if r["control"] != "none"}):
                points = [none] + [r for r in lists if r["model"] == model and r["control"].startswith(control + " ")]
                for row, metric in enumerate(("long_tail_share@10", "exposure_gini@10")):
                    ax = axes[row, column]
                    x = [p["metrics"]["ndcg@10"] for p in points]
                    ax.plot(x, [p["metrics"][metric] for p in points], marker="o", label=f"{model} {control}")
                    ax.set_xlabel("NDCG@10")
                    ax.set_ylabel(metric)
                    ax.set_title(dataset)
                    ax.grid(alpha=0.3)
                    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_controls(given: list[str] | None) -> dict[str, tuple[float, ...]]:
    if given is None:
        return {name: spec[3] for name, spec in CONTROLS.items()}
    out = {}
    for text in given:
        name, _, values = text.partition("=")
        if name not in CONTROLS:
            sys.exit(f"unknown control {name!r}; choose from {', '.join(CONTROLS)} (NAME=V1,V2)")
        try:
            out[name] = tuple(float(v) for v in values.split(",")) if values else CONTROLS[name][3]
        except ValueError:
            sys.exit(f"--control {text}: knob values must be numbers, e.g. {name}=0.5,0.8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-1m,beauty")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--control",
        action="append",
        help=f"NAME=V1,V2 (repeatable); names: {', '.join(CONTROLS)}; default: every control at its default knobs",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the user-group intervals")
    parser.add_argument("--retune", action="store_true", help="pick settings on validation here, not from public.py")
    args = parser.parse_args()
    controls = parse_controls(args.control)
    for name in args.datasets.split(","):
        if name not in ("ml-1m", "beauty"):
            sys.exit(f"unknown dataset {name!r}; choose from ml-1m, beauty")
        if not (data_root() / DATASETS[name][1]).is_dir():
            sys.exit(f"{name} not found in {data_root()}; set FACETREC_DATA_DIR to the folder that holds it")
    models = args.models.split(",")
    for model in models:
        if model not in MODELS:
            sys.exit(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    rows = [row for name in args.datasets.split(",") for row in run_dataset(name, models, controls, args)]
    plot(rows, RESULTS / "fairness_tradeoff.png")
    write_results("fairness", rows)


if __name__ == "__main__":
    main()
