"""The one training loop: batches, device, precision, optimiser steps, epochs, seeding,
progress, early stopping and checkpoints.

A torch model does not subclass a trainer and keeps no loop of its own. It is an ``nn.Module``
whose ``loss(batch)`` returns a scalar mean loss for a dict of tensors (built with its own
``forward``). :func:`fit_loop` gets it together with the training rows, a :class:`Batches`
(``len(data)`` rows and ``data.batch(rows)``, the dict for some row indices), and optionally a
``validate`` callable (a held-out score, higher is better). The loop owns the rest:

- batches: every epoch starts from generators seeded by ``(seed, epoch)``, shuffles the rows
  with ``torch.randperm`` and cuts them into ``batch_size`` rows, so a run resumed from a
  checkpoint replays the remaining epochs exactly as an uninterrupted run would (randomness in
  the model, dropout or sampling, must also come from torch's global generator);
- device ("auto", "cpu", "cuda", "cuda:N", "mps"): the model and every batch are moved there;
- precision: "fp32"; "bf16", the forward pass and loss under ``torch.autocast`` (CPU or CUDA);
  "fp16", the same on CUDA with a gradient scaler against underflow;
- the optimiser: Adam (betas 0.9, 0.98, as the Transformer sequence models are trained);
- early stopping: the best weights by validation score are kept and restored at the end, and
  training stops after ``patience`` epochs without improvement;
- checkpoints: with ``checkpoint_dir`` set, model, optimiser and history are saved after every
  epoch (state dicts only, loaded with ``weights_only=True``), and a later call with the same
  directory continues where the last one stopped;
- progress on stderr: a progress bar on a terminal, otherwise (a log file, a CI job) one
  plain line per epoch with loss, validation score, elapsed time and an estimate of what is left;
- epoch hooks: code around a model's ``fit`` (a hyper-parameter search that prunes weak trials)
  sees each epoch's validation score through :func:`on_epoch`, and may stop training by raising.
"""

from __future__ import annotations

import copy
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from facetrec.errors import ConfigError, DataError

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = 1
PRECISIONS = ("fp32", "bf16", "fp16")
_ADAM_BETAS = (0.9, 0.98)


@runtime_checkable
class Batches(Protocol):
    """The training rows the loop shuffles and batches.

    ``batch(rows)`` returns the rows ``rows`` (a 1-d int64 tensor) as a dict of CPU tensors; the
    loop moves them to the device and hands them to ``model.loss``. Optionally ``weight(batch)``
    says how many predictions the batch's mean loss averages over (default: its rows), so that
    the epoch's loss is the mean over predictions however they fell into batches.
    """

    def __len__(self) -> int: ...

    def batch(self, rows: torch.Tensor) -> Mapping[str, torch.Tensor]: ...


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
    """"auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N" or "mps"."""
    checkpoint_dir: str | None = None
    """Save a checkpoint here after every epoch and resume from it when present (None: no checkpoints)."""
    progress: bool = True
    """Report epoch, loss and validation score on stderr (a bar on a terminal, else a line per epoch)."""
    threads: int | None = None
    """CPU threads torch may use while training (None: torch's default)."""
    batch_size: int = 128
    """Training rows per optimiser step."""
    lr: float = 1e-3
    """Adam learning rate."""
    precision: str = "fp32"
    """"fp32"; "bf16" (autocast, on CPU or CUDA); "fp16" (autocast with a gradient scaler, CUDA only)."""
    max_minutes: float | None = None
    """A training budget: no epoch starts once this many minutes have passed (None: no limit).
    With validation the best epoch's weights are kept, as after early stopping."""

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
        positive("batch_size", self.batch_size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"TrainConfig.seed: must be an integer in 0..2**32-1, got {self.seed!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigError(
                f"TrainConfig.device: must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}"
            )
        if self.checkpoint_dir is not None and not (isinstance(self.checkpoint_dir, str) and self.checkpoint_dir):
            raise ConfigError(
                f"TrainConfig.checkpoint_dir: must be a non-empty path or None, got {self.checkpoint_dir!r}"
            )
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr: must be a number > 0, got {self.lr!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"TrainConfig.precision: must be one of {PRECISIONS}, got {self.precision!r}")
        budget = self.max_minutes
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0):
            raise ConfigError(f"TrainConfig.max_minutes: must be a number > 0 or None, got {budget!r}")
        if self.device != "auto":  # "auto" is checked once the device is known
            _check_precision(self.precision, self.device.split(":")[0])


def _check_precision(precision: str, device_type: str) -> None:
    """A ConfigError that names the fix when ``precision`` cannot run on this kind of device."""
    if precision == "fp16" and device_type != "cuda":
        raise ConfigError(
            f"TrainConfig.precision: 'fp16' needs a CUDA device, but training runs on {device_type!r}; "
            f"use precision = 'bf16'{' on CPU' if device_type == 'cpu' else ''} or 'fp32'"
        )
    if precision == "bf16" and device_type not in ("cpu", "cuda"):
        raise ConfigError(
            f"TrainConfig.precision: 'bf16' runs on CPU or CUDA, not {device_type!r}; use precision = 'fp32' "
            "there, or device = 'cpu'"
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
    out_of_time: bool = False
    """Whether ``max_minutes`` ended training."""

    @property
    def epochs(self) -> int:
        return len(self.losses)


EpochHook = Callable[[int, float | None], None]
"""Called after each epoch with (epoch, counted from 0; its validation score, or None without validation)."""

_EPOCH_HOOKS: ContextVar[tuple[EpochHook, ...]] = ContextVar("facetrec_epoch_hooks", default=())


@contextmanager
def on_epoch(hook: EpochHook) -> Iterator[None]:
    """Call ``hook(epoch, score)`` after every epoch of every :func:`fit_loop` run inside the block.

    Models build their ``TrainConfig`` from their own settings and call :func:`fit_loop`
    themselves, so a caller outside the model reaches their epochs this way rather than through
    a parameter. An exception the hook raises ends training (after the epoch's checkpoint is
    written) and propagates out of the model's ``fit``: a tuner's signal to prune a trial.
    """
    token = _EPOCH_HOOKS.set((*_EPOCH_HOOKS.get(), hook))
    try:
        yield
    finally:
        _EPOCH_HOOKS.reset(token)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is what other code draws from
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """The torch device for a ``TrainConfig.device`` value; "auto" picks CUDA when present, else
    the CPU (Apple's "mps" must be asked for by name)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' was asked for but torch sees no Apple GPU; use 'auto' or 'cpu'")
    return torch.device(name)


def fit_loop(
    model: nn.Module,
    config: TrainConfig,
    *,
    data: Batches,
    validate: Callable[[], float] | None = None,
    description: str = "training",
) -> TrainHistory:
    """Train ``model`` on ``data`` for up to ``config.epochs`` epochs and leave it on the chosen
    device, holding its best weights.

    ``model`` needs ``loss(batch) -> torch.Tensor``; ``validate`` (higher is better) enables
    early stopping, and without it the last weights are kept. Hooks registered with
    :func:`on_epoch` are called after every epoch. Seed (:func:`seed_everything`)
    before creating the model, so that its initial weights are reproducible too.
    """
    if not isinstance(model, nn.Module) or not callable(getattr(model, "loss", None)):
        raise TypeError(f"fit_loop: {type(model).__name__} must be a torch nn.Module with loss(batch)")
    if not isinstance(data, Batches):
        raise TypeError(f"fit_loop: data ({type(data).__name__}) needs __len__() and batch(rows)")
    if not len(data):
        raise DataError(f"{description}: there are no training rows")
    device = resolve_device(config.device)
    _check_precision(config.precision, device.type)
    if config.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("TrainConfig.precision: this GPU has no bfloat16 support; use precision = 'fp16' or 'fp32'")
    model.to(device)
    hooks = _EPOCH_HOOKS.get()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=_ADAM_BETAS)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    autocast = nullcontext if dtype is None else lambda: torch.autocast(device.type, dtype=dtype)

    history = TrainHistory()
    best_state: Any = None
    bad_epochs, start = 0, 0
    path = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir else None
    if path is not None and path.is_file():
        saved = _load_checkpoint(path, config)
        model.load_state_dict(saved["model"])
        if saved["optimizer"] is not None:  # None: written by a run that did not own its optimiser
            optimizer.load_state_dict(saved["optimizer"])
        if scaler is not None and saved.get("scaler") is not None:
            scaler.load_state_dict(saved["scaler"])
        history = TrainHistory(**saved["history"])
        best_state, bad_epochs, start = saved["best_state"], saved["bad_epochs"], saved["epoch"]

    begun = time.perf_counter() - history.seconds
    with _quiet_determinism(config.threads), _progress(config.progress, description, config.epochs, start) as report:
        for epoch in range(start, config.epochs):
            history.out_of_time = config.max_minutes is not None and history.seconds >= 60 * config.max_minutes
            if history.stopped_early or history.out_of_time:
                break
            seed_everything(_epoch_seed(config.seed, epoch))
            loss = _train_epoch(model, data, optimizer, scaler, autocast, config, device)
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
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += 1
                history.stopped_early = config.patience is not None and bad_epochs >= config.patience
            history.seconds = time.perf_counter() - begun
            report(epoch, loss, history.scores[-1] if history.scores else None, history.seconds)
            if path is not None:
                _save_checkpoint(path, config, epoch + 1, model, optimizer, scaler, history, best_state, bad_epochs)
            for hook in hooks:
                hook(epoch, history.scores[-1] if validate is not None else None)
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = time.perf_counter() - begun
    return history


def _train_epoch(
    model: nn.Module,
    data: Batches,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    autocast: Callable[[], AbstractContextManager[Any]],
    config: TrainConfig,
    device: torch.device,
) -> float:
    """One pass over shuffled mini-batches: forward pass and loss (under ``autocast``), backward
    pass, optimiser step. Returns the mean loss over the epoch's predictions."""
    model.train()
    weight: Callable[[Mapping[str, torch.Tensor]], int] | None = getattr(data, "weight", None)
    total, count = 0.0, 0
    for rows in torch.randperm(len(data)).split(config.batch_size):
        batch = {k: v.to(device) for k, v in data.batch(rows).items()}
        with autocast():
            loss = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        n = len(rows) if weight is None else weight(batch)
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)


def _epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed seed for one epoch of one run (seed 1 epoch 0 differs from seed 0 epoch 1)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# --------------------------------------------------------------------------- checkpoints


def _save_checkpoint(
    path: Path,
    config: TrainConfig,
    next_epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
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
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
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


_Report = Callable[[int, float, float | None, float], None]
"""Called after each epoch with (epoch, loss, validation score or None, seconds so far)."""


@contextmanager
def _progress(enabled: bool, description: str, epochs: int, start: int) -> Iterator[_Report]:
    """Progress on stderr: a rich bar when stderr is a terminal, else one plain line per epoch
    (a bar redrawn in place would be lost, or garbled, in a log file)."""
    if not enabled:
        yield lambda *_: None
        return
    if not sys.stderr.isatty():
        yield _line_reporter(description, epochs, start)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs  loss {task.fields[loss]}  valid {task.fields[score]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=epochs, completed=start, loss="-", score="-")

        def report(epoch: int, loss: float, score: float | None, seconds: float) -> None:
            shown = "-" if score is None else f"{score:.4f}"
            progress.update(task, completed=epoch + 1, loss=f"{loss:.4f}", score=shown)

        yield report


def _line_reporter(description: str, epochs: int, start: int) -> _Report:
    """``SASRec  epoch 3/200  loss 5.1584  valid 0.0271  elapsed 0:00:04  eta 0:04:12``; the
    estimate assumes the remaining epochs take as long as this run's so far (early stopping may
    end sooner)."""
    begun = time.perf_counter()

    def report(epoch: int, loss: float, score: float | None, seconds: float) -> None:
        per_epoch = (time.perf_counter() - begun) / (epoch + 1 - start)
        valid = "" if score is None else f"  valid {score:.4f}"
        print(
            f"{description}  epoch {epoch + 1}/{epochs}  loss {loss:.4f}{valid}  "
            f"elapsed {_clock(seconds)}  eta {_clock(per_epoch * (epochs - epoch - 1))}",
            file=sys.stderr,
            flush=True,
        )

    return report


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


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
