"""Run the service: load the bundle and the event store, then serve the app with uvicorn.

One process, one event loop: the Recommender is not thread-safe (the Service locks it), and the
native libraries get one thread each (faiss, BLAS, torch), because with concurrent requests
more threads per request only fight over the same cores.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("facetrec.serving")


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


def build(bundle: str | Path, events: str | Path | None = None, api_key: str | None = None, fold_every: int = 256):
    """The FastAPI app over ``bundle`` and the SQLite store at ``events`` (default: beside the bundle)."""
    from facetrec.errors import ConfigError
    from facetrec.serving.app import create_app
    from facetrec.serving.service import Service
    from facetrec.serving.store import SQLiteEventStore

    if not (Path(bundle) / "manifest.json").is_file():  # before creating an event store beside it
        raise ConfigError(f"{bundle}: no manifest.json; is this a bundle written by `facetrec train`?")
    limit_threads()
    store = SQLiteEventStore(events or default_events_path(bundle))
    service = Service.open(bundle, store, fold_every=fold_every)
    log.info("serving %s with %d stored events from %s", bundle, store.count(), store.location)
    return create_app(service, api_key)


def run(
    bundle: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    events: str | Path | None = None,
    api_key: str | None = None,
    fold_every: int = 256,
    log_level: str = "info",
) -> None:
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build(bundle, events, api_key, fold_every)
    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level, access_log=False)
