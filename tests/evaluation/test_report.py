"""Reports: results.json equals the --json document, the best model is marked, ratios are written."""

from __future__ import annotations

import json

import numpy as np

from facetrec.evaluation.experiment import RatioCI, run_experiment
from facetrec.evaluation.protocol import EvalConfig
from facetrec.evaluation.report import ratio_text, results_document, write_report
from facetrec.testing import small_synthetic


def test_results_json_marks_the_best_and_gives_ratios(tmp_path):
    data = small_synthetic().dataset
    config = EvalConfig(metrics=("ndcg@10", "popularity@10", "coverage@10"), bootstrap=200)
    experiment = run_experiment(data, ["pop", "itemknn"], config=config)
    document = results_document(experiment)
    write_report(experiment, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == json.loads(json.dumps(document))
    rows = {row["model"]: row for row in document["models"]}
    best = max(rows, key=lambda kind: rows[kind]["metrics"]["ndcg@10"])
    assert document["main_metric"] == "ndcg@10" and document["best"]["ndcg@10"] == [best]
    assert rows[best]["ratio_to_best"] == {
        "metric": "ndcg@10",
        "best_model": best,
        "ratio": 1.0,
        "ci95": [1.0, 1.0],
        "users": rows[best]["ratio_to_best"]["users"],
    }
    least_popular = min(rows, key=lambda kind: rows[kind]["metrics"]["popularity@10"])
    assert rows[least_popular]["best"]["popularity@10"] is True
    assert document["higher_is_better"] == {"ndcg@10": True, "popularity@10": False, "coverage@10": True}

    report = (tmp_path / "report.md").read_text()
    assert "| ratio to best ndcg@10 |" in report and "lower is better for popularity@10" in report
    line = next(row for row in report.splitlines() if row.startswith(f"| {best} |"))
    assert f"**{rows[best]['metrics']['ndcg@10']:.4f}**" in line and "1 (best)" in line


def test_ratio_text():
    assert ratio_text(RatioCI(1.0, 1.0, 1.0, 5)) == "1 (best)"
    assert ratio_text(RatioCI(0.5, 0.25, 0.75, 5)) == "0.500 [0.250, 0.750]"
    assert ratio_text(RatioCI(0.5, np.nan, np.nan, 5)) == "0.500"
    assert ratio_text(None) == "n/a" and ratio_text(RatioCI(np.nan, np.nan, np.nan, 0)) == "n/a"
