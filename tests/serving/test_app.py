"""App behaviour that is hard to provoke in a healthy server: crashes, chunked bodies, no key."""

from __future__ import annotations

from fastapi.testclient import TestClient

from facetrec.serving.app import create_app


class Broken:
    """A service whose every answer fails the way a bug would."""

    applied = 0

    def recommend(self, *args, **kwargs):
        raise RuntimeError("secret internal state /home/me/model.bin")

    def add(self, events):
        raise AssertionError("never reached")


def test_unexpected_errors_are_a_500_without_a_trace():
    client = TestClient(create_app(Broken(), "k"), raise_server_exceptions=False)
    response = client.get("/users/u/recommendations")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (logged on the server)"}
    assert "secret" not in response.text and "Traceback" not in response.text
    metrics = client.get("/metrics").text
    assert 'route="/users/{user_id}/recommendations",status="500"' in metrics


def test_writes_are_refused_when_no_key_is_configured():
    client = TestClient(create_app(Broken(), None))
    response = client.post("/events", json={"user": "u", "item": "i"}, headers={"X-API-Key": ""})
    assert response.status_code == 403 and "--api-key" in response.json()["detail"]


def test_chunked_bodies_over_the_limit_are_refused():
    client = TestClient(create_app(Broken(), "k"))

    def chunks():
        for _ in range(20):
            yield b"x" * 100_000

    response = client.post("/events", content=chunks(), headers={"X-API-Key": "k"})
    assert response.status_code == 413 and "bytes" in response.json()["detail"]
