"""Distributed training: real ``torchrun`` launches of 2 CPU processes over gloo, against one process.

Run as a script (``python -m torch.distributed.run ... tests/test_distributed.py OUT RUNS``), this
file is also the worker: it trains each run of the JSON list RUNS and writes every rank's
weights, losses and validation scores under OUT.

Two processes match one only within a tolerance. Both take the same steps (the same global
batches; each process's gradient weighted by its share of the batch's predictions), but a
gradient added up over two half batches and then averaged is not summed in the order one
process sums it, and floating-point sums depend on their order. The runs here train without
dropout (and ID dropout), whose masks each process draws for itself, so that what remains is
that rounding. The tolerance: validation and test NDCG@10 within 0.01 absolute (one of 120
users whose target moves one place from the top changes NDCG@10 by 0.003), epoch losses within
1e-4 relative, weights within 1e-4 absolute (1e-2 for the facet model, whose distinctness
penalty is a mean over each process's own rows rather than a per-prediction mean). With the
same number of processes a run is exactly reproducible, resumed or not.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.data.dataset import Dataset
from facetrec.data.filters import first_occurrences
from facetrec.data.split import leave_one_out
from facetrec.errors import ConfigError
from facetrec.testing import small_synthetic
from facetrec.training import CHECKPOINT_NAME, TrainConfig, fit_loop, is_primary, seed_everything

TINY: dict[str, Any] = {
    "hidden": 16,
    "max_len": 20,
    "batch_size": 32,
    "epochs": 2,
    "patience": None,
    "progress": False,
    "dropout": 0.0,
    "device": "cpu",
}
TEXT = {"encoder": "lexical", "id_dropout": 0.0}
MODELS: list[dict[str, Any]] = [
    {"name": "sasrec", "model": "sasrec", "params": TINY},
    {"name": "sasrec-text", "model": "sasrec-text", "params": {**TINY, **TEXT}},
    {"name": "facet", "model": "facet", "params": {**TINY, **TEXT, "interests": 2}},
]
WEIGHT_TOLERANCE = {"sasrec": 1e-4, "sasrec-text": 1e-4, "facet": 1e-2}
NDCG_TOLERANCE = 0.01
LOSS_TOLERANCE = 1e-4
ROWS = 50  # the sharding run's rows: 4 batches of 16, the last of 2 rows (one for each process)


# --------------------------------------------------------------------------- the worker


class Recorded:
    """Training rows for the loop that note which rows each batch held (x [n, 4], y [n, 1])."""

    def __init__(self, n: int) -> None:
        data = torch.Generator().manual_seed(7)
        self.x = torch.randn(n, 4, generator=data)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
        self.seen: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(rows.tolist())
        return {"x": self.x[rows], "y": self.y[rows]}


class Line(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        seed_everything(0)
        self.net = nn.Linear(4, 1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(self.net(batch["x"]), batch["y"])


def train_rows(out: Path, rank: int) -> None:
    """The bare loop on :class:`Recorded` rows: which rows each rank built, how often it validated."""
    data, calls = Recorded(ROWS), []

    def validate() -> float:
        calls.append(1)
        return -float(len(calls))

    history = fit_loop(Line(), TrainConfig(epochs=2, batch_size=16, progress=False), data=data, validate=validate)
    record = {"seen": data.seen, "validations": len(calls), "losses": history.losses, "scores": history.scores}
    (out / f"rows.rank{rank}.json").write_text(json.dumps(record))


def train_model(run: dict[str, Any], out: Path, rank: int) -> None:
    """Fit one model on the synthetic split; write this rank's weights, losses and validation
    scores, and on rank 0 the test NDCG@10."""
    from facetrec.evaluation.protocol import EvalConfig, evaluate
    from facetrec.scoring.registry import make_scorer

    syn = small_synthetic()
    split = leave_one_out(first_occurrences(syn.dataset.interactions))
    scorer = make_scorer(run["model"], run["params"])
    try:
        scorer.fit(split.train, syn.dataset.catalog, split.valid)
    except ConfigError as error:
        (out / f"{run['name']}.rank{rank}.error").write_text(str(error))
        return
    arrays = {"weights": scorer.weights_, "losses": scorer.losses_, "scores": scorer.valid_scores_}
    np.savez(out / f"{run['name']}.rank{rank}.npz", **arrays)
    if is_primary():
        test = evaluate(scorer, split.test, EvalConfig(metrics=("ndcg@10",))).summary["ndcg@10"]
        (out / f"{run['name']}.json").write_text(json.dumps({"test_ndcg@10": test}))


def work(out: Path, runs: list[dict[str, Any]]) -> None:
    rank = int(os.environ.get("RANK", "0"))
    for run in runs:
        if run["name"] == "rows":
            train_rows(out, rank)
        else:
            train_model(run, out, rank)


# --------------------------------------------------------------------------- launching


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``args`` under torchrun with 2 local processes (a session of their own, ended if they
    overrun); fails the test with their output when they fail."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port()), *args]
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun overran:\n{stdout}\n{stderr}")
    assert process.returncode == 0, stdout + stderr
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def launch(out: Path, runs: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torchrun(str(Path(__file__).resolve()), str(out), json.dumps(runs), cwd=out)


def checkpointed(epochs: int, directory: Path) -> dict[str, Any]:
    """SASRec+ as in :data:`MODELS`, for ``epochs``, checkpointing in ``directory``."""
    params = {**TINY, "epochs": epochs, "checkpoint_dir": str(directory)}
    return {"name": f"resumed-{epochs}", "model": "sasrec", "params": params}


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One launch of 2 processes: the three models, the bare loop, a run with too many processes
    for its batches and the first epoch of a checkpointed run."""
    out = tmp_path_factory.mktemp("two")
    too_many = {"name": "too-many", "model": "sasrec", "params": {**TINY, "batch_size": 1}}
    launch(out, [*MODELS, {"name": "rows"}, too_many, checkpointed(1, out / "checkpoints")])
    shutil.copytree(out / "checkpoints", out / "checkpoints-for-one")  # the resume test moves the first on
    return out


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same models trained by this process alone."""
    out = tmp_path_factory.mktemp("one")
    work(out, MODELS)
    return out


def ranks(out: Path, name: str) -> list[Any]:
    return [np.load(out / f"{name}.rank{rank}.npz") for rank in (0, 1)]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", [run["name"] for run in MODELS])
def test_two_processes_end_with_the_same_weights_and_the_metrics_of_one(two: Path, one: Path, name: str):
    first, second = ranks(two, name)
    alone = np.load(one / f"{name}.rank0.npz")
    for field in ("weights", "losses", "scores"):  # the ranks agree exactly: averaged gradients, shared numbers
        np.testing.assert_array_equal(first[field], second[field])
    assert len(first["losses"]) == len(alone["losses"]) == TINY["epochs"]
    np.testing.assert_allclose(first["losses"], alone["losses"], rtol=LOSS_TOLERANCE)
    np.testing.assert_allclose(first["scores"], alone["scores"], rtol=0, atol=NDCG_TOLERANCE)
    np.testing.assert_allclose(first["weights"], alone["weights"], rtol=0, atol=WEIGHT_TOLERANCE[name])
    test_two, test_one = (json.loads((out / f"{name}.json").read_text())["test_ndcg@10"] for out in (two, one))
    assert test_two == pytest.approx(test_one, abs=NDCG_TOLERANCE)
    assert test_one > 0.05  # trained at all: popularity on this data scores about 0.05


def test_each_process_builds_only_its_share_of_every_batch(two: Path):
    records = [json.loads((two / f"rows.rank{rank}.json").read_text()) for rank in (0, 1)]
    steps = len(records[0]["seen"])
    assert steps == len(records[1]["seen"]) == 2 * 4  # 2 epochs of 4 steps each, on both processes
    for epoch in range(2):
        shares = [r["seen"][epoch * 4 : (epoch + 1) * 4] for r in records]
        for step, (mine, theirs) in enumerate(zip(*shares, strict=True)):
            assert not set(mine) & set(theirs)
            assert len(mine) == len(theirs) == (8 if step < 3 else 1)  # half of 16, then half of the last 2
        rows = [row for share in shares for batch in share for row in batch]
        assert sorted(rows) == list(range(ROWS))  # every row once per epoch, across the processes
    assert records[0]["seen"][:4] != records[0]["seen"][4:]  # reshuffled every epoch
    # Rank 0 validates; both see its scores, and the loss over both processes' rows.
    assert [r["validations"] for r in records] == [2, 0]
    assert records[0]["scores"] == records[1]["scores"] == [-1.0, -2.0]
    assert records[0]["losses"] == records[1]["losses"]


def test_more_processes_than_rows_per_step_is_a_config_error(two: Path):
    for rank in (0, 1):
        message = (two / f"too-many.rank{rank}.error").read_text()
        assert "2 processes cannot share batches of 1 rows" in message and "launch fewer processes" in message


def test_a_resumed_run_equals_an_uninterrupted_one(two: Path):
    directory = two / "checkpoints"
    saved = torch.load(directory / CHECKPOINT_NAME, weights_only=True)
    assert saved["epoch"] == 1 and "item.weight" in saved["model"]
    assert not [key for key in saved["model"] if key.startswith("module.")]  # no trace of the DDP wrapper
    launch(two / "resume", [checkpointed(2, directory)])  # a fresh launch picks up after epoch 1
    resumed, uninterrupted = ranks(two / "resume", "resumed-2"), ranks(two, "sasrec")
    for rank in (0, 1):  # same seed, same number of processes: the same numbers exactly
        for field in ("weights", "losses", "scores"):
            np.testing.assert_array_equal(resumed[rank][field], uninterrupted[rank][field])
    assert torch.load(directory / CHECKPOINT_NAME, weights_only=True)["epoch"] == 2


def test_a_checkpoint_of_two_processes_resumes_in_one(two: Path, tmp_path: Path):
    work(tmp_path, [checkpointed(2, two / "checkpoints-for-one")])
    resumed, uninterrupted = np.load(tmp_path / "resumed-2.rank0.npz"), ranks(two, "sasrec")[0]
    np.testing.assert_allclose(resumed["losses"], uninterrupted["losses"], rtol=LOSS_TOLERANCE)
    np.testing.assert_allclose(resumed["scores"], uninterrupted["scores"], rtol=0, atol=NDCG_TOLERANCE)
    np.testing.assert_allclose(resumed["weights"], uninterrupted["weights"], rtol=0, atol=WEIGHT_TOLERANCE["sasrec"])


def test_torchrun_train_writes_one_bundle_that_recommends(tmp_path: Path):
    runner = CliRunner()
    data, bundle = tmp_path / "synth", tmp_path / "bundle"
    made = runner.invoke(app, ["data", "synth", "--out", str(data), "--users", "80", "--items", "50"])
    assert made.exit_code == 0, made.output
    params = [f"--param={key}={json.dumps(value)}" for key, value in TINY.items() if value is not None]
    done = torchrun("-m", "facetrec", "train", "--dataset", str(data), "--out", str(bundle), "--model", "sasrec",
                    *params, cwd=tmp_path)  # fmt: skip
    assert done.stdout.count("wrote bundle") == 1 and done.stderr.count("training sasrec on") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "synth"]  # nothing else written
    user = str(Dataset.load(data).interactions.users.id_of(0))
    found = runner.invoke(app, ["recommend", "--bundle", str(bundle), "--user", user, "--n", "5", "--json"])
    assert found.exit_code == 0, found.output
    assert len(json.loads(found.stdout)["items"]) == 5


def test_a_process_on_its_own_is_primary():
    assert "RANK" not in os.environ and is_primary()


if __name__ == "__main__":
    work(Path(sys.argv[1]), json.loads(sys.argv[2]))
