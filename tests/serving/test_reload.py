"""Offline retraining with `facetrec retrain`, and swapping bundles without downtime."""

from __future__ import annotations

import json
import threading

import httpx
from typer.testing import CliRunner

from facetrec.cli import app

from .conftest import KEY, start_server

AUTH = {"X-API-Key": KEY}


def test_retrain_then_reload_without_downtime_or_double_counting(bundle, data, tmp_path):
    events = tmp_path / "events.sqlite"
    server = start_server(bundle, events, tmp_path / "server.log")
    items = [str(i) for i in data.catalog.items.ids]
    try:
        batch = [{"user": "fresh", "item": items[i], "timestamp": 2_000_000_000 + i} for i in range(5)]
        server.client.post("/events", json={"events": batch}, headers=AUTH).raise_for_status()

        result = CliRunner().invoke(
            app,
            [
                "retrain",
                "--bundle",
                str(bundle),
                "--events",
                str(events),
                "--out",
                str(tmp_path / "v2"),
                "--epochs",
                "1",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"bundle": str(tmp_path / "v2"), "events_folded": 5}
        assert json.loads((tmp_path / "v2" / "serving.json").read_text())["last_event_id"] == 5

        late = {"user": "fresh", "item": items[9], "timestamp": 2_000_000_100}
        server.client.post("/events", json=late, headers=AUTH).raise_for_status()

        statuses, done = [], threading.Event()

        def read() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not done.is_set():
                    statuses.append(client.get("/users/fresh/recommendations").status_code)

        def wait_for(n: int) -> None:
            for _ in range(600):
                if len(statuses) >= n:
                    return
                threading.Event().wait(0.05)

        reader = threading.Thread(target=read)
        reader.start()
        wait_for(2)
        assert server.client.post("/admin/reload", json={"bundle": str(tmp_path / "v2")}).status_code == 401
        reloaded = server.client.post("/admin/reload", json={"bundle": str(tmp_path / "v2")}, headers=AUTH)
        wait_for(len(statuses) + 2)  # reads go on after the swap
        done.set()
        reader.join()
        assert reloaded.status_code == 200 and reloaded.json()["bundle"] == str(tmp_path / "v2")
        assert statuses and set(statuses) == {200}

        history = [e["item"] for e in server.client.get("/users/fresh/history").json()["events"]]
        assert history == [items[i] for i in (0, 1, 2, 3, 4, 9)]  # in the bundle once, plus the late one
        missing = server.client.post("/admin/reload", json={"bundle": str(tmp_path / "nope")}, headers=AUTH)
        assert missing.status_code == 422 and "no manifest.json" in missing.json()["detail"]
    finally:
        server.stop()

    restarted = start_server(tmp_path / "v2", events, tmp_path / "server.log")
    try:
        history = [e["item"] for e in restarted.client.get("/users/fresh/history").json()["events"]]
        assert history == [items[i] for i in (0, 1, 2, 3, 4, 9)]
    finally:
        restarted.stop()


def test_retrain_needs_an_existing_event_store(bundle, tmp_path):
    result = CliRunner().invoke(
        app, ["retrain", "--bundle", str(bundle), "--events", str(tmp_path / "none.sqlite"), "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "does not exist" in result.output
