from pathlib import Path

import pytest
import torch
from torch import nn

from facetrec.errors import ConfigError
from facetrec.training import CHECKPOINT_NAME, TrainConfig, fit_loop, resolve_device, seed_everything


class Regression:
    """A trainable linear regression: shuffled mini-batches and dropout use the global generators."""

    def __init__(self, seed: int = 0, lr: float = 0.05) -> None:
        seed_everything(seed)
        self.model = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 1))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        data = torch.Generator().manual_seed(123)
        self.x = torch.randn(64, 4, generator=data)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(64, 1, generator=data)
        self.epochs_run: list[int] = []

    def train_epoch(self, epoch: int) -> float:
        self.epochs_run.append(epoch)
        self.model.train()
        losses = []
        for rows in torch.randperm(48).split(16):
            loss = nn.functional.mse_loss(self.model(self.x[rows]), self.y[rows])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        return sum(losses) / len(losses)

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state)

    def weights(self) -> torch.Tensor:
        return nn.utils.parameters_to_vector(self.model.parameters()).detach().clone()


class Validated(Regression):
    """Validation score: minus the error on 16 held-out points."""

    def validate(self) -> float:
        self.model.eval()
        with torch.no_grad():
            return -nn.functional.mse_loss(self.model(self.x[48:]), self.y[48:]).item()


class Scripted(Regression):
    """Validation scores come from a script; remembers the weights at each epoch."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.script, self.snapshots = scores, []

    def validate(self) -> float:
        self.snapshots.append(self.weights())
        return self.script[len(self.snapshots) - 1]


def quiet(**kwargs) -> TrainConfig:
    return TrainConfig(progress=False, **kwargs)


def test_loss_decreases_without_validation():
    model = Regression()
    history = fit_loop(model, quiet(epochs=30), optimizer=model.optimizer)
    assert history.epochs == 30 and history.scores == [] and history.best_epoch is None
    assert history.losses[-1] < 0.1 * history.losses[0]
    assert not history.stopped_early and history.seconds > 0


def test_early_stopping_restores_the_best_weights():
    model = Scripted([0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.9])
    history = fit_loop(model, quiet(epochs=7, patience=3), optimizer=model.optimizer)
    assert history.stopped_early and history.epochs == 5 and model.epochs_run == [0, 1, 2, 3, 4]
    assert history.best_epoch == 1 and history.best_score == 0.5
    assert history.scores == [0.1, 0.5, 0.4, 0.45, 0.3]
    torch.testing.assert_close(model.weights(), model.snapshots[1], rtol=0, atol=0)


def test_without_patience_runs_every_epoch_and_keeps_the_best():
    model = Scripted([0.1, 0.5, 0.4, 0.3, 0.2, 0.1])
    history = fit_loop(model, quiet(epochs=6, patience=None), optimizer=model.optimizer)
    assert history.epochs == 6 and not history.stopped_early and history.best_epoch == 1
    torch.testing.assert_close(model.weights(), model.snapshots[1], rtol=0, atol=0)


def test_same_seed_same_weights_other_seed_other_weights():
    def run(seed: int) -> torch.Tensor:
        model = Validated(seed=seed)
        fit_loop(model, quiet(epochs=5, seed=seed), optimizer=model.optimizer)
        return model.weights()

    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert not torch.equal(run(0), run(1))


def test_resume_continues_from_the_saved_epoch_and_matches_an_uninterrupted_run(tmp_path: Path):
    straight = Validated()
    expected = fit_loop(straight, quiet(epochs=8, patience=None), optimizer=straight.optimizer)

    first = Validated()
    fit_loop(first, quiet(epochs=3, patience=None, checkpoint_dir=str(tmp_path)), optimizer=first.optimizer)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    resumed = Validated()  # a fresh process: new model and optimizer, same settings
    history = fit_loop(
        resumed, quiet(epochs=8, patience=None, checkpoint_dir=str(tmp_path)), optimizer=resumed.optimizer
    )

    assert resumed.epochs_run == [3, 4, 5, 6, 7]
    assert history.losses == expected.losses and history.scores == expected.scores
    assert history.best_epoch == expected.best_epoch
    torch.testing.assert_close(resumed.weights(), straight.weights(), rtol=0, atol=0)


def test_a_finished_run_resumes_without_training(tmp_path: Path):
    config = quiet(epochs=7, patience=2, checkpoint_dir=str(tmp_path))
    model = Scripted([0.5, 0.4, 0.3, 0.9, 0.9, 0.9, 0.9])
    done = fit_loop(model, config, optimizer=model.optimizer)
    again = Scripted([0.0] * 7)
    history = fit_loop(again, config, optimizer=again.optimizer)
    assert again.epochs_run == [] and history.stopped_early and history.losses == done.losses
    torch.testing.assert_close(again.weights(), model.snapshots[0], rtol=0, atol=0)


def test_checkpoint_of_another_seed_is_refused(tmp_path: Path):
    model = Regression()
    fit_loop(model, quiet(epochs=1, checkpoint_dir=str(tmp_path)), optimizer=model.optimizer)
    with pytest.raises(ConfigError, match="seed 0, this run has seed 1"):
        fit_loop(Regression(), quiet(epochs=2, seed=1, checkpoint_dir=str(tmp_path)))


def test_diverging_loss_is_an_error():
    model = Regression(lr=1e30)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit_loop(model, quiet(epochs=20), optimizer=model.optimizer)


def test_progress_bar_and_global_settings_are_restored():
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    model = Validated()
    fit_loop(model, TrainConfig(epochs=2, progress=True, threads=1), optimizer=model.optimizer)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_not_a_trainable_is_a_type_error():
    with pytest.raises(TypeError, match="needs train_epoch"):
        fit_loop(object(), quiet())  # type: ignore[arg-type]


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
