"""Accuracy where the field measures: ML-1M (SASRec's split), Amazon Beauty and Sports and Yelp
(S3-Rec's files), leave-one-out, full ranking over every item, history excluded.

Each (dataset, model, seed) is one run in a fresh process, cached in
results/public_runs.jsonl (pass --force to redo one), so the table grows a run at a time:

    python benchmarks/public.py --datasets beauty --models ease,itemknn,als,sasrec,facet --seeds 0

Baselines pick their settings on the validation targets (the second-to-last item) from the
same-size grids the registry declares; sequence models use the recipe of their dataset below,
with early stopping on validation NDCG@10 and a cap on training minutes. Every number comes
from ``evaluate`` and so from ``Recommender.recommend_batch``, the path the service answers
with. The summary gives each model's mean over seeds and, for the facet model, its ratio to the
best other model of the run and a paired t-test over users pooled across seeds. The plot is
validation NDCG@10 against training seconds (time to accuracy).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RunCache, data_root, device, git_commit, write_results

RUNS = RESULTS / "public_runs.jsonl"
METRICS = ("ndcg@10", "hr@10", "ndcg@20", "recall@20")

DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ml-1m": ("ml-1m-sasrec", "ml-1m", {}),
    "beauty": ("s3rec", "amazon-2014-s3rec", {"name": "Beauty"}),
    "sports": ("s3rec", "amazon-2014-s3rec", {"name": "Sports_and_Outdoors"}),
    "yelp": ("s3rec", "yelp-s3rec", {"name": "Yelp"}),
}
"""Benchmark name -> (facetrec data source, folder under FACETREC_DATA_DIR, source options)."""

ANCHORS: dict[str, dict[str, float]] = {
    "ml-1m": {"sasrec-ce (Klenitskiy & Vasilev 2023, own split)": 0.182, "gsasrec (SASRec split)": 0.1726},
    "beauty": {"sasrec (S3-Rec table)": 0.0318, "s3-rec": 0.0327, "tiger": 0.0384, "bsarec (released log)": 0.0611},
    "sports": {"sasrec (S3-Rec table)": 0.0192, "s3-rec": 0.0204},
    "yelp": {"sasrec (S3-Rec table)": 0.0136, "s3-rec": 0.0168},
}
"""Published NDCG@10 on the same files and protocol (docs/data.md gives the sources)."""

SEQUENCE_RECIPES: dict[str, dict[str, Any]] = {
    # Long histories (mean 165 events): SASRec's own length and a light dropout.
    "ml-1m": {"max_len": 200, "hidden": 64, "dropout": 0.2, "lr": 1e-3, "batch_size": 128},
    # Short histories (mean 9-10 events): BSARec's recipe on these files.
    "beauty": {"max_len": 50, "hidden": 64, "dropout": 0.5, "lr": 1e-3, "batch_size": 128},
    "sports": {"max_len": 50, "hidden": 64, "dropout": 0.5, "lr": 1e-3, "batch_size": 128},
    "yelp": {"max_len": 50, "hidden": 64, "dropout": 0.5, "lr": 1e-3, "batch_size": 128},
}
"""Settings every sequence model shares on a dataset (SASRec+, sasrec-text and the facet model)."""

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "ease": ("ease", {}),
    "itemknn": ("itemknn", {}),
    "als": ("als", {}),
    "sasrec": ("sasrec", {}),
    "sasrec-text": ("sasrec-text", {}),
    "facet": ("facet", {}),
    "facet-k1": ("facet", {"interests": 1}),
    "facet-hard": ("facet", {"routing": "hard"}),
    "facet-no-text": ("facet", {"encoder": "none", "fusion": "weighted"}),
    "facet-no-id": ("facet", {"use_id": False}),
}
"""Benchmark name -> (registry kind, overrides on top of the dataset's recipe)."""

SEQUENCE_KINDS = ("sasrec", "sasrec-text", "facet")
SAMPLED_ABOVE = 5_000
"""Sequence models train with a log-Q corrected sampled softmax above this many items (the Amazon
and Yelp files; ML-1M's 3,416 items keep the full softmax of the published SASRec-CE anchor)."""


def load(name: str):
    from facetrec.data.sources import load_source

    source, folder, options = DATASETS[name]
    return load_source(source, data_root() / folder, **options)


def model_params(dataset: str, model: str, spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind, overrides = MODELS[model]
    params: dict[str, Any] = {}
    if kind in SEQUENCE_KINDS:
        params = {
            **SEQUENCE_RECIPES[dataset],
            "full_softmax_max_items": SAMPLED_ABOVE,
            "epochs": spec["epochs"],
            "patience": spec["patience"],
            "max_minutes": spec["minutes"],
            "progress": False,
            "seed": spec["seed"],
        }
    return kind, {**params, **overrides}


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Tune (baselines) or train (sequence models) on one split and evaluate on the test targets."""
    import torch

    from facetrec.data.split import make_split
    from facetrec.evaluation.experiment import fit_best
    from facetrec.evaluation.protocol import EvalConfig, evaluate
    from facetrec.scoring.registry import SEARCH_SPACES, make_scorer
    from facetrec.training import on_epoch

    torch.set_num_threads(spec["threads"])
    dataset = load(spec["dataset"])
    split = make_split(dataset.interactions, "loo", spec["seed"])
    kind, params = model_params(spec["dataset"], spec["model"], spec)
    tuning: list[dict[str, Any]] = []
    start = time.perf_counter()
    curve: list[list[float]] = []
    if kind in SEQUENCE_KINDS:  # each epoch's validation NDCG@10 at its training time
        with on_epoch(lambda epoch, score: curve.append([time.perf_counter() - start, score])):
            scorer = make_scorer(kind, params, spec["seed"]).fit(split.train, dataset.catalog, split.valid)
    else:  # pick the setting on the validation targets, never on test
        fitted = fit_best(kind, [{**params, **c} for c in SEARCH_SPACES[kind]], dataset, split, seed=spec["seed"])
        scorer, params = fitted.scorer, fitted.params
        tuning = [{"params": trial, "valid_ndcg@10": score} for trial, score in fitted.tuning]
    fit_s = time.perf_counter() - start
    result = evaluate(scorer, split.test, EvalConfig(metrics=METRICS, bootstrap=0))
    return {
        **spec,
        "kind": kind,
        "params": {k: v for k, v in params.items() if k not in ("progress",)},
        **{m: float(result.summary[m]) for m in METRICS},
        "fit_s": fit_s,
        "epochs_run": len(getattr(scorer, "losses_", [])),
        "best_epoch": getattr(scorer, "best_epoch_", None),
        "tuning": tuning,
        "curve": curve,
        "per_user_ndcg@10": result.per_user["ndcg@10"].round(6).tolist(),
        "test_users": len(result.users),
        "ranked_by": result.settings["ranked_by"],
        "device": device(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "git_commit": git_commit(),
    }


def key(row: dict[str, Any]) -> tuple:
    return row["dataset"], row["model"], row["seed"]


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per run and per (dataset, model) mean; facet models get their ratio to the best other
    model of the dataset (by mean NDCG@10) and a paired t-test over users, each user's NDCG@10
    averaged over the seeds each model ran (the leave-one-out split is the same under every seed,
    and a deterministic baseline such as EASE runs once)."""
    from scipy.stats import ttest_rel

    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in sorted(runs, key=key):
        groups.setdefault((run["dataset"], run["model"]), []).append(run)
        rows.append(
            {
                "dataset": run["dataset"],
                "model": run["model"],
                "seed": run["seed"],
                "metrics": {**{m: run[m] for m in METRICS}, "fit_s": run["fit_s"]},
                "device": run["device"],
                "git_commit": run["git_commit"],
            }
        )
    means = {}
    for (dataset, model), group in groups.items():
        metrics = {m: float(np.mean([g[m] for g in group])) for m in (*METRICS, "fit_s")}
        if len(group) > 1:
            metrics["ndcg@10_sd"] = float(np.std([g["ndcg@10"] for g in group], ddof=1))
        metrics["seeds"] = len(group)
        means[dataset, model] = metrics
    for (dataset, model), metrics in sorted(means.items()):
        if model.startswith("facet"):
            rivals = {m: v for (d, m), v in means.items() if d == dataset and not m.startswith("facet")}
            if rivals:
                best = max(rivals, key=lambda m: rivals[m]["ndcg@10"])
                metrics["best_other_model"] = best
                metrics["ndcg@10_ratio_to_best_other"] = metrics["ndcg@10"] / rivals[best]["ndcg@10"]
                ours = np.mean([g["per_user_ndcg@10"] for g in groups[dataset, model]], 0)
                theirs = np.mean([g["per_user_ndcg@10"] for g in groups[dataset, best]], 0)
                metrics["paired_p_pooled"] = float(ttest_rel(ours, theirs).pvalue)
        group = groups[dataset, model]
        rows.append(
            {
                "dataset": dataset,
                "model": model,
                "seed": "mean",
                "metrics": metrics,
                "device": sorted({g["device"] for g in group}),
                "git_commit": sorted({g["git_commit"] for g in group}),
            }
        )
    return rows


def history_slices(runs: list[dict[str, Any]], quantiles: int = 4) -> list[dict[str, Any]]:
    """NDCG@10 per model on the test users split into ``quantiles`` groups by history length:
    where a model wins (several interests should pay off on long histories). Each user's NDCG@10
    is averaged over the model's seeds."""
    from facetrec.data.split import make_split

    rows = []
    for dataset in sorted({r["dataset"] for r in runs}):
        test = make_split(load(dataset).interactions, "loo", 0).test
        users = np.unique(test.targets.user_idx)
        length = np.bincount(test.history.user_idx, minlength=test.history.n_users)[users]
        edges = np.unique(np.quantile(length, np.linspace(0, 1, quantiles + 1)).round())
        group = np.clip(np.searchsorted(edges, length, side="right") - 1, 0, len(edges) - 2)
        for model in sorted({r["model"] for r in runs if r["dataset"] == dataset}):
            per_user = np.mean([r["per_user_ndcg@10"] for r in runs if key(r)[:2] == (dataset, model)], 0)
            for g in range(len(edges) - 1):
                mine = group == g
                low, high = int(edges[g]), int(edges[g + 1]) - 1  # group g: edges[g] <= length < edges[g + 1]
                span = f"{low}+" if g == len(edges) - 2 else (f"{low}" if low == high else f"{low}-{high}")
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "seed": "mean",
                        "slice": f"history {span} events",
                        "metrics": {"ndcg@10": float(per_user[mine].mean()), "users": int(mine.sum())},
                    }
                )
    return rows


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Validation NDCG@10 against training seconds, one panel per dataset (seed 0 where present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in runs if r["curve"]})
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    colour = {m: f"C{i}" for i, m in enumerate(sorted({r["model"] for r in runs}))}  # one per model in every panel
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for run in sorted(runs, key=key):
            if run["dataset"] != dataset or run["seed"] != min(r["seed"] for r in runs if key(r)[:2] == key(run)[:2]):
                continue
            if run["curve"]:
                seconds, scores = zip(*run["curve"], strict=True)
                ax.plot(np.array(seconds) / 60, scores, label=run["model"], color=colour[run["model"]])
            else:  # a closed-form or tuned baseline: one point at its (tuning + fit) time
                best = max(t["valid_ndcg@10"] for t in run["tuning"])
                ax.scatter([run["fit_s"] / 60], [best], label=run["model"], color=colour[run["model"]])
        ax.set_title(dataset)
        ax.set_xlabel("training minutes")
        ax.set_ylabel("validation NDCG@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-1m,beauty,sports,yelp")
    parser.add_argument("--models", default="ease,itemknn,als,sasrec,sasrec-text,facet")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=200, help="most epochs of a sequence model")
    parser.add_argument("--patience", type=int, default=10, help="epochs without a better validation NDCG@10")
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget of a sequence model, minutes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--force", action="store_true", help="redo runs already in the cache")
    args = parser.parse_args()
    console = Console()
    for name in args.datasets.split(","):
        if name not in DATASETS:
            sys.exit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
        if not (data_root() / DATASETS[name][1]).is_dir():
            sys.exit(f"{name} not found in {data_root()}; set FACETREC_DATA_DIR to the folder that holds it")
    for model in args.models.split(","):
        if model not in MODELS:
            sys.exit(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    done = RunCache(RUNS, key)
    specs = [
        {"dataset": d, "model": m, "seed": int(s), "epochs": args.epochs, "patience": args.patience}
        | {"minutes": args.minutes, "threads": args.threads}
        for d in args.datasets.split(",")
        for s in args.seeds.split(",")
        for m in args.models.split(",")
    ]
    for spec in specs:
        if spec in done and not args.force:
            continue
        console.print(f"running {spec['dataset']} {spec['model']} seed {spec['seed']}")
        row = done.run(run_one, spec)
        console.print(
            f"  ndcg@10 {row['ndcg@10']:.4f}  hr@10 {row['hr@10']:.4f}  fit {row['fit_s']:.0f} s  "
            f"epochs {row['epochs_run']}  ({row['device']})"
        )
    runs = list(done.values())
    rows = summarise(runs)
    table = Table(title="Leave-one-out, full ranking, history excluded (means over seeds)")
    for column in ("dataset", "model", "seeds", "ndcg@10", "hr@10", "ndcg@20", "recall@20", "fit_s", "vs best"):
        table.add_column(column)
    for row in rows:
        if row["seed"] != "mean":
            continue
        m = row["metrics"]
        ratio = m.get("ndcg@10_ratio_to_best_other")
        versus = "" if ratio is None else f"{ratio:.2f}x {m['best_other_model']} p={m['paired_p_pooled']:.2g}"
        table.add_row(
            row["dataset"],
            row["model"],
            str(m["seeds"]),
            *(f"{m[k]:.4f}" for k in METRICS),
            f"{m['fit_s']:.0f}",
            versus,
        )
    console.print(table)
    for dataset in sorted({r["dataset"] for r in runs}):
        console.print(f"published NDCG@10 on {dataset}: " + ", ".join(f"{k} {v}" for k, v in ANCHORS[dataset].items()))
    plot(runs, RESULTS / "public_time_to_accuracy.png")
    write_results("public", rows + history_slices(runs))


if __name__ == "__main__":
    main()
