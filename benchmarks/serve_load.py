"""Load test of `facetrec serve` over loopback: throughput, p50/p99 latency, errors, lost events.

A 100k-item synthetic catalogue (facetrec.data.synthetic, 5,000 users, about 200k events), a
facet model trained quickly (text encoder "none", hidden 32, one epoch, sampled softmax, the
last 50 events per user: about 4 minutes on 2 cores; cached in --work), served by a real
`facetrec serve` process with the default ranking config (HNSW retrieval above 50k items).
The client (httpx, asyncio) replays a fixed mix: 80% `GET /users/{id}/recommendations?k=10&
diversity=mmr&lambda=0.7`, 20% `POST /events` (one click each), users drawn uniformly.

Start-up rebuilds the states of the 10,000 most recently active users (here: all of them);
a posted event invalidates its user's state, so that user's next read encodes it again.

Phases, one result row each: open loop at each of --rates requests/s for --duration s, then a
closed loop (--concurrency-max requests in flight, no pacing), the throughput ceiling. A phase
that falls behind stops sending at twice its duration; what it could not send is `not_sent`.

Open-loop latency is measured from each request's *scheduled* send time, so a server that falls
behind is charged for the queueing it causes (no coordinated omission). Lost events: POST
/events acknowledged minus rows found in the SQLite store after the phase (must be 0).

    nice -n 10 python benchmarks/serve_load.py [--rates 100,200] [--duration 60] [--work /tmp/facetrec-serve-load]

The machine is shared (see the load average in the results); client and server share its cores.
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
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

KEY = "serve-load-key"
GOAL_P99_MS, GOAL_RATE = 25.0, 200.0
PARAMS = {
    "encoder": "none",
    "hidden": 32,
    "epochs": 1,
    "max_len": 50,
    "full_softmax_max_items": 1000,
    "progress": False,
}


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, events: Path, port: int, log: Path) -> subprocess.Popen:
    import httpx

    args = [
        sys.executable,
        "-m",
        "facetrec",
        "serve",
        "--bundle",
        str(bundle),
        "--events",
        str(events),
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("server did not start in 600 s")


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


async def drive(url: str, requests: list, rate: float | None, concurrency: int, duration: float) -> dict:
    """Send ``requests`` paced at ``rate``/s (None: as fast as ``concurrency`` allows)."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: dict[str, list[float]] = {"GET": [], "POST": []}
    counts = {"errors": 0, "acknowledged": 0, "sent": 0}
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
            scheduled = start + i / rate if rate else time.perf_counter()
            late = time.perf_counter() - start > (2 * duration if rate else duration)
            if scheduled - start > duration or late:
                counts["not_sent"] = max(0, int(duration * rate) - i) if rate and late else 0
                break
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            await gate.acquire()
            scheduled = scheduled if rate else time.perf_counter()
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
        "not_sent": counts.get("not_sent", 0),
        "error_kinds": kinds,
        "acknowledged_events": counts["acknowledged"],
    }


def _p99(seconds: list[float]) -> float | None:
    return round(float(np.percentile(np.array(seconds) * 1000, 99)), 2) if seconds else None


def stored(events: Path) -> int:
    with sqlite3.connect(events) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def run_phases(args: argparse.Namespace, bundle: Path, events: Path, port: int) -> tuple[list[dict], list[float]]:
    from facetrec.data.dataset import Dataset

    data = Dataset.load(bundle / "data")
    users = [str(u) for u in data.interactions.users.ids]
    items = [str(i) for i in data.catalog.items.ids]
    rates = [float(r) for r in args.rates.split(",")]
    phases = [
        (
            f"open loop at {r:.0f} req/s",
            r,
            args.concurrency,
            plan(int(r * args.duration) + 10, users, items, args.write_share, seed),
        )
        for seed, r in enumerate(rates)
    ]
    closed = plan(int(2000 * args.duration), users, items, args.write_share, len(rates))
    phases.append((f"closed loop, {args.concurrency_max} in flight", None, args.concurrency_max, closed))
    rows = []
    url = f"http://127.0.0.1:{port}"
    for name, rate, concurrency, requests in phases:
        before = stored(events)
        load = os.getloadavg()[0]
        result = asyncio.run(drive(url, requests, rate, concurrency, args.duration))
        result["lost_events"] = result["acknowledged_events"] - (stored(events) - before)
        result["load_average_1m_before"] = round(load, 2)
        dataset = f"synthetic, {len(items):,} items, {len(users):,} users, {len(data.interactions):,} events"
        model = f"facet (encoder none, hidden 32, 1 epoch), HNSW, MMR lambda 0.7, top-10; {name}"
        rows.append({"dataset": dataset, "model": model, "metrics": result})
        print(f"{name}: {json.dumps(result)}", flush=True)
    return rows, rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--rates", default="100,200", help="Offered loads (requests/s) of the open-loop phases.")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per phase.")
    parser.add_argument("--write-share", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16, help="Most requests in flight (open loop).")
    parser.add_argument("--concurrency-max", type=int, default=8, help="Requests in flight (closed loop).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/facetrec-serve-load"))
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(args.work, args.items, args.users)
    events = args.work / "events.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{events}{suffix}").unlink(missing_ok=True)
    port = free_port()
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    server = start_server(bundle, events, port, args.work / "server.log")
    try:
        print(f"server up in {time.perf_counter() - started:.1f} s", flush=True)
        rows, rates = run_phases(args, bundle, events, port)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    for row, rate in zip(rows, rates, strict=False):
        m = row["metrics"]
        if rate < GOAL_RATE:
            continue
        m["goal_met"] = bool(
            m["p99_ms"] <= GOAL_P99_MS
            and m["requests_per_s"] >= 0.95 * GOAL_RATE
            and m["errors"] == 0
            and m["lost_events"] == 0
        )
    path = write_results("serve_load", rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
