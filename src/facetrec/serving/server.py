"""Run the service: ``workers`` uvicorn processes, each loading the bundle and sharing one event store.

uvicorn starts the workers from an import string (``facetrec.serving.server:create``, an app
factory) with the settings in the ``FACETREC_SERVE`` environment variable, so each process
loads the bundle itself. Before starting them, :func:`run` checks the bundle (a damaged one is
one clear error, not a worker's traceback) and publishes it in the store; every worker serves
the published bundle and keeps current by reading the events the others stored
(serving/service.py). Inside a worker the Recommender is not thread-safe (the Service locks it),
and the native libraries get one thread each (faiss, BLAS, torch): with concurrent requests more
threads per request only fight over the same cores.

Connections are bounded too: idle keep-alive connections close after ``KEEP_ALIVE`` seconds,
request heads over ``MAX_HEAD`` bytes are refused, beyond ``MAX_CONNECTIONS`` concurrent
connections uvicorn answers 503, and a body must arrive within the app's body timeout.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facetrec.summaries import LLMConfig

log = logging.getLogger("facetrec.serving")
BODY_TIMEOUT = 10.0
"""Default seconds a client has to send a request body (``facetrec serve --body-timeout``)."""

SETTINGS = "FACETREC_SERVE"
"""Environment variable carrying the settings from :func:`run` to the worker processes (JSON)."""
KEEP_ALIVE = 5
"""Seconds an idle keep-alive connection stays open."""
MAX_HEAD = 16 * 1024
"""Largest request line plus headers (bytes)."""
MAX_CONNECTIONS = 512
"""Concurrent connections (and requests) per worker; beyond them uvicorn answers 503."""


def limit_threads() -> None:
    """One thread per native library: requests are the parallelism."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    threadpool_limits(1)


def default_events_path(bundle: str | Path) -> Path:
    """``events.sqlite`` beside the bundle directory, so retrained bundles written next to it share it."""
    return Path(bundle).resolve().parent / "events.sqlite"


def build(
    bundle: str | Path,
    events: str | Path | None = None,
    api_key: str | None = None,
    generation: int | None = None,
    body_timeout: float = BODY_TIMEOUT,
    llm: LLMConfig | None = None,
) -> Any:
    """The FastAPI app over ``bundle`` and the event store at ``events`` (any location
    :func:`~facetrec.serving.store.open_store` reads; default: events.sqlite beside the bundle),
    in this process; ``generation``: the one ``bundle`` was published as (default: the store's
    newest); ``body_timeout``: seconds a client has to send a request body; ``llm``: the chat
    endpoint that names and explains interests (facetrec.summaries)."""
    from facetrec.serving.app import create_app
    from facetrec.serving.bundle import check_bundle
    from facetrec.serving.service import Service
    from facetrec.serving.store import open_store
    from facetrec.summaries import Summarizer

    check_bundle(bundle)  # before creating an event store beside it
    limit_threads()
    store = open_store(events or default_events_path(bundle))
    summarizer = Summarizer(llm) if llm is not None else None
    service = Service.open(bundle, store, generation=generation, summarizer=summarizer)
    log.info("worker %d serving %s with events up to %d from %s", os.getpid(), bundle, service.applied, store.location)
    return create_app(service, api_key, body_timeout=body_timeout)


def create() -> Any:
    """The app factory each worker process calls: the bundle published in the store (by
    :func:`run` or a later reload), with the settings :func:`run` left in ``FACETREC_SERVE``."""
    from facetrec.serving.store import open_store
    from facetrec.summaries import LLMConfig

    settings = json.loads(os.environ[SETTINGS])
    _logging(settings["log_level"])
    store = open_store(settings["events"])
    try:
        generation, published = store.published()
    finally:
        store.close()
    llm = LLMConfig(**settings["llm"]) if settings["llm"] else None
    return build(
        published or settings["bundle"],
        settings["events"],
        settings["api_key"],
        generation,
        settings["body_timeout"],
        llm,
    )


def run(
    bundle: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    events: str | Path | None = None,
    api_key: str | None = None,
    workers: int = 1,
    log_level: str = "info",
    body_timeout: float = BODY_TIMEOUT,
    llm: LLMConfig | None = None,
) -> None:
    """Check ``bundle``, publish it in the event store at ``events`` (a PostgreSQL URL, a SQLite
    ``sqlite:///`` location or file path; default: events.sqlite beside the bundle) and serve it
    with ``workers`` processes; ``llm``: the chat endpoint that names and explains interests."""
    import uvicorn

    from facetrec.serving.bundle import check_bundle
    from facetrec.serving.store import POSTGRES_PREFIXES, open_store

    _logging(log_level)
    check_bundle(bundle)  # one clear error here, not a traceback from every worker
    store = open_store(events or default_events_path(bundle))  # a bad location: one line, before any worker
    try:
        store.publish(bundle)
    finally:
        store.close()
    # Workers get a URL as given (store.location never holds its password), a SQLite file as an absolute path.
    location = str(events) if str(events).startswith(POSTGRES_PREFIXES) else store.location
    settings = {
        "bundle": str(Path(bundle).resolve()),
        "events": location,
        "api_key": api_key,
        "log_level": log_level,
        "body_timeout": body_timeout,
        "llm": llm.settings() if llm is not None else None,
    }
    os.environ[SETTINGS] = json.dumps(settings)
    uvicorn.run(
        f"{__name__}:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE,
        h11_max_incomplete_event_size=MAX_HEAD,
        limit_concurrency=MAX_CONNECTIONS,
    )


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
