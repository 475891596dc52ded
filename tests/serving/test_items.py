"""Catalogue items added while serving: stored durably, added by every worker, encoded alone,
recommendable at once by a model that scores cold items, and part of the next retraining."""

from __future__ import annotations

from fastapi.testclient import TestClient

from facetrec.serving.retrain import retrain
from facetrec.serving.server import build
from facetrec.serving.store import SQLiteHistoryStore

from .conftest import KEY

AUTH = {"X-API-Key": KEY}


def twin_of(data, i: int, item_id: str) -> dict:
    """A new item with the text of catalogue item ``i``."""
    c = data.catalog
    return {
        "id": item_id,
        "title": c.text["title"][i],
        "description": c.text.get("description", [""] * len(c))[i],
        "categories": list(c.categories[i]),
        "tags": list(c.tags[i]),
    }


def test_items_added_while_serving_are_recommendable_at_once_and_on_every_worker(bundle, data, tmp_path):
    events = tmp_path / "events.sqlite"
    n = len(data.catalog)
    user = str(data.interactions.users.id_of(3))
    with TestClient(build(bundle, events, KEY)) as one, TestClient(build(bundle, events, KEY)) as two:
        everything = {"k": 100}
        before = [r["item"] for r in one.get(f"/users/{user}/recommendations", params=everything).json()["items"]]
        assert "new-1" not in before
        assert one.post("/admin/items", json={"items": [twin_of(data, 5, "new-1")]}).status_code == 401
        answer = one.post("/admin/items", json={"items": [twin_of(data, 5, "new-1")]}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"added": 1, "items": n + 1}
        again = one.post("/admin/items", json={"items": [twin_of(data, 5, "new-1")]}, headers=AUTH)
        assert again.json() == {"added": 0, "items": n + 1}  # a retried request adds nothing

        for client in (one, two):  # the other worker adds it from the store on its next request
            assert client.get("/healthz").json()["items"] == n + 1
            listed = client.get(f"/users/{user}/recommendations", params=everything).json()["items"]
            assert "new-1" in {r["item"] for r in listed}  # the facet model scores it through its text
            assert client.get("/items/new-1/similar", params={"k": 3}).status_code == 200

        posted = one.post("/events", json={"user": user, "item": "new-1", "timestamp": 2_000_000_000}, headers=AUTH)
        assert posted.status_code == 200, posted.text
        history = two.get(f"/users/{user}/history", params={"limit": 1}).json()["events"]
        assert history[-1]["item"] == "new-1"

        # an event naming an item another worker just added is accepted at once
        assert one.post("/admin/items", json={"items": [twin_of(data, 6, "new-2")]}, headers=AUTH).status_code == 200
        event = {"user": user, "item": "new-2", "timestamp": 2_000_000_001}
        assert two.post("/events", json=event, headers=AUTH).status_code == 200

        bad = one.post("/admin/items", json={"items": [{"id": "x", "colour": "red"}]}, headers=AUTH)
        assert bad.status_code == 422

    store = SQLiteHistoryStore(events)
    try:
        manifest, folded = retrain(bundle, store, tmp_path / "v2", epochs=1)
    finally:
        store.close()
    assert folded == 2
    from facetrec.recommender import Recommender

    retrained = Recommender.load(manifest.parent)
    assert "new-1" in retrained.items and len(retrained.catalog) == n + 2
    assert retrained.scorer.n_items_ == n + 2  # trained on the grown catalogue
    original = Recommender.load(bundle)  # retrained with the same seed, event filter and item encoder:
    assert {k: retrained.fit_settings[k] for k in ("seed", "first_only")} == {
        k: original.fit_settings[k] for k in ("seed", "first_only")
    }
    assert retrained.encoder.config == original.encoder.config
