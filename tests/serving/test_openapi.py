"""The OpenAPI document describes what the server answers: schemathesis generates requests from
it (valid and invalid ones, every phase, every operation) and runs all of its checks on each
answer, in process against the real app over a real Service and SQLite store."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from facetrec.serving.app import create_app
from facetrec.serving.service import Service
from facetrec.serving.store import SQLiteHistoryStore

from .conftest import KEY

EXAMPLES = 25
"""Generated requests per operation and phase: enough to reach each documented answer, few
enough to keep the run near a minute on two cores."""

SETTINGS = {
    "seed": 0,
    "headers": {"X-API-Key": KEY},
    "generation": {"mode": "all", "max-examples": EXAMPLES, "database": "none"},
    # Every operation is tested, /admin/reload included: a generated body names a bundle that does not
    # exist (a 422, the served bundle unchanged) or none, which reloads the served bundle itself.
    # Two answers to schema-valid bodies are documented 422s, so they count as proper answers there:
    # free text whose words the catalogue's encoder does not know (docs/serving.md, "Free text"), and
    # a bundle directory that is missing or cannot be loaded ("Limits, timeouts and errors").
    "operations": [
        {
            "include-name": name,
            "checks": {"positive_data_acceptance": {"expected-statuses": ["200", "404", "422"]}},
        }
        for name in ("POST /recommendations", "POST /admin/reload")
    ],
}


@pytest.fixture(scope="module")
def app(bundle, tmp_path_factory):
    store = SQLiteHistoryStore(tmp_path_factory.mktemp("openapi") / "events.sqlite")
    yield create_app(Service.open(bundle, store, warm_users=50), KEY)
    store.close()


def test_every_answer_matches_the_openapi_document(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_dict(SETTINGS))
    failures, operations = [], set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations.add(event.recorder.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status != Status.SUCCESS and check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(f"{event.recorder.label} [{check.name}] {failure.title}: {failure.message}")
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis could not run: {event.info.format()}")
    assert not failures, "\n".join(sorted(set(failures)))
    assert len(operations) == len([m for path in app.openapi()["paths"].values() for m in path])


def test_the_document_declares_the_error_answers(app):
    document = app.openapi()
    paths, schemas = document["paths"], document["components"]["schemas"]
    assert set(schemas["Invalid"]["properties"]) == {"detail", "errors"}
    assert set(schemas["FieldError"]["properties"]) == {"field", "message"}
    for path in ("/events", "/admin/items", "/admin/reload"):
        assert {"401", "403", "408", "413", "422", "503"} <= set(paths[path]["post"]["responses"]), path
        assert paths[path]["post"]["security"] == [{"APIKeyHeader": []}]
    for path in ("/users/{user_id}/recommendations", "/users/{user_id}/history", "/items/{item_id}/similar"):
        assert {"404", "422", "503"} <= set(paths[path]["get"]["responses"]), path
    invalid = paths["/events"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    assert invalid == {"$ref": "#/components/schemas/Invalid"}
    assert schemas["RecommendationsIn"]["oneOf"] == [{"required": ["items"]}, {"required": ["text"]}]
    assert {"$ref": "#/components/schemas/EventIn"} in schemas["EventsOrOne"]["anyOf"]
