"""Load test of `facetrec serve` over loopback: throughput, p50/p99 latency, errors, lost events.

A 100k-item synthetic catalogue (facetrec.data.synthetic, 5,000 users, about 200k events), a
facet model trained quickly (text encoder "none", hidden 32, one epoch, sampled softmax, the
last 50 events per user; cached in --work), served by real `facetrec serve` processes with the
default ranking config (HNSW retrieval above 50k items). The mix: 80% `GET /users/{id}/
recommendations?k=10&diversity=mmr&lambda=0.7`, 20% `POST /events` (one click each), users
and items drawn uniformly.

For each store (--stores: SQLite, `serve --events PATH`; PostgreSQL, `serve --store URL` on
--postgres-url, or without it a new database on a throwaway server started from Debian's
packages by facetrec.testing.postgres) and worker count (--workers), one server is started with a fresh event store
and driven at each of --rates requests/s for --duration s. The pre-change code (--baseline-ref,
a commit run from a `git worktree` with PYTHONPATH on its src) is measured in the same run on
SQLite, in rows labelled "pre-change": on this bundle when it can load it, else on one it
builds itself.

The load generator runs in a process of its own (this script with --generate), never in the
server's or this one's: an open loop (httpx, asyncio, at most --concurrency requests in flight)
whose latency counts from each request's *scheduled* send time, so a server that falls behind is
charged for the queueing it causes (no coordinated omission). A point that falls behind stops
sending at twice its duration; what it could not send is `not_sent`. Lost events: POST /events
acknowledged minus rows found in the store after the point (must be 0).

    nice -n 10 python benchmarks/serve_load.py [--rates 100,200] [--duration 60] [--workers 1,2]
        [--stores sqlite,postgresql --postgres-url postgresql://...] [--baseline-ref 4cbd9ad]

The machine is shared (the load average before each point is in its row); client and server
share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

ROOT = Path(__file__).resolve().parent.parent
KEY = "serve-load-key"
GOAL_RATE = 200.0
GOAL_P99_MS = {"sqlite": 25.0, "postgresql": 40.0}
BASELINE_REF = "4cbd9ad"
"""The commit main was at before the fast request path: the "pre-change" rows."""
PARAMS = {
    "encoder": "none",
    "hidden": 32,
    "epochs": 1,
    "max_len": 50,
    "full_softmax_max_items": 1000,
    "progress": False,
}
EVENTS_TABLE = "events"
"""The table both stores keep events in (counted for lost events)."""


def build_bundle(work: Path, n_items: int, n_users: int) -> Path:
    """Generate, train and save once; later runs reuse the bundle."""
    bundle = work / "bundle"
    settings = {"items": n_items, "users": n_users, "params": PARAMS}
    marker = work / "settings.json"
    if (bundle / "manifest.json").is_file() and marker.is_file() and json.loads(marker.read_text()) == settings:
        return bundle
    from facetrec.data.synthetic import SynthConfig, generate
    from facetrec.recommender import fit_recommender

    start = time.perf_counter()
    data = generate(SynthConfig(n_users=n_users, n_items=n_items, seed=0)).dataset
    print(f"training facet on {data.interactions!r} ...", flush=True)
    fit_recommender(data, "facet", PARAMS).save(bundle)
    marker.write_text(json.dumps(settings))
    print(f"bundle ready in {time.perf_counter() - start:.0f} s", flush=True)
    return bundle


# ---------------------------------------------------------------------- the code under test


def baseline_tree(work: Path, ref: str) -> Path:
    """A `git worktree` of ``ref`` under ``work`` (reused when already at that commit)."""
    commit = _git("rev-parse", f"{ref}^{{commit}}")
    tree = work / f"baseline-{commit[:12]}"
    if not (tree / "src" / "facetrec").is_dir():
        _git("worktree", "add", "--detach", str(tree), commit)
    return tree


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def code_env(src: Path | None) -> dict[str, str]:
    """The environment that runs facetrec from ``src`` (None: the installed, current code)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return env


def bundle_for(env: dict[str, str], bundle: Path, work: Path, n_items: int, n_users: int) -> Path:
    """``bundle`` if the code in ``env`` loads it, else one built by that code under ``work``."""
    check = f"from facetrec.recommender import Recommender; Recommender.load({str(bundle)!r})"
    if subprocess.run([sys.executable, "-c", check], env=env, capture_output=True).returncode == 0:
        return bundle
    print(f"the pre-change code cannot load {bundle}; building its own bundle", flush=True)
    own = work / "baseline-bundle"
    build = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from pathlib import Path; "
        f"from serve_load import build_bundle; build_bundle(Path({str(own)!r}), {n_items}, {n_users})"
    )
    subprocess.run([sys.executable, "-c", build], env=env, check=True)
    return own / "bundle"


# ---------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    bundle: Path, store: list[str], workers: int, port: int, log: Path, env: dict[str, str]
) -> subprocess.Popen:
    """`facetrec serve` with ``store`` (its options), ready when /healthz answers."""
    import httpx

    args = [sys.executable, "-m", "facetrec", "serve", "--bundle", str(bundle), *store, "--port", str(port)]
    args += ["--api-key", KEY, "--log-level", "warning"] + (["--workers", str(workers)] if workers > 1 else [])
    process = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise SystemExit(f"server did not start in 900 s:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after 60 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Store:
    """An event store the server writes: its `serve` options, and its row count."""

    def __init__(self, kind: str, work: Path, url: str | None) -> None:
        self.kind, self.url, self.path = kind, url, work / "events.sqlite"

    def fresh(self) -> list[str]:
        """`serve` options for this store, emptied first when it is a file (PostgreSQL rows are
        counted before and after each point instead)."""
        if self.kind == "postgresql":
            return ["--store", str(self.url)]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return ["--events", str(self.path)]

    def count(self) -> int:
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(str(self.url)) as db:
                return int(db.execute(f"SELECT COUNT(*) FROM {EVENTS_TABLE}").fetchone()[0])
        with sqlite3.connect(self.path) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {EVENTS_TABLE}").fetchone()[0])


# ---------------------------------------------------------------------- the load generator


def plan(n: int, users: list[str], items: list[str], write_share: float, seed: int) -> list[tuple[str, str, dict]]:
    rng = np.random.default_rng(seed)
    out = []
    for u, is_write in zip(rng.integers(0, len(users), n), rng.random(n) < write_share, strict=True):
        if is_write:
            event = {"user": users[u], "item": items[int(rng.integers(0, len(items)))], "event": "click"}
            out.append(("POST", "/events", {"json": event, "headers": {"X-API-Key": KEY}}))
        else:
            params = {"k": 10, "diversity": "mmr", "lambda": 0.7}
            out.append(("GET", f"/users/{users[u]}/recommendations", {"params": params}))
    return out


async def drive(url: str, requests: list, rate: float, concurrency: int, duration: float) -> dict:
    """Send ``requests`` paced at ``rate``/s, at most ``concurrency`` in flight."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: dict[str, list[float]] = {"GET": [], "POST": []}
    counts = {"errors": 0, "acknowledged": 0, "sent": 0, "not_sent": 0}
    kinds: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one(method: str, path: str, kwargs: dict, scheduled: float) -> None:
            try:
                response = await client.request(method, path, **kwargs)
                ok, kind = response.status_code == 200, str(response.status_code)
            except httpx.HTTPError as exc:
                ok, kind = False, type(exc).__name__
            finally:
                gate.release()
            if not ok:
                kinds[kind] = kinds.get(kind, 0) + 1
            latencies[method].append(time.perf_counter() - scheduled)
            counts["errors"] += not ok
            counts["acknowledged"] += ok and method == "POST"

        start = time.perf_counter()
        tasks = []
        for i, (method, path, kwargs) in enumerate(requests):
            scheduled = start + i / rate
            if scheduled - start > duration:
                break
            if time.perf_counter() - start > 2 * duration:
                counts["not_sent"] = max(0, int(duration * rate) - i)
                break
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            await gate.acquire()
            tasks.append(asyncio.create_task(one(method, path, kwargs, scheduled)))
            counts["sent"] += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    every = np.array(latencies["GET"] + latencies["POST"]) * 1000
    return {
        "requests_per_s": round(len(every) / elapsed, 1),
        "p50_ms": round(float(np.percentile(every, 50)), 2),
        "p99_ms": round(float(np.percentile(every, 99)), 2),
        "errors": counts["errors"],
        "read_p99_ms": _p99(latencies["GET"]),
        "write_p99_ms": _p99(latencies["POST"]),
        "requests": counts["sent"],
        "not_sent": counts["not_sent"],
        "error_kinds": kinds,
        "acknowledged_events": counts["acknowledged"],
    }


def _p99(seconds: list[float]) -> float | None:
    return round(float(np.percentile(np.array(seconds) * 1000, 99)), 2) if seconds else None


def generate(spec_path: Path) -> None:
    """The load generator's process: read a point's spec, drive it, print the result as JSON."""
    spec = json.loads(spec_path.read_text())
    ids = json.loads(Path(spec["ids"]).read_text())
    n = int(spec["rate"] * spec["duration"]) + 10
    requests = plan(n, ids["users"], ids["items"], spec["write_share"], spec["seed"])
    result = asyncio.run(drive(spec["url"], requests, spec["rate"], spec["concurrency"], spec["duration"]))
    print(json.dumps(result), flush=True)


def measure(spec: dict, work: Path) -> dict:
    """One point, driven by a load generator in its own process."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=work, delete=False) as f:
        json.dump(spec, f)
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--generate", f.name], check=True, capture_output=True, text=True
        )
    finally:
        Path(f.name).unlink()
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- the run


def goal_met(store: str, rate: float, m: dict) -> bool | None:
    """Against the issue's goals at 200 req/s (None at other rates): p99 within the store's bound,
    the rate held, no errors, no lost events."""
    if rate != GOAL_RATE:
        return None
    held = m["requests_per_s"] >= 0.95 * rate and m["not_sent"] == 0
    return bool(held and m["p99_ms"] <= GOAL_P99_MS[store] and m["errors"] == 0 and m["lost_events"] == 0)


def run_server(args: argparse.Namespace, setup: dict, ids: Path, description: dict) -> list[dict]:
    """Start one server (``setup``: code, bundle, store, workers), drive every rate, stop it."""
    store: Store = setup["store"]
    port = free_port()
    started = time.perf_counter()
    log = args.work / f"server-{setup['label']}-{store.kind}-{setup['workers']}.log"
    server = start_server(setup["bundle"], store.fresh(), setup["workers"], port, log, setup["env"])
    print(f"{setup['label']} {store.kind} x{setup['workers']}: up in {time.perf_counter() - started:.1f} s", flush=True)
    rows = []
    try:
        for seed, rate in enumerate(args.rates):
            before, load = store.count(), os.getloadavg()[0]
            spec = {"url": f"http://127.0.0.1:{port}", "rate": rate, "duration": args.duration, "seed": seed,
                    "write_share": args.write_share, "concurrency": args.concurrency, "ids": str(ids)}  # fmt: skip
            m = measure(spec, args.work)
            m["lost_events"] = m["acknowledged_events"] - (store.count() - before)
            m["load_average_1m_before"] = round(load, 2)
            row = {**description, "code": setup["label"], "store": store.kind, "workers": setup["workers"]}
            row |= {"target_rps": rate, "metrics": m, "goal_met": goal_met(store.kind, rate, m)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        stop_server(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--rates", default="100,200", help="Offered loads (requests/s), one point each.")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per point.")
    parser.add_argument("--write-share", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16, help="Most requests in flight.")
    parser.add_argument("--workers", default="1,2", help="Worker process counts, one server each.")
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgresql or both (comma-separated).")
    parser.add_argument("--postgres-url", help="Database for --stores postgresql (default: a throwaway server).")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="Pre-change commit measured alongside ('': none).")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "facetrec-serve-load")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # the load generator's process
    args = parser.parse_args()
    if args.generate:
        generate(args.generate)
        return
    args.rates = [float(r) for r in args.rates.split(",")]
    stores = args.stores.split(",")
    unknown = sorted(set(stores) - set(GOAL_P99_MS))
    if unknown:
        parser.error(f"--stores: unknown store {unknown[0]!r}; use sqlite and/or postgresql")
    with ExitStack() as stack:
        if "postgresql" in stores and not args.postgres_url:
            args.postgres_url = throwaway_postgres(stack, parser)
        run(args, stores)


def throwaway_postgres(stack: ExitStack, parser: argparse.ArgumentParser) -> str:
    """A new database on a server started for this run (both removed when the run ends)."""
    from facetrec.testing.postgres import Unavailable, database, server

    try:
        return stack.enter_context(database(stack.enter_context(server())))
    except Unavailable as exc:
        parser.error(f"--stores postgresql: no --postgres-url, and no PostgreSQL server could be started: {exc}")


def run(args: argparse.Namespace, stores: list[str]) -> None:
    """Every server of the run, then the results file."""
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(args.work, args.items, args.users)
    from facetrec.data.dataset import Dataset

    data = Dataset.load(bundle / "data")
    ids = args.work / "ids.json"
    ids.write_text(json.dumps({"users": [str(u) for u in data.interactions.users.ids],
                               "items": [str(i) for i in data.catalog.items.ids]}))  # fmt: skip
    description = {
        "dataset": f"synthetic, {len(data.catalog):,} items, {data.interactions.n_users:,} users, "
        f"{len(data.interactions):,} events",
        "model": "facet (encoder none, hidden 32, 1 epoch), HNSW, MMR lambda 0.7, top-10; 80% reads, 20% writes",
    }
    setups = []
    if args.baseline_ref:
        env = code_env(baseline_tree(args.work, args.baseline_ref) / "src")
        old = bundle_for(env, bundle, args.work, args.items, args.users)
        label = f"pre-change ({args.baseline_ref})"
        setups += [{"label": label, "env": env, "bundle": old, "store": Store("sqlite", args.work, None)}]
    current = {"label": "current", "env": code_env(None), "bundle": bundle}
    setups += [{**current, "store": Store(kind, args.work, args.postgres_url)} for kind in stores]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    rows = []
    for setup in setups:
        for workers in (int(w) for w in args.workers.split(",")):
            rows += run_server(args, {**setup, "workers": workers}, ids, description)
    path = write_results("serve_load", rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
