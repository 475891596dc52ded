"""Explanation coverage and the item graph's cold-item source, on ML-1M (SASRec's file) and Amazon Beauty.

Each user's last event is the test target; a seeded share of the items (``--cold-share``) also
lose every training event, so they are cold: the model cannot have learned them, and only the
item-attribute graph (ranking/relations.py) can reach them. The model (item-kNN, with the
lexical item encoder so that explanations can name similar history items) is fitted on the
rest, and for a seeded sample of users:

- **coverage**: the share of explained items carrying a relation path (attributes shared with a
  history item), history evidence (the ``because`` items), and either; the goal is >= 95 %;
- **cold items**: HR@10 on the targets that are cold items, and on every sampled target, with
  ``cold_items`` (places a list gives to graph-found cold items) at 0 (off) and above.

    python benchmarks/explanations.py [--datasets ml-1m,beauty] [--users 1000] [--cold-share 0.05]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results
from facetrec.data.dataset import Dataset
from facetrec.recommender import fit_recommender
from facetrec.types import Query
from public import load

GOAL = 0.95
MODEL = "itemknn"
COLD_SETTINGS = (0, 1, 3)


def run(name: str, n_users: int, cold_share: float, seed: int) -> list[dict]:
    data = load(name)
    events = data.interactions.sorted()
    offsets = events.user_offsets()
    rng = np.random.default_rng(seed)
    cold = rng.choice(events.n_items, int(cold_share * events.n_items), replace=False)
    has_target = np.flatnonzero(np.diff(offsets) >= 2)
    last = offsets[has_target + 1] - 1
    keep = ~np.isin(events.item_idx, cold)
    keep[last] = False
    started = time.perf_counter()
    rec = fit_recommender(Dataset(name, events.take(keep), data.catalog), MODEL, encoder="lexical")
    fit_seconds = time.perf_counter() - started
    users = np.sort(rng.choice(has_target, min(n_users, len(has_target)), replace=False))
    target = dict(zip(has_target.tolist(), events.item_idx[last].tolist(), strict=True))
    cold_users = [u for u in has_target.tolist() if target[u] in set(cold.tolist()) and u in rec.histories]
    rows = [coverage(rec, name, events, users)]
    for setting in COLD_SETTINGS:
        rec.cold_items = setting
        rows.append({
            "dataset": name, "model": MODEL, "measure": "cold_items", "cold_items": setting,
            "cold_share": cold_share, "cold_targets": len(cold_users), "fit_seconds": round(fit_seconds, 1),
            "metrics": {"hr@10_cold_targets": hit_rate(rec, events, cold_users, target),
                        "hr@10_sampled": hit_rate(rec, events, users.tolist(), target)},
        })  # fmt: skip
    return rows


def user_id(events, u: int) -> str:
    return str(events.users.id_of(int(u)))


def coverage(rec, name: str, events, users: np.ndarray) -> dict:
    relation = evidence = either = total = 0
    for u in users:
        found = rec.recommend(Query(user_id=user_id(events, u), n=10), explain=True)
        has_rel = np.array([r is not None for r in found.fields["relation"]])
        has_ev = np.array([len(b) > 0 for b in found.fields["because"]])
        relation, evidence = relation + int(has_rel.sum()), evidence + int(has_ev.sum())
        either, total = either + int((has_rel | has_ev).sum()), total + len(found)
    share = either / max(total, 1)
    return {
        "dataset": name, "model": MODEL, "measure": "explanation_coverage", "users": len(users), "items": total,
        "metrics": {"relation_share": relation / max(total, 1), "evidence_share": evidence / max(total, 1),
                    "relation_or_evidence_share": share},
        "goal": f">= {GOAL:.0%} of explained items carry a relation path or history evidence",
        "goal_met": share >= GOAL,
    }  # fmt: skip


def hit_rate(rec, events, users: list[int], target: dict[int, int]) -> float:
    hits = sum(int(target[u] in rec.recommend(Query(user_id=user_id(events, u), n=10)).idx) for u in users)
    return hits / max(len(users), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-1m,beauty")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--cold-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [row for name in args.datasets.split(",") for row in run(name, args.users, args.cold_share, args.seed)]
    console = Console()
    for row in rows:
        console.print(row)
    console.print(f"wrote {write_results('explanations', rows)}")


if __name__ == "__main__":
    main()
