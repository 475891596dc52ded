"""CPU milliseconds per request inside one `facetrec serve` worker, without HTTP: the current code
against the pre-change commit, side by side in one run, on serve_load.py's bundle.

Each code runs in a process of its own (the pre-change one from a `git worktree`, PYTHONPATH on
its src), opens the bundle with a fresh SQLite event store as a worker does (the states of the
10,000 most recently active users warmed), and times with the process's CPU clock:
- ``read_cached_ms``: `GET /users/{id}/recommendations?k=10&diversity=mmr&lambda=0.7` for a
  user whose state is kept (``Service.recommend``);
- ``write_ms``: `POST /events` with one click (``Service.add``: validate, commit, apply; the
  fsync's wait is not CPU);
- ``read_after_write_ms``: the same read for each user just written, whose state must follow
  their new event.
``mix_ms`` weighs them as the load test's mix does: 80% reads, of which those of users written
since their last read (here: the share of writes among a user's requests, 20%) follow a write.
The two codes alternate for --repeats rounds; the median of each is reported.

    nice -n 10 python benchmarks/request_cpu.py [--requests 300] [--repeats 3] [--baseline-ref 4cbd9ad]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results
from serve_load import BASELINE_REF, baseline_tree, build_bundle, bundle_for, code_env

WRITE_SHARE = 0.2
MODEL = "facet (encoder none, hidden 32, 1 epoch), HNSW, MMR lambda 0.7, top-10; one worker, no HTTP"


def measure(bundle: Path, work: Path, n: int, seed: int) -> dict[str, float]:
    """In the code's own process: CPU ms per request of each kind."""
    from facetrec.history import EventRecord
    from facetrec.serving.server import limit_threads
    from facetrec.serving.service import Service
    from facetrec.serving.store import SQLiteHistoryStore
    from facetrec.types import Query

    limit_threads()
    service = Service.open(bundle, SQLiteHistoryStore(work / "events.sqlite"))
    users = service.recommender.histories.user_ids()
    items = [str(i) for i in service.recommender.items.ids]
    rng = np.random.default_rng(seed)
    chosen = [users[int(u)] for u in rng.integers(0, len(users), n)]

    def read(user: str) -> None:
        service.recommend(Query(user_id=user, n=10), False, diversity="mmr", lam=0.7)

    def write(user: str) -> None:
        service.add([EventRecord(user, items[int(rng.integers(len(items)))], int(time.time()), "click")])

    for user in users[:20]:  # the first requests build the ranker's per-setting variant
        read(user)
    out = {}
    for name, step in (("read_cached_ms", read), ("write_ms", write), ("read_after_write_ms", read)):
        start = time.process_time()
        for user in chosen:
            step(user)
        out[name] = (time.process_time() - start) / n * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="Requests of each kind per round.")
    parser.add_argument("--repeats", type=int, default=3, help="Rounds; each code runs once per round.")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "facetrec-serve-load")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)  # (bundle, work): one measurement
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.requests, seed=1)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(args.work, 100_000, 5000)
    old_env = code_env(baseline_tree(args.work, args.baseline_ref) / "src")
    codes = {
        f"pre-change ({args.baseline_ref})": (old_env, bundle_for(old_env, bundle, args.work, 100_000, 5000)),
        "current": (code_env(None), bundle),
    }
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in codes}
    for _ in range(args.repeats):
        for label, (env, path) in codes.items():
            with tempfile.TemporaryDirectory(dir=args.work) as work:
                command = [sys.executable, __file__, "--child", str(path), work, "--requests", str(args.requests)]
                done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(label, runs[label][-1], flush=True)
    rows = []
    for label, found in runs.items():
        m = {key: round(float(np.median([r[key] for r in found])), 3) for key in found[0]}
        reads = (1 - WRITE_SHARE) * ((1 - WRITE_SHARE) * m["read_cached_ms"] + WRITE_SHARE * m["read_after_write_ms"])
        m["mix_ms"] = round(reads + WRITE_SHARE * m["write_ms"], 3)
        dataset = "serve_load's bundle (100,000 items, 5,000 users)"
        rows.append({"dataset": dataset, "model": MODEL, "code": label, "metrics": m})
        print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {write_results('request_cpu', rows)}")


if __name__ == "__main__":
    main()
