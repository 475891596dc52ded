"""How each cost grows with the catalogue and the event log: synthetic data from 10^4 items and
10^5 events to 10^6 items and 10^7 events, every stage on this machine.

Users have 100 events on average, and every point has at least 10k users. Each point runs in a
fresh process (so its peak RSS is its own) and measures:

- ``ingest_s``: `facetrec data import`'s reading of an events CSV and an items CSV
  (parse, validate, vocabularies, sort);
- ``epoch_s``: one training epoch of SASRec+ (max_len 50, 64-d, 2 blocks, batch 256, sampled
  softmax with log-Q correction over 1,024 shared negatives at every size);
- ``eval_s``: leave-one-out evaluation of 10k users with full ranking over every item, history
  excluded, through ``Recommender.recommend_batch`` (the served path);
- ``index_build_s``, ``ann_recall@100``, ``ann_p99_ms``: the faiss index ``RankConfig``'s
  "auto" picks for the catalogue (flat, then HNSW), built over the trained item vectors and
  searched with 1,000 users' states, recall against exact search; ``ann_item_recall@100`` the
  same for 1,000 similar-item lookups (an item's vector as the query); from 10^5 items IVF-PQ
  is measured beside it (``ivfpq_*``);
- ``recommend_p99_ms``: ``Recommender.recommend`` for one known user (SASRec+ scores every item),
  one thread, after the user's state is kept;
- ``peak_rss_gb``: the process's peak resident memory.

The summary fits each cost's growth exponent in events (least squares on log-log) and writes
results/scale.json.

    python benchmarks/scale.py [--points 10000:100000,100000:1000000,1000000:10000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device, write_results

EVENTS_PER_USER = 100
"""Mean events per user, except that every point has at least ``EVAL_USERS`` users."""
EVAL_USERS = 10_000
QUERIES = 1_000
SEARCH_SETTINGS: dict[str, list[dict[str, int]]] = {
    "flat": [{}],
    "hnsw": [{"ef_search": 128}, {"ef_search": 512}],
    "ivfpq": [{"nprobe": 16, "refine": 4}, {"nprobe": 64, "refine": 16}],
}
"""Search-time settings measured for each index; the first is RankConfig's default."""
COSTS = ("ingest_s", "epoch_s", "eval_s", "index_build_s", "recommend_p99_ms", "peak_rss_gb")
"""The costs whose growth exponent the summary fits."""


def synthesize(items: int, events: int, directory: Path, seed: int, min_users: int) -> dict[str, Any]:
    """Write events.csv and items.csv for a synthetic world of this size (facetrec's generator:
    topics, Zipf-popular items within each, drifting user interests)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from facetrec.data.synthetic import TOPICS, SynthConfig, generate

    users = max(min_users, events // EVENTS_PER_USER)  # every point can evaluate the same number of users
    config = SynthConfig(n_users=users, n_items=items, n_topics=len(TOPICS), mean_events_per_user=events / users,
                         review_share=0.0, seed=seed)  # fmt: skip
    world = generate(config).dataset
    data = world.interactions
    pacsv.write_csv(
        pa.table({
            "user_id": np.asarray(data.users.ids)[data.user_idx],
            "item_id": np.asarray(data.items.ids)[data.item_idx],
            "timestamp": data.timestamp,
        }),
        directory / "events.csv",
    )  # fmt: skip
    catalog = world.catalog
    pacsv.write_csv(
        pa.table({
            "item_id": np.asarray(catalog.items.ids),
            "title": catalog.text["title"],
            "category": ["|".join(c) for c in catalog.categories],
        }),
        directory / "items.csv",
    )  # fmt: skip
    return {"events": len(data), "users": data.n_users}


def measure(items: int, events: int, threads: int, seed: int, eval_users: int = EVAL_USERS) -> dict[str, Any]:
    """Every stage at one size, in this process, evaluating ``eval_users`` users."""
    import faiss
    import torch

    from facetrec.data.ingest import ItemColumns, load_files
    from facetrec.data.split import make_split
    from facetrec.evaluation.evalset import EvalSet
    from facetrec.evaluation.protocol import EvalConfig, evaluate
    from facetrec.ranking import RankConfig
    from facetrec.ranking.retrieval import PQ_MIN_ITEMS, VectorIndex, choose_index_kind
    from facetrec.recommender import Recommender
    from facetrec.scoring.registry import make_scorer
    from facetrec.scoring.sasrec import _last_windows
    from facetrec.types import Query

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        made = synthesize(items, events, Path(tmp), seed, eval_users)
        start = time.perf_counter()
        dataset = load_files(Path(tmp) / "events.csv", Path(tmp) / "items.csv",
                             item_columns=ItemColumns(title="title", categories="category"))  # fmt: skip
        out["ingest_s"] = time.perf_counter() - start
    data = dataset.interactions
    split = make_split(data, "loo", seed)
    params = {"max_len": 50, "hidden": 64, "layers": 2, "dropout": 0.2, "batch_size": 256, "epochs": 1,
              "patience": None, "full_softmax_max_items": 0, "progress": False, "seed": seed}  # fmt: skip
    start = time.perf_counter()
    scorer = make_scorer("sasrec", params, seed).fit(split.train, dataset.catalog)
    out["epoch_s"] = time.perf_counter() - start

    rng = np.random.default_rng(seed)
    targets = split.test.targets
    test_users = np.unique(targets.user_idx)
    chosen = np.sort(rng.choice(test_users, min(eval_users, len(test_users)), replace=False))
    keep = np.isin(targets.user_idx, chosen)
    evalset = EvalSet(history=split.test.history, targets=targets.take(np.flatnonzero(keep)))
    start = time.perf_counter()
    result = evaluate(scorer, evalset, EvalConfig(metrics=("ndcg@10",), bootstrap=0))
    out["eval_s"] = time.perf_counter() - start
    out["ndcg@10"] = result.summary["ndcg@10"]

    # The index over the trained item vectors, queried with users' last states.
    net = scorer._model()
    item_vectors = net.item.weight[1:].detach().numpy().astype(np.float32)
    queried = np.sort(rng.choice(test_users, min(QUERIES, len(test_users)), replace=False))
    with torch.no_grad():
        seq = torch.from_numpy(_last_windows(split.test.history.sorted(), queried, 50)).long()
        queries = net(seq)[:, -1].numpy().astype(np.float32)
    # Two workloads: users' states (dominated by popular items once trained) and similar-item
    # lookups from random items with events (each item's own neighbourhood: the harder case).
    seen_items = np.flatnonzero(np.bincount(split.train.item_idx, minlength=items) > 0)
    item_queries = item_vectors[np.sort(rng.choice(seen_items, min(QUERIES, len(seen_items)), replace=False))]
    exact_index = VectorIndex(item_vectors, "flat")
    _, exact = exact_index.search(queries, 100)
    _, exact_items = exact_index.search(item_queries, 100)
    del exact_index
    config = RankConfig()
    kind = choose_index_kind(config.retrieval, items, config.flat_max_items, config.hnsw_max_items)
    out["index"] = kind
    out["indexes"] = []
    for name in [kind] + (["ivfpq"] if items >= 10 * PQ_MIN_ITEMS and kind != "ivfpq" else []):
        begun = time.perf_counter()
        index = VectorIndex(item_vectors, name, nprobe=config.ivf_nprobe, m=config.hnsw_m,
                            ef_search=config.hnsw_ef_search, refine=config.ivfpq_refine, seed=seed)  # fmt: skip
        build = time.perf_counter() - begun
        for setting in SEARCH_SETTINGS[name]:
            for attribute, value in setting.items():
                setattr(index, attribute, value)
            faiss.omp_set_num_threads(1)  # one request, one thread
            measured = {
                "index_build_s": build,
                "ann_recall@100": recall(index.search(queries, 100)[1], exact),
                "ann_item_recall@100": recall(index.search(item_queries, 100)[1], exact_items),
                "ann_p99_ms": p99_ms(lambda q, index=index: index.search(q[None], 100), queries),
                "ann_item_p99_ms": p99_ms(lambda q, index=index: index.search(q[None], 100), item_queries),
            }
            faiss.omp_set_num_threads(threads)
            out["indexes"].append({"index": name, "setting": setting, "metrics": measured})
        del index
    out.update(out["indexes"][0]["metrics"])  # the defaults RankConfig serves with

    recommender = Recommender(scorer, dataset.catalog, split.test.history)
    ids = np.asarray(data.users.ids)[queried[:200]]
    torch.set_num_threads(1)
    for user in ids:  # keeps each user's state
        recommender.recommend(Query(user_id=str(user)))
    out["recommend_p99_ms"] = p99_ms(lambda user: recommender.recommend(Query(user_id=str(user))), ids)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out.update(made)
    return out


def p99_ms(call: Any, inputs: Any) -> float:
    """99th percentile of ``call(x)``'s wall time over ``inputs``, in milliseconds."""
    times = []
    for x in inputs:
        begun = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - begun)
    return 1000 * float(np.percentile(times, 99))


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k that the index found."""
    return float(np.mean([len(set(a) & set(e)) / exact.shape[1] for a, e in zip(found, exact, strict=True)]))


def growth(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each cost's exponent b in cost ~ events^b, by least squares on log-log over the points;
    the index build only over the points that built the largest point's kind of index (building
    a flat index is a copy, so a fit across kinds would measure the switch, not the growth)."""
    events = np.log([r["events"] for r in rows])
    fitted = {}
    for cost in COSTS:
        values = np.array([r["metrics"].get(cost, np.nan) for r in rows], float)
        ok = np.isfinite(values) & (values > 0)
        if cost == "index_build_s":
            ok &= np.array([r.get("index") == rows[-1].get("index") for r in rows])
        if ok.sum() >= 2:
            fitted[cost] = float(np.polyfit(events[ok], np.log(values[ok]), 1)[0])
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", default="10000:100000,100000:1000000,1000000:10000000",
                        help="ITEMS:EVENTS sizes, comma-separated")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-users", type=int, default=EVAL_USERS, help="users evaluated (and the fewest generated)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one point, print JSON
    args = parser.parse_args()
    if args.one:
        items, events = (int(float(v)) for v in args.one.split(":"))
        print(json.dumps(measure(items, events, args.threads, args.seed, args.eval_users)))
        return

    console = Console()
    rows: list[dict[str, Any]] = []
    indexes_rows: list[dict[str, Any]] = []
    for point in args.points.split(","):
        items, events = (int(float(v)) for v in point.split(":"))
        console.print(f"[bold]{items:,} items, {events:,} events[/bold] ...")
        begun = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--one", point, "--threads", str(args.threads), "--seed", str(args.seed),
             "--eval-users", str(args.eval_users)],
            capture_output=True, text=True, env={**os.environ, "FACETREC_TRACKING": "0"},
        )  # fmt: skip
        if done.returncode:
            console.print(done.stderr[-3000:])
            raise SystemExit(f"the point {point} failed")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        indexes = measured.pop("indexes")
        rows.append({
            "dataset": "synthetic", "model": "sasrec", "items": items, "events": measured.pop("events"),
            "users": measured.pop("users"), "index": measured.pop("index"), "device": device(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "metrics": {k: round(v, 4) for k, v in measured.items()},
        })  # fmt: skip
        console.print(f"  done in {time.perf_counter() - begun:.0f} s: {rows[-1]['metrics']}")
        for found in indexes if items >= 100_000 else []:
            setting = " ".join(f"{k}={v}" for k, v in found["setting"].items())
            indexes_rows.append({
                "dataset": "synthetic", "model": f"index: {found['index']} {setting}".strip(), "items": items,
                "events": rows[-1]["events"], "metrics": {k: round(v, 4) for k, v in found["metrics"].items()},
            })  # fmt: skip

    exponents = growth(rows)
    rows.append({"dataset": "synthetic", "model": "growth exponent in events", "items": None, "events": None,
                 "metrics": {f"{k}_exponent": round(v, 3) for k, v in exponents.items()}})  # fmt: skip
    table = Table(title="Scale: synthetic data, SASRec+, one machine")
    for column in ("items", "events", *COSTS[:-1], "ann_recall@100", "ann_p99_ms", "peak_rss_gb"):
        table.add_column(column, justify="right")
    for row in rows[:-1]:
        m = row["metrics"]
        table.add_row(f"{row['items']:,}", f"{row['events']:,}",
                      *(f"{m.get(c, float('nan')):.3g}" for c in (*COSTS[:-1], "ann_recall@100", "ann_p99_ms",
                                                                  "peak_rss_gb")))  # fmt: skip
    table.add_row("exponent", "", *(f"{exponents.get(c, float('nan')):.2f}" for c in COSTS[:-1]), "", "",
                  f"{exponents.get('peak_rss_gb', float('nan')):.2f}")  # fmt: skip
    console.print(table)
    found = Table(title="Approximate search: recall of the exact top 100 and p99 of one query (1 thread)")
    for column in ("items", "index", "build s", "users' recall", "items' recall", "p99 ms", "items' p99 ms"):
        found.add_column(column, justify="right")
    for row in indexes_rows:
        m = row["metrics"]
        found.add_row(f"{row['items']:,}", row["model"].removeprefix("index: "), f"{m['index_build_s']:.1f}",
                      f"{m['ann_recall@100']:.3f}", f"{m['ann_item_recall@100']:.3f}", f"{m['ann_p99_ms']:.2f}",
                      f"{m['ann_item_p99_ms']:.2f}")  # fmt: skip
    console.print(found)
    console.print(f"results: {write_results('scale', rows + indexes_rows)}")


if __name__ == "__main__":
    main()
