"""`facetrec serve --workers 2`: two real worker processes behind one port share the event store,
so an event acknowledged by one is in the very next answer of the other."""

from __future__ import annotations

import httpx
import pytest

from .conftest import KEY, Server, start_server

AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def two(bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    running = start_server(bundle, root / "events.sqlite", root / "server.log", "--workers", "2")
    yield running
    running.stop()


def connections(server: Server, tries: int = 200) -> dict[int, httpx.Client]:
    """One keep-alive connection to each worker (which process accepts a connection is the
    kernel's choice, so open new ones until both have answered; each waits for its worker's start)."""
    found: dict[int, httpx.Client] = {}
    for _ in range(tries):
        client = httpx.Client(base_url=server.url, timeout=60)
        pid = client.get("/healthz").json()["worker"]
        if pid in found:
            client.close()
        else:
            found[pid] = client
        if len(found) == 2:
            return found
    raise AssertionError(f"only workers {sorted(found)} answered {tries} new connections")


def test_an_event_posted_to_one_worker_is_in_every_next_answer_of_the_other(two, data):
    clients = connections(two)
    items = [str(i) for i in data.catalog.items.ids]
    user = str(data.interactions.users.id_of(9))
    try:
        for round_, (writer, reader) in enumerate([tuple(clients), tuple(reversed(clients))] * 3):
            before = clients[reader].get(f"/users/{user}/recommendations", params={"k": 10}).json()["items"]
            clicked = before[0]["item"]
            event = {"user": user, "item": clicked, "timestamp": 2_000_000_000 + round_, "id": f"w-{round_}"}
            posted = clients[writer].post("/events", json=event, headers=AUTH)
            assert posted.status_code == 200 and posted.json()["stored"] == 1
            for _ in range(5):  # the other worker, at once and every time after
                history = clients[reader].get(f"/users/{user}/history", params={"limit": 1}).json()["events"]
                assert history[-1]["item"] == clicked
                listed = clients[reader].get(f"/users/{user}/recommendations", params={"k": 10}).json()["items"]
                assert clicked not in {row["item"] for row in listed}
            assert clients[reader].get("/healthz").json()["applied"] == posted.json()["last_id"]
        newcomer = {"user": "only-posted", "item": items[3]}
        first, second = list(clients)
        clients[first].post("/events", json=newcomer, headers=AUTH).raise_for_status()
        assert clients[second].get("/users/only-posted/recommendations").status_code == 200
        counts = [{k: v for k, v in clients[w].get("/healthz").json().items() if k != "worker"} for w in clients]
        assert counts[0] == counts[1]
    finally:
        for client in clients.values():
            client.close()
