"""Crash safety: SIGKILL the server while events stream in; every acknowledged event survives."""

from __future__ import annotations

import threading

import httpx

from facetrec.serving.store import SQLiteHistoryStore

from .conftest import KEY, start_server


def test_every_acknowledged_event_survives_sigkill_and_restart(bundle, data, tmp_path):
    events = tmp_path / "events.sqlite"
    server = start_server(bundle, events, tmp_path / "server.log")
    items = [str(i) for i in data.catalog.items.ids]
    acknowledged: list[tuple[int, str, str]] = []  # (last_id, user, item)
    lock, killed = threading.Lock(), threading.Event()

    def stream(writer: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for n in range(10_000):
                user, item = f"crash-{writer}", items[(writer * 7 + n) % len(items)]
                try:
                    response = client.post("/events", json={"user": user, "item": item}, headers={"X-API-Key": KEY})
                except httpx.TransportError:
                    return  # the server died mid-request: not acknowledged
                assert response.status_code == 200, response.text
                with lock:
                    acknowledged.append((response.json()["last_id"], user, item))
                    if len(acknowledged) >= 60:
                        killed.set()

    writers = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
    for w in writers:
        w.start()
    assert killed.wait(120), "the stream never got going"
    server.kill()
    for w in writers:
        w.join(30)

    stored = {e.seq: e for e in SQLiteHistoryStore(events).since()}
    for last_id, user, item in acknowledged:
        assert last_id in stored and (stored[last_id].user_id, stored[last_id].item_id) == (user, item)

    restarted = start_server(bundle, events, tmp_path / "server.log")
    try:
        for writer in range(3):
            mine = [item for _, user, item in sorted(acknowledged) if user == f"crash-{writer}"]
            history = restarted.client.get(f"/users/crash-{writer}/history", params={"limit": 500}).json()["events"]
            got = [e["item"] for e in history]
            assert got[: len(mine)] == mine  # every acknowledged event, in order (maybe one more, unacknowledged)
            assert restarted.client.get(f"/users/crash-{writer}/recommendations").status_code == 200
    finally:
        restarted.stop()
