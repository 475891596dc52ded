"""Hostile and broken input against a real `facetrec serve` process: slow bodies, ids with
control characters, timestamps as strings, every request limit, damaged bundles (reloaded and
served), and a busy recommender. Each answer is a 4xx/503 with one clear line, never a 5xx, a
hang or a traceback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from fastapi.testclient import TestClient

from facetrec.errors import FacetrecError
from facetrec.recommender import Recommender
from facetrec.serving import schemas as s
from facetrec.serving.app import create_app
from facetrec.serving.bundle import check_bundle
from facetrec.serving.service import Service
from facetrec.serving.store import SQLiteHistoryStore

from .conftest import KEY, free_port, start_server

AUTH = {"X-API-Key": KEY}
BODY_TIMEOUT = 1


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    """One server for the module, with a short body timeout."""
    root = tmp_path_factory.mktemp("hardening")
    running = start_server(bundle, root / "events.sqlite", root / "server.log", "--body-timeout", str(BODY_TIMEOUT))
    yield running
    running.stop()


def item(data, i: int) -> str:
    return str(data.catalog.items.id_of(i))


def user(data, u: int = 3) -> str:
    return str(data.interactions.users.id_of(u))


def clear_error(response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert needle in detail, detail
    assert "\n" not in detail and "Traceback" not in response.text


# ---------------------------------------------------------------------------------- slow clients


def raw_exchange(url: str, head: bytes, body: bytes) -> bytes:
    """Send ``head`` and ``body`` on a raw socket, send nothing more, and read until the server
    closes the connection (a 60 s socket timeout guards against a hang)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("sent", [b"", b'{"user": "u'])
def test_a_body_that_never_arrives_gets_a_408_and_the_connection_is_closed(server, sent):
    head = (
        b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"X-API-Key: {KEY}\r\nContent-Length: 100\r\n\r\n".encode()
    )
    answer = raw_exchange(server.url, head, sent)  # returns only because the server closed the connection
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert json.loads(rest.partition(b"\r\n\r\n")[2]) == {
        "detail": f"request body not received within {BODY_TIMEOUT} s"
    }
    assert server.client.get("/healthz").status_code == 200
    assert 'route="/events",status="408"' in server.client.get("/metrics").text


def test_prompt_bodies_are_unaffected_by_the_body_timeout(server, data):
    posted = server.client.post("/events", json={"user": "prompt", "item": item(data, 1)}, headers=AUTH)
    assert posted.status_code == 200 and posted.json()["stored"] == 1


# ---------------------------------------------------------------------------------- ids and timestamps


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("a\x00b", "U+0000"),
        ("tab\there", "U+0009"),
        ("esc\x1b[31m", "U+001B"),
        ("c1\x85", "U+0085"),
        ("line\u2028break", "U+2028"),
        ("rtl\u202eevil", "U+202E"),
        ("zero\u200bwidth", "U+200B"),
    ],
)
def test_ids_with_control_or_invisible_characters_are_refused_everywhere(server, data, bad, code):
    for field in ("user", "item", "id"):
        event = {"user": "u", "item": item(data, 1), field: bad}
        clear_error(server.client.post("/events", json=event, headers=AUTH), 422, f"body.events.0.{field}")
    clear_error(server.client.post("/recommendations", json={"items": [bad]}), 422, "body.items.0")
    clear_error(server.client.post("/admin/items", json={"items": [{"id": bad}]}, headers=AUTH), 422, "items.0.id")
    escaped = quote(bad, safe="")
    for path, name in (
        (f"/users/{escaped}/recommendations", "path.user_id"),
        (f"/users/{escaped}/history", "path.user_id"),
        (f"/users/{escaped}/interests", "path.user_id"),
        (f"/items/{escaped}/similar", "path.item_id"),
    ):
        response = server.client.get(path)
        clear_error(response, 422, name)
        assert code in response.json()["detail"]


@pytest.mark.parametrize(
    "timestamp",
    ['"1700000000"', '"yesterday"', "true", "1.5", "1700000000000", "-1", "NaN", "Infinity", "1e400", "null0"],
)
def test_timestamps_must_be_plain_integer_seconds(server, data, timestamp):
    body = f'{{"user": "ts", "item": "{item(data, 1)}", "timestamp": {timestamp}}}'.encode()
    response = server.client.post("/events", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "timestamp" in response.json()["detail"] or timestamp == "null0"  # null0 is not JSON at all


def test_an_integral_float_timestamp_is_the_same_integer(server, data):
    event = {"user": "float-ts", "item": item(data, 1), "timestamp": 1_700_000_000.0}
    assert server.client.post("/events", json=event, headers=AUTH).status_code == 200
    assert server.client.get("/users/float-ts/history").json()["events"][0]["timestamp"] == 1_700_000_000


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"rating": "5"}, "rating"),
        ({"rating": 1e9}, "rating"),
        ({"event": 1}, "event"),
        ({"review": "nul\x00"}, "review"),
        ({"user": 42}, "user"),
    ],
)
def test_other_event_fields_are_strict_too(server, data, body, needle):
    event = {"user": "strict", "item": item(data, 1), **body}
    clear_error(server.client.post("/events", json=event, headers=AUTH), 422, needle)


# ---------------------------------------------------------------------------------- limits


def limits(data):
    one = item(data, 1)
    return [
        ("get", f"/users/{user(data)}/recommendations", {"params": {"k": s.MAX_K + 1}}, 422, "query.k"),
        ("post", "/recommendations", {"json": {"items": [one], "k": s.MAX_K + 1}}, 422, "body.k"),
        ("post", "/recommendations", {"json": {"items": [one] * (s.MAX_SESSION + 1)}}, 422, "body.items"),
        ("post", "/recommendations", {"json": {"text": "x" * (s.MAX_TEXT + 1)}}, 422, "body.text"),
        ("post", "/recommendations", {"json": {"items": [one], "text": "a"}}, 422, "exactly one"),
        ("post", "/recommendations", {"json": {"items": None, "text": "a"}}, 422, "body.items"),
        ("post", "/recommendations", {"json": {"k": 5}}, 422, "exactly one"),
        ("post", "/events", {"json": {"events": [{"user": "u", "item": one}] * (s.MAX_BATCH + 1)}}, 422, "events"),
        ("post", "/events", {"json": {"user": "u", "item": one, "review": "r" * 20_001}}, 422, "review"),
        ("post", "/events", {"json": {"user": "u" * (s.MAX_ID + 1), "item": one}}, 422, "events.0.user"),
        ("post", "/admin/items", {"json": {"items": [{"id": f"n{i}"} for i in range(s.MAX_BATCH + 1)]}}, 422, "items"),
        ("post", "/admin/items", {"json": {"items": [{"id": "n", "tags": ["t"] * 101}]}}, 422, "tags"),
        ("post", "/events", {"content": b"x" * (s.MAX_BODY_BYTES + 1)}, 413, "bytes"),
        ("post", "/events", {"content": b'{"user": "\xc3\x28"}'}, 422, "UTF-8"),
        ("get", f"/users/{user(data)}/history", {"params": {"limit": 501}}, 422, "query.limit"),
        ("get", "/users", {"params": {"limit": 1001}}, 422, "query.limit"),
    ]


def test_every_request_limit_is_a_clear_client_error(server, data):
    for method, path, kwargs, status, needle in limits(data):
        headers = {**AUTH, "content-type": "application/json"} if method == "post" else {}
        response = getattr(server.client, method)(path, headers=headers, **kwargs)
        clear_error(response, status, needle)


# ---------------------------------------------------------------------------------- damaged bundles


def damaged(bundle: Path, tmp_path: Path, damage: str) -> Path:
    """A copy of ``bundle`` with one kind of damage."""
    copy = tmp_path / damage.replace(" ", "-")
    shutil.copytree(bundle, copy)
    target = {
        "truncate state": copy / "scorer" / "state.safetensors",
        "truncate scorer manifest": copy / "scorer" / "manifest.json",
        "truncate manifest": copy / "manifest.json",
        "truncate items": copy / "data" / "items.parquet",
        "truncate embeddings": copy / "embeddings" / "text.safetensors",
    }.get(damage)
    if target is not None:
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "missing interactions":
        (copy / "data" / "interactions.parquet").unlink()
    elif damage == "crafted class":
        manifest = json.loads((copy / "scorer" / "manifest.json").read_text())
        (copy / "scorer" / "manifest.json").write_text(json.dumps({**manifest, "class": "os.system"}))
    return copy


DAMAGE = {
    "truncate state": "state.safetensors",
    "truncate scorer manifest": "scorer/manifest.json: cannot be read",
    "truncate manifest": "manifest.json: cannot be read",
    "truncate items": "items.parquet: not a complete Parquet file",
    "truncate embeddings": "text.safetensors",
    "missing interactions": "interactions.parquet",
    "crafted class": "'os.system' is not a registered facetrec model",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_bundle_is_one_clear_error_before_it_is_loaded(bundle, tmp_path, damage):
    copy = damaged(bundle, tmp_path, damage)
    with pytest.raises(FacetrecError) as err:
        check_bundle(copy)
    assert DAMAGE[damage] in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", ["truncate state", "truncate scorer manifest", "missing interactions"])
def test_recommender_load_of_a_damaged_bundle_is_a_facetrec_error(bundle, tmp_path, damage):
    with pytest.raises(FacetrecError) as err:
        Recommender.load(damaged(bundle, tmp_path, damage))
    assert DAMAGE[damage] in str(err.value) and "\n" not in str(err.value)


def test_reloading_a_damaged_bundle_is_refused_and_the_old_one_keeps_serving(server, bundle, data, tmp_path):
    before = server.client.get(f"/users/{user(data)}/recommendations", params={"k": 10}).json()
    for damage in ("truncate state", "truncate manifest", "crafted class", "missing interactions"):
        response = server.client.post(
            "/admin/reload", json={"bundle": str(damaged(bundle, tmp_path, damage))}, headers=AUTH
        )
        clear_error(response, 422, "reload refused, still serving")
        assert DAMAGE[damage] in response.json()["detail"]
    clear_error(server.client.post("/admin/reload", json={"bundle": "x" * 4000}, headers=AUTH), 422, "not a bundle")
    assert server.client.get(f"/users/{user(data)}/recommendations", params={"k": 10}).json() == before
    assert server.client.get("/healthz").json()["bundle"] == str(bundle.resolve())


@pytest.mark.parametrize("damage", ["truncate state", "crafted class"])
def test_serving_a_damaged_bundle_prints_one_line_and_exits(bundle, tmp_path, damage):
    copy = damaged(bundle, tmp_path, damage)
    args = [sys.executable, "-m", "facetrec", "serve", "--bundle", str(copy), "--port", str(free_port())]
    args += ["--events", str(tmp_path / "events.sqlite"), "--api-key", "k"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and DAMAGE[damage] in done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()] == [done.stderr.strip()]
    assert not (tmp_path / "events.sqlite").exists()


# ---------------------------------------------------------------------------------- busy


def test_a_request_that_cannot_reach_the_recommender_in_time_is_a_503(bundle, tmp_path):
    store = SQLiteHistoryStore(tmp_path / "events.sqlite")
    service = Service.open(bundle, store, warm_users=10)
    service.lock_timeout = 0.1
    client = TestClient(create_app(service, KEY))
    holding, release = threading.Event(), threading.Event()

    def hold_the_recommender() -> None:
        with service._serial():  # what a long request does
            holding.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_recommender)
    holder.start()
    try:
        holding.wait(60)
        response = client.get("/healthz")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]
    finally:
        release.set()
        holder.join()
    assert client.get("/healthz").status_code == 200
    store.close()
