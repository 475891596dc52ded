"""Shared helpers for benchmark scripts: machine description, the results file format, and
recording each run in MLflow (switched off with FACETREC_TRACKING=0)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import numpy as np

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }


def git_commit() -> str:
    """The checkout's commit, with "-dirty" when tracked files have uncommitted changes."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def write_results(name: str, rows: list[dict[str, Any]]) -> Path:
    """Write benchmarks/results/NAME.json in the project's common format."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "rows": rows,
        "machine": machine(),
        "git_commit": git_commit(),
        "command": " ".join(["python", *[Path(sys.argv[0]).as_posix(), *sys.argv[1:]]]),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    track(name, rows, path)
    return path


def track(name: str, rows: list[dict[str, Any]], results: Path) -> None:
    """Record a benchmark run in MLflow (experiment "facetrec benchmarks", run NAME): one child run
    per row (its fields as params, its ``metrics`` as metrics) and the results file as an
    artifact. The store is $MLFLOW_TRACKING_URI, else mlflow.db in the current directory; a
    failure only warns, the results file is already written."""
    from facetrec import tracking

    if not tracking.enabled_by_env():
        return
    with tracking.track("facetrec benchmarks", name, params={"benchmark": name, "machine": machine()}) as run:
        for number, row in enumerate(rows):
            metrics = row.get("metrics")
            if not isinstance(metrics, dict):
                metrics = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            params = {k: v for k, v in row.items() if k != "metrics" and k not in metrics}
            label = " / ".join(str(row[k]) for k in ("dataset", "model") if k in row) or f"row {number}"
            run.log_child(label, params=params, metrics=metrics, tags={"benchmark": name, "row": number})
        run.log_artifacts([results])
