"""Request and response models: every bound a client can hit is declared here, so the
OpenAPI schema documents it and FastAPI rejects violations with a 422 naming the field.

Bodies are parsed strictly: a number sent as a string, a boolean for a number, NaN or infinity
are errors, not silently converted. Ids (users, items, events) must be printable: control
characters, line separators and the invisible characters that hide or reorder text are refused,
because an id is echoed into logs, the page and other clients' answers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from facetrec.types import Event

MAX_K = 100
"""Largest list a request may ask for."""
MAX_BATCH = 1000
"""Most events in one POST /events, and most items in one POST /admin/items."""
MAX_SESSION = 200
"""Most item ids in an anonymous session."""
MAX_ID = 200
"""Longest user, item or event id (characters)."""
MAX_TEXT = 2000
"""Longest free-text statement, and longest item title (characters)."""
MAX_LONG_TEXT = 20_000
"""Longest review or item description (characters)."""
MAX_LABELS = 100
"""Most categories, and most tags, of one added item."""
MAX_TIMESTAMP = 4_102_444_800
"""Latest event time accepted: 2100-01-01 in epoch seconds (milliseconds are refused, not misread)."""
MAX_BODY_BYTES = 1 << 20
"""Largest request body (1 MiB); larger ones get a 413 before they are parsed."""

_NOT_PRINTABLE = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
PRINTABLE = f"^[^{_NOT_PRINTABLE}]+$"
"""What an id may hold: no C0/C1 control characters or DEL, no zero-width, line or paragraph
separators, no direction overrides or other invisible formatting characters. (Lone surrogates,
which no UTF-8 text holds, are refused by pydantic before this is checked.)"""
_HIDDEN = re.compile(f"[{_NOT_PRINTABLE}]")


def printable(value: str) -> str:
    """``value`` if it matches :data:`PRINTABLE`, else an error naming the first bad character."""
    bad = _HIDDEN.search(value)
    if bad:
        raise ValueError(f"must be printable: character U+{ord(bad.group()):04X} at position {bad.start()} is not")
    return value


def integral(value: Any) -> Any:
    """A float with an integral value (``5.0``, the same number in JSON) as an int; anything
    else as it came, for the strict int check to accept (int) or refuse (strings, booleans,
    fractions, NaN)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(integral)]
Timestamp = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP), BeforeValidator(integral)]
Id = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID, json_schema_extra={"pattern": PRINTABLE}),
    AfterValidator(printable),
]
NO_NUL = r"^[^\x00]*$"
"""What free text (reviews, titles, descriptions, statements) may hold: anything but NUL."""


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(f"must not contain a NUL character (found at position {value.index(chr(0))})")
    return value


def _text(max_length: int, min_length: int = 0) -> Any:
    """A string type of ``min_length`` to ``max_length`` characters without NUL."""
    return Annotated[
        str,
        Field(min_length=min_length, max_length=max_length, json_schema_extra={"pattern": NO_NUL}),
        AfterValidator(no_nul),
    ]


Label = _text(MAX_ID)
"""A category or tag."""
Title = _text(MAX_TEXT)
Statement = _text(MAX_TEXT, min_length=1)
"""Free text to recommend from."""
LongText = _text(MAX_LONG_TEXT)
"""A review or an item description."""


EventName = Literal[tuple(Event.names())]  # type: ignore[valid-type]
Diversity = Literal["none", "mmr", "dpp", "quotas", "calibration"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class EventIn(Strict):
    user: Id
    item: Id
    event: EventName = "click"
    timestamp: Timestamp | None = Field(None, description="Epoch seconds (an integer); default: when received.")
    rating: float | None = Field(None, ge=-1e6, le=1e6)
    review: LongText | None = None
    id: Id | None = Field(
        None,
        description="Your id for the event, unique across the store: an event whose id is already stored is "
        "skipped, so a retried batch counts once. Without one, every post is a new event.",
    )


class EventsIn(Strict):
    """A batch of events."""

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class EventsOut(BaseModel):
    stored: int = Field(description="Events added by this post.")
    duplicates: int = Field(description="Events skipped because their id was already stored.")
    last_id: int = Field(description="Arrival number of the batch's last event (a duplicate's: the first one's).")


class EventsOrOne(EventsIn):
    """The body of POST /events: one event (the fields of ``EventIn``) or a batch under
    ``events``; one event is read as a batch of one, so its errors name ``events.0.<field>``."""

    @model_validator(mode="before")
    @classmethod
    def _one_or_batch(cls, data: Any) -> Any:
        return {"events": [data]} if isinstance(data, dict) and "events" not in data else data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        one_or_batch = core_schema.union_schema([EventIn.__pydantic_core_schema__, EventsIn.__pydantic_core_schema__])
        return handler(one_or_batch)


class RecommendationsIn(Strict):
    """An anonymous session: exactly one of ``items`` (ids, oldest first) or ``text`` (a statement of interests)."""

    model_config = ConfigDict(json_schema_extra=lambda schema: _exactly_one_source(schema))

    items: list[Id] = Field(None, min_length=1, max_length=MAX_SESSION)  # type: ignore[assignment]
    text: Statement = None
    k: Integer = Field(10, ge=1, le=MAX_K)
    diversity: Diversity | None = None
    lam: float | None = Field(None, ge=0.0, le=1.0, alias="lambda")
    explain: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> RecommendationsIn:
        if len({"items", "text"} & self.model_fields_set) != 1:
            raise ValueError("give exactly one of 'items' (a list of item ids) or 'text'")
        return self


def _exactly_one_source(schema: dict[str, Any]) -> None:
    """Declare in the schema what ``_one_source`` enforces (neither field has a default to show)."""
    schema["oneOf"] = [{"required": ["items"]}, {"required": ["text"]}]
    for name in ("items", "text"):
        schema["properties"][name].pop("default", None)


class Relation(BaseModel):
    shared: list[str] = Field(description="Catalogue attributes (categories, brand, tags) shared, strongest first.")
    with_: str = Field(alias="with", description="Id of the history item they are shared with.")


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
    relation: Relation | None = Field(
        None, description="With explain: the attributes the item shares with a history item (item graph); null if none."
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


class Summary(BaseModel):
    """An interest named and explained by a language model, or the template label when it could not be."""

    name: str = Field(description="The model's name for the interest; the template label when source is template.")
    sentence: str | None = Field(description="One sentence on what ties the interest's items together (llm only).")
    source: Literal["llm", "template"] = Field(
        description="llm: written by the model; template: the model failed or was too slow, see reason."
    )
    reason: str | None = Field(None, description="Why the template was used (timeout, HTTP error, bad answer, ...).")


class Interest(BaseModel):
    label: str = Field(description="The template label: the interest's most characteristic catalogue terms.")
    weight: float
    examples: list[Example]
    summary: Summary | None = Field(
        None, description="With `facetrec serve --llm-url`: a name and a sentence from the language model."
    )


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
    title: Title = ""
    description: LongText = ""
    categories: list[Label] = Field(default_factory=list, max_length=MAX_LABELS)
    tags: list[Label] = Field(default_factory=list, max_length=MAX_LABELS)
    created_at: float | None = Field(None, ge=0, le=MAX_TIMESTAMP, description="Epoch seconds (freshness boosts).")


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


class FieldError(BaseModel):
    field: str = Field(description="Where: body.events.0.item, query.k, path.user_id, ...")
    message: str


class Error(BaseModel):
    """Every error answer: one line, never a stack trace."""

    detail: str


class Invalid(Error):
    """A 422: ``errors`` lists each invalid field (empty when the problem is not one field's)."""

    errors: list[FieldError]


def _error(description: str, model: type[BaseModel] = Error) -> dict[str, Any]:
    return {"model": model, "description": description}


INVALID = {422: _error("Invalid input: the detail names the field and the problem.", Invalid)}
BUSY = {503: _error("The recommender or the event store cannot answer now; retry after Retry-After seconds.")}
UNKNOWN = {404: _error("An id is not known: the detail names it.")}
BODY = {
    408: _error("The request body did not arrive within the server's body timeout."),
    413: _error(f"The request body is over {MAX_BODY_BYTES} bytes."),
}
KEY = {401: _error("The X-API-Key header is missing."), 403: _error("The API key is wrong, or writes are disabled.")}
"""Error answers by cause, for the routes' ``responses`` (the OpenAPI document declares each)."""
