"""Request and response models: every bound a client can hit is declared here, so the
OpenAPI schema documents it and FastAPI rejects violations with a 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facetrec.types import Event

MAX_K = 100
"""Largest list a request may ask for."""
MAX_BATCH = 1000
"""Most events in one POST /events."""
MAX_SESSION = 200
"""Most item ids in an anonymous session."""
MAX_BODY_BYTES = 1 << 20
"""Largest request body (1 MiB); larger ones get a 413 before they are parsed."""

Id = Annotated[str, Field(min_length=1, max_length=200)]
EventName = Literal[tuple(Event.names())]  # type: ignore[valid-type]
Diversity = Literal["none", "mmr", "dpp", "quotas", "calibration"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(Strict):
    user: Id
    item: Id
    event: EventName = "click"
    timestamp: int | None = Field(None, ge=0, le=10**11, description="Epoch seconds; default: when received.")
    rating: float | None = Field(None, ge=-1e6, le=1e6)
    review: str | None = Field(None, max_length=20_000)
    id: Id | None = Field(
        None,
        description="Your id for the event, unique across the store: an event whose id is already stored is "
        "skipped, so a retried batch counts once. Without one, every post is a new event.",
    )


class EventsIn(Strict):
    """One event (the fields of ``EventIn``) or a batch under ``events``."""

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class EventsOut(BaseModel):
    stored: int = Field(description="Events added by this post.")
    duplicates: int = Field(description="Events skipped because their id was already stored.")
    last_id: int = Field(description="Arrival number of the batch's last event (a duplicate's: the first one's).")


class RecommendationsIn(Strict):
    """An anonymous session: ``items`` (ids, oldest first) or ``text`` (a statement of interests)."""

    items: list[Id] | None = Field(None, min_length=1, max_length=MAX_SESSION)
    text: str | None = Field(None, min_length=1, max_length=2000)
    k: int = Field(10, ge=1, le=MAX_K)
    diversity: Diversity | None = None
    lam: float | None = Field(None, ge=0.0, le=1.0, alias="lambda")
    explain: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> RecommendationsIn:
        if (self.items is None) == (self.text is None):
            raise ValueError("give exactly one of 'items' (a list of item ids) or 'text'")
        return self


class Item(BaseModel):
    item: str
    title: str
    score: float
    interest: int = Field(description="Index of the interest that produced the item (-1: popular).")
    label: str | None = None
    explanation: str | None = None
    because: list[str] | None = Field(None, description="Item ids of the history behind the explanation.")
    modality: str | None = Field(
        None, description="With explain: the modality (text, image, audio, id, ...) that most made the item match."
    )


class RecommendationsOut(BaseModel):
    user: str | None
    items: list[Item]
    interests: list[str] = Field(description="Interest labels, by index (with explain=true).")
    matched: list[str] = Field(description="For free text: the item ids it was placed nearest to.")


class Example(BaseModel):
    item: str
    title: str
    attention: float


class Interest(BaseModel):
    label: str
    weight: float
    examples: list[Example]


class InterestsOut(BaseModel):
    user: str
    interests: list[Interest]


class UsersOut(BaseModel):
    users: list[str]


class HistoryEvent(BaseModel):
    item: str
    title: str
    event: str
    timestamp: int
    rating: float | None


class HistoryOut(BaseModel):
    user: str
    events: list[HistoryEvent]


class SimilarOut(BaseModel):
    item: str
    title: str
    similar: list[Item]


class ReloadIn(Strict):
    bundle: str | None = Field(None, max_length=4096, description="Bundle directory (default: the current one).")


class ItemIn(Strict):
    id: Id
    title: str = Field("", max_length=2000)
    description: str = Field("", max_length=20_000)
    categories: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)
    tags: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=100)
    created_at: float | None = Field(None, ge=0, le=1e11, description="Epoch seconds (freshness boosts).")


class ItemsIn(Strict):
    items: list[ItemIn] = Field(min_length=1, max_length=MAX_BATCH)


class ItemsOut(BaseModel):
    added: int = Field(description="Items added by this post (ids already in the catalogue are skipped).")
    items: int = Field(description="Catalogue size now.")


class ReloadOut(BaseModel):
    bundle: str
    users: int
    events: int


class Health(BaseModel):
    status: str
    bundle: str
    items: int
    users: int
    events: int = Field(description="Events in this worker's histories (the bundle's plus those stored since).")
    applied: int = Field(description="Arrival number of the newest stored event this worker has applied.")
    worker: int = Field(description="Process id of the worker that answered.")
