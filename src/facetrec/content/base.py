"""The contract every text encoder keeps, and the helpers all of them share.

A :class:`TextEncoder` subclass encodes one batch of texts; the base class owns what must be the
same everywhere: input checks, batching by length (the input order is restored), the thread
setting, progress and L2 normalisation. The language-model encoders live in encoders.py, the
lexical ones in lexical.py.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from facetrec.content.onnx_backend import available_cores
from facetrec.errors import ConfigError, DataError

Progress = bool | Callable[[int], None]


class TextEncoder(ABC):
    """Base class: subclasses encode one batch; this class owns batching, order, norms and progress."""

    normalize: bool = True
    threads: int | None = None

    @property
    @abstractmethod
    def encoder_id(self) -> str:
        """Model, pooling, maximum length and backend: equal ids promise interchangeable vectors."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of each vector."""

    @abstractmethod
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Raw (not yet normalised) float32 vectors for one batch of similar-length texts."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.encoder_id!r})"

    def encode(self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress = False) -> np.ndarray:
        """Vectors (float32 [n, dim]) for ``texts``, row i for text i.

        ``progress`` shows a progress bar with items/s when True, or is called with the number of
        texts finished after each batch (so a caller can drive one bar over several calls).
        """
        texts = check_texts(texts)
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be at least 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first: peak memory shows early
        with _torch_threads(self.threads or available_cores()), progress_bar(len(texts), progress) as advance:
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self._encode_batch([texts[i] for i in rows])
                advance(len(rows))
        return l2_normalize(out) if self.normalize else out


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or a DataError naming the first value that is not a str."""
    if isinstance(texts, str):
        raise DataError("texts: expected a sequence of str, got a single str; wrap it in a list")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"texts[{i}]: expected str, got {type(text).__name__}; use '' for a missing text")
    return texts


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (as torch's ``normalize``: a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Let torch use ``n`` threads while encoding, then restore the caller's setting (if torch is in use)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def progress_bar(total: int, progress: Progress, description: str = "encoding") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``: a rich bar with items/s, the caller's callback, or a no-op."""
    if callable(progress):
        yield progress
        return
    if not progress or total == 0:
        yield lambda n: None
        return
    if not sys.stderr.isatty():  # a log file or CI: plain lines, so long encodes are never silent
        yield _plain_lines(total, description)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Speed(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} items/s" if speed else "- items/s", style="progress.data.speed")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Speed())
    with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _plain_lines(total: int, description: str, every_s: float = 10.0) -> Callable[[int], None]:
    """``advance(n)`` printing "encoding: 1,200/9,742 (12 %), 150 items/s, about 57 s left" to
    stderr at most every ``every_s`` seconds, and once at the end."""
    import time

    start = last = time.perf_counter()
    done = 0

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.perf_counter()
        if done < total and now - last < every_s:
            return
        last = now
        speed = done / max(now - start, 1e-9)
        left = f", about {(total - done) / speed:.0f} s left" if done < total else f" in {now - start:.1f} s"
        print(f"{description}: {done:,}/{total:,} ({100 * done / total:.0f} %), {speed:,.0f} items/s{left}",
              file=sys.stderr, flush=True)  # fmt: skip

    return advance
