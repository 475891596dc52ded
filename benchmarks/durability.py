"""Faults, measured: SIGKILL `facetrec serve` while clients post events, restart it, count what was lost.

Per store (SQLite through `--events PATH`, PostgreSQL through `--store URL`), a small facet model
(the test suite's synthetic data, trained once and cached in --work) is served by a real
`facetrec serve` process, and for each of --cycles cycles:

1. --clients threads post batches of 1-3 click events, each event with a unique client id
   (`id`) and a unique timestamp; a batch is *acknowledged* when a 2xx response arrives.
2. At a seeded random moment (uniform in --kill-after seconds after the clients start) the
   server's process group gets SIGKILL: no shutdown handler runs.
3. The store is opened directly: every acknowledged event must be in it (else it is *lost*) and
   no client id may occur twice (else a *duplicate*).
4. The server is started again on the same store; a *restart failure* is a start that does not
   answer /healthz within --restart-timeout (it is then tried again, at most 3 times).
5. Each client retries the batch it had in flight when the server died, with the same ids, as a
   client that lost a response must: those events are then acknowledged, once.
6. GET /users/{id}/history on the restarted server must list every acknowledged event of the
   cycle's users, each once: the restarted server serves what was stored.

Then the reload-under-load row: readers ask for diversified recommendations and a writer posts
events while POST /admin/reload swaps between two bundles --reloads times; every request must
get a 2xx and every acknowledged event must be stored.

    python benchmarks/durability.py [--stores sqlite,postgresql] [--postgres-url postgresql://...]
        [--cycles 20] [--seed 0] [--work DIR]

Without --postgres-url, PostgreSQL runs on a throwaway server (facetrec.testing.postgres: Debian's
packages, or $FACETREC_TEST_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results

KEY = "durability-key"
AUTH = {"X-API-Key": KEY}
PARAMS = {"encoder": "lexical", "hidden": 32, "epochs": 2, "progress": False}
DATASET = "synthetic (testing.small_synthetic: 120 users, 80 items)"
MODEL = "facet (lexical encoder, hidden 32, 2 epochs)"
START_TRIES = 3


# ---------------------------------------------------------------------------------------------- setup


def build_bundles(work: Path) -> tuple[Path, Path]:
    """Two bundles of the same model on the same data, trained with different seeds (the
    reload row swaps between them); trained once, then reused from ``work``."""
    from facetrec.recommender import fit_recommender
    from facetrec.testing import small_synthetic

    paths = (work / "bundle-a", work / "bundle-b")
    for seed, path in enumerate(paths):
        if not (path / "manifest.json").is_file():
            fit_recommender(small_synthetic().dataset, "facet", {**PARAMS, "seed": seed}).save(path)
    return paths


@dataclass(frozen=True)
class Store:
    """Where a run's events live: a SQLite file or a PostgreSQL URL, as ``open_store`` takes it."""

    name: str
    location: str

    def serve_args(self) -> list[str]:
        return ["--events", self.location] if self.name == "sqlite" else ["--store", self.location]

    def open(self) -> Any:
        """A HistoryStore on the same events, opened here while the server is down."""
        from facetrec.serving.store import open_store

        return open_store(self.location)


def store_for(name: str, args: argparse.Namespace, run: str) -> Store:
    """The store ``name`` for one run: an empty SQLite file in --work, or the PostgreSQL database
    (runs tell their events apart by their ids' prefix)."""
    if name == "postgresql":
        return Store(name, args.postgres_url)
    path = args.work / f"{run}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Store(name, str(path))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A `facetrec serve` process in a process group of its own (so SIGKILL reaches its workers)."""

    process: subprocess.Popen
    url: str

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


class StartFailed(Exception):
    """A server that did not answer /healthz in time; the message says how it failed."""


def start(bundle: Path, store: Store, workers: int, log: Path, timeout: float) -> Server:
    """The server, once it answers /healthz; StartFailed (and the process killed) when it does not in time."""
    port = free_port()
    args = [sys.executable, "-m", "facetrec", "serve", "--bundle", str(bundle), "--port", str(port)]
    args += [*store.serve_args(), "--api-key", KEY, "--workers", str(workers), "--log-level", "warning"]
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartFailed(f"exited with status {process.returncode}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise StartFailed(f"no /healthz answer in {timeout:.0f} s")


def start_until_up(
    bundle: Path, store: Store, args: argparse.Namespace, log: Path, console: Console
) -> tuple[Server, int]:
    """(the server, failed starts before it answered); gives up after START_TRIES failures."""
    for failures in range(START_TRIES):
        try:
            return start(bundle, store, args.workers, log, args.restart_timeout), failures
        except StartFailed as exc:
            console.print(f"[red]{store.name}: a start failed ({exc}); see {log}")
    raise SystemExit(f"{store.name}: the server did not start {START_TRIES} times in a row; see {log}")


# ---------------------------------------------------------------------------------------------- clients


@dataclass
class Ledger:
    """What the clients were told: acknowledged events by client id, as (user, timestamp)."""

    prefix: str
    acknowledged: dict[str, tuple[str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0

    def batch(self, rng: random.Random, users: list[str], items: list[str]) -> list[dict[str, Any]]:
        """1-3 click events, each with a fresh client id and timestamp (unique within the run)."""
        events = []
        with self.lock:
            for _ in range(rng.randint(1, 3)):
                self.counter += 1
                user, item = rng.choice(users), rng.choice(items)
                event_id, timestamp = f"{self.prefix}-{self.counter}", 1_700_000_000 + self.counter
                events.append({"user": user, "item": item, "timestamp": timestamp, "id": event_id})
        return events

    def post(self, client: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response | None:
        """Post a batch and note it when acknowledged; None when the connection dropped first."""
        try:
            response = client.post("/events", json={"events": events}, headers=AUTH)
        except httpx.TransportError:
            return None
        if response.is_success:
            with self.lock:
                self.acknowledged.update({e["id"]: (e["user"], e["timestamp"]) for e in events})
        return response


def post_until_killed(
    server: Server, ledger: Ledger, users: list[list[str]], items: list[str], delay: float, seed: int
) -> tuple[list[list[dict[str, Any]]], int]:
    """Clients post batches until the server is SIGKILLed ``delay`` s after they start. Returns
    the batches in flight when it died (each client's last, unacknowledged one) and how many
    answers were neither 2xx nor a dropped connection."""
    in_flight: list[list[dict[str, Any]]] = []
    rejected = Counter[int]()

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while True:
                events = ledger.batch(rng, users[number], items)
                response = ledger.post(http, events)
                if response is None:
                    in_flight.append(events)
                    return
                rejected[number] += not response.is_success

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(users))]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    server.kill()
    for thread in threads:
        thread.join(60)
    return in_flight, rejected.total()


# ---------------------------------------------------------------------------------------------- checks


def audit(acknowledged: Iterable[str], found: Iterable[str]) -> tuple[set[str], int]:
    """(acknowledged ids not found, how many found ids are repeats)."""
    counts = Counter(found)
    return set(acknowledged) - counts.keys(), sum(n - 1 for n in counts.values())


def stored_ids(store: Store, prefix: str) -> list[str]:
    """Client ids of this run's events in the store, one per stored event."""
    history = store.open()
    try:
        return [e.id for e in history.events() if e.id is not None and e.id.startswith(prefix + "-")]
    finally:
        history.close()


def served(server: Server, ledger: Ledger, users: set[str]) -> tuple[set[str], int]:
    """(acknowledged events of ``users`` the server's histories lack, repeated events in them);
    events are told apart by their timestamps, unique within the run."""
    by_time = {(user, t): event_id for event_id, (user, t) in ledger.acknowledged.items()}
    found: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for user in sorted(users):
            response = http.get(f"/users/{user}/history", params={"limit": 500})
            response.raise_for_status()
            times = [e["timestamp"] for e in response.json()["events"]]
            found += [by_time.get((user, t), f"unacknowledged {user} {t}") for t in times]
    return audit([i for i, (user, _) in ledger.acknowledged.items() if user in users], found)


# ---------------------------------------------------------------------------------------------- runs


def kill_cycles(bundle: Path, store: Store, args: argparse.Namespace, log: Path, console: Console) -> dict[str, int]:
    from facetrec.data.dataset import Dataset

    items = [str(i) for i in Dataset.load(bundle / "data").catalog.items.ids]
    rng = random.Random(args.seed)
    ledger = Ledger(f"kill-{secrets.token_hex(4)}")
    lost: set[str] = set()
    duplicates = failures = retried = already = rejected = 0
    slowest = 0.0  # seconds from a restart's launch to its first /healthz answer
    server, _ = start_until_up(bundle, store, args, log, console)
    for cycle in range(args.cycles):
        users = [[f"{ledger.prefix}-c{cycle}-w{w}-u{u}" for u in range(4)] for w in range(args.clients)]
        delay = rng.uniform(*args.kill_after)
        in_flight, refused = post_until_killed(server, ledger, users, items, delay, args.seed * 100_000 + cycle)
        rejected += refused
        missing, repeats = audit(ledger.acknowledged, stored_ids(store, ledger.prefix))
        lost |= missing
        duplicates += repeats
        began = time.perf_counter()
        server, failed = start_until_up(bundle, store, args, log, console)
        failures, slowest = failures + failed, max(slowest, time.perf_counter() - began)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for events in in_flight:  # what a client that lost its response does: the same batch again
                response = ledger.post(http, events)
                if response is None or not response.is_success:
                    rejected += 1
                    continue
                retried += 1
                already += response.json()["duplicates"]
        missing, repeats = served(server, ledger, {u for mine in users for u in mine})
        lost |= missing
        duplicates += repeats
        console.print(
            f"{store.name} cycle {cycle + 1}/{args.cycles}: killed after {delay:.2f} s; so far "
            f"{len(ledger.acknowledged)} acknowledged, {len(lost)} lost, {duplicates} duplicates"
        )
    server.stop()
    missing, repeats = audit(ledger.acknowledged, stored_ids(store, ledger.prefix))
    return {
        "cycles": args.cycles,
        "acknowledged": len(ledger.acknowledged),
        "lost": len(lost | missing),
        "restart_failures": failures,
        "duplicates": duplicates + repeats,
        "slowest_restart_s": round(slowest, 1),
        "retried_batches": retried,
        "retried_events_already_stored": already,
        "rejected": rejected,
    }


def reload_under_load(
    bundles: tuple[Path, Path], store: Store, args: argparse.Namespace, log: Path, console: Console
) -> dict[str, int]:
    from facetrec.data.dataset import Dataset

    data = Dataset.load(bundles[0] / "data")
    known, items = [str(u) for u in data.interactions.users.ids], [str(i) for i in data.catalog.items.ids]
    ledger = Ledger(f"reload-{secrets.token_hex(4)}")
    writers = [f"{ledger.prefix}-u{u}" for u in range(8)]
    server, _ = start_until_up(bundles[0], store, args, log, console)
    answers: Counter[str] = Counter()  # status code, or why no answer came
    lock, done = threading.Lock(), threading.Event()

    def send(request: Callable[[], httpx.Response | None]) -> None:
        try:
            response = request()
            answer = str(response.status_code) if response is not None else "no answer"
        except httpx.TransportError as exc:
            answer = type(exc).__name__
        with lock:
            answers[answer] += 1

    def client(number: int) -> None:
        rng = random.Random(args.seed * 1000 + number)
        params = {"k": 10, "diversity": "mmr", "lambda": 0.7}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            while not done.is_set():
                if number == 0:  # the writer
                    send(lambda: ledger.post(http, ledger.batch(rng, writers, items)))
                else:
                    send(lambda: http.get(f"/users/{rng.choice(known)}/recommendations", params=params))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    for thread in threads:
        thread.start()
    reloads = 0
    with httpx.Client(base_url=server.url, timeout=120) as http:
        for number in range(args.reloads):
            time.sleep(1.0)
            target = bundles[(number + 1) % 2]
            response = http.post("/admin/reload", json={"bundle": str(target)}, headers=AUTH)
            serving = Path(http.get("/healthz").json()["bundle"]).resolve()
            reloads += response.is_success and serving == target.resolve()
        time.sleep(1.0)
    done.set()
    for thread in threads:
        thread.join(60)
    server.stop()
    missing, repeats = audit(ledger.acknowledged, stored_ids(store, ledger.prefix))
    console.print(f"{store.name} reload under load, answers: {dict(answers)}")
    return {
        "requests": answers.total(),
        "errors": sum(n for status, n in answers.items() if not status[0].isdigit() or status[0] == "5"),
        "non_2xx": sum(n for status, n in answers.items() if status[0].isdigit() and status[0] != "2"),
        "reloads": reloads,
        "acknowledged": len(ledger.acknowledged),
        "lost": len(missing),
        "duplicates": repeats,
    }


def throwaway_postgres(stack: ExitStack, parser: argparse.ArgumentParser) -> str:
    """The URL of a PostgreSQL server started for this run (stopped and deleted at the end)."""
    from facetrec.testing.postgres import Unavailable, server

    try:
        return stack.enter_context(server())
    except Unavailable as exc:
        parser.error(f"--stores postgresql: no --postgres-url, and no PostgreSQL server could be started: {exc}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="sqlite", help="Comma-separated: sqlite, postgresql.")
    parser.add_argument(
        "--postgres-url", help="Database for --stores postgresql (default: a throwaway server started for the run)."
    )
    parser.add_argument("--cycles", type=int, default=20, help="Kill/restart cycles per store.")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent client threads.")
    parser.add_argument("--kill-after", type=float, nargs=2, default=(0.3, 2.0), metavar=("MIN", "MAX"),
                        help="The kill comes uniformly in this many seconds after the clients start.")  # fmt: skip
    parser.add_argument("--restart-timeout", type=float, default=120.0, help="Seconds a start has to answer /healthz.")
    parser.add_argument("--reloads", type=int, default=10, help="Bundle reloads under load (0: no reload row).")
    parser.add_argument("--workers", type=int, default=1, help="`facetrec serve --workers`.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "facetrec-durability")
    args = parser.parse_args()
    stores = args.stores.split(",")
    if unknown := set(stores) - {"sqlite", "postgresql"}:
        parser.error(f"--stores: unknown store {sorted(unknown)[0]!r}; use sqlite and/or postgresql")

    console = Console()
    args.work.mkdir(parents=True, exist_ok=True)
    bundles = build_bundles(args.work)
    rows = []
    with ExitStack() as stack:
        if "postgresql" in stores and not args.postgres_url:
            args.postgres_url = throwaway_postgres(stack, parser)
        for name in stores:
            log = args.work / f"server-{name}.log"
            log.unlink(missing_ok=True)
            row = {"dataset": DATASET, "model": MODEL, "store": name, "workers": args.workers}
            scenario = f"SIGKILL at random moments, restart; {args.clients} clients posting"
            metrics = kill_cycles(bundles[0], store_for(name, args, "kill"), args, log, console)
            rows.append({**row, "scenario": scenario, "metrics": metrics})
            if args.reloads:
                scenario = f"{args.reloads} reloads under load; {args.clients - 1} readers (MMR), 1 writer"
                metrics = reload_under_load(bundles, store_for(name, args, "reload"), args, log, console)
                rows.append({**row, "scenario": scenario, "metrics": metrics})

    table = Table(title="faults: kill/restart cycles and reloads under load")
    for column in ("store", "scenario", "metrics"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["store"], row["scenario"], ", ".join(f"{k} {v}" for k, v in row["metrics"].items()))
    console.print(table)
    console.print(f"wrote {write_results('durability', rows)}")


if __name__ == "__main__":
    main()
