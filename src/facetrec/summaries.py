"""Interest summaries by a language model: a name and a one-sentence explanation for each learned
interest, asked of any OpenAI-compatible chat endpoint (``POST {url}/chat/completions``).

The template labels (``ranking.explain.interest_labels``) are terms; a language model reading the
titles and categories an interest attends to can say what ties them together. But the model is
someone else's server, slow or down at times, so every call is guarded and nothing depends on it:

- each interest's evidence (its most attended history items, as titles and categories) and the
  template label make one chat request asking for JSON ``{"name", "sentence"}``, with
  ``max_tokens`` and a cap on the prompt's size (titles are shortened and items dropped to fit);
- answers are cached by model and prompt (in memory, bounded; optionally in a directory that
  workers and restarts share), and one prompt is never asked twice at once;
- a call gives up after ``timeout`` seconds, and a caller waits at most ``budget`` seconds for all
  its interests together: a call still running then goes on in the background and its answer is
  cached for the next request;
- any failure (timeout, refused connection, HTTP error, an answer that is not the JSON asked for)
  gives the template label with ``source="template"`` and the reason; after a timeout, a refused
  connection or a 5xx the endpoint is left alone for ``cooldown`` seconds, so an outage costs
  each request nothing rather than a budget's wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np

from facetrec.errors import ConfigError
from facetrec.types import ItemCatalog, UserState

EVIDENCE_ITEMS = 5
"""History items per interest shown to the model: those the interest attends to most."""
MAX_TITLE = 120
"""Longest title (characters) put in a prompt; longer ones are cut."""
MAX_CATEGORIES = 5
"""Most categories per item put in a prompt."""
MAX_NAME = 60
"""Longest interest name (characters) accepted from the model."""
MAX_SENTENCE = 300
"""Longest explanation (characters) accepted from the model."""
MAX_ANSWER_BYTES = 64 * 1024
"""Largest HTTP answer read from the endpoint; a larger one is a failure."""
CONCURRENCY = 4
"""Chat requests in flight at once per Summarizer (per server worker)."""
SYSTEM = (
    "You name a person's interests from the items they chose. Answer with one JSON object and nothing "
    'else: {"name": "<a name for the interest, at most 5 words>", "sentence": "<one sentence, at most 30 '
    'words, telling the person what ties these items together>"}.'
)
"""The system message of every request."""


@dataclass(frozen=True)
class LLMConfig:
    """Where and how to ask: the endpoint's base URL as OpenAI clients take it
    (``http://host:port/v1``), the model name, an optional bearer key, seconds per call
    (``timeout``) and per caller (``budget``), the answer's ``max_tokens``, the prompt's size
    cap (characters, all messages together; about 4 per token), and the cache."""

    url: str
    model: str
    api_key: str | None = None
    timeout: float = 30.0
    budget: float = 5.0
    max_tokens: int = 120
    max_prompt_chars: int = 2000
    cache_size: int = 4096
    cache_dir: str | None = None
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"llm url: {self.url!r} is not an http(s) URL; give the base, e.g. http://127.0.0.1:8080/v1"
            )
        if not self.model.strip():
            raise ConfigError("llm model: give the model's name as the endpoint knows it")
        for name in ("timeout", "budget"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ConfigError(f"llm {name}: must be a positive number of seconds, got {getattr(self, name)}")
        if not 0 <= self.cooldown < float("inf"):
            raise ConfigError(f"llm cooldown: must be zero or more seconds, got {self.cooldown}")
        if self.max_tokens < 16:
            raise ConfigError(
                f"llm max_tokens: {self.max_tokens} is too few for a name and a sentence; give 16 or more"
            )
        if self.max_prompt_chars < len(SYSTEM) + 200:
            raise ConfigError(
                f"llm max_prompt_chars: give at least {len(SYSTEM) + 200} (the instructions and one item)"
            )
        if self.cache_size < 0:
            raise ConfigError(f"llm cache_size: must be zero or more, got {self.cache_size}")
        if self.cache_dir is not None:  # made here, so that a bad one is refused before a server starts
            try:
                Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"llm cache: cannot create {self.cache_dir}: {exc.strerror}") from None

    def settings(self) -> dict[str, Any]:
        """As plain values (for a worker process's settings)."""
        return asdict(self)


@dataclass(frozen=True)
class Evidence:
    """What one interest is made of: its template label and its most attended history items."""

    label: str
    items: tuple[tuple[str, tuple[str, ...]], ...]
    """(title, categories) per item, most attended first."""


@dataclass(frozen=True)
class Summary:
    """An interest's name and sentence, from the model (``source="llm"``) or, when it could not
    give them, the template label with no sentence and the ``reason``."""

    name: str
    sentence: str | None
    source: Literal["llm", "template"]
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evidence(state: UserState, labels: Sequence[str], catalog: ItemCatalog, n: int = EVIDENCE_ITEMS) -> list[Evidence]:
    """Each interest's ``n`` most attended history items (titles and categories) and its label."""
    out = []
    for j, label in enumerate(labels):
        top = np.argsort(-state.attention[j], kind="stable")[:n]
        items = []
        for p in top:
            idx = int(state.history_idx[p])
            cats = catalog.categories[idx] if catalog.categories is not None else ()
            items.append((catalog.title(idx), tuple(str(c) for c in cats)))
        out.append(Evidence(label, tuple(items)))
    return out


def prompt(ev: Evidence, max_chars: int) -> list[dict[str, str]]:
    """The chat messages for ``ev``, all contents together at most ``max_chars`` characters:
    titles cut to ``MAX_TITLE``, categories to ``MAX_CATEGORIES``, then items dropped from the
    least attended until it fits (the first one cut to fit if it must)."""
    head = f"Keywords: {_clip(ev.label, MAX_TITLE)}\nItems (title; categories), most typical first:"
    room = max_chars - len(SYSTEM) - len(head)
    lines: list[str] = []
    for title, cats in ev.items:
        line = f"\n- {_clip(title, MAX_TITLE)}" + (f"; {', '.join(cats[:MAX_CATEGORIES])}" if cats else "")
        if len(line) > room:
            if not lines:
                lines.append(line[:room])
            break
        lines.append(line)
        room -= len(line)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": head + "".join(lines)}]


def parse_summary(text: str) -> tuple[str, str] | None:
    """(name, sentence) from the first JSON object in ``text`` that has both as non-empty strings
    within their bounds (code fences and prose around it are skipped), else None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        name, sentence = _plain(value.get("name")), _plain(value.get("sentence"))
        if name and sentence and len(name) <= MAX_NAME and len(sentence) <= MAX_SENTENCE:
            return name, sentence
    return None


class Failed(Exception):
    """A call that gave no summary; ``outage``: the endpoint itself failed (timeout, no
    connection, 5xx or 429), so it is left alone for the cooldown."""

    def __init__(self, reason: str, outage: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.outage = reason, outage


class Summarizer:
    """Summaries of interests from an OpenAI-compatible chat endpoint (module docstring)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.Client(headers=headers, timeout=config.timeout)
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="facetrec-llm")
        self._cache = _Cache(config.cache_size, Path(config.cache_dir) if config.cache_dir else None)
        self._lock = threading.Lock()
        self._pending: dict[str, Future] = {}
        self._down_until, self._down_reason = 0.0, ""

    def summarize(self, interests: Sequence[Evidence]) -> list[Summary]:
        """One summary per interest, in order, within the budget."""
        out: list[Summary | None] = [None] * len(interests)
        asked: dict[int, Future] = {}
        for i, ev in enumerate(interests):
            messages = prompt(ev, self.config.max_prompt_chars)
            key = _key(self.config.model, messages, self.config.max_tokens)
            hit = self._cache.get(key)
            if hit is not None:
                out[i] = Summary(*hit, "llm")
                continue
            with self._lock:
                wait_s = self._down_until - time.monotonic()
                if wait_s > 0:
                    out[i] = _template(ev, f"{self._down_reason}; the endpoint is retried in {wait_s:.0f} s")
                    continue
                if key not in self._pending:
                    self._pending[key] = self._pool.submit(self._call, key, messages)
                asked[i] = self._pending[key]
        wait(asked.values(), timeout=self.config.budget)
        for i, future in asked.items():
            if not future.done():
                reason = (
                    f"no answer within the {self.config.budget:g} s budget (kept for the next request when it comes)"
                )
                out[i] = _template(interests[i], reason)
                continue
            try:
                out[i] = Summary(*future.result(), "llm")
            except Failed as exc:
                out[i] = _template(interests[i], exc.reason)
        return [s for s in out if s is not None]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _call(self, key: str, messages: list[dict[str, str]]) -> tuple[str, str]:
        """Ask, cache a good answer, note an outage; runs in the pool."""
        try:
            answer = self._ask(messages)
            self._cache.put(key, answer)
            return answer
        except Failed as exc:
            if exc.outage:
                with self._lock:
                    self._down_until = time.monotonic() + self.config.cooldown
                    self._down_reason = exc.reason
            raise
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def _ask(self, messages: list[dict[str, str]]) -> tuple[str, str]:
        """One chat request: (name, sentence) or :class:`Failed` saying why not."""
        cfg = self.config
        body = {"model": cfg.model, "messages": messages, "max_tokens": cfg.max_tokens, "temperature": 0}
        deadline = time.monotonic() + cfg.timeout
        late = Failed(f"no answer within {cfg.timeout:g} s", outage=True)
        try:
            with self._client.stream("POST", cfg.url.rstrip("/") + "/chat/completions", json=body) as response:
                raw = bytearray()
                for chunk in response.iter_bytes():  # each read waits at most the timeout; a trickle is cut off
                    raw += chunk
                    if len(raw) > MAX_ANSWER_BYTES:
                        raise Failed(f"answer over {MAX_ANSWER_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise late
        except httpx.TimeoutException:
            raise late from None
        except httpx.HTTPError as exc:
            raise Failed(f"endpoint unreachable ({type(exc).__name__}: {_clip(str(exc), 120)})", outage=True) from None
        status = response.status_code
        if status != 200:
            raise Failed(
                f"endpoint answered HTTP {status}: {_error_message(bytes(raw))}", outage=status >= 500 or status == 429
            )
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise Failed("endpoint answered something that is not a chat completion") from None
        parsed = parse_summary(content) if isinstance(content, str) else None
        if parsed is None:
            raise Failed(f"the model's answer is not the JSON asked for: {_clip(str(content), 80)!r}")
        return parsed


class _Cache:
    """(name, sentence) by key: an LRU of ``size`` entries in memory, and one JSON file per key
    in ``directory`` (an existing one) when given, written whole, then renamed into place."""

    def __init__(self, size: int, directory: Path | None) -> None:
        self.size, self.directory = size, directory
        self._memory: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, str] | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        if self.directory is None:
            return None
        try:
            found = json.loads((self.directory / f"{key}.json").read_text(encoding="utf-8"))
            value = (str(found["name"]), str(found["sentence"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or not a file this cache wrote: ask again
        self._remember(key, value)
        return value

    def put(self, key: str, value: tuple[str, str]) -> None:
        self._remember(key, value)
        if self.directory is not None:
            tmp = self.directory / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                tmp.write_text(json.dumps({"name": value[0], "sentence": value[1]}), encoding="utf-8")
                os.replace(tmp, self.directory / f"{key}.json")
            except OSError:
                tmp.unlink(missing_ok=True)  # a full or read-only disk loses the copy, not the answer

    def _remember(self, key: str, value: tuple[str, str]) -> None:
        with self._lock:
            self._memory[key] = value
            self._memory.move_to_end(key)
            while len(self._memory) > self.size:
                self._memory.popitem(last=False)


def _key(model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
    return hashlib.sha256(json.dumps([model, messages, max_tokens], sort_keys=True).encode()).hexdigest()


def _template(ev: Evidence, reason: str) -> Summary:
    return Summary(ev.label, None, "template", reason)


def _plain(value: Any) -> str:
    """``value`` as one line of visible text ('' unless a string): control and format characters
    dropped, whitespace runs made one space."""
    if not isinstance(value, str):
        return ""
    kept = "".join(" " if c.isspace() else c for c in value if c.isspace() or unicodedata.category(c)[0] != "C")
    return " ".join(kept.split())


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _error_message(raw: bytes) -> str:
    """The OpenAI-style ``error.message`` of an error answer, else its start, on one line."""
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = raw[:200].decode("utf-8", "replace")
    return _clip(_plain(str(message)), 200) or "(empty body)"
