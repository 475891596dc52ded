"""The HTTP API against a real `facetrec serve` process on a loopback port."""

from __future__ import annotations

import pytest

from facetrec.content.text import item_texts

from .conftest import KEY

AUTH = {"X-API-Key": KEY}


def user(data, u: int = 3) -> str:
    return str(data.interactions.users.id_of(u))


def seen(data, u: int = 3) -> set[str]:
    return set(data.interactions.items.id_of(data.interactions.item_idx[data.interactions.user_idx == u]))


def item(data, i: int) -> str:
    return str(data.catalog.items.id_of(i))


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["item"] for row in response.json()["items"]]


def test_health_openapi_page_and_metrics(server, data):
    health = server.client.get("/healthz").json()
    assert health["status"] == "ok" and health["items"] == len(data.catalog)
    paths = server.client.get("/openapi.json").json()["paths"]
    for path in (
        "/events",
        "/recommendations",
        "/users/{user_id}/recommendations",
        "/users/{user_id}/interests",
        "/items/{item_id}/similar",
        "/admin/reload",
        "/healthz",
        "/metrics",
    ):
        assert path in paths
    page = server.client.get("/")
    assert page.status_code == 200 and "<title>facetrec</title>" in page.text
    assert server.client.get("/static/app.js").status_code == 200
    metrics = server.client.get("/metrics").text
    assert 'facetrec_requests_total{method="GET",route="/healthz",status="200"} ' in metrics
    assert 'facetrec_request_duration_seconds_bucket{le="+Inf",method="GET",route="/openapi.json"} 1.0' in metrics
    assert "facetrec_applied_event " in metrics


def test_user_recommendations_with_explanations_and_diversity(server, data):
    plain = server.client.get(f"/users/{user(data)}/recommendations", params={"k": 5})
    assert len(ids(plain)) == 5 and not set(ids(plain)) & seen(data)
    explained = server.client.get(
        f"/users/{user(data)}/recommendations", params={"k": 8, "explain": "true", "diversity": "mmr", "lambda": 0.3}
    )
    body = explained.json()
    assert len(ids(explained)) == 8 and body["interests"]
    for row in body["items"]:
        assert row["title"] and row["explanation"].startswith("Because you liked")
        assert row["label"] == body["interests"][row["interest"]]
        assert row["because"] and set(row["because"]) <= seen(data)
    assert ids(explained) != ids(server.client.get(f"/users/{user(data)}/recommendations", params={"k": 8}))


def test_posted_events_change_the_next_recommendations(server, data):
    u = user(data, 5)
    before = ids(server.client.get(f"/users/{u}/recommendations", params={"k": 10}))
    batch = {
        "events": [
            {"user": u, "item": i, "event": "click", "timestamp": 2_000_000_000 + n} for n, i in enumerate(before[:3])
        ]
    }
    stored = server.client.post("/events", json=batch, headers=AUTH)
    assert stored.status_code == 200 and stored.json()["stored"] == 3
    purchase = {"user": u, "item": before[3], "event": "purchase", "timestamp": 2_000_000_003}
    one = server.client.post("/events", json=purchase, headers=AUTH)
    assert one.status_code == 200 and one.json()["last_id"] == stored.json()["last_id"] + 1
    after = ids(server.client.get(f"/users/{u}/recommendations", params={"k": 10}))
    assert not set(before[:4]) & set(after) and after != before
    history = server.client.get(f"/users/{u}/history", params={"limit": 4}).json()["events"]
    assert [e["item"] for e in history] == before[:4] and history[-1]["event"] == "purchase"


def test_a_retried_batch_with_event_ids_counts_once(server, data):
    batch = {
        "events": [{"user": "retry", "item": item(data, i), "id": f"retry-{i}", "timestamp": 10 + i} for i in (1, 2)]
    }
    first = server.client.post("/events", json=batch, headers=AUTH).json()
    again = server.client.post("/events", json=batch, headers=AUTH).json()
    assert first["stored"] == 2 and first["duplicates"] == 0
    assert again == {"stored": 0, "duplicates": 2, "last_id": first["last_id"]}
    history = server.client.get("/users/retry/history").json()["events"]
    assert [e["item"] for e in history] == [item(data, 1), item(data, 2)]
    assert "id" in server.client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]["properties"]


def test_a_new_user_exists_from_their_first_event(server, data):
    assert server.client.get("/users/newcomer/recommendations").status_code == 404
    server.client.post("/events", json={"user": "newcomer", "item": item(data, 1)}, headers=AUTH).raise_for_status()
    assert item(data, 1) not in ids(server.client.get("/users/newcomer/recommendations", params={"k": 5}))
    assert "newcomer" in server.client.get("/users", params={"limit": 1000}).json()["users"]


def test_interests_have_labels_weights_and_examples_from_the_history(server, data):
    body = server.client.get(f"/users/{user(data)}/interests").json()
    interests = body["interests"]
    assert interests and abs(sum(i["weight"] for i in interests) - 1) < 1e-3
    for interest in interests:
        assert interest["label"] and interest["examples"]
        assert {e["item"] for e in interest["examples"]} <= seen(data)


def test_similar_items(server, data):
    body = server.client.get(f"/items/{item(data, 7)}/similar", params={"k": 4}).json()
    assert body["title"] == data.catalog.title(7)
    assert len(body["similar"]) == 4 and item(data, 7) not in {r["item"] for r in body["similar"]}


def test_anonymous_session_of_item_ids(server, data):
    history = [item(data, i) for i in (1, 2, 3)]
    found = ids(server.client.post("/recommendations", json={"items": history, "k": 5}))
    assert len(found) == 5 and not set(history) & set(found)
    again = server.client.post("/recommendations", json={"items": history, "k": 5, "diversity": "none"})
    assert ids(again) == found


def test_free_text_is_placed_among_the_items_by_the_same_encoder(server, data):
    text = item_texts(data.catalog)[11]  # an item's own text lands on that item
    body = server.client.post("/recommendations", json={"text": text, "k": 5, "explain": True}).json()
    assert body["matched"][0] == item(data, 11) and len(body["items"]) == 5
    assert not set(body["matched"]) & {r["item"] for r in body["items"]}
    nothing = server.client.post("/recommendations", json={"text": "qqqzzz xxyyzz"})
    assert nothing.status_code == 422 and "no word" in nothing.json()["detail"]


def test_writes_need_the_api_key(server, data):
    history = server.client.get(f"/users/{user(data)}/history", params={"limit": 500}).json()["events"]
    event = {"user": user(data), "item": item(data, 2)}
    missing = server.client.post("/events", json=event)
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["detail"]
    wrong = server.client.post("/events", json=event, headers={"X-API-Key": KEY + "x"})
    assert wrong.status_code == 403 and "wrong API key" in wrong.json()["detail"]
    assert server.client.post("/admin/reload", json={}).status_code == 401
    assert server.client.get(f"/users/{user(data)}/history", params={"limit": 500}).json()["events"] == history


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"),
    [
        ("post", "/events", {"json": {"user": "u", "item": "nope"}}, 404, "'nope'"),
        ("post", "/events", {"json": {"user": "u"}}, 422, "events.0.item"),
        ("post", "/events", {"json": {"user": "u", "item": "x", "event": "like"}}, 422, "event"),
        ("post", "/events", {"json": {"user": "u", "item": "x", "timestamp": "yesterday"}}, 422, "timestamp"),
        ("post", "/events", {"json": {"events": []}}, 422, "events"),
        ("post", "/events", {"json": {"events": [{"user": "u", "item": "x"}] * 1001}}, 422, "events"),
        (
            "post",
            "/events",
            {"content": b'{"user": "u", "item":', "headers": {"content-type": "application/json"}},
            422,
            "body",
        ),
        ("post", "/events", {"content": b"x" * ((1 << 20) + 1)}, 413, "bytes"),
        ("post", "/recommendations", {"json": {"items": ["nope"]}}, 404, "'nope'"),
        ("post", "/recommendations", {"json": {"k": 5}}, 422, "exactly one"),
        ("post", "/recommendations", {"json": {"items": ["1"], "text": "a"}}, 422, "exactly one"),
        ("post", "/recommendations", {"json": {"items": ["1"], "k": 1000}}, 422, "k"),
        ("get", "/users/{user}/recommendations", {"params": {"k": 0}}, 422, "query.k"),
        ("get", "/users/{user}/recommendations", {"params": {"k": 101}}, 422, "query.k"),
        ("get", "/users/{user}/recommendations", {"params": {"lambda": 1.5}}, 422, "query.lambda"),
        ("get", "/users/{user}/recommendations", {"params": {"diversity": "random"}}, 422, "query.diversity"),
        ("get", "/users/nobody/recommendations", {}, 404, "'nobody'"),
        ("get", "/users/nobody/interests", {}, 404, "'nobody'"),
        ("get", "/items/nope/similar", {}, 404, "'nope'"),
        ("get", "/items/{item}/similar", {"params": {"k": "ten"}}, 422, "query.k"),
    ],
)
def test_bad_input_is_a_clear_client_error_without_a_trace(server, data, method, path, kwargs, status, needle):
    path = path.format(user=user(data), item=item(data, 0))
    headers = {**AUTH, **kwargs.pop("headers", {})} if method == "post" else {}
    response = getattr(server.client, method)(path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert needle in detail and "Traceback" not in response.text and 'File "' not in response.text


def test_rejected_events_store_nothing(server, data):
    before = server.client.get("/healthz").json()
    batch = {"events": [{"user": "z", "item": item(data, 1)}, {"user": "z", "item": "missing-item"}]}
    response = server.client.post("/events", json=batch, headers=AUTH)
    assert response.status_code == 404 and "events[1].item" in response.json()["detail"]
    assert server.client.get("/healthz").json() == before
    assert server.client.get("/users/z/history").status_code == 404


def test_the_server_binds_to_loopback_unless_told_otherwise(server):
    import inspect

    from facetrec.cli import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")
