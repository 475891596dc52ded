"""Side-by-side experiments: several models, one split, one run, one set of metrics.

Comparisons are only meaningful on the identical split and protocol, so this module owns
both: it splits once, optionally tunes each model's hyper-parameters on the validation
targets (never on test), fits, and evaluates every model on the same test set. It then marks
the best model per metric and gives each model's ratio to the best on the main metric (the
first one), with a paired bootstrap interval over the shared test users.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from facetrec.config import from_dict
from facetrec.data.dataset import Dataset
from facetrec.data.filters import first_occurrences
from facetrec.data.split import Split, make_split
from facetrec.errors import ConfigError, DataError
from facetrec.evaluation.groups import (
    GroupGap,
    GroupScore,
    GroupShare,
    ItemGrouping,
    exposure_by_group,
    group_scores,
    item_groupings,
    user_groups,
)
from facetrec.evaluation.protocol import (
    EvalConfig,
    EvalResult,
    ItemSide,
    cold_targets,
    evaluate,
    evaluate_clicks,
    evaluate_ratings,
)
from facetrec.scoring.base import Scorer
from facetrec.scoring.registry import SEARCH_SPACES, make_scorer, scorer_class
from facetrec.types import Event

CLICK_EVENTS = (Event.CLICK, Event.CART, Event.PURCHASE)
"""Events that count as a positive response to an item shown (a view is the negative)."""

LOWER_IS_BETTER = frozenset({"calibration_kl", "popularity", "arp", "exposure_gini", "rmse", "mae", "log_loss"})
"""Metrics where a smaller value is better (popularity and arp: less popularity bias, as
RecBole's AveragePopularity; exposure_gini: exposure spread more evenly over the catalogue);
every other metric is better when larger."""


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` (``name@k`` or a bare name) is better."""
    return metric.split("@")[0] not in LOWER_IS_BETTER


@dataclass(frozen=True)
class RatioCI:
    """A model's mean metric divided by the best model's, over the users both were evaluated on."""

    ratio: float
    low: float
    """2.5th percentile of the paired bootstrap ratios (NaN without resampling)."""
    high: float
    """97.5th percentile of the paired bootstrap ratios (NaN without resampling)."""
    n_users: int


def paired_ratio(
    values: np.ndarray, reference: np.ndarray, resamples: int = 1000, seed: int | np.random.Generator = 0
) -> RatioCI:
    """mean(values) / mean(reference) with a 95 % paired bootstrap interval over users.

    ``values[u]`` and ``reference[u]`` are the same user's metric under two models; users where
    either is undefined (NaN) are left out of both. Each resample draws users with replacement
    and takes the ratio of the two means over the same draw (the ratio of means, not the mean
    of per-user ratios, which is undefined for users with a zero). Resamples whose reference
    mean is 0 are skipped. ``resamples=0`` gives the ratio with a NaN interval.
    """
    x, y = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired_ratio: expected two equal-length vectors, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    if x.size == 0:
        return RatioCI(nan, nan, nan, 0)
    ratio = float(x.mean() / y.mean()) if y.mean() != 0 else nan
    if not resamples:
        return RatioCI(ratio, nan, nan, int(x.size))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ratios = np.empty(resamples)
    chunk = max(1, 10_000_000 // x.size)  # bound memory at ~80 MB of indices per chunk
    for begin in range(0, resamples, chunk):
        draw = rng.integers(0, x.size, (min(chunk, resamples - begin), x.size))
        num, den = x[draw].mean(axis=1), y[draw].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[begin : begin + len(draw)] = np.where(den != 0, num / den, np.nan)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return RatioCI(ratio, nan, nan, int(x.size))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return RatioCI(ratio, float(low), float(high), int(x.size))


@dataclass(frozen=True, eq=False)
class ModelRun:
    kind: str
    params: dict[str, Any]
    """The configuration that was used (after tuning)."""
    test: EvalResult
    fit_seconds: float
    tuning: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    """(params, validation score) for each tried setting, when tuned."""
    cold: EvalResult | None = None
    """Accuracy on the test targets whose items never occur in training (None: there are none)."""
    warm: EvalResult | None = None
    """Accuracy on the other test targets, for comparison with ``cold``."""
    other: dict[str, float] = field(default_factory=dict)
    """Rating prediction (rmse, mae) for rating models, click prediction (auc, gauc) where the
    test targets mix clicks with shown-but-not-clicked views."""
    user_groups: dict[str, tuple[list[GroupScore], GroupGap | None]] = field(default_factory=dict)
    """Main-metric accuracy per user group, per grouping (activity, gender, ...), with the gap."""
    exposure: dict[str, list[GroupShare]] = field(default_factory=dict)
    """Exposure share per item group at the main metric's k, per grouping (category, brand, popularity)."""


@dataclass(frozen=True, eq=False)
class Experiment:
    dataset: str
    split: Split
    config: EvalConfig
    runs: list[ModelRun]
    seed: int
    first_only: bool = False
    """Whether only each user's first event per item was kept before splitting."""
    main_metric: str = ""
    """The metric the ratios compare on (the first configured metric)."""
    ratios: dict[str, RatioCI] = field(default_factory=dict)
    """Each model's ratio to the best model on ``main_metric`` (model kind -> ratio)."""

    def result(self, kind: str) -> EvalResult:
        return next(r.test for r in self.runs if r.kind == kind)

    def best(self) -> dict[str, tuple[str, ...]]:
        """metric -> the model kinds with the best value (ties share it; NaN is never best)."""
        return best_models(self.runs)


def best_models(runs: list[ModelRun]) -> dict[str, tuple[str, ...]]:
    """For each metric of the runs, the kinds with the best summary value (see :data:`LOWER_IS_BETTER`)."""
    out: dict[str, tuple[str, ...]] = {}
    for metric in runs[0].test.summary if runs else ():
        values = np.array([r.test.summary.get(metric, np.nan) for r in runs], dtype=np.float64)
        if not np.isfinite(values).any():
            out[metric] = ()
            continue
        best = np.nanmax(values) if higher_is_better(metric) else np.nanmin(values)
        close = np.isclose(values, best, rtol=1e-12, atol=1e-15)
        out[metric] = tuple(r.kind for r, hit in zip(runs, close, strict=True) if hit)
    return out


def ratios_to_best(runs: list[ModelRun], metric: str, resamples: int = 1000, seed: int = 0) -> dict[str, RatioCI]:
    """Each run's ratio to the best run on ``metric``: paired over the users both evaluated.

    The best run's own ratio is exactly 1 with interval [1, 1]. A metric without per-user
    values (e.g. catalogue coverage) gets the ratio of summaries and no interval.
    """
    best = best_models(runs).get(metric, ())
    if not best:
        nan = float("nan")
        return {r.kind: RatioCI(nan, nan, nan, 0) for r in runs}
    reference = next(r.test for r in runs if r.kind == best[0])
    out = {}
    for run in runs:
        result = run.test
        if run.kind in best:
            out[run.kind] = RatioCI(1.0, 1.0, 1.0, len(result.users))
        elif metric in result.per_user and metric in reference.per_user:
            _, ia, ib = np.intersect1d(result.users, reference.users, return_indices=True)
            # the same seed for every model: all ratios are computed on the same resamples of users
            out[run.kind] = paired_ratio(result.per_user[metric][ia], reference.per_user[metric][ib], resamples, seed)
        else:
            value, ref = result.summary[metric], reference.summary[metric]
            nan = float("nan")
            out[run.kind] = RatioCI(value / ref if ref else nan, nan, nan, len(result.users))
    return out


def check_params(kinds: list[str], params: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Validate per-model parameters before any work: every model must be in the run and every
    key a field of that model's config (errors list the valid keys). Returns plain dicts."""
    params = dict(params or {})
    repeated = sorted({kind for kind in kinds if kinds.count(kind) > 1})
    if repeated:
        raise ConfigError(f"model {repeated[0]!r} is listed more than once; list each model once")
    stray = [kind for kind in params if kind not in kinds]
    if stray:
        raise ConfigError(
            f"parameters given for {', '.join(map(repr, stray))}, which is not in the run; models in the run: "
            f"{', '.join(kinds)} (add it to the models, or drop its parameters)"
        )
    for kind, values in params.items():
        if not isinstance(values, dict):
            raise ConfigError(f"model {kind!r}: parameters must be a table of KEY = VALUE, got {values!r}")
        from_dict(scorer_class(kind).config_class, values, f"model {kind!r}")
    return {kind: dict(values) for kind, values in params.items()}


@dataclass(frozen=True)
class RunConfig:
    """What a ``facetrec evaluate --config run.toml`` file may hold: every option of the command,
    plus a ``[models.KIND]`` table of parameters per model. Options given on the command line
    override the file; paths are relative to the current directory."""

    dataset: str | None = None
    """Dataset directory (from ``data import`` or ``data synth``)."""
    models: str | tuple[str, ...] | dict[str, dict[str, Any]] = "pop,itemknn,ease,als"
    """Model kinds: "pop,ease", ["pop", "ease"], or tables ``[models.ease] l2 = 500`` (run in file order;
    ``[models.pop]`` with no keys runs pop with its defaults)."""
    protocol: str = "loo"
    """loo, temporal, ratio or multi-target."""
    k: int | str | tuple[int, ...] = 10
    """Cut-offs: 10, "10,20" or [10, 20]; the main metric is NDCG at the first one."""
    out: str | None = None
    """Directory for report.md, results.json and the plots."""
    tune: bool = False
    """Pick each model's settings on the validation targets first (given parameters stay fixed)."""
    include_history: bool = False
    """Let already-seen items be ranked."""
    sampled: int | None = None
    """Rank among N sampled negatives (not comparable to full ranking)."""
    first_only: bool = False
    """Keep each user's first event per item."""
    click_auc: bool = False
    """Read views as shown-but-not-clicked impressions and report click AUC."""
    seed: int = 0
    """Seed for splits, models and bootstrap."""
    json: bool = False
    """Print the results as JSON on stdout."""


def default_metrics(has_categories: bool, has_interests: bool, ks: tuple[int, ...] = (10,)) -> tuple[str, ...]:
    """Accuracy metrics, plus beyond-accuracy ones that the available item facts allow.

    NDCG at the first cut-off comes first: it is the main metric that models are compared on.
    """
    names = ["ndcg", "hr", "mrr", "recall", "coverage", "novelty", "popularity"]
    names += ["arp", "long_tail_share", "exposure_gini"]
    if has_categories:
        names += ["category_ild", "category_coverage", "calibration_kl"]
    if has_interests:
        names.append("interest_coverage")
    return tuple(f"{n}@{k}" for k in ks for n in names)


def run_experiment(
    dataset: Dataset,
    kinds: list[str],
    *,
    protocol: str = "loo",
    config: EvalConfig | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    tune: bool = False,
    tune_metric: str = "ndcg@10",
    seed: int = 0,
    first_only: bool = False,
    click_auc: bool = False,
    interests: tuple[np.ndarray, sp.csr_matrix] | None = None,
    groups: tuple[str, ...] | None = None,
    on_event: Callable[[str], None] = lambda message: None,
) -> Experiment:
    """Fit and evaluate each model kind on one split of ``dataset``.

    ``interests`` = (item topic per item, users x topics ground truth) enables interest
    coverage (synthetic data); otherwise categories come from the catalogue. ``first_only``
    keeps each user's first event per item (see :func:`facetrec.data.filters.first_occurrences`).
    ``click_auc`` reads view events as shown-but-not-clicked impressions (as in MIND) and adds
    click-prediction AUC; leave it off where a view is itself engagement. ``groups`` names the
    user groupings accuracy is broken down by (``activity`` and the dataset's user attributes;
    None: all of them, ``()``: none). ``params`` maps a kind
    to its parameters (validated first); with ``tune`` they stay fixed and the search space
    varies only the other settings. ``on_event`` receives progress lines such as
    ``[2/5] fitting ease ...`` and ``[2/5] ease done in 1.2 s; about 40 s left``.
    """
    params = check_params(kinds, params)
    data = first_occurrences(dataset.interactions) if first_only else dataset.interactions
    split = make_split(data, protocol, seed)
    items = ItemSide.from_data(dataset.catalog, split.train)
    if interests is not None:
        items = ItemSide(categories=interests[0], popularity=items.popularity, n_train_users=items.n_train_users)
    config = config or EvalConfig(
        metrics=default_metrics(items.categories is not None, interests is not None), seed=seed
    )
    user_interests = None if interests is None else interests[1]
    labels = _user_labels(dataset, split, groups)
    groupings = item_groupings(dataset.catalog, items.popularity)
    runs = []
    started = time.perf_counter()
    for number, kind in enumerate(kinds, 1):
        step = f"[{number}/{len(kinds)}]"
        model_start = time.perf_counter()
        chosen = dict(params.get(kind, {}))
        trials = _trials(kind, chosen) if tune else [chosen]
        if tune and len(trials) == 1 and len(SEARCH_SPACES.get(kind, [{}])) > 1:
            on_event(
                f"{step} {kind}: the given parameters ({', '.join(chosen)}) fix every setting --tune varies; "
                "nothing to tune"
            )
        if len(trials) > 1:
            on_event(f"{step} tuning {kind}: {len(trials)} settings on validation {tune_metric} ...")
        on_event(f"{step} fitting {kind} ...")
        fitted = fit_best(
            kind,
            trials,
            dataset,
            split,
            tune_metric,
            seed,
            lambda trial, score, label=f"{step} {kind}": on_event(
                f"{label} {trial}: validation {tune_metric} = {score:.4f}"
            ),
        )
        scorer, chosen, tuning, fit_seconds = fitted.scorer, fitted.params, fitted.tuning, fitted.fit_seconds
        on_event(f"{step} evaluating {kind} ...")
        result = evaluate(scorer, split.test, config, items, name=kind, user_interests=user_interests)
        cold, warm = _cold_and_warm(scorer, split, config, kind)
        other = _other_protocols(scorer, split, click_auc)
        by_user, by_item = _breakdowns(result, labels, groupings, config)
        runs.append(ModelRun(kind, chosen, result, fit_seconds, tuning, cold, warm, other, by_user, by_item))
        elapsed = time.perf_counter() - started
        left = len(kinds) - number
        after = f"about {_duration(elapsed / number * left)} left" if left else f"all done in {_duration(elapsed)}"
        shown = ", ".join(f"{name} = {value:.4f}" for name, value in list(result.summary.items())[:2])
        on_event(
            f"{step} {kind} done in {_duration(time.perf_counter() - model_start)} "
            f"(fit {fit_seconds:.1f} s; test {shown}); {after}"
        )
    main = _main_metric(config)
    ratios = ratios_to_best(runs, main, config.bootstrap, seed) if runs else {}
    return Experiment(dataset.name, split, config, runs, seed, first_only, main, ratios)


@dataclass(frozen=True, eq=False)
class Fitted:
    """The model a validation search kept, fitted once: the winning trial is not fitted again."""

    scorer: Scorer
    params: dict[str, Any]
    tuning: list[tuple[dict[str, Any], float]]
    """(params, validation score) per trial; empty when there was one setting (nothing to choose)."""
    fit_seconds: float
    """The kept model's fit time."""


def fit_best(
    kind: str,
    trials: list[dict[str, Any]],
    dataset: Dataset,
    split: Split,
    metric: str = "ndcg@10",
    seed: int = 0,
    on_trial: Callable[[dict[str, Any], float], None] = lambda trial, score: None,
) -> Fitted:
    """Fit ``kind`` with each setting in ``trials`` on the training part and keep the one with the
    best validation ``metric`` (the test targets are never read); one setting is fitted and kept."""
    if len(trials) == 1:
        start = time.perf_counter()
        scorer = make_scorer(kind, trials[0], seed).fit(split.train, dataset.catalog, split.valid)
        return Fitted(scorer, trials[0], [], time.perf_counter() - start)
    tuning: list[tuple[dict[str, Any], float]] = []
    best: tuple[float, Fitted] | None = None  # only the best model so far is held
    valid_config = EvalConfig(metrics=(metric,), bootstrap=0, seed=seed)
    for trial in trials:
        start = time.perf_counter()
        scorer = make_scorer(kind, trial, seed).fit(split.train, dataset.catalog, split.valid)
        seconds = time.perf_counter() - start
        score = evaluate(scorer, split.valid, valid_config).summary[metric]
        tuning.append((trial, score))
        on_trial(trial, score)
        if best is None or score > best[0]:
            best = (score, Fitted(scorer, trial, tuning, seconds))
    assert best is not None
    return best[1]


def _trials(kind: str, fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """The search space of ``kind`` with the ``fixed`` parameters laid over it, without repeats."""
    trials: list[dict[str, Any]] = []
    for candidate in SEARCH_SPACES.get(kind, [{}]):
        trial = {**candidate, **fixed}
        if trial not in trials:
            trials.append(trial)
    return trials


def _main_metric(config: EvalConfig) -> str:
    """The first configured metric: the one models are ranked and compared on."""
    return config.metrics[0]


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _cold_and_warm(
    scorer: Scorer, split: Split, config: EvalConfig, kind: str
) -> tuple[EvalResult | None, EvalResult | None]:
    """Accuracy separately on targets whose items are new at test time and on the others."""
    counts = np.bincount(split.train.item_idx, minlength=split.train.n_items)
    cold_set = cold_targets(split.test, counts)
    if len(cold_set.targets) == 0:
        return None, None
    accuracy = tuple(m for m in config.metrics if m.split("@")[0] in ("hr", "ndcg", "recall", "mrr"))
    subset = replace(config, metrics=accuracy or ("recall@10",))
    return (
        evaluate(scorer, cold_set, subset, name=f"{kind} (cold items)"),
        evaluate(scorer, cold_targets(split.test, counts, cold=False), subset, name=f"{kind} (warm items)"),
    )


def _user_labels(dataset: Dataset, split: Split, names: tuple[str, ...] | None) -> dict[str, np.ndarray]:
    """Each user grouping's label per user of the test set's vocabulary (history length: the test history)."""
    users = split.test.history.users
    if dataset.user_attributes and not np.array_equal(users.ids, dataset.interactions.users.ids):
        raise DataError("user attributes: the split renumbered the users, so their attributes no longer line up")
    length = np.bincount(split.test.history.user_idx, minlength=split.test.history.n_users)
    return user_groups(dataset.user_attributes, length, names)


def _breakdowns(
    result: EvalResult, labels: dict[str, np.ndarray], groupings: list[ItemGrouping], config: EvalConfig
) -> tuple[dict[str, tuple[list[GroupScore], GroupGap | None]], dict[str, list[GroupShare]]]:
    """Main-metric accuracy per user group and exposure per item group at the main metric's k."""
    main = _main_metric(config)
    by_user = {}
    if main in result.per_user:
        values = result.per_user[main]
        by_user = {
            name: group_scores(values, label[result.users], config.bootstrap, config.seed)
            for name, label in labels.items()
        }
    k = int(main.partition("@")[2])
    by_item = {} if result.ranked is None else {g.name: exposure_by_group(result.ranked, k, g) for g in groupings}
    return by_user, by_item


def _other_protocols(scorer: Scorer, split: Split, click_auc: bool) -> dict[str, float]:
    """Rating and click prediction, where the scorer and the test targets allow them."""
    out: dict[str, float] = {}
    targets = split.test.targets
    if "ratings" in scorer.capabilities.can and (~np.isnan(targets.rating)).any():
        out.update(evaluate_ratings(scorer, split.test))
    clicks, views = np.isin(targets.event, CLICK_EVENTS), targets.event == Event.VIEW
    if click_auc and clicks.any() and views.any():
        out.update(evaluate_clicks(scorer, split.test, CLICK_EVENTS, [Event.VIEW]))
    return out
