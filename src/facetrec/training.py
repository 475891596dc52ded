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
  sees each epoch's validation score through :func:`on_epoch`, and may stop training by raising;
- processes: launched by ``torchrun`` (or inside an initialised ``torch.distributed`` process
  group) the loop trains with DistributedDataParallel, each process on its share of every batch
  (see :func:`fit_loop`; docs/distributed.md).
"""

from __future__ import annotations

import atexit
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
from torch import distributed as dist
from torch import nn

from facetrec.errors import ConfigError, DataError

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = 1
PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = ("auto", "gloo", "nccl")
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
    """CPU threads torch may use while training (None: torch's default; under torchrun, the
    machine's cores shared out among the node's processes, at least 1 each)."""
    batch_size: int = 128
    """Training rows per optimiser step."""
    lr: float = 1e-3
    """Adam learning rate."""
    precision: str = "fp32"
    """"fp32"; "bf16" (autocast, on CPU or CUDA); "fp16" (autocast with a gradient scaler, CUDA only)."""
    max_minutes: float | None = None
    """A training budget: no epoch starts once this many minutes have passed (None: no limit).
    With validation the best epoch's weights are kept, as after early stopping."""
    backend: str = "auto"
    """The torch.distributed backend when the loop starts the process group under torchrun:
    "auto" (nccl on CUDA, gloo otherwise), "gloo" or "nccl" (CUDA only)."""

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
        if self.backend not in BACKENDS:
            raise ConfigError(f"TrainConfig.backend: must be one of {BACKENDS}, got {self.backend!r}")
        if self.device != "auto":  # "auto" is checked once the device is known
            _check_precision(self.precision, self.device.split(":")[0])
            _check_backend(self.backend, self.device.split(":")[0])


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


def _check_backend(backend: str, device_type: str, what: str = "TrainConfig.backend") -> None:
    """A ConfigError when ``backend`` (``what`` names where it was chosen) cannot carry this kind
    of device's tensors."""
    if "nccl" in backend and "gloo" not in backend and device_type != "cuda":
        raise ConfigError(
            f"{what}: nccl needs CUDA, but training runs on {device_type!r}; "
            "use gloo (backend 'auto' chooses it) on a CPU, or device = 'cuda'"
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

    Under ``torchrun`` (WORLD_SIZE > 1), or in a process group the caller initialised, every
    process calls this with the same arguments and the loop trains them together with
    DistributedDataParallel. It starts the process group when none exists (``config.backend``;
    each process on ``cuda:LOCAL_RANK`` with CUDA), which then lasts until the process exits.
    Every process draws the same epoch order and builds only its share of each batch of
    ``batch_size`` rows, and the gradients are averaged weighted by each share's predictions, so
    a step is the one process's step up to the order floating-point sums are taken in. The epoch
    loss is the mean over all processes' predictions; validation runs on rank 0, whose score and
    clock decide early stopping and ``max_minutes`` for all; only rank 0 reports progress and
    writes checkpoints. Every process returns with the same best weights (:func:`is_primary`
    says which one should write outputs). Unless ``config.threads`` is set, each process uses
    max(1, cores // the node's processes) CPU threads, so that processes do not compete for cores.
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
    group, device = _processes(config, device)
    if group.size > min(config.batch_size, len(data)):
        raise ConfigError(
            f"{description}: {group.size} processes cannot share batches of {min(config.batch_size, len(data))} "
            f"rows (batch_size {config.batch_size}, {len(data)} training rows): every process needs rows of its "
            "own each step; launch fewer processes or raise batch_size"
        )
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

    step = group.wrap(model, device)
    begun = time.perf_counter() - history.seconds
    threads = config.threads if config.threads is not None or group.size == 1 else group.threads()
    reporting = config.progress and group.primary
    with _quiet_determinism(threads), _progress(reporting, description, config.epochs, start) as report:
        for epoch in range(start, config.epochs):
            history.out_of_time = config.max_minutes is not None and history.seconds >= 60 * config.max_minutes
            if history.stopped_early or history.out_of_time:
                break
            seed_everything(_epoch_seed(config.seed, epoch))
            loss = _train_epoch(step, model, data, optimizer, scaler, autocast, config, device, group, epoch)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"{description}: the training loss is {loss} at epoch {epoch}; lower the learning rate"
                )
            history.losses.append(loss)
            # Rank 0 validates and reads the clock; every process acts on its numbers.
            score = float(validate()) if validate is not None and group.primary else math.nan
            score, seconds = group.from_primary(score, time.perf_counter() - begun)
            if validate is not None:
                history.scores.append(score)
                if history.best_score is None or score > history.best_score:
                    history.best_score, history.best_epoch, bad_epochs = score, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad_epochs += 1
                history.stopped_early = config.patience is not None and bad_epochs >= config.patience
            history.seconds = seconds
            report(epoch, loss, history.scores[-1] if history.scores else None, history.seconds)
            if path is not None:
                if group.primary:
                    _save_checkpoint(path, config, epoch + 1, model, optimizer, scaler, history, best_state, bad_epochs)
                group.barrier()  # the checkpoint is complete before any process goes on
            for hook in hooks:
                hook(epoch, history.scores[-1] if validate is not None else None)
    if best_state is not None:
        model.load_state_dict(best_state)
    history.seconds = group.from_primary(time.perf_counter() - begun)[0]
    return history


def _train_epoch(
    step: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
    model: nn.Module,
    data: Batches,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    autocast: Callable[[], AbstractContextManager[Any]],
    config: TrainConfig,
    device: torch.device,
    group: _Group,
    epoch: int,
) -> float:
    """One pass over shuffled mini-batches: forward pass and loss (under ``autocast``), backward
    pass, optimiser step. Returns the mean loss over the epoch's predictions.

    ``step(batch)`` is ``model.loss``, or its DistributedDataParallel wrapper, which averages the
    processes' gradients in the backward pass. Each process then takes its slice of every batch
    and scales its loss by its share of the batch's predictions (times the number of processes),
    so that the average is the gradient of the whole batch's mean loss, as one process computes
    it. A process whose slice of a short last batch is empty trains on one row with weight 0, so
    that all take part in every step.
    """
    model.train()
    weight: Callable[[Mapping[str, torch.Tensor]], int] | None = getattr(data, "weight", None)
    total, count = 0.0, 0
    order = torch.randperm(len(data))  # the same on every process: the epoch's seed drew it
    if group.size > 1:  # dropout and sampling differ between processes, as between rows of one batch
        seed_everything(_epoch_seed(config.seed, epoch, group.rank))
    for rows in order.split(config.batch_size):
        mine = rows.tensor_split(group.size)[group.rank]
        batch = {k: v.to(device) for k, v in data.batch(mine if len(mine) else rows[:1]).items()}
        n = 0 if not len(mine) else len(mine) if weight is None else weight(batch)
        whole = group.sum_later(n)  # the batch's predictions, summed while the forward pass runs
        with autocast():
            loss = step(batch)
        scaled = loss if group.size == 1 else loss * (n * group.size / max(whole(), 1))
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            scaled.backward()
            optimizer.step()
        else:
            scaler.scale(scaled).backward()
            scaler.step(optimizer)
            scaler.update()
        total, count = total + loss.item() * n, count + n
    total, count = group.sum(total, count)
    return total / max(count, 1)


def _epoch_seed(seed: int, epoch: int, *rank: int) -> int:
    """A well-mixed seed for one epoch of one run (seed 1 epoch 0 differs from seed 0 epoch 1),
    or of one process of it."""
    return int(np.random.SeedSequence([seed, epoch, *rank]).generate_state(1)[0])


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


# --------------------------------------------------------------------------- processes


def is_primary() -> bool:
    """Whether this process should write a run's outputs (bundles, results, printed reports):
    rank 0 of a torch.distributed run, or a process on its own. The other processes of a run
    end :func:`fit_loop` with the same weights and have nothing of their own to write."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


class _LossModule(nn.Module):
    """DistributedDataParallel averages gradients in the backward pass of its module's forward;
    the models give ``loss(batch)`` rather than a forward that returns the loss."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.model.loss(batch)


@dataclass(frozen=True)
class _Group:
    """The processes training together (size 1: this process alone, and every collective is the
    identity). ``on`` is where collectives' tensors live (the GPU for nccl)."""

    rank: int = 0
    size: int = 1
    local_size: int = 1
    on: str = "cpu"

    @property
    def primary(self) -> bool:
        return self.rank == 0

    def threads(self) -> int:
        """This process's share of the machine's cores."""
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, cores // self.local_size)

    def wrap(self, model: nn.Module, device: torch.device) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
        """What a training step calls: ``model.loss``, or DistributedDataParallel around it.

        Buffers are synchronised once, not every step (they are constants here: popularity,
        content vectors). ``static_graph``: which parameters a loss reads depends on the
        configuration (hard routing leaves the gate out), not on the batch, so DDP learns that
        set in the first step instead of walking the autograd graph in every step as
        ``find_unused_parameters`` does.
        """
        if self.size == 1:
            return model.loss  # type: ignore[no-any-return]
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(  # type: ignore[no-any-return]
            _LossModule(model),
            device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False,
            static_graph=True,
        )

    def _tensor(self, values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=self.on)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes."""
        if self.size == 1:
            return list(values)
        summed = self._tensor(values)
        dist.all_reduce(summed)
        return summed.tolist()

    def sum_later(self, value: float) -> Callable[[], float]:
        """:meth:`sum` of one value, started now and read (waited for) when called."""
        if self.size == 1:
            return lambda: value
        summed = self._tensor((value,))
        work = dist.all_reduce(summed, async_op=True)

        def result() -> float:
            work.wait()
            return float(summed.item())

        return result

    def from_primary(self, *values: float) -> list[float]:
        """Rank 0's values, on every process."""
        if self.size == 1:
            return list(values)
        shared = self._tensor(values)
        dist.broadcast(shared, 0)
        return shared.tolist()

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def _launched() -> bool:
    """Whether this process is one of several training together: started by torchrun with
    WORLD_SIZE > 1, or inside a process group its caller initialised."""
    if not dist.is_available():
        return False
    return dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) > 1


def _processes(config: TrainConfig, device: torch.device) -> tuple[_Group, torch.device]:
    """The process group to train in, and this process's device (``cuda:LOCAL_RANK`` under CUDA).

    A group the loop starts lives until the process exits: starting a second one from
    torchrun's store, after ending the first, can meet the first one's stale addresses there and
    fail, and a process may train several models (a search, an evaluation of several kinds).
    """
    if not _launched():
        _check_backend(config.backend, device.type)
        return _Group(), device
    if device.type == "mps":
        raise ConfigError("device: distributed training runs on CPUs (gloo) or CUDA GPUs (nccl), not on 'mps'")
    if device.type == "cuda":
        if config.device.startswith("cuda:"):
            raise ConfigError(
                f"TrainConfig.device: {config.device!r} under torchrun; each process trains on cuda:LOCAL_RANK, "
                "so use device = 'cuda' or 'auto'"
            )
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local}: torch sees {torch.cuda.device_count()} GPUs; launch at most that many "
                "processes per node (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if dist.is_initialized():
        _check_backend(str(dist.get_backend()), device.type, "the initialised process group")
    else:
        backend = config.backend if config.backend != "auto" else "nccl" if device.type == "cuda" else "gloo"
        _check_backend(backend, device.type)
        dist.init_process_group(backend)
        atexit.register(_end_group)
    size = dist.get_world_size()
    on = str(device) if "nccl" in str(dist.get_backend()) else "cpu"
    return _Group(dist.get_rank(), size, int(os.environ.get("LOCAL_WORLD_SIZE", size)), on), device


def _end_group() -> None:
    """At exit: end the process group the loop started (unless its owner already has)."""
    if dist.is_initialized():
        dist.destroy_process_group()


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
