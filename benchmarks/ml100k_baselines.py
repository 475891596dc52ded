"""Every baseline on MovieLens-100K, leave-one-out, full ranking, history excluded, one run.

Reads ml-100k from $FACETREC_DATA_DIR (default ../shared/datasets). Prints a table and writes
results/ml100k_baselines.json; with --report DIR also report.md, per-user metrics and plots.

    python benchmarks/ml100k_baselines.py [--models pop,itemknn,ease,als,bpr,sasrec] [--tune] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, write_results
from facetrec.data.sources import load_source
from facetrec.evaluation.experiment import run_experiment
from facetrec.evaluation.protocol import EvalConfig, compare
from facetrec.evaluation.report import write_report

METRICS = ("hr@10", "ndcg@10", "mrr@10", "category_ild@10", "coverage@10", "novelty@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="pop,itemknn,ease,als,bpr,sasrec")
    parser.add_argument("--tune", action="store_true", help="tune each model on the validation targets first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument(
        "--params",
        type=json.loads,
        default={},
        help='per-model overrides as JSON, e.g. \'{"sasrec": {"dropout": 0.4}}\'',
    )
    args = parser.parse_args()
    root = data_root()
    if not (root / "ml-100k").is_dir():
        sys.exit(f"ml-100k not found in {root}; set FACETREC_DATA_DIR to the folder that holds it")
    console = Console()
    dataset = load_source("ml-100k", root / "ml-100k")
    experiment = run_experiment(
        dataset,
        args.models.split(","),
        config=EvalConfig(metrics=METRICS, seed=args.seed),
        params=args.params,
        tune=args.tune,
        seed=args.seed,
        on_event=lambda message: console.print(f"  {message}"),
    )
    table = Table(
        title="ML-100K, leave-one-out, full ranking over 1,682 items, history excluded "
        "(category_ild = 1 - mean genre cosine)"
    )
    table.add_column("model")
    for name in (*METRICS, "fit s"):
        table.add_column(name, justify="right", min_width=len(name))
    rows = []
    for run in experiment.runs:
        summary = run.test.summary
        table.add_row(run.kind, *(f"{summary[m]:.4f}" for m in METRICS), f"{run.fit_seconds:.1f}")
        rows.append(
            {
                "dataset": "ml-100k",
                "model": run.kind,
                "metrics": {**{m: round(summary[m], 5) for m in METRICS}, "fit_s": round(run.fit_seconds, 2)},
                "params": run.params,
            }
        )
    console.print(table)
    best = max(experiment.runs, key=lambda r: r.test.summary["ndcg@10"])
    for run in experiment.runs:
        if run is not best:
            test = compare(best.test, run.test, "ndcg@10")
            console.print(
                f"{best.kind} - {run.kind}: ndcg@10 {test.mean_difference:+.4f} "
                f"[{test.ci[0]:+.4f}, {test.ci[1]:+.4f}], paired t-test p = {test.p_value:.3g}"
            )
    if args.report:
        write_report(experiment, args.report)
    console.print(f"wrote {write_results('ml100k_baselines', rows)}")


if __name__ == "__main__":
    main()
