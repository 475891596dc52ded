"""The pure parts of benchmarks/multimodal.py: hiding test items for the cold part, and the summary."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from facetrec.data.split import Split
from facetrec.evaluation.evalset import EvalSet
from facetrec.ids import Vocabulary
from facetrec.types import Interactions

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "multimodal.py"
sys.path.insert(0, str(_PATH.parent))
_spec = importlib.util.spec_from_file_location("multimodal_benchmark", _PATH)
multimodal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(multimodal)


def events(pairs: list[tuple[int, int]], users: Vocabulary, items: Vocabulary) -> Interactions:
    u, i = (np.array(x, np.int64) for x in zip(*pairs, strict=True))
    return Interactions(user_idx=u, item_idx=i, timestamp=np.arange(len(u)), users=users, items=items)


def test_hiding_test_items_removes_every_training_and_validation_event_of_them():
    users, items = Vocabulary([str(u) for u in range(10)], "user"), Vocabulary([str(i) for i in range(20)], "item")
    train = events([(u, 10 + (u + j) % 10) for u in range(10) for j in range(1, 6)] + [(u, u) for u in range(10)],
                   users, items)  # fmt: skip
    test = events([(u, 10 + u) for u in range(10)], users, items)  # ten test items, all with training events
    valid = events([(u, 10 + (u + 7) % 10) for u in range(10)], users, items)
    split = Split("given", train, EvalSet(train, valid), EvalSet(train, test))
    cold = multimodal.hide_items(split, 0.2, seed=3)
    removed = set(train.item_idx.tolist()) - set(cold.train.item_idx.tolist())
    assert len(removed) == 2 and removed <= set(range(10, 20))  # 20 % of the ten test items, nothing else
    assert len(cold.train) == len(train) - int(np.isin(train.item_idx, list(removed)).sum())
    assert not np.isin(cold.valid.targets.item_idx, list(removed)).any()
    assert len(cold.test.targets) == 10 and cold.test.history is cold.train  # the hidden targets are now cold
    assert np.array_equal(multimodal.hide_items(split, 0.2, seed=3).train.item_idx, cold.train.item_idx)  # seeded


def test_summary_puts_the_cold_part_beside_the_standard_one():
    base = {"dataset": "tiktok", "model": "facet-image", "seed": 0, "modalities": "image", "fusion": "none"}
    runs = [
        {**base, "part": "standard", "recall@20": 0.05, "ndcg@20": 0.02, "fit_s": 30.0, "device": "cpu"},
        {**base, "part": "cold", "cold_recall@20": 0.03, "warm_recall@20": 0.05, "fit_s": 25.0, "device": "cpu"},
        {**base, "model": "ease", "modalities": "id", "part": "standard", "recall@20": 0.09, "ndcg@20": 0.04}
        | {"fit_s": 9.0, "device": "cpu"},
    ]
    rows = multimodal.summarise(runs)
    assert [r["model"] for r in rows] == ["ease", "facet-image"]
    assert rows[1]["metrics"] == {"recall@20": 0.05, "ndcg@20": 0.02, "fit_s": 30.0, "cold_recall@20": 0.03,
                                  "warm_recall@20": 0.05}  # fmt: skip
    assert "cold_recall@20" not in rows[0]["metrics"]


def test_seeds_are_averaged_with_their_spread_over_the_metrics_every_seed_has():
    base = {"dataset": "tiktok", "model": "facet-attention", "modalities": "id+image+audio", "fusion": "attention"}
    runs = [
        {**base, "seed": 0, "part": "standard", "recall@20": 0.06, "ndcg@20": 0.03, "fit_s": 10.0, "device": "cpu"},
        {**base, "seed": 0, "part": "cold", "cold_recall@20": 0.0, "warm_recall@20": 0.07, "fit_s": 9.0}
        | {"device": "cpu"},
        {**base, "seed": 1, "part": "standard", "recall@20": 0.08, "ndcg@20": 0.05, "fit_s": 20.0, "device": "cpu"},
    ]
    rows = multimodal.summarise(runs)
    mean = next(r for r in rows if r["seed"] == "mean")["metrics"]
    shared = {"recall@20", "ndcg@20", "fit_s"}  # the cold metrics: seed 0 only
    assert mean["seeds"] == 2 and set(mean) == {"seeds", *shared, *(f"{k}_sd" for k in shared)}
    assert mean["recall@20"] == pytest.approx(0.07)
    assert mean["recall@20_sd"] == pytest.approx(np.std([0.06, 0.08], ddof=1))
