"""MLflow tracking: runs of `tune`, `evaluate` and the benchmarks, read back with MlflowClient
from a store under tmp_path; --no-track writes nothing; a failing store only warns."""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from facetrec import __version__, tracking
from facetrec.cli import app
from facetrec.data.synthetic import SynthConfig, generate

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")  # SQLAlchemy's, inside MLflow


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("tracking") / "synth"
    generate(SynthConfig(n_users=150, n_items=80, seed=0)).dataset.save(out)
    return out


def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def runs_of(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    return client.search_runs([found.experiment_id])


def artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {entry.path for entry in client.list_artifacts(run_id)}


def test_tune_records_a_parent_run_and_one_child_per_trial(synth, tmp_path, monkeypatch):
    uri = store(tmp_path)
    out = tmp_path / "best.toml"
    args = ["tune", "--model", "ease", "--dataset", str(synth), "--trials", "2", "--seed", "1", "--out", str(out),
            "--tracking-uri", uri, "--json"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["/usr/bin/facetrec", *args])
    result = invoke(*args)
    document = json.loads(result.stdout)
    assert document["tracking"]["uri"] == uri
    client = MlflowClient(uri)
    parent = client.get_run(document["tracking"]["run_id"])
    assert parent.info.status == "FINISHED"
    params, tags, metrics = parent.data.params, parent.data.tags, parent.data.metrics
    assert params["model"] == "ease" and params["metric"] == "ndcg@10" and params["trials"] == "2"
    assert params["seed"] == "1" and float(params["best.l2"]) == document["best"]["params"]["l2"]
    assert metrics["best_ndcg_at_10"] == pytest.approx(document["best"]["score"])
    manifest = json.loads((synth / "manifest.json").read_text())
    assert tags["dataset"] == manifest["name"] and tags["dataset.fingerprint"] == manifest["fingerprint"]
    assert tags["facetrec.version"] == __version__ and tags["facetrec.command"] == shlex.join(["facetrec", *args])
    assert artifacts(client, parent.info.run_id) == {"best.toml"}
    assert "tracked as MLflow run" in result.stderr

    children = [run for run in runs_of(client, "facetrec tune") if run.info.run_id != parent.info.run_id]
    assert len(children) == 2
    by_trial = {int(run.data.tags["trial"]): run for run in children}
    for trial in document["trials"]:
        child = by_trial[trial["number"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["state"] == "COMPLETE" and child.info.status == "FINISHED"
        assert float(child.data.params["l2"]) == trial["params"]["l2"]
        assert child.data.metrics["ndcg_at_10"] == pytest.approx(trial["score"])


def test_evaluate_records_a_run_per_model_and_the_report_as_artifacts(synth, tmp_path):
    uri = store(tmp_path)
    report = tmp_path / "report"
    result = invoke(
        "evaluate", "--dataset", str(synth), "--models", "pop,ease", "--param", "ease.l2=50", "--out", str(report),
        "--tracking-uri", uri, "--json",
    )  # fmt: skip
    document = json.loads(result.stdout)  # metrics rounded to 6 decimals
    client = MlflowClient(uri)
    runs = runs_of(client, "facetrec evaluate")
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.data.params["models"] == "pop,ease" and parent.data.params["protocol"] == "loo"
    assert parent.data.tags["dataset.fingerprint"]
    assert artifacts(client, parent.info.run_id) >= {"report.md", "results.json", "per_user.parquet"}

    children = {run.data.tags["model"]: run for run in runs if run is not parent}
    assert set(children) == {"pop", "ease"}
    for row in document["models"]:
        child = children[row["model"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.metrics["ndcg_at_10"] == pytest.approx(row["metrics"]["ndcg@10"], abs=1e-6)
        assert child.data.metrics["fit_seconds"] >= 0
        assert parent.data.metrics[f"{row['model']}/ndcg_at_10"] == pytest.approx(row["metrics"]["ndcg@10"], abs=1e-6)
    ease = children["ease"].data.params
    assert ease["l2"] == "50.0" and ease["feedback"] == "binary"  # the whole config, defaults included


def test_no_track_writes_nothing(synth, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    invoke("evaluate", "--dataset", str(synth), "--models", "pop", "--no-track", "--json")
    invoke("tune", "--model", "ease", "--dataset", str(synth), "--trials", "1", "--no-track", "--json")
    monkeypatch.setenv(tracking.ENV_SWITCH, "0")
    result = invoke("evaluate", "--dataset", str(synth), "--models", "pop", "--json")
    assert "tracked as" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tune-ease.toml"]


def test_a_failing_store_warns_and_the_command_goes_on(synth, tmp_path):
    (tmp_path / "not-a-database.db").write_text("plain text")
    unusable = f"sqlite:///{tmp_path / 'not-a-database.db'}"
    result = invoke("evaluate", "--dataset", str(synth), "--models", "pop", "--tracking-uri", unusable, "--json")
    assert json.loads(result.stdout)["models"][0]["model"] == "pop"
    warning = " ".join(result.stderr.split())
    assert f"warning: tracking to {unusable} failed" in warning and "the results are kept" in warning

    def track_into_the_unusable_store():
        with tracking.track("x", uri=unusable) as run:
            run.log(params={"a": 1}, metrics={"m": 1.0})
            return run, run.log_child("child", metrics={"m": 2.0})

    with pytest.warns(tracking.TrackingWarning, match="goes on without tracking"):
        run, child = track_into_the_unusable_store()
    assert not run.active and child.run_id is None


def test_tracking_off_imports_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with tracking.track("x", enabled=False) as run:
        run.log(params={"a": 1}, metrics={"m": 1.0})
        run.log_artifacts([__file__])
        assert run.log_child("child").run_id is None
    assert not run.active and list(tmp_path.iterdir()) == []


def test_flattened_params_and_valid_metric_names():
    assert tracking.flatten({"model": {"l2": 5, "k": [1, 2]}, "seed": 0}) == {
        "model.l2": 5,
        "model.k": [1, 2],
        "seed": 0,
    }
    assert tracking.key("ndcg@10") == "ndcg_at_10" and tracking.key("ease/hr@5") == "ease/hr_at_5"


def _benchmarks_common():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "common.py"
    spec = importlib.util.spec_from_file_location("benchmarks_common", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks_common"] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_results_are_tracked_unless_switched_off(tmp_path, monkeypatch):
    common = _benchmarks_common()
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    uri = store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    rows = [
        {"dataset": "ml-100k", "model": "ease", "metrics": {"ndcg@10": 0.07, "fit_s": 0.3}, "params": {"l2": 100}},
        {"dataset": "ml-100k", "model": "pop", "metrics": {"ndcg@10": 0.04}},
    ]
    path = common.write_results("speed", rows)
    client = MlflowClient(uri)
    runs = runs_of(client, "facetrec benchmarks")
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.run_name == "speed" and parent.data.params["benchmark"] == "speed"
    assert "machine.cpus" in parent.data.params
    assert artifacts(client, parent.info.run_id) == {path.name}
    children = {run.info.run_name: run for run in runs if run is not parent}
    assert set(children) == {"ml-100k / ease", "ml-100k / pop"}
    ease = children["ml-100k / ease"].data
    assert ease.metrics == {"ndcg_at_10": 0.07, "fit_s": 0.3}
    assert ease.params == {"dataset": "ml-100k", "model": "ease", "params.l2": "100"}

    monkeypatch.setenv(tracking.ENV_SWITCH, "0")
    common.write_results("speed", rows)
    assert len(runs_of(client, "facetrec benchmarks")) == 3  # the second run was not recorded
