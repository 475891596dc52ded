"""How fast does facetrec read interactions? A 1M-row file in each format, timed end to end.

End to end means read + parse + validate + dedupe + vocabularies + sort: everything
`facetrec data import` does before writing. Prints a table and writes results/ingest_speed.json.

    python benchmarks/ingest_speed.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results
from facetrec.data.ingest import InteractionColumns, load_files


def make_files(directory: Path, rows: int, seed: int) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, rows // 50, rows).astype(str),
            "item_id": (rng.zipf(1.3, rows) % 50_000).astype(str),
            "timestamp": rng.integers(1_600_000_000, 1_700_000_000, rows),
            "rating": rng.integers(1, 6, rows),
        }
    )
    paths = {
        "csv": directory / "events.csv",
        "csv.gz": directory / "events.csv.gz",
        "parquet": directory / "events.parquet",
        "jsonl.gz": directory / "events.jsonl.gz",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["csv.gz"], index=False)
    frame.to_parquet(paths["parquet"])
    frame.to_json(paths["jsonl.gz"], orient="records", lines=True)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        with console.status(f"writing {args.rows:,}-row test files"):
            paths = make_files(Path(tmp), args.rows, args.seed)
        columns = InteractionColumns(rating="rating")
        for fmt, path in paths.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                dataset = load_files(path, columns=columns)
                times.append(time.perf_counter() - start)
            best = min(times)
            rows_out.append(
                {
                    "dataset": f"synthetic-{args.rows}",
                    "model": f"load_files[{fmt}]",
                    "metrics": {
                        "rows": args.rows,
                        "seconds": round(best, 3),
                        "rows_per_s": round(args.rows / best),
                        "kept_interactions": len(dataset.interactions),
                    },
                }
            )
    table = Table(title=f"ingest speed, {args.rows:,} rows (best of {args.repeats})")
    for column in ("format", "seconds", "rows/s", "kept"):
        table.add_column(column, justify="right")
    for row in rows_out:
        m = row["metrics"]
        table.add_row(
            escape(row["model"]), f"{m['seconds']:.2f}", f"{m['rows_per_s']:,}", f"{m['kept_interactions']:,}"
        )
    console.print(table)
    console.print(f"wrote {write_results('ingest_speed', rows_out)}")


if __name__ == "__main__":
    main()
