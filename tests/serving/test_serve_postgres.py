"""`facetrec serve --store postgresql://...` and `facetrec retrain --store`: real server processes
on a real PostgreSQL server (skipped, saying why, when none can be started)."""

from __future__ import annotations

import json
import subprocess
import sys

from facetrec.serving.store import open_store
from facetrec.testing.postgres import postgres_url_fixture  # noqa: F401  (the postgres_url fixture)

from .conftest import KEY, start_server


def test_two_workers_share_a_postgresql_store_and_retrain_reads_it(bundle, data, postgres_url, tmp_path):
    server = start_server(bundle, postgres_url, tmp_path / "server.log", "--workers", "2")
    try:
        items = [str(data.catalog.items.id_of(i)) for i in range(5)]
        events = [
            {"user": "pg-user", "item": i, "timestamp": 1_700_000_000 + n, "id": f"pg-{n}"} for n, i in enumerate(items)
        ]
        first = server.client.post("/events", json={"events": events}, headers={"X-API-Key": KEY})
        retried = server.client.post("/events", json={"events": events}, headers={"X-API-Key": KEY})
        assert first.status_code == retried.status_code == 200, first.text
        assert (first.json()["stored"], retried.json()["stored"], retried.json()["duplicates"]) == (5, 0, 5)
        for _ in range(6):  # new connections: both workers answer, each from the shared store
            answer = server.client.get("/users/pg-user/history", headers={"Connection": "close"})
            assert answer.status_code == 200, answer.text
            assert [e["timestamp"] for e in answer.json()["events"]][-5:] == [e["timestamp"] for e in events]
    finally:
        server.stop()  # SIGTERM: uvicorn stops its workers (a SIGKILL would orphan them)
    store = open_store(postgres_url)
    try:
        assert store.count() == 5 and "pg-user" in store
        published = store.published()[1]
    finally:
        store.close()
    assert published is not None and published.resolve() == bundle.resolve()
    out = tmp_path / "v2"
    args = [sys.executable, "-m", "facetrec", "retrain", "--bundle", str(bundle), "--store", postgres_url]
    done = subprocess.run([*args, "--out", str(out), "--epochs", "1", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events_folded"] == 5
    assert json.loads((out / "serving.json").read_text())["last_event_id"] == 5


def test_serve_refuses_two_stores_and_a_bad_location(bundle, tmp_path):
    base = [sys.executable, "-m", "facetrec", "serve", "--bundle", str(bundle), "--api-key", KEY]
    both = [*base, "--store", "postgresql://x/y", "--events", str(tmp_path / "e.sqlite")]
    both = subprocess.run(both, capture_output=True, text=True, timeout=120)
    assert both.returncode != 0 and "--store or --events" in both.stderr
    bad = subprocess.run([*base, "--store", "mysql://host/db"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "mysql:" in bad.stderr and "unknown kind" in bad.stderr
