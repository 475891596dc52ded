"""Accuracy-diversity curves of the re-rankers (MMR, DPP, interest quotas, calibration) on one split.

For each dataset (ML-100K, ml-latest-small from $FACETREC_DATA_DIR, default ../shared/datasets,
and synthetic data with planted interests): leave-one-out split, full ranking, history excluded;
a scorer (``--model``, default ALS) scores every item for every test user; ``Ranker.rank_scores``
takes the 200 best and re-ranks them to a top 10 for each lam in a sweep. Item similarity is
cosine on the scorer's item vectors (ALS item factors, or ``item_vectors()`` of a model that has
it). A model with ``encode_users`` (the facet model) supplies each user's interests for quotas;
for others they come from clustering the history items' vectors (spherical k-means, up to 4
clusters, weights = cluster shares).

Metrics @10: NDCG (the held-out item), ILD (1 - mean cosine of item vectors), genre ILD (the same
over categories, independent of the model), calibration KL (Steck) against the history's genres,
and interest coverage: on synthetic data the share of planted interests hit, elsewhere the share
of the user's main genres (>= 5 % of their history's genre mass) hit. Also evaluated: the
temporal options (trending and freshness boosts, history decay) next to no re-ranking.

Writes results/diversity.json and results/diversity.png.

    python benchmarks/diversity.py [--datasets ml-100k,ml-latest-small,synthetic] [--model als] [--params '{}']
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, data_root, write_results
from facetrec.data.filters import first_occurrences
from facetrec.data.sources import load_source
from facetrec.data.split import make_split
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.evaluation import metrics as m
from facetrec.evaluation.protocol import ItemSide
from facetrec.ranking import Ranker, decay_weights
from facetrec.scoring.registry import make_scorer
from facetrec.types import Interactions, UserState

K, N, INTERESTS = 10, 10, 4
SWEEPS = {
    "mmr": (0.95, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1),
    "dpp": (0.95, 0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1),
    "quotas": (0.75, 0.5, 0.25, 0.0),
    "calibration": (0.95, 0.9, 0.8, 0.6, 0.4, 0.2),
}
TEMPORAL = {
    "trending 0.05": {"trending_weight": 0.05, "trending_window_days": 7.0},
    "trending 0.2": {"trending_weight": 0.2, "trending_window_days": 7.0},
    "freshness 0.05": {"freshness_weight": 0.05, "freshness_half_life_days": 180.0},
    "freshness 0.2": {"freshness_weight": 0.2, "freshness_half_life_days": 180.0},
}
DECAY_HALF_LIVES = (14.0, 60.0)
MAX_NDCG_LOSS, MIN_ILD_GAIN, MIN_KL_CUT = 0.02, 0.20, 0.30
METRICS = ("ndcg@10", "ild@10", "category_ild@10", "calibration_kl@10", "interest_coverage@10")


def datasets(names: list[str], seed: int, console: Console):
    """(name, interactions, catalog, item topics, users x topics interests or None)."""
    root = data_root()
    for name in names:
        if name == "synthetic":
            synth = generate(SynthConfig(n_users=2000, n_items=1000, seed=seed))
            data = synth.dataset
            topics = sp.csr_matrix(
                (np.ones(len(synth.item_topic)), (np.arange(len(synth.item_topic)), synth.item_topic))
            )
            yield name, first_occurrences(data.interactions), data.catalog, topics, synth.interest_matrix().tocsr()
        elif (root / name).is_dir():
            data = load_source(name, root / name)
            yield name, data.interactions, data.catalog, None, None
        else:
            console.print(f"skipping {name}: not found in {root} (set FACETREC_DATA_DIR)")


def item_vectors(scorer) -> np.ndarray:
    """The scorer's item vectors: ``item_vectors()`` (the facet model) or a fitted factor matrix."""
    if callable(getattr(scorer, "item_vectors", None)):
        return np.asarray(scorer.item_vectors(), dtype=np.float32)
    for name in ("item_factors_", "item_vectors_", "item_embeddings_"):
        value = getattr(scorer, name, None)
        if isinstance(value, np.ndarray) and value.ndim == 2:
            return value
    sys.exit(f"{type(scorer).__name__} exposes no item vectors (item_factors_, item_vectors_ or item_embeddings_)")


def cluster_state(vectors: np.ndarray, history: np.ndarray, k: int = INTERESTS, iters: int = 6) -> UserState:
    """Up to ``k`` interests from spherical k-means over the history items' unit vectors
    (farthest-point start from the latest item); weights are cluster shares."""
    v = vectors[history]
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    k = min(k, len(history))
    centres = [len(history) - 1]
    for _ in range(k - 1):
        centres.append(int(np.argmin((unit @ unit[centres].T).max(axis=1))))
    c = unit[centres]
    for _ in range(iters):
        assign = np.argmax(unit @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, unit)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        c = np.where(norms > 0, sums / np.maximum(norms, 1e-12), c)
    assign = np.argmax(unit @ c.T, axis=1)
    used = np.unique(assign)
    member = (assign[None, :] == used[:, None]).astype(np.float64)
    counts = member.sum(axis=1)
    interests = (member @ v) / counts[:, None]
    return UserState(interests, counts / counts.sum(), history, member / counts[:, None])


def main_genres(history: sp.csr_matrix, categories: sp.csr_matrix, share: float = 0.05) -> sp.csr_matrix:
    """Users x categories: 1 where a category holds >= ``share`` of the user's history category mass."""
    per_item = sp.diags(1.0 / np.maximum(np.asarray(categories.sum(axis=1)).ravel(), 1)) @ categories
    mass = (history @ per_item).toarray()
    total = mass.sum(axis=1, keepdims=True)
    return sp.csr_matrix((mass >= share * np.maximum(total, 1e-12)) & (mass > 0), dtype=np.float64)


def evaluate(ranked, relevant, vectors, categories, topics, history, interests) -> dict[str, float]:
    values = {
        "ndcg@10": m.ndcg(ranked, K, relevant),
        "ild@10": m.intra_list_diversity(ranked, K, vectors),
        "category_ild@10": m.category_diversity(ranked, K, categories),
        "calibration_kl@10": m.calibration_kl(ranked, K, categories, history),
        "interest_coverage@10": m.interest_coverage(ranked, K, topics, interests),
    }
    return {name: round(float(np.nanmean(v)), 5) for name, v in values.items()}


def run_dataset(name, interactions, catalog, topics, planted, args, console) -> tuple[list[dict], dict]:
    start = time.perf_counter()
    split = make_split(interactions, "loo", args.seed)
    params = dict(args.params.get(args.model, {}))
    scorer = make_scorer(args.model, params, args.seed).fit(split.train, catalog, split.valid)
    vectors = item_vectors(scorer)
    users = np.unique(split.test.targets.user_idx)
    scores = scorer.score(split.test.history, users).astype(np.float64)
    history_m = split.test.history.matrix("weight").tocsr()[users]
    relevant = split.test.targets.matrix("ones").tocsr()[users]
    categories = ItemSide.from_data(catalog, split.train).categories.tocsr()
    missing = np.diff(categories.indptr) == 0  # e.g. ml-latest-small's "(no genres listed)": one more category
    categories = sp.hstack([categories, sp.csr_matrix(missing[:, None].astype(np.float64))]).tocsr()
    topics = categories if topics is None else topics
    interests = main_genres(history_m, categories) if planted is None else planted[users]
    hist = split.test.history.sorted()
    offsets = hist.user_offsets()
    histories = [hist.item_idx[offsets[u] : offsets[u + 1]] for u in users]
    nows = [float(hist.timestamp[offsets[u + 1] - 1]) for u in users]
    if callable(getattr(scorer, "encode_users", None)):  # a multi-interest model gives its own interests
        states = scorer.encode_users(split.test.history, users)
    else:
        states = [cluster_state(vectors, h) for h in histories]
    ranker = Ranker(candidates=200).fit(vectors, catalog, split.train)
    console.print(
        f"{name}: {len(users)} test users, {scorer.n_items_} items, fitted in {time.perf_counter() - start:.1f} s"
    )

    def ranked_by(r: Ranker, user_scores: np.ndarray | None = None) -> np.ndarray:
        out = np.full((len(users), N), -1, dtype=np.int64)
        s = scores if user_scores is None else user_scores
        for i in range(len(users)):
            idx = r.rank_scores(s[i], N, history_idx=histories[i], state=states[i], now=nows[i]).idx
            out[i, : len(idx)] = idx
        return out

    def row(label: str, method: str, lam: float | None, ranked: np.ndarray) -> dict:
        metrics = evaluate(ranked, relevant, vectors, categories, topics, history_m, interests)
        return {"dataset": name, "model": f"{args.model}+{label}", "method": method, "lam": lam, "metrics": metrics}

    rows = [row("none", "none", None, ranked_by(ranker))]
    for method, lams in SWEEPS.items():
        for lam in lams:
            rows.append(
                row(f"{method} lam={lam}", method, lam, ranked_by(ranker.reconfigure(diversity=method, lam=lam)))
            )
        console.print(f"  {method}: done at {time.perf_counter() - start:.0f} s")
    for label, settings in TEMPORAL.items():
        rows.append(row(label, "temporal", None, ranked_by(ranker.reconfigure(**settings))))
    if args.model == "als":  # history decay: ALS folds users in from decayed event weights
        decayed_scorer = make_scorer("als", {**params, "feedback": "weight"}, args.seed).fit(split.train)
        last = np.zeros(split.test.history.n_users)
        np.maximum.at(last, split.test.history.user_idx, split.test.history.timestamp.astype(np.float64))
        for half_life in DECAY_HALF_LIVES:
            h = split.test.history
            weight = decay_weights(h.timestamp, last[h.user_idx], half_life)  # each user seen from their last event
            decayed = Interactions(
                h.user_idx, h.item_idx, h.timestamp, h.users, h.items, h.event, h.rating, weight, h.review
            )
            s = decayed_scorer.score(decayed, users).astype(np.float64)
            rows.append(row(f"decay {half_life:g}d", "temporal", None, ranked_by(ranker, s)))
    console.print(f"{name}: {len(rows)} configurations in {time.perf_counter() - start:.0f} s")
    return rows, goals(name, rows)


def goals(name: str, rows: list[dict]) -> dict:
    """Per method, among its settings within the NDCG@10 loss budget: the best ILD gain (on the item
    vectors and on categories), the best calibration-KL cut, and the settings meeting both goals."""
    base = next(r for r in rows if r["method"] == "none")["metrics"]
    out = {}
    for method in SWEEPS:
        floor = (1 - MAX_NDCG_LOSS) * base["ndcg@10"]
        ok = [r for r in rows if r["method"] == method and r["metrics"]["ndcg@10"] >= floor]
        if not ok:
            out[method] = {"settings_within_ndcg_budget": 0}
            continue

        def gain(r: dict, key: str) -> float:
            return r["metrics"][key] / base[key] - 1

        def cut(r: dict) -> float:
            return 1 - r["metrics"]["calibration_kl@10"] / base["calibration_kl@10"]

        result: dict = {"settings_within_ndcg_budget": len(ok)}
        for label, key in (
            ("ild", "ild@10"),
            ("category_ild", "category_ild@10"),
            ("coverage", "interest_coverage@10"),
        ):
            best = max(ok, key=lambda r, key=key: gain(r, key))
            result[f"best_{label}_gain"] = round(gain(best, key), 4)
            result[f"at_lam_{label}"] = best["lam"]
        best = max(ok, key=cut)
        result["best_kl_cut"], result["at_lam_kl"] = round(cut(best), 4), best["lam"]
        result["ild_goal_met"] = result["best_ild_gain"] >= MIN_ILD_GAIN
        result["category_ild_goal_met"] = result["best_category_ild_gain"] >= MIN_ILD_GAIN
        result["kl_goal_met"] = result["best_kl_cut"] >= MIN_KL_CUT
        for label, key in (("ild", "ild@10"), ("category_ild", "category_ild@10")):
            result[f"both_goals_at_lam ({label})"] = [
                r["lam"] for r in ok if gain(r, key) >= MIN_ILD_GAIN and cut(r) >= MIN_KL_CUT
            ]
        out[method] = result
    return {"dataset": name, "model": "goals", "metrics": {"none": base, **out}}


def plot(rows: list[dict], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_keys = ("ild@10", "category_ild@10", "interest_coverage@10", "calibration_kl@10")
    fig, axes = plt.subplots(len(names), len(axes_keys), figsize=(20, 4.2 * len(names)), squeeze=False)
    colours = {"mmr": "C0", "dpp": "C1", "quotas": "C2", "calibration": "C3"}
    for r_i, name in enumerate(names):
        mine = [r for r in rows if r["dataset"] == name and r["method"] in ("none", *SWEEPS)]
        base = next(r for r in mine if r["method"] == "none")["metrics"]
        for c_i, key in enumerate(axes_keys):
            ax = axes[r_i][c_i]
            for method, colour in colours.items():
                sweep = sorted((r for r in mine if r["method"] == method), key=lambda r: -r["lam"])
                pts = [(base[key], base["ndcg@10"])] + [(r["metrics"][key], r["metrics"]["ndcg@10"]) for r in sweep]
                ax.plot(*zip(*pts, strict=True), "o-", color=colour, label=method, markersize=4)
            ax.plot(base[key], base["ndcg@10"], "k*", markersize=14, label="no re-ranking")
            ax.axhline((1 - MAX_NDCG_LOSS) * base["ndcg@10"], color="grey", linestyle=":", linewidth=1)
            ax.set_xlabel(key + (" (lower is better)" if "kl" in key else ""))
            ax.set_ylabel("NDCG@10")
            ax.set_title(f"{name}")
            ax.grid(alpha=0.3)
        axes[r_i][0].legend(fontsize=8)
    fig.suptitle(
        "Accuracy vs diversity: each line sweeps lam from 1 (the star, no re-ranking) down; dotted: 2 % NDCG@10 loss"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-100k,ml-latest-small,synthetic")
    parser.add_argument("--model", default="als", help="scorer kind from facetrec.scoring.registry")
    parser.add_argument(
        "--params", type=json.loads, default={}, help='per-model overrides, e.g. \'{"als": {"factors": 64}}\''
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=160)
    rows, goal_rows, names = [], [], []
    for name, interactions, catalog, topics, planted in datasets(args.datasets.split(","), args.seed, console):
        found, goal = run_dataset(name, interactions, catalog, topics, planted, args, console)
        rows += found
        goal_rows.append(goal)
        names.append(name)
    table = Table(title=f"re-ranking the top 200 of {args.model} to a top 10 (leave-one-out, history excluded)")
    for column in ("dataset", "model", *METRICS):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["dataset"], r["model"], *(f"{r['metrics'][k]:.4f}" for k in METRICS))
    console.print(table)
    summary = Table(
        title=f"goals, among settings losing <= {MAX_NDCG_LOSS:.0%} NDCG@10: ILD +{MIN_ILD_GAIN:.0%}, "
        f"calibration KL -{MIN_KL_CUT:.0%} (lam of the best setting in brackets)"
    )
    for column in ("dataset", "method", "ILD gain", "genre/topic ILD gain", "KL cut", "coverage gain", "both goals"):
        summary.add_column(column, justify="right")
    for g in goal_rows:
        for method, res in g["metrics"].items():
            if method == "none" or "best_ild_gain" not in res:
                continue
            summary.add_row(
                g["dataset"],
                method,
                f"{res['best_ild_gain']:+.1%} ({res['at_lam_ild']})",
                f"{res['best_category_ild_gain']:+.1%} ({res['at_lam_category_ild']})",
                f"{res['best_kl_cut']:.1%} ({res['at_lam_kl']})",
                f"{res['best_coverage_gain']:+.1%} ({res['at_lam_coverage']})",
                f"vectors {res['both_goals_at_lam (ild)']}, categories {res['both_goals_at_lam (category_ild)']}",
            )
    console.print(summary)
    plot(rows, names, RESULTS / "diversity.png")
    console.print(f"wrote {write_results('diversity', rows + goal_rows)} and {RESULTS / 'diversity.png'}")


if __name__ == "__main__":
    main()
