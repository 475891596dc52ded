"""The facet model against SASRec+ and sasrec-text: same splits, several seeds, one table.

Parts (each model x seed runs in its own process, so peak memory is its own):
- ``loo``: leave-one-out, full ranking, history excluded: NDCG@10 / HR@10, paired t-test of the
  facet model against the best single-interest baseline over users (per seed);
- ``multi``: multi-target (held-out users, last 20 % of their sequence as targets): Recall@50
  and interest coverage@50, a user's interests being the categories of their targets;
- ``cold``: the split of benchmarks/cold_start.py (temporal; on Amazon a seeded 30 % of the
  items with test targets also lose their training events): Recall@10 on test targets whose
  items never occur in training, next to warm targets (no validation split: trains to the cap);
- ``recovery``: synthetic data with planted interests: share of each multi-interest user's true
  interests that some learned interest matches best (goal >= 0.8).

Runs are cached in results/facet_runs.jsonl (delete a line or pass --force to redo it), so the
table can be extended one model or seed at a time:

    python benchmarks/facet.py --datasets ml-100k --parts loo --models sasrec,sasrec-text,facet --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, RunCache, data_root, git_commit, write_results

RUNS = RESULTS / "facet_runs.jsonl"
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sasrec": ("sasrec", {}),
    "sasrec-text": ("sasrec-text", {}),
    "sasrec-text-sampled": ("sasrec-text", {"full_softmax_max_items": 0}),
    "facet": ("facet", {}),
    "facet-k1": ("facet", {"interests": 1}),
    "facet-sampled": ("facet", {"full_softmax_max_items": 0}),
    "facet-future": ("facet", {"future_window": 20}),
    "facet-hard": ("facet", {"routing": "hard"}),
    "facet-no-text": ("facet", {"encoder": "none", "fusion": "weighted"}),
    "facet-no-id": ("facet", {"use_id": False}),
    "facet-no-time": ("facet", {"time_features": False}),
    "facet-no-events": ("facet", {"event_features": False}),
    "facet-no-signals": ("facet", {"signal_features": False}),
    "facet-no-reviews": ("facet", {"reviews": False}),
}
"""Benchmark names -> (registry kind, overrides): the baselines, the model and its ablations."""
DATASETS = {
    "ml-100k": ("ml-100k", "ml-100k", {}),
    "ml-latest-small": ("ml-latest-small", "ml-latest-small", {}),
    "amazon-magazines": ("amazon-2018", "amazon-reviews-2018-small", {"category": "Magazine_Subscriptions"}),
}
BASELINES = ("sasrec", "sasrec-text")
SAME_OBJECTIVE = {"facet-sampled": "sasrec-text-sampled"}
"""Facet variants also compared with the single-interest model trained with the same softmax."""


def synthetic():
    from facetrec.data.synthetic import SynthConfig, generate

    return generate(SynthConfig(n_users=2000, n_items=1000, n_topics=10, max_interests=4, seed=0))


def load(name: str):
    from facetrec.data.sources import load_source

    if name == "synthetic":
        return synthetic().dataset
    source, folder, options = DATASETS[name]
    return load_source(source, data_root() / folder, **options)


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one model on one split and evaluate it; runs in a fresh process."""
    import torch

    from facetrec.data.filters import first_occurrences
    from facetrec.data.split import make_split
    from facetrec.evaluation.protocol import EvalConfig, ItemSide, cold_targets, evaluate
    from facetrec.scoring.registry import make_scorer

    torch.set_num_threads(spec["threads"])
    kind, params = VARIANTS[spec["model"]]
    params = {**params, "progress": False, **({"epochs": spec["epochs_cap"]} if spec["epochs_cap"] else {})}
    dataset = load(spec["dataset"])
    data = first_occurrences(dataset.interactions)
    protocol = {"loo": "loo", "multi": "multi-target", "cold": "temporal", "recovery": "loo"}[spec["part"]]
    if spec["part"] == "cold":  # the cold-start benchmark's split: new items for known users
        from cold_start import HOLD_OUT, cold_start_split

        hold_out = HOLD_OUT if spec["dataset"].startswith("amazon") else 0.0  # as cold_start.py does
        train, test, _ = cold_start_split(replace(dataset, interactions=data), hold_out, spec["seed"])
        valid = None  # no validation split here: trains for the epoch cap
    else:
        split = make_split(data, protocol, spec["seed"])
        train, valid, test = split.train, split.valid, split.test
    start = time.perf_counter()
    scorer = make_scorer(kind, params, spec["seed"]).fit(train, dataset.catalog, valid)
    out: dict[str, Any] = {"fit_s": time.perf_counter() - start, "epochs": len(getattr(scorer, "losses_", []))}
    if spec["part"] == "loo":
        result = evaluate(scorer, test, EvalConfig(metrics=("ndcg@10", "hr@10"), bootstrap=0))
        out.update(result.summary)
        out["per_user_ndcg@10"] = result.per_user["ndcg@10"].tolist()
    elif spec["part"] == "multi":
        side = ItemSide.from_data(dataset.catalog, train)
        if spec["dataset"] == "synthetic":  # the planted interests are the truth
            syn = synthetic()
            side = ItemSide(categories=syn.item_topic, popularity=side.popularity, n_train_users=side.n_train_users)
            user_interests = syn.interest_matrix()
        else:  # a user's interests: the categories of what they went on to consume
            user_interests = _user_categories(test.targets, side.categories)
        metrics = ("recall@50", "ndcg@10", "interest_coverage@50")
        config = EvalConfig(metrics=metrics, bootstrap=0)
        out.update(evaluate(scorer, test, config, side, user_interests=user_interests).summary)
    elif spec["part"] == "cold":
        counts = np.bincount(train.item_idx, minlength=train.n_items)
        config = EvalConfig(metrics=("recall@10", "ndcg@10"), bootstrap=0)
        for label, cold in (("cold", True), ("warm", False)):
            subset = cold_targets(test, counts, cold=cold)
            if len(subset.targets):
                summary = evaluate(scorer, subset, config).summary
                out.update({f"{label}_{k}": v for k, v in summary.items()}, **{f"{label}_targets": len(subset.targets)})
    else:
        from facetrec.evaluation.recovery import interest_recovery

        syn = synthetic()
        states = scorer.encode_users(train, np.arange(train.n_users))
        share = interest_recovery(states, scorer.item_vectors(), syn.item_topic, syn.user_topics)
        out["recovery"] = float(np.nanmean(share))
        out["users_fully_recovered"] = float(np.nanmean(share[~np.isnan(share)] == 1.0))
        out["mean_k"] = float(np.mean([s.k for s in states]))
        out.update(evaluate(scorer, test, EvalConfig(metrics=("ndcg@10",), bootstrap=0)).summary)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["git_commit"] = git_commit()
    return {**spec, **out}


def _user_categories(targets, item_categories):
    """Users x categories: the categories of each user's held-out targets (their interests)."""
    import scipy.sparse as sp

    users = sp.csr_matrix(
        (np.ones(len(targets)), (targets.user_idx, targets.item_idx)), shape=(targets.n_users, targets.n_items)
    )
    return ((users @ item_categories) > 0).astype(np.float32)


def key(row: dict[str, Any]) -> tuple:
    return row["dataset"], row["part"], row["model"], row["seed"]


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One results row per (dataset, part, model): means over seeds, paired tests for loo."""
    from scipy.stats import ttest_rel

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["part"], run["model"]), []).append(run)
    rows = []
    skip = {"seed", "threads", "epochs_cap"}
    for (dataset, part, model), group in sorted(groups.items()):
        metrics: dict[str, Any] = {}
        for name in group[0]:
            if name in skip or not isinstance(group[0][name], int | float):
                continue
            values = [g[name] for g in group if isinstance(g.get(name), int | float)]
            metrics[name] = float(np.mean(values))
            if len(values) > 1 and name in ("ndcg@10", "recall@50", "cold_recall@10"):
                metrics[f"{name}_sd"] = float(np.std(values, ddof=1))
        metrics["seeds"] = len(group)
        commits = sorted({g.get("git_commit", "before-git-commits-were-recorded") for g in group})
        if part == "loo" and model.startswith("facet"):
            # Paired over users, per seed, against the best baseline on that seed.
            ratios, pvalues = [], []
            for run in group:
                base = [
                    r
                    for r in runs
                    if key(r)[:2] == (dataset, part) and r["model"] in BASELINES and r["seed"] == run["seed"]
                ]
                if not base:
                    continue
                best = max(base, key=lambda r: r["ndcg@10"])
                ratios.append(run["ndcg@10"] / best["ndcg@10"])
                pvalues.append(float(ttest_rel(run["per_user_ndcg@10"], best["per_user_ndcg@10"]).pvalue))
            if ratios:
                metrics["ndcg@10_ratio_to_best_baseline"] = float(np.mean(ratios))
                metrics["paired_p_max"] = float(np.max(pvalues))
                metrics["paired_p_pooled"] = _pooled_pvalue(group, runs, dataset, BASELINES)
            if model in SAME_OBJECTIVE:
                twin = SAME_OBJECTIVE[model]
                metrics[f"paired_p_pooled_vs_{twin}"] = _pooled_pvalue(group, runs, dataset, (twin,))
        rows.append({"dataset": dataset, "part": part, "model": model, "metrics": metrics, "git_commits": commits})
    return rows


def _pooled_pvalue(
    group: list[dict[str, Any]], runs: list[dict[str, Any]], dataset: str, rivals: tuple[str, ...]
) -> float:
    """Paired t-test over users of each user's NDCG@10 averaged over the seeds both sides ran,
    against the one of ``rivals`` with the best mean: more power than any one seed (the users and their
    targets are the same under every seed of a leave-one-out split)."""
    from scipy.stats import ttest_rel

    seeds = {r["seed"] for r in group}
    per_model: dict[str, list[list[float]]] = {}
    for r in runs:
        if key(r)[:2] == (dataset, "loo") and r["model"] in rivals and r["seed"] in seeds:
            per_model.setdefault(r["model"], []).append(r["per_user_ndcg@10"])
    complete = {m: np.mean(v, 0) for m, v in per_model.items() if len(v) == len(seeds)}
    if not complete:
        return float("nan")
    best = max(complete.values(), key=np.mean)
    ours = np.mean([r["per_user_ndcg@10"] for r in group], 0)
    return float(ttest_rel(ours, best).pvalue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-100k")
    parser.add_argument("--parts", default="loo")
    parser.add_argument("--models", default="sasrec,sasrec-text,facet,facet-k1")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=0, help="cap training epochs (0: the model's default)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--force", action="store_true", help="redo runs already in the cache")
    args = parser.parse_args()
    console = Console()
    done = RunCache(RUNS, key)
    specs = [
        {"dataset": d, "part": p, "model": m, "seed": int(s), "epochs_cap": args.epochs, "threads": args.threads}
        for d in args.datasets.split(",")
        for p in args.parts.split(",")
        for m in args.models.split(",")
        for s in args.seeds.split(",")
    ]
    for spec in specs:
        if spec["model"] not in VARIANTS:
            sys.exit(f"unknown model {spec['model']!r}; choose from {', '.join(VARIANTS)}")
        if spec["dataset"] != "synthetic" and not (data_root() / DATASETS[spec["dataset"]][1]).is_dir():
            sys.exit(f"{spec['dataset']} not found in {data_root()}; set FACETREC_DATA_DIR")
        if spec["part"] == "recovery" and (spec["dataset"] != "synthetic" or VARIANTS[spec["model"]][0] == "sasrec"):
            sys.exit("the recovery part needs --datasets synthetic and a model with user states (not sasrec)")
    for spec in specs:
        if spec in done and not args.force:
            continue
        console.print(f"running {spec}")
        row = done.run(run_one, spec)
        console.print({k: v for k, v in row.items() if k != "per_user_ndcg@10"})
    rows = summarise(list(done.values()))
    table = Table(title="facet vs single-interest baselines (means over seeds)")
    for column in ("dataset", "part", "model", "metrics"):
        table.add_column(column)
    for row in rows:
        shown = {k: round(v, 4) for k, v in row["metrics"].items() if not k.endswith("_s") or k == "fit_s"}
        table.add_row(row["dataset"], row["part"], row["model"], json.dumps(shown))
    console.print(table)
    write_results("facet", rows)


if __name__ == "__main__":
    main()
