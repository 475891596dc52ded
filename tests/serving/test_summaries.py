"""Interest summaries through `facetrec serve --llm-url` and `facetrec recommend --llm-url`: a real
server process asking a real OpenAI-compatible endpoint (facetrec.testing.chat_server) in this
test session."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.errors import ConfigError
from facetrec.testing.chat_server import ChatServer

from .conftest import Server, start_server
from .test_browser import ARTIFACTS, browser  # noqa: F401  (the headless Chromium fixture)

REPLY = {"name": "Planted topic", "sentence": "You keep coming back to items of one kind."}


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    with ChatServer(reply=json.dumps(REPLY)) as server:
        yield server


@pytest.fixture(scope="module")
def served(bundle, chat, tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("llm")
    args = ("--llm-url", chat.url, "--llm-model", chat.model, "--llm-budget", "2", "--llm-cache", str(root / "cache"))
    running = start_server(bundle, root / "events.sqlite", root / "server.log", *args)
    yield running
    running.stop()


def user(data, u: int) -> str:
    return str(data.interactions.users.id_of(u))


def test_interests_carry_the_models_summaries_and_ask_once(served, chat, data):
    chat.reply, chat.delay = json.dumps(REPLY), 0.0
    before = len(chat.requests)
    answer = served.client.get(f"/users/{user(data, 3)}/interests")
    assert answer.status_code == 200
    interests = answer.json()["interests"]
    assert interests
    for interest in interests:
        assert interest["summary"] == {**REPLY, "source": "llm", "reason": None}
        assert interest["label"]  # the template label stays beside it
    asked = chat.requests[before:]
    assert len(asked) == len(interests)
    prompts = [r["body"]["messages"][1]["content"] for r in asked]
    for interest in interests:  # each interest's most attended items are in one of the prompts
        assert any(all(x["title"] in p for x in interest["examples"]) for p in prompts)
    assert all(r["body"]["model"] == chat.model and r["body"]["max_tokens"] == 120 for r in asked)

    again = served.client.get(f"/users/{user(data, 3)}/interests").json()["interests"]
    assert again == interests and len(chat.requests) == before + len(interests)  # cached: no request


def test_a_slow_model_answers_with_the_template_within_the_budget(served, chat, data):
    chat.reply, chat.delay = json.dumps(REPLY), 20.0
    try:
        answer = served.client.get(f"/users/{user(data, 5)}/interests")
        assert answer.status_code == 200
        for interest in answer.json()["interests"]:
            summary = interest["summary"]
            assert (summary["source"], summary["name"], summary["sentence"]) == ("template", interest["label"], None)
            assert "budget" in summary["reason"]
        assert served.client.get("/healthz").status_code == 200  # other requests are not held up meanwhile
    finally:
        chat.delay = 0.0


def test_garbage_from_the_model_falls_back_per_interest(served, chat, data):
    chat.reply = "Sorry, I only speak in riddles."
    try:
        interests = served.client.get(f"/users/{user(data, 7)}/interests").json()["interests"]
        assert interests and all(i["summary"]["source"] == "template" for i in interests)
        assert all("not the JSON asked for" in i["summary"]["reason"] for i in interests)
    finally:
        chat.reply = json.dumps(REPLY)


def test_the_page_shows_each_interests_name_and_sentence(browser, served, data):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served.url}/")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#users option"))
    browser.find_element(By.ID, "user").send_keys(user(data, 3))
    browser.find_element(By.ID, "load").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#interests .summary"))
    sentences = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#interests .summary")]
    headings = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#interests h3")]
    assert sentences and all(s == REPLY["sentence"] for s in sentences) and len(headings) == len(sentences)
    assert all(REPLY["name"] in h for h in headings)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "web_page_summaries.png"))


def test_the_openapi_document_declares_the_summary(served):
    schemas = served.client.get("/openapi.json").json()["components"]["schemas"]
    assert "summary" in schemas["Interest"]["properties"]
    assert set(schemas["Summary"]["properties"]) == {"name", "sentence", "source", "reason"}
    assert schemas["Summary"]["properties"]["source"]["enum"] == ["llm", "template"]


def test_recommend_prints_summaries_as_json(bundle, chat, data):
    args = ["recommend", "--bundle", str(bundle), "--user", user(data, 3), "--json"]
    result = CliRunner().invoke(app, [*args, "--llm-url", chat.url, "--llm-model", chat.model])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["summaries"]) == len(out["interests"]) > 0
    assert all(s["source"] == "llm" and s["name"] == REPLY["name"] for s in out["summaries"])
    plain = json.loads(CliRunner().invoke(app, args).stdout)
    assert "summaries" not in plain
    table = CliRunner().invoke(app, [*args[:-1], "--llm-url", chat.url, "--llm-model", chat.model])
    assert f"interest 1: {REPLY['name']} - {REPLY['sentence']}" in table.stdout


def test_llm_options_are_checked_before_anything_starts(bundle, tmp_path):
    runner = CliRunner()
    alone = runner.invoke(app, ["serve", "--bundle", str(bundle), "--llm-url", "http://127.0.0.1:9/v1"])
    assert alone.exit_code == 2 and "--llm-url needs --llm-model" in alone.output
    model_only = runner.invoke(app, ["recommend", "--bundle", str(bundle), "--user", "u", "--llm-model", "m"])
    assert model_only.exit_code == 2 and "--llm-model needs --llm-url" in model_only.output
    bad = runner.invoke(
        app, ["serve", "--bundle", str(tmp_path), "--llm-url", "localhost:8080", "--llm-model", "m", "--api-key", "k"]
    )
    assert isinstance(bad.exception, ConfigError) and "is not an http(s) URL" in str(bad.exception)
    assert not (tmp_path / "events.sqlite").exists()
