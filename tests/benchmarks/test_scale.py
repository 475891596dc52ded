"""benchmarks/scale.py at a toy size: every stage runs and the growth fit reads exponents right."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"
sys.path.insert(0, str(_PATH.parent))
_spec = importlib.util.spec_from_file_location("scale_benchmark", _PATH)
scale = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


def test_growth_recovers_the_exponent_of_each_cost():
    rows = [
        {"events": n, "metrics": {"ingest_s": 2e-6 * n, "epoch_s": 1e-9 * n**1.5, "peak_rss_gb": 0.5}}
        for n in (1e5, 1e6, 1e7)
    ]
    fitted = scale.growth(rows)
    assert fitted["ingest_s"] == pytest.approx(1.0)
    assert fitted["epoch_s"] == pytest.approx(1.5)
    assert fitted["peak_rss_gb"] == pytest.approx(0.0, abs=1e-9)
    assert "eval_s" not in fitted  # not measured at two points: no exponent
    for row, kind, build in zip(rows, ("flat", "hnsw", "hnsw"), (1e-4, 10.0, 100.0), strict=True):
        row["index"], row["metrics"]["index_build_s"] = kind, build
    assert scale.growth(rows)["index_build_s"] == pytest.approx(1.0)  # the flat point's copy is left out


def test_one_point_measures_every_stage():
    out = scale.measure(1_000, 10_000, threads=1, seed=0, eval_users=200)
    assert 8_000 < out["events"] < 12_000 and out["users"] == 200
    for cost in scale.COSTS:
        assert out[cost] > 0, cost
    assert out["index"] == "flat"  # exact search finds what exact search finds
    assert out["ann_recall@100"] == out["ann_item_recall@100"] == 1.0
    assert 0.0 <= out["ndcg@10"] <= 1.0
