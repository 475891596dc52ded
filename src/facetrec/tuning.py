"""Hyper-parameter search with Optuna, on the validation targets only.

:func:`tune` splits the data once (as ``facetrec evaluate`` does), then lets Optuna's TPE
sampler, seeded, pick settings from the model kind's search space in :data:`SPACES`; each
trial fits on ``split.train`` and is scored on ``split.valid``. The test targets are never
read: a setting chosen on them would make the test score an optimistic estimate.

Models trained by :func:`facetrec.training.fit_loop` report every epoch's validation score
(their early-stopping NDCG@10) to the trial through :func:`facetrec.training.on_epoch`, and a
pruner stops trials that fall behind; other models report their final score only.

A search space maps config keys of the model to Optuna distributions. A model registered
elsewhere declares its own with :func:`register_space` (or ``registry.register(...,
tuning_space=...)``); a kind without one cannot be tuned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from facetrec.data.dataset import Dataset
from facetrec.data.split import Split, make_split
from facetrec.errors import ConfigError
from facetrec.evaluation.experiment import check_params, higher_is_better
from facetrec.evaluation.protocol import EvalConfig, ItemSide, evaluate
from facetrec.scoring.registry import SCORERS, make_scorer, scorer_class
from facetrec.training import on_epoch

Space = dict[str, BaseDistribution]

_SEQUENCE: Space = {
    "lr": FloatDistribution(1e-4, 3e-3, log=True),
    "dropout": FloatDistribution(0.1, 0.6),
    "hidden": CategoricalDistribution((32, 64, 128)),
    "max_len": CategoricalDistribution((50, 100, 200)),
    "batch_size": CategoricalDistribution((64, 128, 256)),
}

SPACES: dict[str, Space] = {
    "bias": {"user_l2": FloatDistribution(0.1, 100.0, log=True), "item_l2": FloatDistribution(0.1, 100.0, log=True)},
    "itemknn": {"k": IntDistribution(5, 1000, log=True), "shrinkage": FloatDistribution(0.0, 200.0)},
    "ease": {"l2": FloatDistribution(1.0, 1e4, log=True)},
    "als": {
        "factors": IntDistribution(16, 512, log=True),
        "regularization": FloatDistribution(1e-3, 100.0, log=True),
        "alpha": FloatDistribution(0.5, 50.0, log=True),
        "iterations": IntDistribution(5, 50),
    },
    "bpr": {
        "factors": IntDistribution(16, 256, log=True),
        "learning_rate": FloatDistribution(1e-3, 0.2, log=True),
        "regularization": FloatDistribution(1e-5, 0.1, log=True),
        "iterations": IntDistribution(50, 500, log=True),
    },
    "content": {"history_length": IntDistribution(5, 200, log=True)},
    "sasrec": dict(_SEQUENCE),
    "sasrec-text": dict(_SEQUENCE),
    "facet": {
        **_SEQUENCE,
        "interests": IntDistribution(1, 8),
        "routing": CategoricalDistribution(("soft", "hard")),
    },
}
"""Search space per model kind: config key -> Optuna distribution (``facetrec tune``).

``facetrec evaluate --tune`` uses the small fixed grids of ``registry.SEARCH_SPACES`` instead."""

QUIET = {"progress": False}
"""Settings every trial gets unless fixed: a model's own progress bar would interleave with the
one line per trial."""


def register_space(kind: str, space: Mapping[str, BaseDistribution]) -> None:
    """Declare (or replace) the search space of ``kind``: config key -> Optuna distribution."""
    bad = [key for key, value in space.items() if not isinstance(value, BaseDistribution)]
    if bad:
        raise ConfigError(f"search space of {kind!r}: {bad[0]!r} must be an Optuna distribution")
    SPACES[kind] = dict(space)


@dataclass(frozen=True)
class TrialRecord:
    """One trial: the whole setting it fitted (fixed and sampled), its outcome and duration."""

    number: int
    state: str
    """COMPLETE, PRUNED or FAIL (Optuna's trial states)."""
    params: dict[str, Any]
    score: float | None
    """The validation metric (None for a trial that was pruned or failed)."""
    seconds: float
    epochs: list[float] = field(default_factory=list)
    """Per-epoch validation scores the trial reported (sequence models; empty otherwise)."""

    def document(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "params": self.params,
            "score": self.score,
            "seconds": round(self.seconds, 3),
            "epoch_scores": self.epochs,
        }


@dataclass(frozen=True, eq=False)
class TuneResult:
    """What a search tried and found; ``split`` is the one split every trial was scored on."""

    kind: str
    dataset: str
    protocol: str
    metric: str
    direction: str
    seed: int
    fixed: dict[str, Any]
    space: dict[str, str]
    """The searched keys and their distributions, as text."""
    trials: list[TrialRecord]
    split: Split

    @property
    def best(self) -> TrialRecord | None:
        """The completed trial with the best score (the earliest among ties); None if none completed."""
        done = [t for t in self.trials if t.state == "COMPLETE" and t.score is not None and math.isfinite(t.score)]
        if not done:
            return None
        sign = 1 if self.direction == "maximize" else -1
        return max(done, key=lambda t: (sign * t.score, -t.number))  # type: ignore[operator]

    def document(self) -> dict[str, Any]:
        """The JSON form: settings, best setting and score, and every trial."""
        best = self.best
        return {
            "model": self.kind,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "metric": self.metric,
            "direction": self.direction,
            "seed": self.seed,
            "fixed": self.fixed,
            "space": self.space,
            "validation": {"targets": len(self.split.valid.targets), "users": self.split.valid.n_users},
            "best": None if best is None else {"trial": best.number, "params": best.params, "score": best.score},
            "trials": [t.document() for t in self.trials],
        }


def space_for(kind: str, fixed: Mapping[str, Any]) -> Space:
    """The distributions of ``kind`` less the ``fixed`` settings, which must be settings of the
    model; errors name what is wrong and the valid choices."""
    if kind not in SCORERS:
        raise ConfigError(f"unknown model kind {kind!r}; choose from {', '.join(SCORERS)}")
    if kind not in SPACES:
        raise ConfigError(
            f"model {kind!r} has no search space; models that can be tuned: {', '.join(SPACES)} (declare one "
            "with facetrec.tuning.register_space)"
        )
    check_params([kind], {kind: dict(fixed)})
    keys = scorer_class(kind).config_class.__dataclass_fields__
    stray = [key for key in SPACES[kind] if key not in keys]
    if stray:
        raise ConfigError(f"search space of {kind!r}: {stray[0]!r} is not a setting of the model")
    space = {key: value for key, value in SPACES[kind].items() if key not in fixed}
    if not space:
        searched = ", ".join(SPACES[kind])
        raise ConfigError(f"every setting in the search space of {kind!r} ({searched}) is fixed; nothing to tune")
    return space


def tune(
    dataset: Dataset,
    kind: str,
    *,
    trials: int = 20,
    timeout: float | None = None,
    protocol: str = "loo",
    metric: str = "ndcg@10",
    seed: int = 0,
    fixed: Mapping[str, Any] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    on_trial: Callable[[TrialRecord, TuneResult], None] = lambda record, result: None,
) -> TuneResult:
    """Search ``kind``'s settings on the validation targets of one split of ``dataset``.

    ``trials`` caps the number of trials; ``timeout`` (seconds) stops starting new ones after
    that long (a running trial finishes). ``fixed`` settings are not searched. ``pruner``
    defaults to a median pruner that waits for 5 finished trials and 5 epochs. ``on_trial``
    receives each finished trial and the result so far (progress lines, tracking).
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials must be a whole number >= 1, got {trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"the time budget must be > 0, got {timeout!r}")
    fixed = dict(fixed or {})
    space = space_for(kind, fixed)
    config = EvalConfig(metrics=(metric,), bootstrap=0, seed=seed)
    direction = "maximize" if higher_is_better(metric) else "minimize"
    split = make_split(dataset.interactions, protocol, seed)
    items = ItemSide.from_data(dataset.catalog, split.train)
    quiet = {k: v for k, v in QUIET.items() if k in scorer_class(kind).config_class.__dataclass_fields__}
    result = TuneResult(
        kind, dataset.name, protocol, metric, direction, seed, dict(fixed),
        {key: repr(value) for key, value in space.items()}, [], split,
    )  # fmt: skip

    def objective(trial: optuna.Trial) -> float:
        params = {**fixed, **{key: _suggest(trial, key, value) for key, value in space.items()}}
        trial.set_user_attr("params", params)
        scorer = make_scorer(kind, {**quiet, **params}, seed)
        # the epochs report the models' early-stopping NDCG@10, which can only prune a maximised metric
        with on_epoch(_pruning_hook(trial)) if direction == "maximize" else nullcontext():
            scorer.fit(split.train, dataset.catalog, split.valid)
        return evaluate(scorer, split.valid, config, items).summary[metric]

    def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        epochs = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
        record = TrialRecord(trial.number, trial.state.name, trial.user_attrs.get("params", {}),
                             trial.value if trial.state == TrialState.COMPLETE else None, seconds, epochs)  # fmt: skip
        result.trials.append(record)
        on_trial(record, result)

    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial gets facetrec's own line instead
    try:
        study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
        study.optimize(objective, n_trials=trials, timeout=timeout, catch=(FloatingPointError,), callbacks=[finished])
    finally:
        optuna.logging.set_verbosity(verbosity)
    return result


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Sample ``name`` from ``distribution`` through the trial's public suggest methods."""
    d = distribution
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    raise ConfigError(f"{name}: unsupported distribution {type(d).__name__}")


def _pruning_hook(trial: optuna.Trial) -> Callable[[int, float | None], None]:
    """Report each epoch's validation score to ``trial`` and stop training when the pruner says so."""

    def hook(epoch: int, score: float | None) -> None:
        if score is None:
            return
        trial.report(score, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} (validation {score:.4f})")

    return hook


def best_config_toml(result: TuneResult) -> str:
    """The best setting as a TOML file that ``facetrec train --config`` and ``facetrec evaluate
    --config`` both read: ``kind`` and a ``[model]`` table (fixed and searched settings)."""
    import tomli_w

    best = result.best
    if best is None:
        raise ConfigError("no trial completed, so there is no best setting to write")
    header = (
        f"# facetrec tune: the best of {len(result.trials)} trials of {result.kind} on {result.dataset}\n"
        f"# (trial {best.number}, validation {result.metric} = {best.score:.6g}, protocol {result.protocol}, "
        f"seed {result.seed}).\n"
        "# Use it with: facetrec evaluate --config FILE --dataset DIR\n"
        "#              facetrec train --config FILE --dataset DIR --out BUNDLE\n"
    )
    return header + tomli_w.dumps({"kind": result.kind, "model": best.params})
