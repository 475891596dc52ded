"""RecBole 1.2.1's SASRec side by side with facetrec's models, on the identical leave-one-out split.

Reads ml-100k from $FACETREC_DATA_DIR (default ../shared/datasets), splits it leave-one-out
exactly as benchmarks/ml100k_baselines.py does, writes the split as RecBole atomic files
(``benchmark_filename`` = train/valid/test), and runs RecBole in its own virtual environment
(benchmarks/.recbole-venv, created on first use: RecBole needs numpy<2 and pandas<2.3). Then it
trains our models on the same split and reports, for each, test NDCG@10/HR@10, wall time, best
validation NDCG@10 and the wall time our model needed to first reach RecBole's best.

    python benchmarks/recbole_compare.py [--models sasrec[,facet]] [--seed 0]
        [--recbole-epochs 30] [--recbole-patience 5] [--recbole-budget-s SECONDS] [--max-len 50]
    python benchmarks/recbole_compare.py --models facet --reuse-recbole   # add a model, keep RecBole's row

RecBole's settings: SASRec with loss_type CE and no negative sampling, hidden 64, 2 layers,
1 head, MAX_ITEM_LIST_LENGTH 50 (RecBole's own ML-100K setting; 200 costs about 4x per epoch,
which this 2-core machine cannot afford for 30 epochs), and RecBole's defaults otherwise
(inner size 256, dropout 0.5, Adam lr 0.001, train batch 2048). Ours: each model's defaults
(SASRec+ reads the last 200 events). RecBole trains on one row per training event with one
loss each (about 97k rows of up to 50 items per epoch on ML-100K), we train on one row per
user with a loss at every position, so an epoch means very different amounts of work: compare
times, not epochs. Times are wall-clock seconds of the training loop including the per-epoch
validation (RecBole: after its dataset is built; ours: from the start of ``fit``), plus process
CPU seconds, which depend less on other jobs sharing the machine.

Evaluation semantics (the same for both sides, all computed by us):

- Full ranking over the whole catalogue; items in the user's history are never ranked
  (validation: the training events; test: training + validation events), as in
  facetrec.evaluation. RecBole's own full-sort evaluation masks history only for general
  (non-sequential) models: for sequential models its ``FullSortEvalDataLoader`` masks nothing
  but the padding item. So the RecBole runner scores with ``model.full_sort_predict`` and
  computes NDCG@10/HR@10 itself, with history excluded (the numbers that drive its early
  stopping and "best") and also without (RecBole's own convention, reported for reference).
  RecBole's test scores are handed back and evaluated with facetrec.evaluation.evaluate, the
  same code that scores our models.
- RecBole's training loop is its own ``Trainer._train_epoch`` (Adam, its batching and CE loss);
  epochs, validation and early stopping (``--recbole-patience`` epochs without a better
  history-excluded validation NDCG@10) are run by the runner, capped at ``--recbole-epochs``
  and ``--recbole-budget-s``: RecBole's "best" means the best within that cap.
- Sequential benchmark files must already hold the input sequence (RecBole does no data
  augmentation when ``benchmark_filename`` is set), so each row is ``user_id:token
  item_id_list:token_seq item_id:token timestamp:float`` with the last ``--max-len`` events
  before the target; every training event after a user's first is one training row (what
  RecBole's own augmentation produces). ``alias_of_item_id: [item_id_list]`` makes the list
  share the item vocabulary (without it RecBole silently remaps the lists on their own).
  Tokens are facetrec's internal user and item indices.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
VENV = HERE / ".recbole-venv"
RECBOLE_VERSION = "1.2.1"
RECBOLE_REQUIREMENTS = (f"recbole=={RECBOLE_VERSION}", "numpy<2", "pandas<2.3", "setuptools<81", "torch==2.13.0")
"""pip, not uv: pip's configured find-links supply the local CPU build of torch. setuptools<81 keeps
pkg_resources, which ray 2.6 (a RecBole dependency) imports; nothing else is needed for SASRec."""
PARTS = ("train", "valid", "test")
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float"
RESULT_MARKER = "RECBOLE_RESULT "
"""The runner's last stdout line that starts with this carries its JSON result."""


# --------------------------------------------------------------------------- atomic files


@dataclass(frozen=True)
class AtomicRows:
    """One RecBole sequential atomic file: per row a user, the items before the target, the target."""

    user: np.ndarray
    item_list: list[np.ndarray]
    item: np.ndarray
    timestamp: np.ndarray


def _sequences(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items, timestamps, offsets) of ``data`` in user-then-time order (ties in file order)."""
    data = data.sorted()
    return data.item_idx.astype(np.int64), data.timestamp.astype(np.int64), data.user_offsets()


def training_rows(train: Any, max_len: int) -> AtomicRows:
    """Every training event after a user's first, with the up to ``max_len`` events before it."""
    items, stamps, offsets = _sequences(train)
    users, lists, targets, times = [], [], [], []
    for user in range(len(offsets) - 1):
        start, end = int(offsets[user]), int(offsets[user + 1])
        for t in range(start + 1, end):
            users.append(user)
            lists.append(items[max(start, t - max_len) : t])
            targets.append(items[t])
            times.append(stamps[t])
    return AtomicRows(np.array(users, np.int64), lists, np.array(targets, np.int64), np.array(times, np.int64))


def evaluation_rows(evalset: Any, max_len: int) -> AtomicRows:
    """Per target: its user, the last ``max_len`` events of the user's history, the target."""
    items, _, offsets = _sequences(evalset.history)
    targets = evalset.targets.sorted()
    users = targets.user_idx.astype(np.int64)
    lists = [items[max(offsets[u], offsets[u + 1] - max_len) : offsets[u + 1]] for u in users]
    return AtomicRows(users, lists, targets.item_idx.astype(np.int64), targets.timestamp.astype(np.int64))


def write_atomic(path: Path, rows: AtomicRows) -> None:
    lines = [HEADER]
    for user, items, item, stamp in zip(rows.user, rows.item_list, rows.item, rows.timestamp, strict=True):
        lines.append(f"{user}\t{' '.join(map(str, items))}\t{item}\t{stamp}")
    path.write_text("\n".join(lines) + "\n")


def read_atomic(path: Path) -> AtomicRows:
    """The inverse of :func:`write_atomic` (for tests and checks)."""
    lines = path.read_text().splitlines()
    if lines[0] != HEADER:
        raise ValueError(f"{path}: header {lines[0]!r}, expected {HEADER!r}")
    fields = [line.split("\t") for line in lines[1:]]
    return AtomicRows(
        np.array([int(f[0]) for f in fields], np.int64),
        [np.array(f[1].split(), np.int64) for f in fields],
        np.array([int(f[2]) for f in fields], np.int64),
        np.array([int(float(f[3])) for f in fields], np.int64),
    )


def write_split(split: Any, folder: Path, name: str, max_len: int) -> dict[str, Path]:
    """``folder/name/name.{train,valid,test}.inter`` plus the history items to exclude at
    validation and test time (``name.seen_{valid,test}.npy``: (user, item) index pairs)."""
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    rows = {
        "train": training_rows(split.train, max_len),
        "valid": evaluation_rows(split.valid, max_len),
        "test": evaluation_rows(split.test, max_len),
    }
    paths = {}
    for part in PARTS:
        paths[part] = out / f"{name}.{part}.inter"
        write_atomic(paths[part], rows[part])
    for part, evalset in (("valid", split.valid), ("test", split.test)):
        seen = evalset.history.matrix("ones").tocoo()
        paths[f"seen_{part}"] = out / f"{name}.seen_{part}.npy"
        np.save(paths[f"seen_{part}"], np.stack([seen.row, seen.col], axis=1).astype(np.int64))
    return paths


# --------------------------------------------------------------------------- the RecBole side

RUNNER = r'''
"""Runs inside benchmarks/.recbole-venv: RecBole SASRec on pre-split atomic files; JSON result on stdout."""
import copy, json, sys, time, warnings
begun, begun_cpu = time.perf_counter(), time.process_time()
warnings.simplefilter("ignore", FutureWarning)  # RecBole 1.2.1 under pandas 2.2 / torch 2.13
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

args = json.loads(open(sys.argv[1]).read())
sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value settings from the command line
config = Config(model="SASRec", dataset=args["name"], config_dict=args["config"])
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
init_seed(config["seed"], config["reproducibility"])
model = SASRec(config, train_data.dataset).to(config["device"])
trainer = Trainer(config, model)
item_tokens = np.array(dataset.field2id_token["item_id"])  # RecBole item id -> our item index (str)
ours = np.full(len(item_tokens), -1, np.int64)
ours[1:] = item_tokens[1:].astype(np.int64)  # id 0 is [PAD]
user_tokens = np.array(dataset.field2id_token["user_id"])
user_of = {int(t): i for i, t in enumerate(user_tokens[1:], start=1)}
item_of = {int(t): i for i, t in enumerate(item_tokens[1:], start=1)}


def seen_mask(path):
    pairs = np.load(path)
    mask = torch.zeros(len(user_tokens), len(item_tokens), dtype=torch.bool)
    keep = [(user_of[u], item_of[i]) for u, i in pairs if u in user_of and i in item_of]
    if keep:
        rows, cols = zip(*keep)
        mask[list(rows), list(cols)] = True
    return mask


@torch.no_grad()
def scores_and_metrics(data, seen):
    """Full-sort scores per row; NDCG@10/HR@10 with history excluded and without (RecBole's way)."""
    model.eval()
    out = {"ndcg": [], "hr": [], "ndcg_incl": [], "hr_incl": []}
    users, all_scores = [], []
    for interaction, _, _, positive_i in data:
        interaction = interaction.to(config["device"])
        scores = model.full_sort_predict(interaction).view(len(positive_i), -1).float().cpu()
        scores[:, 0] = -torch.inf  # padding, as RecBole does
        uid = interaction["user_id"].cpu()
        rows = torch.arange(len(positive_i))
        for key, masked in (("incl", scores), ("", scores.masked_fill(seen[uid], -torch.inf))):
            target = masked[rows, positive_i]
            rank = (masked > target[:, None]).sum(1)
            hit = (rank < 10) & torch.isfinite(target)
            suffix = f"_{key}" if key else ""
            out["ndcg" + suffix].append(torch.where(hit, 1.0 / torch.log2(rank + 2.0), 0.0))
            out["hr" + suffix].append(hit.float())
        users.append(uid)
        all_scores.append(scores)
    metrics = {k: float(torch.cat(v).mean()) for k, v in out.items()}
    return metrics, torch.cat(users), torch.cat(all_scores)


seen_valid, seen_test = seen_mask(args["seen_valid"]), seen_mask(args["seen_test"])
prepared = time.perf_counter() - begun
start, start_cpu = time.perf_counter(), time.process_time()
epochs, best, best_state, bad = [], None, None, 0
for epoch in range(args["epochs"]):
    loss = trainer._train_epoch(train_data, epoch, show_progress=False)
    loss = float(sum(loss) if isinstance(loss, tuple) else loss) / max(len(train_data), 1)  # mean per batch
    valid, _, _ = scores_and_metrics(valid_data, seen_valid)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    epochs.append({"epoch": epoch, "loss": loss, "valid_ndcg@10": valid["ndcg"], "valid_hr@10": valid["hr"],
                   "valid_ndcg@10_incl_history": valid["ndcg_incl"], "elapsed_s": elapsed, "cpu_s": cpu})
    print(f"recbole epoch {epoch}: loss {loss:.4f}, valid ndcg@10 {valid['ndcg']:.4f} "
          f"(incl. history {valid['ndcg_incl']:.4f}), {elapsed:.0f} s", file=sys.stderr, flush=True)
    if best is None or valid["ndcg"] > epochs[best]["valid_ndcg@10"]:
        best, best_state, bad = epoch, copy.deepcopy(model.state_dict()), 0
    else:
        bad += 1
        if bad >= args["patience"]:
            break
    if args["budget_s"] is not None and elapsed >= args["budget_s"]:
        print(f"recbole: stopping after epoch {epoch}: time budget of {args['budget_s']} s spent", file=sys.stderr)
        break
train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - start_cpu
model.load_state_dict(best_state)
test, users, scores = scores_and_metrics(test_data, seen_test)
full = np.full((len(users), int(ours.max()) + 1), -np.inf, np.float32)
full[:, ours[1:]] = scores[:, 1:].numpy()
np.save(args["scores_out"], full)
np.save(args["users_out"], user_tokens[users.numpy()].astype(np.int64))
result = {
    "epochs": epochs, "best_epoch": best, "best_valid_ndcg@10": epochs[best]["valid_ndcg@10"],
    "time_to_best_s": epochs[best]["elapsed_s"], "train_s": train_seconds, "prepare_s": prepared,
    "cpu_to_best_s": epochs[best]["cpu_s"], "train_cpu_s": train_cpu, "process_cpu_s": time.process_time() - begun_cpu,
    "wall_s": time.perf_counter() - begun, "test_ndcg@10": test["ndcg"], "test_hr@10": test["hr"],
    "test_ndcg@10_incl_history": test["ndcg_incl"], "test_hr@10_incl_history": test["hr_incl"],
    "n_items": len(item_tokens) - 1, "n_train_rows": len(train_data.dataset), "torch_threads": torch.get_num_threads(),
}
print("RECBOLE_RESULT " + json.dumps(result), flush=True)
'''


def recbole_config(name: str, data_path: Path, seed: int, max_len: int, epochs: int, patience: int) -> dict[str, Any]:
    """RecBole settings: SASRec (CE, 2 layers, 1 head, hidden 64; its other defaults), CPU."""
    return {
        "data_path": str(data_path),
        "benchmark_filename": list(PARTS),
        "load_col": {"inter": ["user_id", "item_id_list", "item_id", "timestamp"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": max_len,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "hidden_size": 64,
        "n_layers": 2,
        "n_heads": 1,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": epochs,
        "stopping_step": patience,
        "seed": seed,
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(data_path / "saved"),
        "log_wandb": False,
    }


def ensure_venv(venv: Path = VENV) -> Path:
    """The RecBole venv's python, creating the venv and installing RecBole on first use."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import recbole, sys; sys.exit(recbole.__version__ != {RECBOLE_VERSION!r})"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} and installing {' '.join(RECBOLE_REQUIREMENTS)} (once; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *RECBOLE_REQUIREMENTS], check=True)
    subprocess.run(check, check=True)
    return python


def parse_runner_output(stdout: str) -> dict[str, Any]:
    """The JSON result on the runner's last ``RECBOLE_RESULT`` line; a clear error when missing."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = "\n".join(stdout.splitlines()[-5:])
    raise RuntimeError(f"the RecBole runner printed no {RESULT_MARKER.strip()} line; its last output:\n{tail}")


def run_recbole(
    split: Any, work: Path, seed: int, max_len: int, epochs: int, patience: int, budget_s: float | None = None
) -> dict[str, Any]:
    """Write the split, run the runner in the RecBole venv; the result plus its test scores."""
    python = ensure_venv()
    name = "facetrec-split"
    paths = write_split(split, work, name, max_len)
    (work / "runner.py").write_text(RUNNER)
    args = {
        "name": name,
        "config": recbole_config(name, work, seed, max_len, epochs, patience),
        "epochs": epochs,
        "patience": patience,
        "budget_s": budget_s,
        "seen_valid": str(paths["seen_valid"]),
        "seen_test": str(paths["seen_test"]),
        "scores_out": str(work / "test_scores.npy"),
        "users_out": str(work / "test_users.npy"),
    }
    (work / "runner_args.json").write_text(json.dumps(args, indent=1))
    done = subprocess.run(
        [str(python), str(work / "runner.py"), str(work / "runner_args.json")],
        cwd=work,
        stdout=subprocess.PIPE,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the RecBole runner failed (exit {done.returncode}); see its messages above")
    result = parse_runner_output(done.stdout)
    result["test_scores"] = np.load(work / "test_scores.npy")
    result["test_users"] = np.load(work / "test_users.npy")
    return result


class FixedScores:
    """Scores computed elsewhere (RecBole's), served through the scorer interface for evaluation."""

    def __init__(self, users: np.ndarray, scores: np.ndarray, n_items: int) -> None:
        self.row = {int(u): r for r, u in enumerate(users)}
        self.scores = np.full((len(users), n_items), -np.inf, np.float32)
        width = min(n_items, scores.shape[1])
        self.scores[:, :width] = scores[:, :width]

    def score(self, history: Any, users: Sequence[int]) -> np.ndarray:
        return self.scores[[self.row[int(u)] for u in users]]


# --------------------------------------------------------------------------- our side


def time_to_reach(scores: Sequence[float], elapsed: Sequence[float], target: float) -> float | None:
    """Elapsed seconds at the first epoch whose validation score reaches ``target`` (None: never)."""
    for score, seconds in zip(scores, elapsed, strict=True):
        if score >= target:
            return float(seconds)
    return None


def timed_fit(scorer: Any, split: Any, catalog: Any = None) -> tuple[list[float], list[float], str]:
    """Fit ``scorer`` on ``split``; the elapsed wall and CPU seconds at the end of each epoch.

    The times come from wrapping the ``validate`` callable the model hands the shared training
    loop (facetrec.training.fit_loop), measured from the start of ``fit``; a model that does not use
    the loop gets ``fit_seconds_ / epochs`` per epoch, and the second value says which.
    """
    import facetrec.training as training

    original, marks = training.fit_loop, []

    def fit_loop(model: Any, config: Any, **kwargs: Any) -> Any:
        validate = kwargs.get("validate")
        if validate is not None:

            def timed_validate() -> float:
                score = validate()
                marks.append((time.perf_counter(), time.process_time()))
                return score

            kwargs["validate"] = timed_validate
        return original(model, config, **kwargs)

    patched = [m for m in list(sys.modules.values()) if getattr(m, "fit_loop", None) is original]
    for module in patched:
        module.fit_loop = fit_loop
    try:
        start, start_cpu = time.perf_counter(), time.process_time()
        scorer.fit(split.train, catalog, split.valid)
    finally:
        for module in patched:
            module.fit_loop = original
    n = len(getattr(scorer, "valid_scores_", []))
    if n and len(marks) == n:
        return [w - start for w, _ in marks], [c - start_cpu for _, c in marks], "measured per epoch"
    total = float(getattr(scorer, "fit_seconds_", time.perf_counter() - start))
    cpu = time.process_time() - start_cpu
    uniform = [(i + 1) / max(n, 1) for i in range(n)]
    return [total * u for u in uniform], [cpu * u for u in uniform], "fit_seconds_ / epochs (uniform)"


def recbole_row(args: argparse.Namespace, rb: dict[str, Any], test: dict, test_incl: dict) -> dict[str, Any]:
    return {
        "dataset": args.dataset,
        "model": "recbole-sasrec",
        "metrics": {
            "ndcg@10": round(test["ndcg@10"], 5),
            "hr@10": round(test["hr@10"], 5),
            "wall_s": round(rb["train_s"], 1),
            "best_valid_ndcg@10": round(rb["best_valid_ndcg@10"], 5),
            "time_to_recbole_best_s": round(rb["time_to_best_s"], 1),
            "cpu_s": round(rb["train_cpu_s"], 1),
            "cpu_to_recbole_best_s": round(rb["cpu_to_best_s"], 1),
            "ndcg@10_incl_history": round(test_incl["ndcg@10"], 5),
            "hr@10_incl_history": round(test_incl["hr@10"], 5),
            "epochs": len(rb["epochs"]),
            "best_epoch": rb["best_epoch"],
            "process_wall_s": round(rb["wall_s"], 1),
        },
        "params": {
            "max_item_list_length": args.max_len,
            "epoch_cap": args.recbole_epochs,
            "patience": args.recbole_patience,
            "time_budget_s": args.recbole_budget_s,
            **{k: v for k, v in recbole_config("", Path(), args.seed, args.max_len, 0, 0).items() if k in KEYS},
        },
        "command": " ".join(["python", *sys.argv]),
        "runner": {k: v for k, v in rb.items() if k != "epochs"},
        "per_epoch": rb["epochs"],
    }


def our_row(
    args: argparse.Namespace, kind: str, split: Any, catalog: Any, recbole: dict[str, Any], configs: tuple
) -> dict[str, Any]:
    """Fit facetrec model ``kind`` on the split; its metrics and times against RecBole's row."""
    from facetrec.evaluation.protocol import evaluate
    from facetrec.scoring.registry import make_scorer, scorer_class

    rb = recbole["metrics"]
    quiet = {"progress": False} if "progress" in scorer_class(kind).config_class.__dataclass_fields__ else {}
    params = {**quiet, **args.params.get(kind, {})}
    scorer = make_scorer(kind, params, args.seed)
    start, start_cpu = time.perf_counter(), time.process_time()
    elapsed, cpu, timing = timed_fit(scorer, split, catalog)
    wall, wall_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    valid = [float(v) for v in getattr(scorer, "valid_scores_", [])]
    ours = evaluate(scorer, split.test, configs[0]).summary
    ours_incl = evaluate(scorer, split.test, configs[1]).summary
    reach = time_to_reach(valid, elapsed, rb["best_valid_ndcg@10"])
    reach_cpu = time_to_reach(valid, cpu, rb["best_valid_ndcg@10"])

    def ratio(value: float | None, to: float) -> float | None:
        return None if value is None else round(value / to, 4)

    return {
        "dataset": args.dataset,
        "model": kind,
        "metrics": {
            "ndcg@10": round(ours["ndcg@10"], 5),
            "hr@10": round(ours["hr@10"], 5),
            "wall_s": round(wall, 1),
            "best_valid_ndcg@10": round(max(valid), 5) if valid else None,
            "time_to_recbole_best_s": None if reach is None else round(reach, 1),
            "ratio_to_recbole_wall": ratio(reach, rb["wall_s"]),
            "ratio_to_recbole_time_to_best": ratio(reach, rb["time_to_recbole_best_s"]),
            "goal_met": reach is not None and reach <= rb["wall_s"] / 10,
            "cpu_s": round(wall_cpu, 1),
            "cpu_to_recbole_best_s": None if reach_cpu is None else round(reach_cpu, 1),
            "cpu_ratio_to_recbole": ratio(reach_cpu, rb["cpu_s"]),
            "ndcg@10_incl_history": round(ours_incl["ndcg@10"], 5),
            "hr@10_incl_history": round(ours_incl["hr@10"], 5),
            "epochs": len(valid),
            "best_epoch": int(np.argmax(valid)) if valid else None,
        },
        "params": params,
        "epoch_times": timing,
        "per_epoch": [
            {"epoch": i, "valid_ndcg@10": round(v, 5), "elapsed_s": round(t, 2), "cpu_s": round(c, 2)}
            for i, (v, t, c) in enumerate(zip(valid, elapsed, cpu, strict=True))
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k"])
    parser.add_argument("--models", default="sasrec", help="facetrec model kinds, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recbole-epochs", type=int, default=30, help="cap on RecBole's epochs")
    parser.add_argument("--recbole-patience", type=int, default=5, help="RecBole's early-stopping patience")
    parser.add_argument(
        "--recbole-budget-s", type=float, default=None, help="also stop RecBole after the epoch that passes this time"
    )
    parser.add_argument(
        "--max-len", type=int, default=50, help="RecBole's MAX_ITEM_LIST_LENGTH (its ML-100K default; ours reads 200)"
    )
    parser.add_argument("--params", type=json.loads, default={}, help="per-model overrides, e.g. '{\"sasrec\": {}}'")
    parser.add_argument(
        "--reuse-recbole",
        action="store_true",
        help="take RecBole's row (and other models' rows) from results/recbole_compare.json instead of rerunning it",
    )
    parser.add_argument("--sample-users", type=int, default=None, help="keep only the first N users (smoke runs)")
    parser.add_argument("--work", type=Path, default=None, help="keep the atomic files and runner here")
    args = parser.parse_args()

    root = Path(os.environ.get("FACETREC_DATA_DIR", HERE.parents[1] / "shared" / "datasets"))
    if not (root / args.dataset).is_dir():
        sys.exit(f"{args.dataset} not found in {root}; set FACETREC_DATA_DIR to the folder that holds it")

    sys.path.insert(0, str(HERE))
    from common import RESULTS, write_results
    from facetrec.data.sources import load_source
    from facetrec.data.split import make_split
    from facetrec.evaluation.protocol import EvalConfig, evaluate

    dataset = load_source(args.dataset, root / args.dataset)
    data = dataset.interactions
    if args.sample_users:
        data = data.take(data.user_idx < args.sample_users)
    split = make_split(data, "loo", args.seed)
    configs = (
        EvalConfig(metrics=("hr@10", "ndcg@10"), bootstrap=0, seed=args.seed),
        EvalConfig(metrics=("hr@10", "ndcg@10"), bootstrap=0, seed=args.seed, exclude_history=False),
    )
    kinds = [k for k in args.models.split(",") if k]

    if args.reuse_recbole:
        previous = json.loads((RESULTS / "recbole_compare.json").read_text())["rows"]
        rows = [r for r in previous if r["model"] == "recbole-sasrec" or r["model"] not in kinds]
        if rows[0]["model"] != "recbole-sasrec":
            sys.exit("results/recbole_compare.json has no recbole-sasrec row to reuse; run without --reuse-recbole")
    else:
        with tempfile.TemporaryDirectory(prefix="recbole-compare-") as tmp:
            work = args.work or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            rb = run_recbole(
                split, work, args.seed, args.max_len, args.recbole_epochs, args.recbole_patience, args.recbole_budget_s
            )
        fixed = FixedScores(rb.pop("test_users"), rb.pop("test_scores"), split.train.n_items)
        test = evaluate(fixed, split.test, configs[0]).summary
        test_incl = evaluate(fixed, split.test, configs[1]).summary
        rows = [recbole_row(args, rb, test, test_incl)]
        print(
            f"RecBole SASRec: best valid NDCG@10 {rb['best_valid_ndcg@10']:.4f} at epoch {rb['best_epoch']} "
            f"({rb['time_to_best_s']:.0f} s), {len(rb['epochs'])} epochs in {rb['train_s']:.0f} s; "
            f"test NDCG@10 {test['ndcg@10']:.4f} (runner: {rb['test_ndcg@10']:.4f})",
            flush=True,
        )

    for kind in kinds:
        rows.append(our_row(args, kind, split, dataset.catalog, rows[0], configs))
        print(f"{kind}: {rows[-1]['metrics']}", flush=True)

    print_table(rows)
    print(f"wrote {write_results('recbole_compare', rows)}")


KEYS = ("loss_type", "hidden_size", "n_layers", "n_heads", "train_neg_sample_args", "seed")


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="ML-100K, leave-one-out, full ranking, history excluded; RecBole best = best within its epoch cap"
    )
    columns = ("ndcg@10", "hr@10", "best_valid_ndcg@10", "wall_s", "time_to_recbole_best_s", "ratio_to_recbole_wall")
    table.add_column("model")
    for name in columns:
        table.add_column(name, justify="right")
    for row in rows:
        values = row["metrics"]
        table.add_row(row["model"], *("-" if values.get(c) is None else str(values[c]) for c in columns))
    Console().print(table)


if __name__ == "__main__":
    main()
