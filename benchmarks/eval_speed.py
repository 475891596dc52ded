"""How long does honest full-ranking evaluation take? 10k users x 10k items, one run.

Times `evaluate` (score every item for every test user in blocks, exclude history, top-K,
metrics with bootstrap intervals) for scorers of different cost on synthetic data.

    python benchmarks/eval_speed.py [--users 10000] [--items 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results
from facetrec.data.split import leave_one_out
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.evaluation.protocol import EvalConfig, evaluate
from facetrec.scoring.registry import make_scorer

METRICS = ("hr@10", "ndcg@10", "mrr@10", "recall@10", "hr@50", "ndcg@50", "coverage@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--models", default="pop,itemknn,als")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    data = generate(SynthConfig(n_users=args.users, n_items=args.items, seed=args.seed)).dataset.interactions
    split = leave_one_out(data)
    table = Table(title=f"full-ranking evaluation, {args.users:,} users x {args.items:,} items, {len(METRICS)} metrics")
    for column in ("model", "fit s", "evaluate s", "users/s"):
        table.add_column(column, justify="right")
    rows = []
    for kind in args.models.split(","):
        start = time.perf_counter()
        scorer = make_scorer(kind, seed=args.seed).fit(split.train)
        fit = time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate(scorer, split.test, EvalConfig(metrics=METRICS, seed=args.seed))
        seconds = time.perf_counter() - start
        users = result.settings["users"]
        table.add_row(kind, f"{fit:.1f}", f"{seconds:.2f}", f"{users / seconds:,.0f}")
        rows.append(
            {
                "dataset": f"synthetic-{args.users}x{args.items}",
                "model": kind,
                "metrics": {
                    "fit_s": round(fit, 2),
                    "evaluate_s": round(seconds, 3),
                    "users_per_s": round(users / seconds),
                    "ndcg@10": round(result.summary["ndcg@10"], 5),
                },
            }
        )
    console.print(table)
    console.print(f"wrote {write_results('eval_speed', rows)}")


if __name__ == "__main__":
    main()
