"""The pure parts of benchmarks/public.py: recipes and the summary's ratio and paired test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "public.py"
sys.path.insert(0, str(_PATH.parent))
_spec = importlib.util.spec_from_file_location("public_benchmark", _PATH)
public = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(public)

SPEC = {"seed": 1, "epochs": 7, "patience": 3, "minutes": 2.5}


def run(model: str, seed: int, per_user: list[float]) -> dict:
    ndcg = float(np.mean(per_user))
    return {
        "dataset": "beauty",
        "model": model,
        "seed": seed,
        "ndcg@10": ndcg,
        "hr@10": 2 * ndcg,
        "ndcg@20": ndcg,
        "recall@20": 3 * ndcg,
        "fit_s": 10.0 * (seed + 1),
        "per_user_ndcg@10": per_user,
        "device": "cpu",
        "git_commit": "abc",
    }


def test_sequence_models_get_the_dataset_recipe_and_the_run_budget():
    kind, params = public.model_params("beauty", "facet-k1", SPEC)
    assert kind == "facet" and params["interests"] == 1
    assert params["max_len"] == 50 and params["dropout"] == 0.5  # the short-history recipe
    assert (params["epochs"], params["patience"], params["max_minutes"], params["seed"]) == (7, 3, 2.5, 1)
    assert params["full_softmax_max_items"] == public.SAMPLED_ABOVE
    assert public.model_params("ml-1m", "sasrec", SPEC)[1]["max_len"] == 200
    assert public.model_params("beauty", "ease", SPEC) == ("ease", {})  # baselines: registry grid only


def test_summary_means_ratio_and_pooled_paired_test():
    ease = [0.0, 1.0, 0.5, 0.0, 0.2]
    facet0, facet1 = [0.1, 1.0, 0.6, 0.3, 0.2], [0.3, 0.8, 0.6, 0.1, 0.4]
    runs = [
        run("ease", 0, ease),  # deterministic: one run stands for every seed
        run("sasrec", 0, [0.0, 0.5, 0.5, 0.0, 0.0]),
        run("facet", 0, facet0),
        run("facet", 1, facet1),
    ]
    rows = public.summarise(runs)
    assert len([r for r in rows if r["seed"] != "mean"]) == 4
    mean = next(r["metrics"] for r in rows if r["model"] == "facet" and r["seed"] == "mean")
    assert mean["seeds"] == 2 and mean["ndcg@10"] == pytest.approx((np.mean(facet0) + np.mean(facet1)) / 2)
    assert mean["fit_s"] == pytest.approx(15.0)
    assert mean["ndcg@10_sd"] == pytest.approx(np.std([np.mean(facet0), np.mean(facet1)], ddof=1))
    assert mean["best_other_model"] == "ease"  # 0.34 beats SASRec's 0.2
    assert mean["ndcg@10_ratio_to_best_other"] == pytest.approx(mean["ndcg@10"] / np.mean(ease))
    pooled = np.mean([facet0, facet1], 0)
    assert mean["paired_p_pooled"] == pytest.approx(ttest_rel(pooled, ease).pvalue)
    baseline = next(r["metrics"] for r in rows if r["model"] == "ease" and r["seed"] == "mean")
    assert "paired_p_pooled" not in baseline


def test_history_slices_partition_the_test_users_by_history_length(monkeypatch):
    from facetrec.data.split import make_split
    from facetrec.testing import small_synthetic

    dataset = small_synthetic().dataset
    monkeypatch.setattr(public, "load", lambda name: dataset)
    test = make_split(dataset.interactions, "loo", 0).test
    users = np.unique(test.targets.user_idx)
    length = np.bincount(test.history.user_idx, minlength=test.history.n_users)[users]
    per_user = (length / length.max()).tolist()  # NDCG grows with history length
    rows = public.history_slices([{**run("facet", 0, per_user)}], quantiles=4)
    assert sum(r["metrics"]["users"] for r in rows) == len(users)
    means = [r["metrics"]["ndcg@10"] for r in rows]
    assert means == sorted(means) and len(rows) >= 2
    first = rows[0]
    low = int(first["slice"].split()[1].split("-")[0])
    assert low == length.min()
    assert rows[-1]["slice"].endswith("+ events")
