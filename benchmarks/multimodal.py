"""Images and audio beside IDs and text: each modality alone, each fusion rule, and cold items.

Two datasets:

- ``tiktok``: TikTok micro-videos with 128-d image and audio vectors and the published
  train/valid/test split of the multimodal papers (MMSSL, DiffMM), Recall@20 and NDCG@20 over
  all items with training items excluded, as they report them;
- ``amazon-magazines``: Amazon Magazine_Subscriptions (2018) with item text and review text,
  leave-one-out as in benchmarks/facet.py.

Each model runs twice, in a fresh process each time and cached in
results/multimodal_runs.jsonl (``--force`` redoes one): on the split as given ("standard"),
and with a seeded 20 % of the test items hidden from training ("cold"), whose test targets
then measure how well an item with no training event is reached through its content
(cold_recall@20) next to the others (warm_recall@20). ID-only baselines (EASE, ALS) pick their
setting on the validation targets; sequence models train with early stopping on validation and a
budget of minutes:

    python benchmarks/multimodal.py --datasets tiktok --minutes 3
"""

from __future__ import annotations

import argparse
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
from common import RESULTS, RunCache, data_root, device, git_commit, write_results

RUNS = RESULTS / "multimodal_runs.jsonl"
K = 20
COLD_SHARE = 0.2
"""Share of the test items hidden from training in the "cold" part."""

DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "tiktok": ("tiktok-mm", "tiktok-mm", {}),
    "amazon-magazines": ("amazon-2018", "amazon-reviews-2018-small", {"category": "Magazine_Subscriptions"}),
}
ANCHORS = {
    "tiktok": {"diffmm": 0.1129, "bm3": 0.0957, "lattice": 0.0843, "lightgcn": 0.0653, "mf-bpr": 0.0346},
}
"""Published Recall@20 on the same split (the DiffMM paper's table; they also read 768-d text vectors)."""

ID_ONLY = {"encoder": "none", "item_vectors": "none"}
CONTENT_ONLY = {"encoder": "none", "use_id": False}
VARIANTS: dict[str, dict[str, tuple[str, dict[str, Any], str, str]]] = {
    "tiktok": {
        "ease": ("ease", {}, "id", "none"),
        "als": ("als", {}, "id", "none"),
        "facet-id": ("facet", ID_ONLY, "id", "none"),
        "facet-image": ("facet", {**CONTENT_ONLY, "item_vectors": "image"}, "image", "none"),
        "facet-audio": ("facet", {**CONTENT_ONLY, "item_vectors": "audio"}, "audio", "none"),
        "facet-image+audio": ("facet", {**CONTENT_ONLY, "fusion": "attention"}, "image+audio", "attention"),
        **{
            f"facet-{rule}": ("facet", {"encoder": "none", "fusion": rule}, "id+image+audio", rule)
            for rule in ("gated", "weighted", "gate", "attention", "concat")
        },
        "facet-attention-interests": (
            "facet",
            {"encoder": "none", "fusion": "attention", "interest_fusion": True},
            "id+image+audio",
            "attention",
        ),
        "facet-attention-shuffled": (
            "facet",
            {"encoder": "none", "fusion": "attention", "shuffle_order": True, "id_dropout": 0.5},
            "id+image+audio",
            "attention",
        ),
        "sasrec-text-attention": (
            "sasrec-text",
            {"encoder": "none", "fusion": "attention"},
            "id+image+audio",
            "attention",
        ),
    },
    "amazon-magazines": {
        "ease": ("ease", {}, "id", "none"),
        "als": ("als", {}, "id", "none"),
        "facet-id": ("facet", ID_ONLY, "id", "none"),
        "facet-text": ("facet", {"use_id": False, "reviews": False}, "text", "none"),
        "facet-text+reviews": ("facet", {"use_id": False, "fusion": "attention"}, "text+reviews", "attention"),
        **{
            f"facet-{rule}": ("facet", {"fusion": rule}, "id+text+reviews", rule)
            for rule in ("gated", "weighted", "gate", "attention", "concat")
        },
    },
}
"""Per dataset: benchmark model name -> (registry kind, overrides, modalities, fusion)."""

RECIPES: dict[str, dict[str, Any]] = {
    # Six clicks per user, in no real order: short windows, strong dropout, no time inputs.
    "tiktok": {"max_len": 20, "hidden": 64, "dropout": 0.5, "time_features": False, "event_features": False},
    "amazon-magazines": {},
}
GRIDS = {
    "ease": [{"l2": v} for v in (10.0, 30.0, 100.0, 300.0, 1000.0)],
    "als": [{"factors": f, "regularization": r} for f in (64, 256) for r in (1.0, 10.0)],
}
"""Validation grids of the ID-only baselines: EASE's reaches below the registry's (TikTok is sparse)."""


def load_split(name: str, seed: int):
    """(dataset, split): TikTok's published parts, or leave-one-out on first occurrences."""
    from facetrec.data.sources import load_source
    from facetrec.data.split import Split, make_split
    from facetrec.evaluation.evalset import EvalSet

    source, folder, options = DATASETS[name]
    root = data_root() / folder
    if name == "tiktok":
        parts = {s: load_source(source, root, split=s, **options) for s in ("train", "valid", "test")}
        train = parts["train"].interactions
        split = Split(
            "given", train, EvalSet(train, parts["valid"].interactions), EvalSet(train, parts["test"].interactions)
        )
        return parts["train"], split
    from facetrec.data.filters import first_occurrences

    dataset = load_source(source, root, **options)
    data = first_occurrences(dataset.interactions)
    return replace(dataset, interactions=data), make_split(data, "loo", seed)


def hide_items(split, share: float, seed: int):
    """``split`` without the training (and validation) events of a seeded ``share`` of its test items."""
    from facetrec.evaluation.evalset import EvalSet

    items = np.unique(split.test.targets.item_idx)
    hidden = np.random.default_rng(seed).choice(items, round(share * len(items)), replace=False)
    keep = ~np.isin(split.train.item_idx, hidden)
    train = split.train.take(np.flatnonzero(keep))
    valid = split.valid.targets.take(np.flatnonzero(~np.isin(split.valid.targets.item_idx, hidden)))
    return replace(split, train=train, valid=EvalSet(train, valid), test=EvalSet(train, split.test.targets))


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one model on one part and evaluate it on the test targets; runs in a fresh process."""
    import torch

    from facetrec.evaluation.experiment import fit_best
    from facetrec.evaluation.protocol import EvalConfig, cold_targets, evaluate
    from facetrec.scoring.registry import make_scorer

    torch.set_num_threads(spec["threads"])
    dataset, split = load_split(spec["dataset"], spec["seed"])
    if spec["part"] == "cold":
        split = hide_items(split, COLD_SHARE, spec["seed"])
    kind, overrides, modalities, fusion = VARIANTS[spec["dataset"]][spec["model"]]
    start = time.perf_counter()
    metric = f"recall@{K}"
    if kind in GRIDS:
        fitted = fit_best(kind, GRIDS[kind], dataset, split, metric=metric, seed=spec["seed"])
        scorer, params = fitted.scorer, fitted.params
    else:
        params = {
            **RECIPES[spec["dataset"]],
            **overrides,
            "epochs": spec["epochs"],
            "patience": spec["patience"],
            "max_minutes": spec["minutes"],
            "progress": False,
        }
        scorer = make_scorer(kind, params, spec["seed"]).fit(split.train, dataset.catalog, split.valid)
    fit_s = time.perf_counter() - start
    config = EvalConfig(metrics=(f"recall@{K}", f"ndcg@{K}"), bootstrap=0)
    out: dict[str, Any] = {**spec, "kind": kind, "modalities": modalities, "fusion": fusion, "params": params}
    if spec["part"] == "standard":
        out.update(evaluate(scorer, split.test, config).summary)
    else:
        counts = np.bincount(split.train.item_idx, minlength=split.train.n_items)
        for label, cold in (("cold", True), ("warm", False)):
            subset = cold_targets(split.test, counts, cold=cold)
            out[f"{label}_recall@{K}"] = evaluate(scorer, subset, config).summary[f"recall@{K}"]
            out[f"{label}_targets"] = len(subset.targets)
    weights = getattr(scorer, "modalities", [])
    return {
        **out,
        "fit_s": fit_s,
        "epochs_run": len(getattr(scorer, "losses_", [])),
        "best_epoch": getattr(scorer, "best_epoch_", None),
        "tower": weights,
        "device": device(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "git_commit": git_commit(),
    }


def key(run: dict[str, Any]) -> tuple:
    return run["dataset"], run["model"], run["part"], run["seed"]


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, model): the standard part's accuracy beside the cold part's."""
    rows = []
    for dataset, model, seed in sorted({(r["dataset"], r["model"], r["seed"]) for r in runs}):
        parts = {r["part"]: r for r in runs if (r["dataset"], r["model"], r["seed"]) == (dataset, model, seed)}
        first = parts.get("standard") or parts["cold"]
        metrics: dict[str, float] = {}
        if "standard" in parts:
            metrics |= {m: parts["standard"][m] for m in (f"recall@{K}", f"ndcg@{K}")}
            metrics["fit_s"] = parts["standard"]["fit_s"]
        if "cold" in parts:
            metrics |= {m: parts["cold"][m] for m in (f"cold_recall@{K}", f"warm_recall@{K}")}
        row = {"dataset": dataset, "model": model, "seed": seed, "modalities": first["modalities"]}
        rows.append(row | {"fusion": first["fusion"], "device": first["device"], "metrics": metrics})
    return rows + seed_means(rows)


def seed_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row with seed "mean" (and each metric's standard deviation, ``_sd``) for every (dataset,
    model) run with more than one seed, over the metrics all its seeds have."""
    out = []
    for dataset, model in sorted({(r["dataset"], r["model"]) for r in rows}):
        runs = [r for r in rows if (r["dataset"], r["model"]) == (dataset, model)]
        if len(runs) < 2:
            continue
        shared = [k for k in runs[0]["metrics"] if all(k in r["metrics"] for r in runs)]
        metrics: dict[str, float] = {"seeds": len(runs)}
        for k in shared:
            values = np.array([r["metrics"][k] for r in runs])
            metrics |= {k: float(values.mean()), f"{k}_sd": float(values.std(ddof=1))}
        out.append({**runs[0], "seed": "mean", "metrics": metrics})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="tiktok,amazon-magazines")
    parser.add_argument("--models", default="all", help="benchmark model names joined by commas, or all")
    parser.add_argument("--parts", default="standard,cold")
    parser.add_argument("--seeds", default="0", help="seeds joined by commas (rows per seed, plus their mean)")
    parser.add_argument("--epochs", type=int, default=60, help="most epochs of a sequence model")
    parser.add_argument("--patience", type=int, default=4, help="epochs without a better validation score")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget of a sequence model, minutes")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument("--force", action="store_true", help="redo runs already in the cache")
    args = parser.parse_args()
    console = Console()
    done = RunCache(RUNS, key)
    for dataset in args.datasets.split(","):
        if dataset not in DATASETS:
            sys.exit(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
        if not (data_root() / DATASETS[dataset][1]).is_dir():
            sys.exit(f"{dataset} not found in {data_root()}; set FACETREC_DATA_DIR to the folder that holds it")
        models = list(VARIANTS[dataset]) if args.models == "all" else args.models.split(",")
        for model in models:
            if model not in VARIANTS[dataset]:
                sys.exit(f"unknown model {model!r} for {dataset}; choose from {', '.join(VARIANTS[dataset])}")
            for part, seed in ((p, int(s)) for s in args.seeds.split(",") for p in args.parts.split(",")):
                spec = {"dataset": dataset, "model": model, "part": part, "seed": seed}
                spec |= {"epochs": args.epochs, "patience": args.patience, "minutes": args.minutes}
                spec |= {"threads": args.threads}
                if spec in done and not args.force:
                    continue
                console.print(f"running {dataset} {model} ({part})")
                row = done.run(run_one, spec)
                shown = {k: round(v, 4) for k, v in row.items() if k.endswith(f"@{K}")}
                console.print(f"  {shown}  fit {row['fit_s']:.0f} s  epochs {row['epochs_run']}")
    rows = summarise(done.values())
    table = Table(title=f"Recall@{K} / NDCG@{K} over all items, training items excluded")
    for column in ("dataset", "model", "modalities", "fusion", f"recall@{K}", f"ndcg@{K}", "cold", "warm", "fit_s"):
        table.add_column(column)
    averaged = {(r["dataset"], r["model"]) for r in rows if r["seed"] == "mean"}
    for row in rows:
        if (row["dataset"], row["model"]) in averaged and row["seed"] != "mean":
            continue  # a model run with several seeds shows its mean
        m = row["metrics"]
        accuracy = (f"recall@{K}", f"ndcg@{K}", f"cold_recall@{K}", f"warm_recall@{K}")
        cells = [f"{m[k]:.4f}" if k in m else "-" for k in accuracy]
        cells += [f"{m['fit_s']:.0f}" if "fit_s" in m else "-"]
        table.add_row(row["dataset"], row["model"], row["modalities"], row["fusion"], *cells)
    console.print(table)
    for dataset, anchors in ANCHORS.items():
        console.print(f"published Recall@{K} on {dataset}: " + ", ".join(f"{k} {v}" for k, v in anchors.items()))
    write_results("multimodal", rows)


if __name__ == "__main__":
    main()
