"""Cold-start items: can a model recommend an item nobody has interacted with yet?

Temporal split (one global cut in time), full ranking, history excluded. Targets on items that
never occur in training are scored separately from the others. Only users with some history are
evaluated (see cold_start_split): this measures new items for known users. The small Amazon
5-core sets have almost no items first seen after the cut (12 and 3 targets), so there a seeded
30% of the items with test targets also lose all their training and history events.

ID-only baselines score cold items 0, so they reach them only through ties. Content models read
the item's text (MiniLM through ONNX int8, or TF-IDF + LSA); where reviews exist, the "+reviews"
models add the review similarity of items with training reviews (reviews_weight 0.5, fixed
beforehand, not tuned; see content_knn.py). Reviews come from the training split only, so no
test-period text is read; cold items have none, by definition.

Datasets are read from $FACETREC_DATA_DIR (default ../shared/datasets); a missing one is skipped.
Item texts use each family's template (ml: title, genres, tags; amazon: title, brand, categories,
features, description). Content models of one run share an embedding cache, so a "+reviews" model
re-encodes no item text (its fit time counts only the reviews).

    python benchmarks/cold_start.py [--datasets synthetic,ml-100k,...] [--models pop,ease,als,content,...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, write_results
from facetrec.content.text import TEMPLATES
from facetrec.data.dataset import Dataset
from facetrec.data.filters import first_occurrences
from facetrec.data.sources import load_source
from facetrec.data.split import make_split
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.evaluation.evalset import EvalSet
from facetrec.evaluation.protocol import EvalConfig, cold_targets, evaluate
from facetrec.scoring.registry import make_scorer
from facetrec.types import Interactions

METRICS = ("recall@10", "ndcg@10")
REVIEWS_WEIGHT = 0.5
HOLD_OUT = 0.3
# dataset -> (source, folder under the data directory, source options)
# dataset -> (source, folder under the data directory, source options, share of test items held out)
SOURCES: dict[str, tuple[str, str, dict[str, Any], float]] = {
    "ml-100k": ("ml-100k", "ml-100k", {}, 0.0),
    "ml-latest-small": ("ml-latest-small", "ml-latest-small", {}, 0.0),
    "amazon-2018-Gift_Cards": ("amazon-2018", "amazon-reviews-2018-small", {"category": "Gift_Cards"}, HOLD_OUT),
    "amazon-2018-Magazine_Subscriptions": (
        "amazon-2018",
        "amazon-reviews-2018-small",
        {"category": "Magazine_Subscriptions"},
        HOLD_OUT,
    ),
}
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "pop": ("pop", {}),
    "ease": ("ease", {}),
    "als": ("als", {}),
    "content": ("content", {"encoder": "minilm-onnx-int8"}),
    "content-lexical": ("content", {"encoder": "lexical"}),
    "content+reviews": ("content", {"encoder": "minilm-onnx-int8", "reviews_weight": REVIEWS_WEIGHT}),
    "content-lexical+reviews": ("content", {"encoder": "lexical", "reviews_weight": REVIEWS_WEIGHT}),
}
DEFAULT_DATASETS = ",".join(["synthetic", *SOURCES])


def datasets(names: list[str], seed: int, console: Console):
    """(name, dataset, share of test items held out) for each available dataset."""
    root = data_root()
    for name in names:
        if name == "synthetic":
            data = generate(SynthConfig(n_users=3000, n_items=1500, seed=seed)).dataset
            yield name, replace(data, interactions=first_occurrences(data.interactions)), 0.0
            continue
        if name not in SOURCES:
            raise SystemExit(f"unknown dataset {name!r}; choose from synthetic, {', '.join(SOURCES)}")
        source, folder, options, hold_out = SOURCES[name]
        if (root / folder).is_dir():
            yield name, load_source(source, root / folder, **options), hold_out
        else:
            console.print(f"skipping {name}: {root / folder} not found (set FACETREC_DATA_DIR to the datasets folder)")


def cold_start_split(dataset: Dataset, hold_out: float, seed: int) -> tuple[Interactions, EvalSet, int]:
    """(train, test, targets dropped): a temporal split, the test kept to users with some history.

    A seeded ``hold_out`` share of the items with test targets also loses all its training and
    history events, so that those items are new at test time (item cold start). Targets of users
    with no history are dropped: every personalised model scores all items alike for them (0),
    and the evaluation's tie order (lowest index first) would then decide the "hits".
    """
    split = make_split(dataset.interactions, "temporal", seed)
    train, history, targets = split.train, split.test.history, split.test.targets
    if hold_out:
        test_items = np.unique(targets.item_idx)
        hidden = np.random.default_rng(seed).choice(test_items, size=round(hold_out * len(test_items)), replace=False)
        train = train.take(~np.isin(train.item_idx, hidden))
        history = history.take(~np.isin(history.item_idx, hidden))
    known = np.bincount(history.user_idx, minlength=history.n_users) > 0
    kept = targets.take(known[targets.user_idx])
    return train, EvalSet(history, kept), len(targets) - len(kept)


def model_params(label: str, dataset: Dataset, store: Path) -> tuple[str, dict[str, Any]] | None:
    """(kind, params) for ``label`` on ``dataset``; None where it does not apply (reviews without reviews)."""
    if label not in MODELS:
        raise SystemExit(f"unknown model {label!r}; choose from {', '.join(MODELS)}")
    kind, params = MODELS[label]
    if kind != "content":
        return kind, params
    if params.get("reviews_weight") and dataset.interactions.review is None:
        return None
    family = dataset.name.split("-", 1)[0].lower()
    template = family if family in TEMPLATES else "default"
    return kind, {**params, "template": template, "store_dir": str(store)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    config = EvalConfig(metrics=METRICS, bootstrap=0)
    rows = []
    table = Table(title="cold-start vs warm items (temporal split, full ranking, history excluded)")
    columns = ("dataset", "model", "cold targets", *(f"cold {m}" for m in METRICS), *(f"warm {m}" for m in METRICS))
    for column in columns:
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="facetrec-cold-start-") as store:
        for name, dataset, hold_out in datasets(args.datasets.split(","), args.seed, console):
            train, test, dropped = cold_start_split(dataset, hold_out, args.seed)
            console.print(f"{name}: {dropped:,} test targets of users without history left out")
            counts = np.bincount(train.item_idx, minlength=train.n_items)
            cold_set, warm_set = cold_targets(test, counts), cold_targets(test, counts, cold=False)
            if not len(cold_set.targets):
                console.print(f"{name}: no cold-start targets in this split")
                continue
            for label in args.models.split(","):
                chosen = model_params(label, dataset, Path(store))
                if chosen is None:
                    console.print(f"{name}: {label} skipped (the dataset has no review text)")
                    continue
                start = time.perf_counter()
                scorer = make_scorer(*chosen, seed=args.seed).fit(train, dataset.catalog)
                fit_seconds = time.perf_counter() - start
                cold = evaluate(scorer, cold_set, config).summary
                warm = evaluate(scorer, warm_set, config).summary
                table.add_row(
                    name,
                    label,
                    f"{len(cold_set.targets):,}",
                    *(f"{cold[m]:.4f}" for m in METRICS),
                    *(f"{warm[m]:.4f}" for m in METRICS),
                )
                console.print(f"{name} {label}: cold {cold}, warm {warm}, fit {fit_seconds:.1f} s")
                metrics = {
                    "cold_targets": len(cold_set.targets),
                    "warm_targets": len(warm_set.targets),
                    "held_out_share": hold_out,
                    "new_user_targets_left_out": dropped,
                    **{f"cold_{m}": round(cold[m], 5) for m in METRICS},
                    **{f"warm_{m}": round(warm[m], 5) for m in METRICS},
                    "fit_s": round(fit_seconds, 2),
                }
                rows.append({"dataset": name, "model": label, "metrics": metrics})
    if not rows:
        console.print("no dataset was available: nothing written")
        return
    console.print(table)
    console.print(f"wrote {write_results('cold_start', rows)}")


if __name__ == "__main__":
    main()
