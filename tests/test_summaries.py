"""Interest summaries against a real OpenAI-compatible HTTP server in this test session
(``facetrec.testing.chat_server``: a tiny random-weight GPT-2 behind FastAPI), never a mock."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.summaries import (
    MAX_NAME,
    SYSTEM,
    Evidence,
    LLMConfig,
    Summarizer,
    evidence,
    parse_summary,
    prompt,
)
from facetrec.testing.chat_server import ChatServer, Message, TinyChatModel, chat_text
from facetrec.types import ItemCatalog, UserState, object_array

REPLY = {"name": "Space horror", "sentence": "You like dread aboard ships far from home."}
SCI_FI = Evidence("sci-fi, horror", (("Alien (1979)", ("Sci-Fi", "Horror")), ("The Thing (1982)", ("Horror",))))
COMEDY = Evidence("comedy", (("Airplane! (1980)", ("Comedy",)),))


@pytest.fixture(scope="module")
def lm() -> TinyChatModel:
    return TinyChatModel(seed=0)


@pytest.fixture
def chat(lm) -> Iterator[ChatServer]:
    """A chat endpoint answering ``REPLY`` as JSON inside a code fence, as chat models often do."""
    with ChatServer(reply=f"Sure!\n```json\n{json.dumps(REPLY)}\n```", lm=lm) as server:
        yield server


def config(chat: ChatServer, **overrides) -> LLMConfig:
    return LLMConfig(**{"url": chat.url, "model": chat.model, "budget": 60.0, "cooldown": 0.0, **overrides})


def ask(cfg: LLMConfig, interests: list[Evidence]):
    summarizer = Summarizer(cfg)
    try:
        return summarizer.summarize(interests)
    finally:
        summarizer.close()


def test_the_chat_server_speaks_openai(lm):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name: Alien; Heat"}]
    with ChatServer(lm=lm) as chat, httpx.Client(base_url=chat.url, timeout=60) as client:
        assert client.get("/models").json()["data"][0]["id"] == chat.model
        answer = client.post("/chat/completions", json={"model": chat.model, "messages": messages, "max_tokens": 12})
        assert answer.status_code == 200
        body = answer.json()
        assert body["object"] == "chat.completion" and body["model"] == chat.model
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
        assert choice["finish_reason"] in ("stop", "length")
        usage = body["usage"]
        assert usage["prompt_tokens"] == len(chat_text([Message(**m) for m in messages]).encode())
        assert 1 <= usage["completion_tokens"] <= 12
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        wrong = client.post("/chat/completions", json={"model": "gpt-none", "messages": messages})
        assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "model_not_found"
        bad = client.post("/chat/completions", json={"model": chat.model, "messages": []})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("messages")
        long = client.post(
            "/chat/completions", json={"model": chat.model, "messages": [{"role": "user", "content": "x" * 5000}]}
        )
        assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"
    assert len(chat.requests) == 3  # every well-formed request is recorded, refused ones too


def test_request_contract_and_parsed_summaries(chat):
    cfg = config(chat, api_key="sk-test", max_tokens=80)
    found = ask(cfg, [SCI_FI, COMEDY])
    assert [(s.name, s.sentence, s.source, s.reason) for s in found] == [
        (REPLY["name"], REPLY["sentence"], "llm", None)
    ] * 2
    assert len(chat.requests) == 2
    for request, interest in zip(sorted(chat.requests, key=lambda r: str(r["body"])), [COMEDY, SCI_FI], strict=True):
        body = request["body"]
        assert request["authorization"] == "Bearer sk-test"
        assert body["model"] == chat.model and body["max_tokens"] == 80 and body["temperature"] == 0
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == SYSTEM and "JSON" in SYSTEM
        user = body["messages"][1]["content"]
        assert interest.label in user
        for title, categories in interest.items:
            assert title in user and all(c in user for c in categories)
        assert sum(len(m["content"]) for m in body["messages"]) <= cfg.max_prompt_chars


def test_the_prompt_is_capped_and_keeps_the_most_attended_items(chat):
    many = Evidence("long", tuple((f"{i:03d} " + "t" * 300, ("Drama",) * 20) for i in range(50)))
    cfg = config(chat, max_prompt_chars=1000)
    messages = prompt(many, cfg.max_prompt_chars)
    assert sum(len(m["content"]) for m in messages) <= 1000
    user = messages[1]["content"]
    assert "000 " in user and "049 " not in user  # the least attended items are dropped first
    assert user.count("Drama") <= 5 * user.count("\n- ")  # at most MAX_CATEGORIES per item
    tiny = LLMConfig(url=chat.url, model=chat.model, max_prompt_chars=len(SYSTEM) + 200)
    huge = Evidence("x", (("y" * 5000, ()),))
    assert sum(len(m["content"]) for m in prompt(huge, tiny.max_prompt_chars)) <= tiny.max_prompt_chars
    assert ask(cfg, [many])[0].source == "llm"
    sent = chat.requests[0]["body"]["messages"]
    assert sum(len(m["content"]) for m in sent) <= 1000


def test_answers_are_cached_by_model_and_evidence(chat, tmp_path):
    summarizer = Summarizer(config(chat))
    try:
        first = summarizer.summarize([SCI_FI, COMEDY])
        assert len(chat.requests) == 2
        assert summarizer.summarize([SCI_FI, COMEDY]) == first  # no request made
        assert len(chat.requests) == 2
        changed = Evidence(SCI_FI.label, SCI_FI.items[:1])
        summarizer.summarize([changed])  # other evidence: asked
        assert len(chat.requests) == 3
    finally:
        summarizer.close()

    other_model = ChatServer(model="other-model", reply=json.dumps(REPLY), lm=chat.lm)
    with other_model:
        ask(config(other_model), [SCI_FI])
        assert len(other_model.requests) == 1  # another model is another cache key

    bounded = Summarizer(config(chat, cache_size=1))
    try:
        bounded.summarize([SCI_FI])
        bounded.summarize([COMEDY])  # evicts SCI_FI
        before = len(chat.requests)
        bounded.summarize([COMEDY])
        assert len(chat.requests) == before
        bounded.summarize([SCI_FI])
        assert len(chat.requests) == before + 1
    finally:
        bounded.close()

    on_disk = config(chat, cache_dir=str(tmp_path / "answers"))
    ask(on_disk, [SCI_FI])
    before = len(chat.requests)
    assert ask(on_disk, [SCI_FI])[0].source == "llm"  # a new Summarizer (a restart) reads the directory
    assert len(chat.requests) == before
    assert len(list((tmp_path / "answers").glob("*.json"))) == 1


def test_the_real_models_gibberish_falls_back_to_the_template(lm):
    with ChatServer(lm=lm) as chat:  # no fixed reply: the random-weight model writes
        found = ask(config(chat, max_tokens=24), [SCI_FI])
    assert found[0].source == "template" and found[0].name == SCI_FI.label and found[0].sentence is None
    assert "not the JSON asked for" in found[0].reason
    assert chat.requests[0]["body"]["max_tokens"] == 24


@pytest.mark.parametrize(
    "reply",
    [
        "I cannot help with that.",
        '{"name": "Space horror"}',  # no sentence
        '{"name": "", "sentence": "x"}',
        json.dumps({"name": "n" * (MAX_NAME + 1), "sentence": "Too long a name."}),
        '["Space horror", "You like ships."]',
        '{"name": "Space horror", "sentence": "You like',  # cut off by max_tokens
    ],
)
def test_answers_that_are_not_the_json_asked_for_fall_back(chat, reply):
    chat.reply = reply
    found = ask(config(chat), [SCI_FI])[0]
    assert (found.source, found.name, found.sentence) == ("template", SCI_FI.label, None)
    assert "not the JSON asked for" in found.reason


def test_parse_summary_finds_the_object_and_cleans_it():
    assert parse_summary('{"name": " Space\\nhorror ", "sentence": "You\\tlike\\u0000 ships."}') == (
        "Space horror",
        "You like ships.",
    )
    assert parse_summary('Here: {"a": 1} then {"name": "N", "sentence": "S."} done') == ("N", "S.")
    assert parse_summary('{"name": 3, "sentence": "S."}') is None
    assert parse_summary("") is None


def test_a_slow_endpoint_times_out_and_is_left_alone_for_the_cooldown(chat):
    chat.delay = 30.0
    cfg = config(chat, timeout=0.5, cooldown=60.0)
    summarizer = Summarizer(cfg)
    try:
        start = time.monotonic()
        found = summarizer.summarize([SCI_FI, COMEDY])
        waited = time.monotonic() - start
        assert [s.source for s in found] == ["template", "template"]
        assert [s.name for s in found] == [SCI_FI.label, COMEDY.label]
        assert all(s.reason == "no answer within 0.5 s" for s in found)
        assert waited < chat.delay / 2  # the call gave up; it did not wait for the answer
        asked = len(chat.requests)
        again = summarizer.summarize([SCI_FI])[0]
        assert again.source == "template" and "retried in" in again.reason
        assert len(chat.requests) == asked  # during the cooldown the endpoint is not called
    finally:
        summarizer.close()


def test_past_the_budget_the_template_answers_and_the_late_answer_is_kept(chat):
    chat.delay = 2.0
    summarizer = Summarizer(config(chat, budget=0.2, timeout=60.0))
    try:
        found = summarizer.summarize([SCI_FI])[0]
        assert found.source == "template" and "budget" in found.reason
        deadline = time.monotonic() + 60
        while found.source != "llm" and time.monotonic() < deadline:
            found = summarizer.summarize([SCI_FI])[0]  # joins the call in flight, never asks twice
        assert (found.source, found.name) == ("llm", REPLY["name"])
        assert len(chat.requests) == 1
    finally:
        summarizer.close()


def test_http_errors_and_no_server_fall_back(chat):
    wrong = ask(config(chat, model="gpt-none"), [SCI_FI])[0]
    assert (
        wrong.source == "template" and wrong.reason == "endpoint answered HTTP 404: The model 'gpt-none' does not exist"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once it is closed
    gone = ask(LLMConfig(url=f"http://127.0.0.1:{closed}/v1", model="m"), [SCI_FI])[0]
    assert gone.source == "template" and gone.reason.startswith("endpoint unreachable (ConnectError")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "localhost:8080/v1", "is not an http\\(s\\) URL"),
        ("url", "ftp://host/v1", "is not an http\\(s\\) URL"),
        ("model", " ", "llm model"),
        ("timeout", 0.0, "llm timeout"),
        ("budget", float("inf"), "llm budget"),
        ("max_tokens", 4, "llm max_tokens"),
        ("max_prompt_chars", 100, "llm max_prompt_chars"),
        ("cache_size", -1, "llm cache_size"),
    ],
)
def test_config_refuses_bad_values_in_one_line(field, value, message):
    with pytest.raises(ConfigError, match=message) as raised:
        LLMConfig(**{"url": "http://127.0.0.1:9/v1", "model": "m", field: value})
    assert "\n" not in str(raised.value)


def test_evidence_takes_each_interests_most_attended_items():
    catalog = ItemCatalog(
        Vocabulary(["a", "b", "c"]),
        text={"title": np.array(["Alien", "Heat", ""], dtype=object)},
        categories=object_array([("Sci-Fi",), ("Crime",), ()]),
    )
    state = UserState(
        interests=np.eye(2, 4),
        weights=np.array([0.5, 0.5]),
        history_idx=np.array([0, 1, 2]),
        attention=np.array([[0.7, 0.1, 0.2], [0.1, 0.6, 0.3]]),
    )
    found = evidence(state, ["sci-fi", "crime"], catalog, n=2)
    assert found == [
        Evidence("sci-fi", (("Alien", ("Sci-Fi",)), ("c", ()))),  # an untitled item goes by its id
        Evidence("crime", (("Heat", ("Crime",)), ("c", ()))),
    ]
