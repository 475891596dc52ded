"""The HTTP API: ``create_app(service, api_key)`` -> a FastAPI app (OpenAPI at /docs, /openapi.json).

Endpoints are plain ``def`` functions, so FastAPI runs them in its thread pool (limited to
``threads``), except GET /users/{id}/interests, which may wait for a language model and so runs
in threads of its own (``INTEREST_THREADS``); the :class:`~facetrec.serving.service.Service` serialises access to the
Recommender with its lock, while a write waiting for the disk does not hold it. Every list comes
from ``Recommender.recommend`` (through the Service).
Errors never carry a stack trace: facetrec's own errors become 404 (unknown ids) or 422 (bad
values) with their one-line message; a body that is too large or too slow is refused (413, 408)
before it reaches an endpoint; a recommender busy past its lock timeout is a 503 with
Retry-After; anything else is logged and answered "internal error". Every one of these answers
is declared in the OpenAPI document with its schema (``schemas.Error``, ``schemas.Invalid``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
from anyio import CapacityLimiter, to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from facetrec import __version__
from facetrec.errors import FacetrecError, UnknownIdError
from facetrec.history import EventRecord
from facetrec.serving import schemas as s
from facetrec.serving.metrics import Metrics
from facetrec.serving.service import Busy, Service
from facetrec.serving.store import StoreUnavailable
from facetrec.types import Query as Wanted  # fastapi.Query is the query-string parameter

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PathId = Annotated[
    str,
    PathParam(min_length=1, max_length=s.MAX_ID, json_schema_extra={"pattern": s.PRINTABLE}),
    AfterValidator(s.printable),
]
K = Annotated[int, Query(ge=1, le=s.MAX_K, description="How many items.")]
BODY_TIMEOUT = 10.0
"""Seconds a client has to send a request's whole body; a slower one gets a 408 and is closed."""
RETRY_AFTER = 1
"""Seconds a 503 asks the client to wait before retrying."""
INTEREST_THREADS = 8
"""Threads for GET /users/{id}/interests, apart from the request threads: with a language model a
request may wait for it up to its budget, and must not hold a thread that other requests need."""
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="The key `facetrec serve` was given.")
"""The write endpoints' key, declared as an OpenAPI security scheme (checked by ``require_key``)."""

READ = {**s.INVALID, **s.BUSY}
WRITE = {**s.INVALID, **s.BUSY, **s.BODY, **s.KEY}
"""The error answers of a read and of a write (key-protected, with a body)."""


def create_app(
    service: Service,
    api_key: str | None,
    metrics: Metrics | None = None,
    threads: int = 4,
    body_timeout: float = BODY_TIMEOUT,
) -> FastAPI:
    """The app over ``service``; write endpoints need ``api_key`` (none: writes are refused);
    ``threads`` request threads at most (reads wait for one lock; writes wait for the disk);
    ``body_timeout`` seconds to receive a request body."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Few request threads: they queue for one lock anyway, and dozens of threads contending
        # for it (and the GIL) cost more CPU than the requests, so a backlog never drained.
        to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(
        title="facetrec", version=__version__, summary="Multi-interest recommendations over HTTP.", lifespan=lifespan
    )
    metrics = metrics or Metrics()
    metrics.gauges["facetrec_applied_event"] = (
        "Arrival number of the newest stored event this worker has applied.",
        lambda: service.applied,
    )
    app.state.service, app.state.metrics = service, metrics
    interest_threads = CapacityLimiter(INTEREST_THREADS)
    app.add_middleware(
        Guard, metrics=metrics, max_body=s.MAX_BODY_BYTES, body_timeout=body_timeout, routes=app.router.routes
    )
    _errors(app)

    async def require_key(x_api_key: Annotated[str | None, Security(KEY_HEADER)]) -> None:  # async: no thread hop
        if api_key is None:
            raise HTTPException(403, "writes are disabled: start the server with --api-key or FACETREC_API_KEY")
        if x_api_key is None:
            raise HTTPException(401, "missing X-API-Key header")
        if not hmac.compare_digest(x_api_key.encode(), api_key.encode()):
            raise HTTPException(403, "wrong API key")

    @app.post(
        "/events",
        response_model=s.EventsOut,
        dependencies=[Depends(require_key)],
        tags=["events"],
        responses={**WRITE, **s.UNKNOWN},
    )
    def post_events(body: s.EventsOrOne) -> s.EventsOut:
        """Store events durably (committed before the response); every worker's next answer uses them.
        Events with an ``id`` already stored are skipped, so a retried batch counts once."""
        now = int(time.time())
        records = [
            EventRecord(
                e.user, e.item, e.timestamp if e.timestamp is not None else now, e.event, e.rating, e.review, e.id
            )
            for e in body.events
        ]
        added, last = service.add(records)
        return s.EventsOut(stored=added, duplicates=len(records) - added, last_id=last)

    @app.post(
        "/admin/items", response_model=s.ItemsOut, dependencies=[Depends(require_key)], tags=["admin"], responses=WRITE
    )
    def post_items(body: s.ItemsIn) -> s.ItemsOut:
        """Add catalogue items while serving (stored durably; every worker adds them). Only the new
        items are encoded; a model that scores cold items recommends them at once, the others
        after the next `facetrec retrain`. Ids already in the catalogue are skipped."""
        rows = [(item.id, item.model_dump(exclude={"id"})) for item in body.items]
        added, total = service.add_items(rows)
        return s.ItemsOut(added=added, items=total)

    @app.get("/users", response_model=s.UsersOut, tags=["users"], responses=READ)
    def users(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> s.UsersOut:
        """Some user ids, to pick from."""
        return s.UsersOut(users=service.users(limit))

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=s.RecommendationsOut,
        tags=["recommendations"],
        responses={**READ, **s.UNKNOWN},
    )
    def user_recommendations(
        user_id: PathId,
        k: K = 10,
        diversity: Annotated[s.Diversity | None, Query()] = None,
        lam: Annotated[float | None, Query(alias="lambda", ge=0.0, le=1.0, allow_inf_nan=False)] = None,
        explain: bool = False,
    ) -> FastJSON:
        """Top-k for a known user (or one who only has events posted to this service)."""
        answer = service.recommend(Wanted(user_id=user_id, n=k), explain, **_ranking(diversity, lam))
        return _listing(user_id, answer.rows, answer.labels, [])

    @app.post(
        "/recommendations",
        response_model=s.RecommendationsOut,
        tags=["recommendations"],
        responses={**READ, **s.BODY, **s.UNKNOWN},
    )
    def session_recommendations(body: s.RecommendationsIn) -> FastJSON:
        """Top-k for an anonymous session: a list of item ids, or free text placed among the items."""
        ranking = _ranking(body.diversity, body.lam)
        if "items" in body.model_fields_set:
            answer = service.recommend(Wanted(history=tuple(body.items), n=body.k), body.explain, **ranking)
        else:
            answer = service.recommend_text(body.text, body.k, body.explain, **ranking)
        return _listing(None, answer.rows, answer.labels, answer.seeds)

    @app.get(
        "/users/{user_id}/interests", response_model=s.InterestsOut, tags=["users"], responses={**READ, **s.UNKNOWN}
    )
    async def user_interests(user_id: PathId, examples: Annotated[int, Query(ge=1, le=20)] = 3) -> s.InterestsOut:
        """The user's K interests: label, weight and the history items each attends to most; when
        the server has a language model (`--llm-url`), a name and a sentence for each (`summary`),
        within its time budget, else the template label with the reason."""
        found = await to_thread.run_sync(service.interests, user_id, examples, limiter=interest_threads)
        return s.InterestsOut(user=user_id, interests=found)

    @app.get("/users/{user_id}/history", response_model=s.HistoryOut, tags=["users"], responses={**READ, **s.UNKNOWN})
    def user_history(user_id: PathId, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> s.HistoryOut:
        """The user's newest events, oldest first (including those posted here)."""
        return s.HistoryOut(user=user_id, events=service.history(user_id, limit))

    @app.get("/items/{item_id}/similar", response_model=s.SimilarOut, tags=["items"], responses={**READ, **s.UNKNOWN})
    def similar_items(item_id: PathId, k: K = 10) -> s.SimilarOut:
        """Items nearest to ``item_id`` by the model's item vectors."""
        title, rows = service.similar(item_id, k)
        return s.SimilarOut(item=item_id, title=title, similar=rows)

    @app.post(
        "/admin/reload",
        response_model=s.ReloadOut,
        dependencies=[Depends(require_key)],
        tags=["admin"],
        responses=WRITE,
    )
    def reload(body: s.ReloadIn | None = None) -> s.ReloadOut:
        """Load a bundle (with the stored events) and swap it in; requests are served throughout. The
        bundle is published in the event store, and the other workers follow within their load time.
        A bundle that cannot be loaded is a 422 saying why, and the current one keeps serving."""
        path = service.reload(body.bundle if body else None)
        counts = service.counts()
        return s.ReloadOut(bundle=str(path), users=counts["users"], events=counts["events"])

    @app.get("/healthz", response_model=s.Health, tags=["admin"], responses=s.BUSY)
    def healthz() -> s.Health:
        """Status, the bundle served and its counts, as seen by the worker that answers."""
        return s.Health(status="ok", **service.counts())

    @app.get("/metrics", response_class=PlainTextResponse, tags=["admin"])
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class FastJSON(JSONResponse):
    """A JSON body serialised by orjson (several times faster than the json module on a list's rows)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _listing(user: str | None, rows: list, labels: list[str], matched: list[str]) -> FastJSON:
    """A RecommendationsOut body, serialised directly: the service built plain, valid rows, and
    validating them again through pydantic costs as much as a cached recommendation."""
    return FastJSON({"user": user, "items": rows, "interests": labels, "matched": matched})


def _ranking(diversity: str | None, lam: float | None) -> dict[str, Any]:
    return {k: v for k, v in {"diversity": diversity, "lam": lam}.items() if v is not None}


def _errors(app: FastAPI) -> None:
    """Errors as ``{"detail": "one line"}``; a 422 adds ``errors`` (field + message), a 503 Retry-After."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(UnknownIdError)
    async def unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(FacetrecError)
    async def rejected(request: Request, exc: FacetrecError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "errors": []}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 400:  # FastAPI's answer to a body it cannot decode (not UTF-8): invalid input
            problem = {"field": "body", "message": "not UTF-8 encoded JSON"}
            return JSONResponse({"detail": "body: not UTF-8 encoded JSON", "errors": [problem]}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Busy)
    @app.exception_handler(StoreUnavailable)
    async def busy(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER)})

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)


class Guard:
    """ASGI middleware: reads each request's body before the app sees it, refusing one over
    ``max_body`` bytes (413, also when chunked) or not received within ``body_timeout`` seconds
    (408, then the connection is closed: a client trickling a body cannot hold it), and records
    each request's route, status and latency (cheaper than Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app: Any, metrics: Metrics, max_body: int, body_timeout: float, routes: list) -> None:
        self.app, self.metrics, self.max_body, self.routes = app, metrics, max_body, routes
        self.body_timeout = body_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, original = time.perf_counter(), [500], dict(scope)  # routing mutates the scope
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            refused: int | None = 413
        else:
            receive, refused = await self._read_body(receive)
        if refused is not None:
            if refused:  # 0: the client went away, nobody to answer
                await _refuse(send, refused, self._reason(refused))
            self._observe(scope, refused, start)
            return

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._observe({**original, "route": scope.get("route")}, status[0], start)

    async def _read_body(self, receive: Any) -> tuple[Any, int | None]:
        """(a receive() replaying the whole body in one message, None), or (None, the refusal:
        413 too large, 408 too slow, 0 the client disconnected)."""
        chunks, size, more = [], 0, True
        try:
            async with asyncio.timeout(self.body_timeout):
                while more:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None, 0
                    chunks.append(message.get("body", b""))
                    size += len(chunks[-1])
                    if size > self.max_body:
                        return None, 413
                    more = message.get("more_body", False)
        except TimeoutError:
            return None, 408
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        return replayed, None

    def _reason(self, status: int) -> str:
        if status == 408:
            return f"request body not received within {self.body_timeout:g} s"
        return f"request body over {self.max_body} bytes"

    def _observe(self, scope: dict, status: int, start: float) -> None:
        self.metrics.observe(scope["method"], self._template(scope), status, time.perf_counter() - start)

    def _template(self, scope: dict) -> str:
        """The matched route's path template (FastAPI's routes leave it in the scope; others are matched)."""
        route = scope.get("route")
        if route is not None:
            return route.path
        for candidate in self.routes:
            if candidate.matches(scope)[0] == Match.FULL:
                return candidate.path
        return "unmatched"


async def _refuse(send: Any, status: int, detail: str) -> None:
    """Answer ``status`` with ``{"detail": detail}`` and close the connection (the body was not read)."""
    body = JSONResponse({"detail": detail}).body
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
