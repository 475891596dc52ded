"""Cold-start items: can a model recommend an item nobody has interacted with yet?

Temporal split (one global cut in time), full ranking, history excluded. Targets on items that
never occur in training are scored separately from the others. ID-only baselines score zero
on cold items by construction; content models read the item's text.

    python benchmarks/cold_start.py [--datasets synthetic,ml-100k] [--models pop,als,ease,content,content-lexical]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results
from facetrec.data.sources import load_source
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.evaluation.experiment import run_experiment
from facetrec.evaluation.protocol import EvalConfig

METRICS = ("recall@10", "ndcg@10")
ALIASES = {"content-lexical": ("content", {"encoder": "lexical"}), "content": ("content", {})}


def datasets(names: list[str], seed: int):
    root = Path(os.environ.get("FACETREC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    for name in names:
        if name == "synthetic":
            yield name, generate(SynthConfig(n_users=3000, n_items=1500, seed=seed)).dataset
        elif (root / name).is_dir():
            yield name, load_source(name, root / name)
        else:
            print(f"skipping {name}: not found in {root} (set FACETREC_DATA_DIR)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="synthetic,ml-100k")
    parser.add_argument("--models", default="pop,ease,als,content,content-lexical")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    rows = []
    table = Table(title="cold-start vs warm items (temporal split, full ranking, history excluded)")
    for column in (
        "dataset",
        "model",
        "cold targets",
        *(f"cold {m}" for m in METRICS),
        *(f"warm {m}" for m in METRICS),
    ):
        table.add_column(column, justify="right")
    for name, dataset in datasets(args.datasets.split(","), args.seed):
        for label in args.models.split(","):
            kind, params = ALIASES.get(label, (label, {}))
            experiment = run_experiment(
                dataset,
                [kind],
                protocol="temporal",
                params={kind: params},
                config=EvalConfig(metrics=METRICS, bootstrap=0),
                seed=args.seed,
                first_only=name == "synthetic",
            )
            run = experiment.runs[0]
            if run.cold is None:
                console.print(f"{name}: no cold-start targets in this split")
                break
            cold, warm = run.cold.summary, run.warm.summary
            table.add_row(
                name,
                label,
                f"{run.cold.settings['targets']:,}",
                *(f"{cold[m]:.4f}" for m in METRICS),
                *(f"{warm[m]:.4f}" for m in METRICS),
            )
            rows.append(
                {
                    "dataset": name,
                    "model": label,
                    "metrics": {
                        "cold_targets": run.cold.settings["targets"],
                        **{f"cold_{m}": round(cold[m], 5) for m in METRICS},
                        **{f"warm_{m}": round(warm[m], 5) for m in METRICS},
                        "fit_s": round(run.fit_seconds, 2),
                    },
                }
            )
    console.print(table)
    console.print(f"wrote {write_results('cold_start', rows)}")


if __name__ == "__main__":
    main()
