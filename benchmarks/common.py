"""Shared helpers for benchmark scripts: machine description and the results file format."""

from __future__ import annotations

import json
import os
import platform
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


def write_results(name: str, rows: list[dict[str, Any]]) -> Path:
    """Write benchmarks/results/NAME.json in the project's common format."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "rows": rows,
        "machine": machine(),
        "command": " ".join(["python", *[Path(sys.argv[0]).as_posix(), *sys.argv[1:]]]),
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
