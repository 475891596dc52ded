"""What the image and audio item encoders share: reading each item's file, caching by content, reporting failures.

An item's ``image``/``audio`` reference is a local path (a relative one is resolved against the
encoder's ``root``), a ``file://`` URL or an ``http(s)://`` URL. The sha256 of the file's bytes
is its key in the :class:`~facetrec.content.store.EmbeddingStore`, under the encoder's id (model
fingerprint and settings), so an unchanged file is never encoded twice, wherever it lies, and a
changed one always is. An item without a reference, or whose file cannot be read or decoded,
gets an all-zero row (as in ``ItemCatalog.vectors``: the item lacks the modality), is counted in
the :class:`MediaEncoding` and named in one warning: a broken file never stops a long encode.

Inputs are prepared one item at a time and batched with others of the same shape, so padding
never changes a vector and a vector does not depend on the batch it was encoded in.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, url2pathname, urlopen

import numpy as np

from facetrec import __version__
from facetrec.content.base import Progress, l2_normalize, progress_bar
from facetrec.content.models import model_fingerprint, model_name, resolve_model
from facetrec.content.store import EmbeddingStore
from facetrec.errors import ConfigError
from facetrec.types import ItemCatalog, ItemEmbeddings

log = logging.getLogger(__name__)

MODALITIES = ("image", "audio")
_WINDOW = 64
"""Items read at once (in parallel, for URLs); also bounds how many files' bytes are in memory."""
_READERS = 8
_SAVE_EVERY = 1024
"""Vectors written to the store per chunk: an interrupted encode keeps all but the last few."""


class MediaError(Exception):
    """An item's file cannot be used; the message is the one-line reason reported for the item."""


@dataclass(frozen=True)
class MediaEncoderConfig:
    """Settings every media encoder has."""

    model: str
    """A local model directory or a Hugging Face Hub name."""
    batch_size: int = 32
    store_dir: str | None = None
    """Embedding cache directory: files whose bytes were encoded there before are not encoded again."""
    root: str | None = None
    """Folder that relative paths in the catalogue are resolved against (default: the working directory)."""
    timeout: float = 30.0
    """Seconds to wait for an http(s) download before the item counts as failed."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"{name}.model: must be a model directory or Hub name, got {self.model!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"{name}.batch_size: must be an integer >= 1, got {self.batch_size!r}")
        if not self.timeout > 0:
            raise ConfigError(f"{name}.timeout: must be > 0 seconds, got {self.timeout!r}")


@dataclass(frozen=True, eq=False)
class MediaEncoding:
    """An encode's vectors and what could not be encoded.

    ``embeddings`` has one row per catalogue item: unit-norm, or all-zero where the item has no
    reference (counted in ``missing``) or its file failed (``failed``: item id -> reason).
    """

    embeddings: ItemEmbeddings
    missing: int
    failed: dict[str, str]

    @property
    def encoded(self) -> int:
        """Items with a vector."""
        return len(self.embeddings) - self.missing - len(self.failed)

    def summary(self, examples: int = 3) -> str:
        """One line: counts, then the first ``examples`` failures with their reasons."""
        kind = self.embeddings.modality
        line = (
            f"{kind}: {self.encoded:,} of {len(self.embeddings):,} items encoded, {self.missing:,} without "
            f"{kind}, {len(self.failed):,} failed"
        )
        shown = "; ".join(f"{item!r}: {reason}" for item, reason in islice(self.failed.items(), examples))
        return f"{line} ({shown}{'; ...' if len(self.failed) > examples else ''})" if shown else line


def has_reference(ref: Any) -> bool:
    """Whether a catalogue cell names a file: not None, NaN (a pandas gap) or blank."""
    if ref is None or (isinstance(ref, float) and math.isnan(ref)):
        return False
    return not (isinstance(ref, str) and not ref.strip())


def read_reference(ref: Any, root: str | Path | None = None, timeout: float = 30.0) -> bytes:
    """The bytes a catalogue reference names: a path (relative to ``root``), a file:// or an http(s):// URL.

    Raises :class:`MediaError` with a one-line reason (not found, unreadable, HTTP status, timeout).
    """
    text = os.fspath(ref) if isinstance(ref, os.PathLike) else ref
    if not isinstance(text, str):
        raise MediaError(f"not a path or URL: {ref!r}")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _download(text, timeout)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise MediaError(f"file URL on another host: {text}")
        path = Path(url2pathname(parts.path))
    elif len(scheme) > 1:  # one letter is a Windows drive
        raise MediaError(f"unsupported URL scheme {scheme!r}: {text}")
    else:
        path = Path(text).expanduser()
        if root is not None and not path.is_absolute():
            path = Path(root).expanduser() / path
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"not found: {path}") from None
    except IsADirectoryError:
        raise MediaError(f"is a directory: {path}") from None
    except OSError as exc:
        raise MediaError(f"unreadable: {path} ({exc.strerror or type(exc).__name__})") from None


def _download(url: str, timeout: float) -> bytes:
    request = Request(url, headers={"User-Agent": f"facetrec/{__version__}"})
    try:
        with urlopen(request, timeout=timeout) as response:
            return response.read()
    except HTTPError as exc:
        raise MediaError(f"HTTP {exc.code} {exc.reason}: {url}") from None
    except (URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise MediaError(f"cannot fetch {url}: {one_line(str(reason)) or type(exc).__name__}") from None


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (reasons go into one log line)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def undecodable(what: str, exc: Exception) -> MediaError:
    """The failure for a file a decoder rejected, naming the decoder's complaint without its buffer's repr."""
    detail = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
    return MediaError(f"not a readable {what} ({type(exc).__name__}: {one_line(detail, 120)})")


def _read_or_reason(ref: Any, root: str | None, timeout: float) -> bytes | str:
    try:
        return read_reference(ref, root, timeout)
    except MediaError as exc:
        return str(exc)


def load_pretrained(modality: str, path: Path, what: str, loader: Any) -> Any:
    """``loader(str(path))``, or a ConfigError naming the model and what of it could not be loaded."""
    try:
        return loader(str(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as exc:
        raise ConfigError(
            f"{modality} model {str(path)!r}: cannot load its {what} ({type(exc).__name__}: {one_line(str(exc))})"
        ) from None


class MediaItemEncoder(ABC):
    """An :class:`ItemEncoder` for files: catalogue -> :class:`MediaEncoding` of the ``modality`` column.

    Subclasses decode one file, prepare model inputs for it and run a batch through the model;
    this class owns reading, the content-hash cache, batching by input shape, normalisation and
    the report. The model is loaded on first use, so an encode served from the cache never loads it.
    """

    modality: ClassVar[str]

    def __init__(self, config: MediaEncoderConfig) -> None:
        self.config = config
        self.model_path = resolve_model(config.model)
        self.fingerprint = model_fingerprint(self.model_path)
        self._model: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @property
    def encoder_id(self) -> str:
        """Modality, model (with a fingerprint of its files) and settings: equal ids, interchangeable vectors."""
        return f"{self.modality}:{model_name(self.model_path)}@{self.fingerprint}|{self._settings()}|norm=1"

    @abstractmethod
    def _settings(self) -> str:
        """The settings that change vectors, for ``encoder_id``."""

    @abstractmethod
    def _load_model(self) -> Any:
        """The torch model, loaded from ``model_path``."""

    @abstractmethod
    def _decode(self, data: bytes) -> Any:
        """One file's bytes as a model-ready object (an RGB image, a waveform); MediaError if undecodable."""

    @abstractmethod
    def _prepare(self, decoded: Any) -> dict[str, Any]:
        """Model inputs (tensors with a batch dimension of 1) for one decoded item."""

    @abstractmethod
    def _forward(self, batch: dict[str, Any]) -> Any:
        """One vector per batch row (a float tensor [b, d]); the caller turns off gradients."""

    @abstractmethod
    def _blank(self) -> Any:
        """A decoded stand-in (a black image, silence), run once to learn the vector length."""

    def model(self) -> Any:
        """The torch model in eval mode (loaded once)."""
        if self._model is None:
            self._model = self._load_model().eval()
        return self._model

    def inputs(self, data: bytes) -> dict[str, Any]:
        """Model inputs for one file's bytes (batch dimension 1); MediaError if the file is undecodable."""
        return self._prepare(self._decode(data))

    def embed(self, batch: dict[str, Any]) -> np.ndarray:
        """Unit-norm float32 vectors [b, d] for prepared inputs (deterministic: eval mode, no dropout)."""
        import torch

        self.model()
        with torch.inference_mode():
            return l2_normalize(self._forward(batch).flatten(1).float().cpu().numpy())

    @property
    def dim(self) -> int:
        """Length of each vector (runs the model once on a blank input)."""
        return self.embed(self._prepare(self._blank())).shape[1]

    def encode(self, catalog: ItemCatalog, *, progress: Progress = False) -> MediaEncoding:
        """Vectors for every catalogue item's ``modality`` file, row i for item i (see :class:`MediaEncoding`)."""
        refs = getattr(catalog, self.modality)
        rows = [i for i, ref in enumerate(refs) if has_reference(ref)]
        store = EmbeddingStore(self.config.store_dir) if self.config.store_dir else None
        run = _Run(self, store)
        outcome: dict[int, bytes | str] = {}  # row -> content key, or the reason it has none
        read = partial(_read_or_reason, root=self.config.root, timeout=self.config.timeout)
        with (
            ThreadPoolExecutor(_READERS) as pool,
            progress_bar(len(rows), progress, f"encoding {self.modality}") as advance,
        ):
            for start in range(0, len(rows), _WINDOW):
                window = rows[start : start + _WINDOW]
                contents = list(pool.map(read, [refs[i] for i in window]))
                outcome.update(zip(window, run.submit(contents), strict=True))
                advance(len(window))
            run.finish()
        return self._result(catalog, len(refs) - len(rows), outcome, run, store)

    def _result(
        self,
        catalog: ItemCatalog,
        missing: int,
        outcome: dict[int, bytes | str],
        run: _Run,
        store: EmbeddingStore | None,
    ) -> MediaEncoding:
        dim = next((len(v) for v in run.vectors.values()), None)
        dim = dim or (store.dim(self.encoder_id) if store else None) or self.dim
        vectors = np.zeros((len(catalog), dim), np.float32)
        failed: dict[str, str] = {}
        ids = catalog.items.ids
        for row, key in sorted(outcome.items()):
            if isinstance(key, str):
                failed[str(ids[row])] = key
            elif key in run.vectors:
                vectors[row] = run.vectors[key]
            else:
                failed[str(ids[row])] = run.errors[key]
        embeddings = ItemEmbeddings(vectors, catalog.items, self.encoder_id, self.modality, normalized=True)
        result = MediaEncoding(embeddings, missing, failed)
        (log.warning if failed else log.info)(result.summary())
        return result


class _Run:
    """One encode's working state: vectors and errors by content key, batches waiting by input shape."""

    def __init__(self, encoder: MediaItemEncoder, store: EmbeddingStore | None) -> None:
        self.encoder, self.store, self.encoder_id = encoder, store, encoder.encoder_id
        self.batch_size = encoder.config.batch_size
        self.vectors: dict[bytes, np.ndarray] = {}
        self.errors: dict[bytes, str] = {}
        self.waiting: dict[tuple, list[tuple[bytes, dict[str, Any]]]] = {}
        self.queued: set[bytes] = set()
        self.unsaved: list[tuple[bytes, np.ndarray]] = []

    def known(self, key: bytes) -> bool:
        return key in self.vectors or key in self.errors or key in self.queued

    def submit(self, contents: Sequence[bytes | str]) -> list[bytes | str]:
        """Content key (or read failure) per file; files not seen, stored or queued yet are queued."""
        keys = [c if isinstance(c, str) else hashlib.sha256(c).digest() for c in contents]
        new = [k for k in dict.fromkeys(keys) if isinstance(k, bytes) and not self.known(k)]
        if self.store is not None and new:
            hit = self.store.contains(self.encoder_id, np.array(new, "S32"))
            cached = [k for k, h in zip(new, hit, strict=True) if h]
            if cached:
                self.vectors.update(zip(cached, self.store.get(self.encoder_id, np.array(cached, "S32")), strict=True))
        for key, data in zip(keys, contents, strict=True):
            if isinstance(key, bytes) and not self.known(key):
                try:
                    inputs = self.encoder.inputs(data)  # type: ignore[arg-type]
                except MediaError as exc:
                    self.errors[key] = one_line(str(exc))
                    continue
                self._queue(key, inputs)
        return keys

    def _queue(self, key: bytes, inputs: dict[str, Any]) -> None:
        shape = tuple((name, tuple(value.shape)) for name, value in inputs.items())
        group = self.waiting.setdefault(shape, [])
        group.append((key, inputs))
        self.queued.add(key)
        if len(group) >= self.batch_size:
            self._run(shape)
        elif len(self.queued) > 4 * self.batch_size:  # many shapes (audio of many lengths): bound the memory
            self._run(max(self.waiting, key=lambda s: len(self.waiting[s])))

    def _run(self, shape: tuple) -> None:
        import torch

        group = self.waiting.pop(shape)
        batch = {name: torch.cat([inputs[name] for _, inputs in group]) for name in group[0][1]}
        for (key, _), vector in zip(group, self.encoder.embed(batch), strict=True):
            self.queued.discard(key)
            if np.isfinite(vector).all():
                self.vectors[key] = vector
                self.unsaved.append((key, vector))
            else:
                self.errors[key] = "the model gave a non-finite vector"
        if len(self.unsaved) >= _SAVE_EVERY:
            self._save()

    def _save(self) -> None:
        if self.store is not None and self.unsaved:
            keys, vectors = zip(*self.unsaved, strict=True)
            self.store.add(self.encoder_id, np.array(keys, "S32"), np.stack(vectors))
        self.unsaved = []

    def finish(self) -> None:
        """Run what is still waiting and save what is not stored yet."""
        while self.waiting:
            self._run(next(iter(self.waiting)))
        self._save()


def media_encoder(modality: str, model: str, **settings: Any) -> MediaItemEncoder:
    """The encoder for ``modality`` ("image" or "audio") with ``model`` and its config's other ``settings``."""
    from facetrec.config import from_dict

    if modality == "image":
        from facetrec.content.image import ImageEncoderConfig, ImageItemEncoder

        return ImageItemEncoder(from_dict(ImageEncoderConfig, {"model": model, **settings}, "image encoder"))
    if modality == "audio":
        from facetrec.content.audio import AudioEncoderConfig, AudioItemEncoder

        return AudioItemEncoder(from_dict(AudioEncoderConfig, {"model": model, **settings}, "audio encoder"))
    raise ConfigError(f"modality: must be one of {list(MODALITIES)}, got {modality!r}")


def projected(output: Any) -> Any:
    """The vectors a ``get_image_features``/``get_audio_features`` call returns: a tensor in
    transformers 4, an output object whose ``pooler_output`` holds them in transformers 5."""
    pooled = getattr(output, "pooler_output", None)
    return output if pooled is None else pooled
