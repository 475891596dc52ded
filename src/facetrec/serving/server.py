"""Run the service: ``workers`` uvicorn processes, each loading the bundle and sharing one event store.

uvicorn starts the workers from an import string (``facetrec.serving.server:create``, an app
factory) with the settings in the ``FACETREC_SERVE`` environment variable, so each process
loads the bundle itself. Before starting them, :func:`run` checks the bundle and publishes it in
the store; every worker serves the published bundle and keeps current by reading the events
the others stored (serving/service.py). Inside a worker the Recommender is not thread-safe (the
Service locks it), and the native libraries get one thread each (faiss, BLAS, torch): with
concurrent requests more threads per request only fight over the same cores.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("facetrec.serving")

SETTINGS = "FACETREC_SERVE"
"""Environment variable carrying the settings from :func:`run` to the worker processes (JSON)."""


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


def _check_bundle(bundle: str | Path) -> None:
    from facetrec.errors import ConfigError

    if not (Path(bundle) / "manifest.json").is_file():  # before creating an event store beside it
        raise ConfigError(f"{bundle}: no manifest.json; is this a bundle written by `facetrec train`?")


def build(
    bundle: str | Path, events: str | Path | None = None, api_key: str | None = None, generation: int | None = None
) -> Any:
    """The FastAPI app over ``bundle`` and the SQLite store at ``events`` (default: beside the
    bundle), in this process; ``generation``: the one ``bundle`` was published as (default: the
    store's newest)."""
    from facetrec.serving.app import create_app
    from facetrec.serving.service import Service
    from facetrec.serving.store import SQLiteHistoryStore

    _check_bundle(bundle)
    limit_threads()
    store = SQLiteHistoryStore(events or default_events_path(bundle))
    service = Service.open(bundle, store, generation=generation)
    log.info("worker %d serving %s with events up to %d from %s", os.getpid(), bundle, service.applied, store.location)
    return create_app(service, api_key)


def create() -> Any:
    """The app factory each worker process calls: the bundle published in the store (by
    :func:`run` or a later reload), with the settings :func:`run` left in ``FACETREC_SERVE``."""
    from facetrec.serving.store import SQLiteHistoryStore

    settings = json.loads(os.environ[SETTINGS])
    _logging(settings["log_level"])
    store = SQLiteHistoryStore(settings["events"])
    try:
        generation, published = store.published()
    finally:
        store.close()
    return build(published or settings["bundle"], settings["events"], settings["api_key"], generation)


def run(
    bundle: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    events: str | Path | None = None,
    api_key: str | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> None:
    """Publish ``bundle`` in the event store and serve it with ``workers`` processes."""
    import uvicorn

    from facetrec.serving.store import SQLiteHistoryStore

    _logging(log_level)
    _check_bundle(bundle)
    path = Path(events or default_events_path(bundle)).resolve()
    store = SQLiteHistoryStore(path)
    try:
        store.publish(bundle)
    finally:
        store.close()
    settings = {"bundle": str(Path(bundle).resolve()), "events": str(path), "api_key": api_key, "log_level": log_level}
    os.environ[SETTINGS] = json.dumps(settings)
    uvicorn.run(
        f"{__name__}:create",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
