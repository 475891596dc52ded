"""Shared helpers for benchmark scripts: machine description, the results file format, and
recording each run in MLflow (switched off with FACETREC_TRACKING=0)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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


def device() -> str:
    """What produced a row: the torch device and, on a CPU, its model and core count."""
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    return f"cpu: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def data_root() -> Path:
    """Where the real datasets are: $FACETREC_DATA_DIR, else ../shared/datasets beside the checkout."""
    return Path(os.environ.get("FACETREC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


class RunCache:
    """Benchmark runs, one JSON line each in ``path``, keyed by ``key(run)``: a table grows one run
    at a time, and a run already made is not made again unless asked to."""

    def __init__(self, path: Path, key: Callable[[dict[str, Any]], tuple]) -> None:
        self.path, self.key = path, key
        lines = path.read_text().splitlines() if path.exists() else []
        self.runs = {key(run): run for run in (json.loads(line) for line in lines if line.strip())}

    def __contains__(self, spec: dict[str, Any]) -> bool:
        return self.key(spec) in self.runs

    def run(self, function: Callable[[dict[str, Any]], dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
        """``function(spec)`` in a fresh process (so its peak memory is its own), stored at once."""
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            row = pool.submit(function, spec).result()
        self.runs[self.key(row)] = row
        self.path.write_text("".join(json.dumps(r) + "\n" for r in self.runs.values()))
        return row

    def values(self) -> list[dict[str, Any]]:
        return list(self.runs.values())


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
