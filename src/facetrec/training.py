"""The one training loop: epochs, seeding, progress, early stopping and checkpoints.

A torch model does not subclass a trainer. It hands :func:`fit_loop` an object that can run
one epoch (``train_epoch``), optionally score itself on held-out data (``validate``, higher is
better) and expose its weights (``state_dict`` / ``load_state_dict``). The loop owns the rest:

- every epoch starts from generators seeded by ``(seed, epoch)``, so a run resumed from a
  checkpoint replays the remaining epochs exactly as an uninterrupted run would;
- the best weights by validation score are kept and restored at the end, and training stops
  after ``patience`` epochs without improvement;
- with ``checkpoint_dir`` set, model, optimizer and history are saved after every epoch (state
  dicts only, loaded with ``weights_only=True``), and a later call with the same directory
  continues where the last one stopped.
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from facetrec.errors import ConfigError

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = 1


@runtime_checkable
class Trainable(Protocol):
    """What a model gives the loop. Draw randomness from the global generators (``torch.randperm``,
    dropout), which the loop reseeds at every epoch; a private ``torch.Generator`` would not be
    restored on resume."""

    def train_epoch(self, epoch: int) -> float:
        """Run one pass over the training data; return the mean loss."""
        ...

    def state_dict(self) -> Mapping[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> Any: ...


@runtime_checkable
class Validatable(Trainable, Protocol):
    """A trainable that can score itself on held-out data, which enables early stopping."""

    def validate(self) -> float:
        """A held-out quality score, higher is better (e.g. NDCG@10)."""
        ...


@dataclass(frozen=True)
class TrainConfig:
    """How to train a torch model; models embed these fields in their own config."""

    epochs: int = 100
    """Most passes over the training data."""
    patience: int | None = 10
    """Stop after this many epochs without a better validation score (None: never stop early)."""
    seed: int = 0
    """Seeds python, numpy and torch, so a run is reproducible on the same machine."""
    device: str = "auto"
    """"auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N"."""
    checkpoint_dir: str | None = None
    """Save a checkpoint here after every epoch and resume from it when present (None: no checkpoints)."""
    progress: bool = True
    """Show a progress bar with epoch, loss and validation score."""
    threads: int | None = None
    """CPU threads torch may use while training (None: torch's default)."""

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                none = " or None" if allow_none else ""
                raise ConfigError(f"TrainConfig.{name}: must be an integer >= 1{none}, got {value!r}")

        positive("epochs", self.epochs)
        positive("patience", self.patience, allow_none=True)
        positive("threads", self.threads, allow_none=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"TrainConfig.seed: must be an integer in 0..2**32-1, got {self.seed!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"TrainConfig.device: must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.checkpoint_dir is not None and not (isinstance(self.checkpoint_dir, str) and self.checkpoint_dir):
            raise ConfigError(
                f"TrainConfig.checkpoint_dir: must be a non-empty path or None, got {self.checkpoint_dir!r}"
            )


@dataclass
class TrainHistory:
    """What happened: one loss (and one validation score, when validating) per epoch run.

    Epochs are counted from 0; ``best_epoch`` indexes ``losses``. ``seconds`` includes the time
    spent before a resume.
    """

    losses: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    seconds: float = 0.0
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.losses)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is what other code draws from
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """The torch device for a ``TrainConfig.device`` value; "auto" picks CUDA when present."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return torch.device(name)


def fit_loop(
    trainable: Trainable,
    config: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    description: str = "training",
) -> TrainHistory:
    """Train ``trainable`` for up to ``config.epochs`` epochs and leave it holding its best weights.

    Pass the ``optimizer`` so that checkpoints include its state (Adam's moments) and a resumed
    run continues exactly. Without ``validate`` there is no early stopping and the last weights
    are kept. Seed (:func:`seed_everything`) before creating the model, so that its initial
    weights are reproducible too.
    """
    if not isinstance(trainable, Trainable):
        raise TypeError(f"fit_loop: {type(trainable).__name__} needs train_epoch(), state_dict() and load_state_dict()")
    validate = trainable.validate if isinstance(trainable, Validatable) else None
    history = TrainHistory()
    best_state: Any = None
    bad_epochs, start = 0, 0
    path = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir else None
    if path is not None and path.is_file():
        saved = _load_checkpoint(path, config)
        trainable.load_state_dict(saved["model"])
        if optimizer is not None and saved["optimizer"] is not None:
            optimizer.load_state_dict(saved["optimizer"])
        history = TrainHistory(**saved["history"])
        best_state, bad_epochs, start = saved["best_state"], saved["bad_epochs"], saved["epoch"]

    begun = time.perf_counter() - history.seconds
    with _quiet_determinism(config.threads), _progress(config.progress, description, config.epochs) as bar:
        bar.advance(start)
        for epoch in range(start, config.epochs):
            if history.stopped_early:
                break
            seed_everything(_epoch_seed(config.seed, epoch))
            loss = float(trainable.train_epoch(epoch))
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"{description}: the training loss is {loss} at epoch {epoch}; lower the learning rate"
                )
            history.losses.append(loss)
            if validate is not None:
                score = float(validate())
                history.scores.append(score)
                if history.best_score is None or score > history.best_score:
                    history.best_score, history.best_epoch, bad_epochs = score, epoch, 0
                    best_state = copy.deepcopy(trainable.state_dict())
                else:
                    bad_epochs += 1
                history.stopped_early = config.patience is not None and bad_epochs >= config.patience
            history.seconds = time.perf_counter() - begun
            bar.update(loss=loss, score=history.scores[-1] if history.scores else None)
            if path is not None:
                _save_checkpoint(path, config, epoch + 1, trainable, optimizer, history, best_state, bad_epochs)
    if best_state is not None:
        trainable.load_state_dict(best_state)
    history.seconds = time.perf_counter() - begun
    return history


def _epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed seed for one epoch of one run (seed 1 epoch 0 differs from seed 0 epoch 1)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(
    path: Path,
    config: TrainConfig,
    next_epoch: int,
    trainable: Trainable,
    optimizer: torch.optim.Optimizer | None,
    history: TrainHistory,
    best_state: Any,
    bad_epochs: int,
) -> None:
    """Write atomically (temporary file, then rename), so an interrupted save never corrupts it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "seed": config.seed,
        "epoch": next_epoch,
        "model": trainable.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "best_state": best_state,
        "bad_epochs": bad_epochs,
        "history": {
            "losses": history.losses,
            "scores": history.scores,
            "best_epoch": history.best_epoch,
            "best_score": history.best_score,
            "seconds": history.seconds,
            "stopped_early": history.stopped_early,
        },
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path}: cannot read this checkpoint ({exc}); delete it to start afresh") from None
    if not isinstance(saved, dict) or saved.get("format") != _CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a facetrec training checkpoint; delete it or choose another checkpoint_dir")
    if saved["seed"] != config.seed:
        raise ConfigError(
            f"{path}: was written by a run with seed {saved['seed']}, this run has seed {config.seed}; "
            "use the same seed to resume, or another checkpoint_dir to start afresh"
        )
    return saved


# --------------------------------------------------------------------------- run context


@contextmanager
def _quiet_determinism(threads: int | None) -> Iterator[None]:
    """Ask torch for deterministic kernels (warning where none exists) and set the thread count,
    restoring the caller's settings afterwards."""
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    was_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_on, warn_only=was_warn)
        torch.set_num_threads(was_threads)


class _Bar:
    """A rich progress bar showing epoch, loss and validation score (or nothing when disabled)."""

    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def advance(self, epochs: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=epochs)

    def update(self, loss: float, score: float | None) -> None:
        if self.progress is not None:
            shown = "-" if score is None else f"{score:.4f}"
            self.progress.update(self.task, advance=1, loss=f"{loss:.4f}", score=shown)


@contextmanager
def _progress(enabled: bool, description: str, epochs: int) -> Iterator[_Bar]:
    if not enabled:
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  loss {task.fields[loss]}  valid {task.fields[score]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _Bar(progress, progress.add_task(description, total=epochs, loss="-", score="-"))


def load_flat_weights(module: torch.nn.Module, weights: np.ndarray, owner: str, device: str) -> torch.nn.Module:
    """``module`` in eval mode on ``device`` with its parameters set from one flat float32 vector
    (the form models save their weights in), or a ConfigError when the sizes do not match."""
    expected = sum(p.numel() for p in module.parameters())
    if weights.shape != (expected,):
        raise ConfigError(
            f"{owner}.weights_: holds {weights.size} values but a network with this config and data needs "
            f"{expected}; the weights and config do not belong together"
        )
    torch.nn.utils.vector_to_parameters(torch.from_numpy(np.array(weights, dtype=np.float32)), module.parameters())
    return module.to(resolve_device(device)).eval()
