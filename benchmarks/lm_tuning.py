"""Tuning the language model: the facet model with its text encoder frozen, or with a peft adapter
(LoRA, AdaLoRA, IA3) trained inside it, and a language-model re-ranker on top of the frozen model.

One split per dataset serves both questions: leave-one-out (each user's last event is the test
target, the one before it the validation target), in which a seeded ``--cold-share`` of the
items with test targets lose every event before the test (training, validation and histories),
so they are new when tested. NDCG@10 counts every test target; cold Recall@10 only those on the
hidden items, which a model can reach through their text alone. Lists come from
``Recommender.recommend_batch`` (the served path), history excluded.

Each (dataset, tuning) runs in a fresh process (its own peak memory), cached in
results/lm_tuning_runs.jsonl (``--force`` redoes them); results/lm_tuning.json gets every row:

    python benchmarks/lm_tuning.py --datasets magazines --tunings frozen,lora,adalora,ia3,reranker --minutes 20

The re-ranker row trains the re-ranker on the frozen model's training pairs with its hard
negatives and re-ranks the frozen model's lists (``base_ndcg@10``, both on the same seeded
``--rerank-users`` test users where there are more); its ``p50_ms`` is the median
time of one ``Recommender.recommend`` call with it, ``base_p50_ms`` without. ``load_average``
records how busy the machine was (the 1-minute load when the run ended): times are wall clock.
"""

from __future__ import annotations

import argparse
import os
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

RUNS = RESULTS / "lm_tuning_runs.jsonl"
CACHE = Path.home() / ".cache" / "facetrec" / "lm_tuning"
"""Embedding store (review and frozen text vectors) and the frozen models the re-ranker reuses."""
TUNINGS = ("frozen", "lora", "adalora", "ia3", "reranker")
DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "magazines": ("amazon-2018", "amazon-reviews-2018-small", {"category": "Magazine_Subscriptions"}),
    "beauty": ("s3rec", "amazon-2014-s3rec", {"name": "Beauty"}),
}
"""Benchmark name -> (facetrec data source, folder under FACETREC_DATA_DIR, source options)."""
RECIPES: dict[str, dict[str, Any]] = {
    # benchmarks/facet.py's settings: the model's defaults, 40 epochs at most; long descriptions.
    "magazines": {"max_tokens": 64, "epochs": 40, "patience": 10},
    # benchmarks/public.py's recipe for Beauty (sampled softmax above 5,000 items); short texts, and a
    # step encodes 128 items with gradients (of about 1,000 it reads) so that epochs fit the budget.
    "beauty": {
        "text_items": 128,
        "max_tokens": 32,
        "max_len": 50,
        "hidden": 64,
        "dropout": 0.5,
        "lr": 1e-3,
        "batch_size": 128,
        "full_softmax_max_items": 5_000,
        "epochs": 200,
        "patience": 10,
    },
}
RERANKER: dict[str, Any] = {"top": 20, "history_items": 3, "item_tokens": 24, "negatives": 4, "examples": 800,
                            "valid_users": 200, "epochs": 2, "patience": None, "lr": 1e-3, "batch_size": 8}  # fmt: skip
"""The re-ranker's settings on both datasets (MiniLM cross-encoder, LoRA rank 8)."""


def load(name: str):
    from facetrec.data.sources import load_source

    source, folder, options = DATASETS[name]
    return load_source(source, data_root() / folder, **options)


def cold_loo_split(data, share: float, seed: int):
    """(train, valid, test, hidden items): leave-one-out with a seeded ``share`` of the test items
    removed from everything before the test; test targets of users left without history are
    dropped (every personalised model scores all items alike for them)."""
    from facetrec.data.split import make_split
    from facetrec.evaluation.evalset import EvalSet

    split = make_split(data, "loo", seed)
    items = np.unique(split.test.targets.item_idx)
    hidden = np.random.default_rng(seed).choice(items, size=round(share * len(items)), replace=False)

    def drop(events):
        return events.take(~np.isin(events.item_idx, hidden))

    train = drop(split.train)
    valid = EvalSet(drop(split.valid.history), drop(split.valid.targets))
    history = drop(split.test.history)
    known = np.bincount(history.user_idx, minlength=history.n_users) > 0
    test = EvalSet(history, split.test.targets.take(known[split.test.targets.user_idx]))
    return train, valid, test, hidden


def facet_params(spec: dict[str, Any]) -> dict[str, Any]:
    params = {**RECIPES[spec["dataset"]], "encoder": "minilm", "store_dir": str(CACHE / "store"), "seed": spec["seed"],
              "max_minutes": spec["minutes"], "progress": True}  # fmt: skip
    if spec.get("epochs"):
        params["epochs"] = spec["epochs"]
    if spec["tuning"] not in ("frozen", "reranker"):
        params["text_tuning"] = spec["tuning"]
    return params


def encoder_params() -> int:
    """Parameters of the text encoder (all-MiniLM-L6-v2), which the adapter's size is measured against."""
    from transformers import AutoModel

    from facetrec.content.models import bundled_minilm

    return sum(p.numel() for p in AutoModel.from_pretrained(str(bundled_minilm())).parameters())


def evaluate_lists(model, test, train) -> dict[str, float]:
    """NDCG@10 and Recall@10 on every test target, Recall@10 on the cold ones (the served path)."""
    from facetrec.evaluation.protocol import EvalConfig, cold_targets, evaluate

    config = EvalConfig(metrics=("ndcg@10", "recall@10"), bootstrap=0)
    out = dict(evaluate(model, test, config).summary)
    counts = np.bincount(train.item_idx, minlength=train.n_items)
    cold = cold_targets(test, counts, cold=True)
    out["cold_recall@10"] = float(evaluate(model, cold, config).summary["recall@10"])
    out["cold_targets"], out["targets"] = len(cold.targets), len(test.targets)
    return out


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one model (or the re-ranker over the frozen model) and evaluate it; a fresh process."""
    import torch

    from facetrec.data.filters import first_occurrences
    from facetrec.scoring.registry import make_scorer

    torch.set_num_threads(spec["threads"])
    dataset = load(spec["dataset"])
    data = first_occurrences(dataset.interactions)
    train, valid, test, hidden = cold_loo_split(data, spec["cold_share"], spec["seed"])
    base = {"dataset": spec["dataset"], "model": "facet", "tuning": spec["tuning"], "seed": spec["seed"],
            "minutes": spec["minutes"], "cold_share": spec["cold_share"]}  # fmt: skip
    if spec["tuning"] == "reranker":
        return {**base, **rerank_one(spec, dataset, train, valid, test), "load_average": os.getloadavg()[0]}
    start = time.perf_counter()
    scorer = make_scorer("facet", facet_params(spec), spec["seed"]).fit(train, dataset.catalog, valid)
    fit_s = time.perf_counter() - start
    if spec["tuning"] == "frozen":
        scorer.save(CACHE / f"{spec['dataset']}-seed{spec['seed']}-frozen")
    metrics = evaluate_lists(scorer, test, train)
    adapter = getattr(scorer, "text_adapter_", np.zeros(0))
    metrics.update(
        trainable_params=int(adapter.size),
        encoder_params=encoder_params(),
        model_params=int(scorer.weights_.size),
        fit_s=fit_s,
        peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    )
    return {
        **base,
        "metrics": metrics,
        "epochs_run": len(scorer.losses_),
        "best_epoch": scorer.best_epoch_,
        "valid_curve": [round(float(v), 5) for v in scorer.valid_scores_],
        "hidden_items": len(hidden),
        "params": {k: v for k, v in facet_params(spec).items() if k not in ("progress", "store_dir")},
        "device": device(),
        "load_average": os.getloadavg()[0],
        "git_commit": git_commit(),
    }


def rerank_one(spec: dict[str, Any], dataset, train, valid, test) -> dict[str, Any]:
    """Train the re-ranker over the frozen facet model (refitted when its saved copy is missing)
    and compare the served lists with and without it."""
    from facetrec.evaluation.evalset import EvalSet
    from facetrec.ranking import RankConfig
    from facetrec.ranking.lm_rerank import LMReranker
    from facetrec.recommender import Recommender
    from facetrec.scoring.facet import FacetScorer
    from facetrec.scoring.registry import make_scorer
    from facetrec.types import Query

    saved = CACHE / f"{spec['dataset']}-seed{spec['seed']}-frozen"
    if (saved / "manifest.json").is_file():
        scorer = FacetScorer.load(saved)
    else:
        scorer = make_scorer("facet", facet_params({**spec, "tuning": "frozen"}), spec["seed"])
        scorer.fit(train, dataset.catalog, valid)
    settings = {**RERANKER, "seed": spec["seed"], "max_minutes": spec["minutes"]}
    reranker = LMReranker(**settings).fit(train, dataset.catalog, scorer, valid)
    path = CACHE / f"{spec['dataset']}-seed{spec['seed']}-reranker"
    reranker.save(path)
    users = np.unique(test.targets.user_idx)
    if len(users) > spec["rerank_users"]:  # every re-ranked list costs `top` passes of the model
        sample = np.random.default_rng(spec["seed"]).choice(users, spec["rerank_users"], replace=False)
        test = EvalSet(test.history, test.targets.take(np.isin(test.targets.user_idx, sample)))
    plain = Recommender(scorer, dataset.catalog, test.history)
    reranked = Recommender(scorer, dataset.catalog, test.history, RankConfig(rerank_model=str(path)))
    before, after = evaluate_lists(plain, test, train), evaluate_lists(reranked, test, train)
    users = np.unique(test.targets.user_idx)
    users = np.random.default_rng(spec["seed"]).permutation(users)[: spec["latency_users"]]
    timings = {}
    for label, recommender in (("base", plain), ("reranked", reranked)):
        seconds = []
        for u in users:
            query = Query(user_id=str(test.history.users.id_of(int(u))), n=10)
            begun = time.perf_counter()
            recommender.recommend(query)
            seconds.append(time.perf_counter() - begun)
        timings[label] = 1000 * float(np.median(seconds))
    metrics = {
        **after,
        "base_ndcg@10": before["ndcg@10"],
        "base_cold_recall@10": before["cold_recall@10"],
        "trainable_params": reranker.trainable_params_,
        "encoder_params": reranker.base_params_,
        "fit_s": reranker.fit_seconds_,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "p50_ms": timings["reranked"],
        "base_p50_ms": timings["base"],
    }
    return {
        "metrics": metrics,
        "epochs_run": reranker.epochs_,
        "blend": reranker.blend_,
        "valid_ndcg@10": reranker.valid_ndcg_,
        "latency_users": len(users),
        "rerank_users": len(np.unique(test.targets.user_idx)),
        "latency_threads": 1,
        "params": settings,
        "device": device(),
        "git_commit": git_commit(),
    }


def key(row: dict[str, Any]) -> tuple:
    return row["dataset"], row["tuning"], row["seed"]


def report(rows: list[dict[str, Any]]) -> None:
    table = Table(title="language-model tuning (leave-one-out with cold items; served lists)")
    for column in ("dataset", "tuning", "NDCG@10", "x frozen", "cold R@10", "x frozen", "trainable / encoder",
                   "fit s", "epochs", "peak RSS GB", "p50 ms"):  # fmt: skip
        table.add_column(column)
    frozen = {(r["dataset"], r["seed"]): r["metrics"] for r in rows if r["tuning"] == "frozen"}
    for r in rows:
        m, f = r["metrics"], frozen.get((r["dataset"], r["seed"]))
        base_ndcg = m.get("base_ndcg@10", f["ndcg@10"] if f else None)
        base_cold = m.get("base_cold_recall@10", f["cold_recall@10"] if f else None)
        ratio = f"{m['ndcg@10'] / base_ndcg:.3f}" if base_ndcg else "-"
        cold = f"{m['cold_recall@10'] / base_cold:.3f}" if base_cold else "-"
        share = f"{m['trainable_params'] / m['encoder_params']:.2%}" if m["encoder_params"] else "-"
        latency = f"{m['p50_ms']:.0f} (base {m['base_p50_ms']:.0f})" if "p50_ms" in m else "-"
        table.add_row(r["dataset"], r["tuning"], f"{m['ndcg@10']:.4f}", ratio, f"{m['cold_recall@10']:.4f}", cold,
                      share, f"{m['fit_s']:.0f}", str(r["epochs_run"]), f"{m['peak_rss_gb']:.2f}", latency)  # fmt: skip
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="magazines,beauty")
    parser.add_argument("--tunings", default=",".join(TUNINGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=None, help="training budget per model (wall clock)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epoch cap")
    parser.add_argument("--cold-share", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-users", type=int, default=200)
    parser.add_argument("--rerank-users", type=int, default=2000, help="test users the re-ranker row is measured on")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    cache = RunCache(RUNS, key)
    for dataset in args.datasets.split(","):
        if not (data_root() / DATASETS[dataset][1]).is_dir():
            raise SystemExit(f"{dataset}: {data_root() / DATASETS[dataset][1]} not found; set FACETREC_DATA_DIR")
        for tuning in args.tunings.split(","):
            if tuning not in TUNINGS:
                raise SystemExit(f"unknown tuning {tuning!r}; choose from {', '.join(TUNINGS)}")
            spec = {"dataset": dataset, "tuning": tuning, "seed": args.seed, "minutes": args.minutes,
                    "epochs": args.epochs, "cold_share": args.cold_share, "threads": args.threads,
                    "latency_users": args.latency_users, "rerank_users": args.rerank_users}  # fmt: skip
            if spec in cache and not args.force:
                continue
            print(f"running {dataset} / {tuning}", file=sys.stderr, flush=True)
            cache.run(run_one, spec)
    rows = sorted(cache.values(), key=lambda r: (r["dataset"], TUNINGS.index(r["tuning"])))
    report(rows)
    write_results("lm_tuning", rows)


if __name__ == "__main__":
    main()
