"""POST /admin/reload while clients read and write: no request fails, and no event posted during
a reload is missing from the bundle swapped in."""

from __future__ import annotations

import shutil
import threading

import httpx

from .conftest import KEY, start_server

AUTH = {"X-API-Key": KEY}
READERS = 3


def test_three_reloads_under_reads_and_writes_drop_nothing(bundle, data, tmp_path):
    copies = [shutil.copytree(bundle, tmp_path / name) for name in ("v2", "v3")]
    server = start_server(bundle, tmp_path / "events.sqlite", tmp_path / "server.log")
    users = [str(u) for u in data.interactions.users.ids[:30]]
    items = [str(i) for i in data.catalog.items.ids]
    statuses: list[int] = []
    posted: list[str] = []  # items the writer's user clicked, acknowledged, in order
    done = threading.Event()

    def read(number: int) -> None:
        params = {"k": 10, "diversity": "mmr", "lambda": 0.7}
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for n in range(100_000):
                if done.is_set():
                    return
                user = users[(number * 7 + n) % len(users)]
                statuses.append(client.get(f"/users/{user}/recommendations", params=params).status_code)

    def write() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for n in range(100_000):
                if done.is_set():
                    return
                event = {"user": "reload-writer", "item": items[n % len(items)], "timestamp": 2_000_000_000 + n}
                response = client.post("/events", json={**event, "id": f"reload-{n}"}, headers=AUTH)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    posted.append(event["item"])

    def reads_go_on() -> None:
        seen = len(statuses)
        for _ in range(1200):
            if len(statuses) >= seen + 2 * READERS:
                return
            threading.Event().wait(0.05)
        raise AssertionError("the clients stopped getting answers")

    threads = [threading.Thread(target=read, args=(n,)) for n in range(READERS)]
    threads.append(threading.Thread(target=write))
    try:
        for thread in threads:
            thread.start()
        try:
            for target in [*copies, bundle]:
                reads_go_on()
                reloaded = server.client.post("/admin/reload", json={"bundle": str(target)}, headers=AUTH)
                assert reloaded.status_code == 200, reloaded.text
                assert reloaded.json()["bundle"] == str(target)
                assert server.client.get("/healthz").json()["bundle"] == str(target)
            reads_go_on()
        finally:
            done.set()
            for thread in threads:
                thread.join(60)
        assert statuses and set(statuses) == {200}
        history = server.client.get("/users/reload-writer/history", params={"limit": 500}).json()["events"]
        assert [e["item"] for e in history] == posted[-500:]  # every acknowledged event, once, in order
    finally:
        server.stop()
