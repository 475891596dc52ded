from itertools import chain
from pathlib import Path

import pytest
import torch
from torch import nn

from facetrec.errors import ConfigError, DataError
from facetrec.training import CHECKPOINT_NAME, TrainConfig, fit_loop, resolve_device, seed_everything


class Rows:
    """Training rows for the loop: x [n, 4] and y [n, 1]; remembers which rows each batch held."""

    def __init__(self, n: int = 48) -> None:
        data = torch.Generator().manual_seed(123)
        self.x = torch.randn(n + 16, 4, generator=data)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n + 16, 1, generator=data)
        self.n, self.seen = n, []

    def __len__(self) -> int:
        return self.n

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.append(rows.tolist())
        return {"x": self.x[rows], "y": self.y[rows]}


class Regression(nn.Module):
    """A linear regression that only supplies forward and loss; dropout draws from the global generator."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        seed_everything(seed)
        self.net = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(self(batch["x"]), batch["y"])

    def weights(self) -> torch.Tensor:
        return nn.utils.parameters_to_vector(self.parameters()).detach().clone()


def held_out_score(model: Regression, data: Rows):
    """Validation: minus the error on the 16 rows the loop never batches."""

    def validate() -> float:
        model.eval()
        with torch.no_grad():
            return -nn.functional.mse_loss(model(data.x[data.n :]), data.y[data.n :]).item()

    return validate


class Scripted:
    """Validation scores from a script; remembers the model's weights at each call."""

    def __init__(self, model: Regression, scores: list[float]) -> None:
        self.model, self.script, self.snapshots = model, scores, []

    def __call__(self) -> float:
        self.snapshots.append(self.model.weights())
        return self.script[len(self.snapshots) - 1]


def quiet(**kwargs) -> TrainConfig:
    return TrainConfig(**{"progress": False, "batch_size": 16, "lr": 0.05, **kwargs})


def test_a_model_that_only_supplies_forward_and_loss_trains():
    class Line(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.slope = nn.Parameter(torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.slope * x

        def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return (self(batch["x"]) - batch["y"]).pow(2).mean()

    class Points:
        x = torch.linspace(-1, 1, 32)

        def __len__(self) -> int:
            return 32

        def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"x": self.x[rows], "y": 3 * self.x[rows]}

    model = Line()
    history = fit_loop(model, quiet(epochs=40, batch_size=8, lr=0.1), data=Points())
    assert model.slope.item() == pytest.approx(3.0, abs=0.05)
    assert history.losses[-1] < 0.01 * history.losses[0]


def test_loss_decreases_without_validation():
    model = Regression()
    history = fit_loop(model, quiet(epochs=30), data=Rows())
    assert history.epochs == 30 and history.scores == [] and history.best_epoch is None
    assert history.losses[-1] < 0.1 * history.losses[0]
    assert not history.stopped_early and history.seconds > 0


def test_the_loop_batches_every_row_once_per_epoch_shuffled_by_the_seed():
    def orders(seed: int) -> list[list[list[int]]]:
        data = Rows(n=20)
        fit_loop(Regression(), quiet(epochs=3, batch_size=8, seed=seed), data=data)
        return [data.seen[e * 3 : (e + 1) * 3] for e in range(3)]  # 3 batches (8, 8, 4) per epoch

    epochs = orders(0)
    for batches in epochs:
        assert [len(b) for b in batches] == [8, 8, 4]
        assert sorted(chain(*batches)) == list(range(20))  # every row once
    assert epochs[0] != epochs[1] != epochs[2]  # reshuffled every epoch
    assert list(chain(*epochs[0])) != list(range(20))  # shuffled at all
    assert orders(0) == epochs  # the seed fixes the order
    assert orders(1) != epochs


def test_the_epoch_loss_is_the_mean_over_predictions_when_the_data_weighs_batches():
    class Constant(nn.Module):
        """Loss: the mean of the batch's real values (a dummy parameter gives it a gradient)."""

        def __init__(self) -> None:
            super().__init__()
            self.p = nn.Parameter(torch.zeros(()))

        def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            v = batch["v"]
            return self.p * 0 + v[v > 0].mean()

    class Values:
        v = torch.tensor([[1.0, 0.0, 0.0], [2.0, 3.0, 4.0], [5.0, 0.0, 0.0], [6.0, 7.0, 8.0]])

        def __len__(self) -> int:
            return 4

        def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"v": self.v[rows]}

    class Weighed(Values):
        @staticmethod
        def weight(batch: dict[str, torch.Tensor]) -> int:
            return int((batch["v"] > 0).sum())

    for size in (1, 2, 3):  # the mean over the 8 real values, however the rows fall into batches
        assert fit_loop(Constant(), quiet(epochs=1, batch_size=size), data=Weighed()).losses[0] == pytest.approx(4.5)
    # Without weights each row counts once: the mean of the row means (1, 3, 5, 7).
    assert fit_loop(Constant(), quiet(epochs=1, batch_size=1), data=Values()).losses[0] == pytest.approx(4.0)


class Recording(Regression):
    """A regression that notes the dtype its forward pass ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.dtype] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        self.seen.append(out.dtype)
        return out


def test_bf16_on_cpu_runs_the_forward_pass_in_bfloat16_and_trains():
    model = Recording()
    history = fit_loop(model, quiet(epochs=15, device="cpu", precision="bf16"), data=Rows())
    assert model.seen and set(model.seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(history.losses)))
    assert history.losses[-1] < 0.2 * history.losses[0]
    assert next(model.parameters()).dtype == torch.float32  # the weights themselves stay fp32


def test_fp32_runs_without_autocast():
    model = Recording()
    fit_loop(model, quiet(epochs=1), data=Rows())
    assert set(model.seen) == {torch.float32}


@pytest.mark.parametrize(
    ("device", "precision", "fix"),
    [("cpu", "fp16", "use precision = 'bf16' on CPU or 'fp32'"), ("mps", "bf16", "use precision = 'fp32'")],
)
def test_an_unsupported_precision_for_the_device_names_the_fix(device: str, precision: str, fix: str):
    with pytest.raises(ConfigError, match=f"TrainConfig.precision: .*{fix}"):
        TrainConfig(device=device, precision=precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="'auto' resolves to CUDA here")
def test_fp16_with_auto_on_a_cpu_only_machine_fails_before_training():
    model = Regression()
    before = model.weights()
    with pytest.raises(ConfigError, match="'fp16' needs a CUDA device.*'bf16' on CPU"):
        fit_loop(model, quiet(epochs=1, precision="fp16"), data=Rows())
    assert torch.equal(model.weights(), before)


def test_nccl_without_cuda_names_the_fix():
    with pytest.raises(ConfigError, match="TrainConfig.backend: nccl needs CUDA.*'cpu'.*use gloo"):
        TrainConfig(device="cpu", backend="nccl")
    if not torch.cuda.is_available():  # "auto" is only known to be a CPU once the loop resolves it
        model = Regression()
        before = model.weights()
        with pytest.raises(ConfigError, match="nccl needs CUDA"):
            fit_loop(model, quiet(epochs=1, backend="nccl"), data=Rows())
        assert torch.equal(model.weights(), before)


def test_early_stopping_restores_the_best_weights():
    model = Regression()
    data = Rows()
    validate = Scripted(model, [0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.9])
    history = fit_loop(model, quiet(epochs=7, patience=3), data=data, validate=validate)
    assert history.stopped_early and history.epochs == 5 and len(data.seen) == 5 * 3
    assert history.best_epoch == 1 and history.best_score == 0.5
    assert history.scores == [0.1, 0.5, 0.4, 0.45, 0.3]
    torch.testing.assert_close(model.weights(), validate.snapshots[1], rtol=0, atol=0)


def test_without_patience_runs_every_epoch_and_keeps_the_best():
    model = Regression()
    validate = Scripted(model, [0.1, 0.5, 0.4, 0.3, 0.2, 0.1])
    history = fit_loop(model, quiet(epochs=6, patience=None), data=Rows(), validate=validate)
    assert history.epochs == 6 and not history.stopped_early and history.best_epoch == 1
    torch.testing.assert_close(model.weights(), validate.snapshots[1], rtol=0, atol=0)


def test_same_seed_same_weights_other_seed_other_weights():
    def run(seed: int) -> torch.Tensor:
        model, data = Regression(seed=seed), Rows()
        fit_loop(model, quiet(epochs=5, seed=seed), data=data, validate=held_out_score(model, data))
        return model.weights()

    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert not torch.equal(run(0), run(1))


def test_resume_continues_from_the_saved_epoch_and_matches_an_uninterrupted_run(tmp_path: Path):
    straight, data = Regression(), Rows()
    expected = fit_loop(straight, quiet(epochs=8, patience=None), data=data, validate=held_out_score(straight, data))

    first, data = Regression(), Rows()
    config = quiet(epochs=3, patience=None, checkpoint_dir=str(tmp_path))
    fit_loop(first, config, data=data, validate=held_out_score(first, data))
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    resumed, data = Regression(), Rows()  # a fresh process: new model and optimiser, same settings
    config = quiet(epochs=8, patience=None, checkpoint_dir=str(tmp_path))
    history = fit_loop(resumed, config, data=data, validate=held_out_score(resumed, data))

    assert len(data.seen) == 5 * 3  # epochs 3..7 only
    assert history.losses == expected.losses and history.scores == expected.scores
    assert history.best_epoch == expected.best_epoch
    torch.testing.assert_close(resumed.weights(), straight.weights(), rtol=0, atol=0)


def test_a_finished_run_resumes_without_training(tmp_path: Path):
    config = quiet(epochs=7, patience=2, checkpoint_dir=str(tmp_path))
    model = Regression()
    validate = Scripted(model, [0.5, 0.4, 0.3, 0.9, 0.9, 0.9, 0.9])
    done = fit_loop(model, config, data=Rows(), validate=validate)
    again, data = Regression(seed=5), Rows()
    history = fit_loop(again, config, data=data, validate=Scripted(again, [0.0] * 7))
    assert data.seen == [] and history.stopped_early and history.losses == done.losses
    torch.testing.assert_close(again.weights(), validate.snapshots[0], rtol=0, atol=0)


def test_checkpoint_of_another_seed_is_refused(tmp_path: Path):
    fit_loop(Regression(), quiet(epochs=1, checkpoint_dir=str(tmp_path)), data=Rows())
    with pytest.raises(ConfigError, match="seed 0, this run has seed 1"):
        fit_loop(Regression(), quiet(epochs=2, seed=1, checkpoint_dir=str(tmp_path)), data=Rows())


def test_diverging_loss_is_an_error():
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit_loop(Regression(), quiet(epochs=20, lr=1e30), data=Rows())


def test_progress_is_one_line_per_epoch_on_stderr_when_it_is_not_a_terminal(capsys):
    model, data = Regression(), Rows()
    config = TrainConfig(epochs=3, patience=None, batch_size=16, progress=True)
    history = fit_loop(model, config, data=data, validate=held_out_score(model, data), description="toy")
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 3
    for epoch, (line, loss, score) in enumerate(zip(lines, history.losses, history.scores, strict=True)):
        assert line.startswith(f"toy  epoch {epoch + 1}/3  loss {loss:.4f}  valid {score:.4f}  elapsed 0:00:")
        assert "  eta 0:00:" in line
    fit_loop(Regression(), quiet(epochs=2), data=Rows())
    assert capsys.readouterr().err == ""  # progress=False: silent


def test_global_settings_are_restored():
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    fit_loop(Regression(), quiet(epochs=2, threads=1), data=Rows())
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_what_the_loop_needs_is_a_type_error_when_missing():
    with pytest.raises(TypeError, match=r"nn.Module with loss\(batch\)"):
        fit_loop(nn.Linear(4, 1), quiet(), data=Rows())
    with pytest.raises(TypeError, match=r"needs __len__\(\) and batch\(rows\)"):
        fit_loop(Regression(), quiet(), data=[1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no training rows"):
        fit_loop(Regression(), quiet(), data=Rows(n=0))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("patience", 0),
        ("seed", -1),
        ("device", "gpu"),
        ("threads", 0),
        ("checkpoint_dir", ""),
        ("batch_size", 0),
        ("lr", 0.0),
        ("precision", "fp8"),
        ("backend", "mpi"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object):
    with pytest.raises(ConfigError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="no Apple GPU"):
            resolve_device("mps")


def test_max_minutes_starts_no_epoch_after_the_budget_and_keeps_the_best_weights():
    import time

    model = Regression()
    validate = Scripted(model, [0.1, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1])

    def slow() -> float:
        time.sleep(0.2)  # each epoch takes at least 0.2 s, so a 0.5 s budget allows three
        return validate()

    history = fit_loop(model, quiet(epochs=8, patience=None, max_minutes=0.5 / 60), data=Rows(), validate=slow)
    assert history.out_of_time and not history.stopped_early
    assert 2 <= history.epochs <= 3 and history.best_epoch == 1
    torch.testing.assert_close(model.weights(), validate.snapshots[1], rtol=0, atol=0)


def test_max_minutes_must_be_a_positive_number():
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ConfigError, match="max_minutes"):
            TrainConfig(max_minutes=bad)
