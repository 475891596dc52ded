"""The command line: each command run in-process, plus the installed script for error output.

Assertions read ``--json`` output or files, never Rich tables: those wrap at the terminal's
width, so a test reading them would pass or fail with the terminal it runs in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.data.dataset import Dataset

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def run_json(*args: str):
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_synth_inspect_split(tmp_path):
    out = tmp_path / "synth"
    written = run_json("data", "synth", "--out", str(out), "--users", "150", "--items", "90", "--seed", "3")
    dataset = Dataset.load(out)
    assert dataset.interactions.n_users == 150 and dataset.interactions.n_items == 90
    assert written == {"path": str(out), "interactions": len(dataset.interactions), "users": 150, "items": 90}
    assert (out / "truth_items.parquet").is_file()
    stats = run_json("data", "inspect", str(out))
    assert stats["interactions"] == len(dataset.interactions) and stats["users"] == 150
    assert stats["user_lengths"]["mean"] == len(dataset.interactions) / 150 and stats["coverage"]["title"] == 1.0
    split = run_json("data", "split", str(out), "--protocol", "multi-target")
    assert split["protocol"] == "multi-target" and split["test_targets"] > 0
    assert split["train_events"] + split["test_targets"] + split["valid_targets"] <= len(dataset.interactions)


def test_import_own_files_with_mapping_and_config(tmp_path):
    (tmp_path / "events.csv").write_text("uid,iid,when,stars\n1,x,2024-01-01,4\n1,y,2024-01-02,5\n2,x,2024-01-03,1\n")
    (tmp_path / "items.csv").write_text("iid,name,kind\nx,Ex,a|b\ny,Why,c\n")
    out = tmp_path / "mine"
    text = run(
        "data",
        "import",
        "--interactions",
        str(tmp_path / "events.csv"),
        "--items",
        str(tmp_path / "items.csv"),
        "--map",
        "user=uid",
        "--map",
        "item=iid",
        "--map",
        "timestamp=when",
        "--map",
        "rating=stars",
        "--item-map",
        "item=iid",
        "--item-map",
        "title=name",
        "--item-map",
        "categories=kind",
        "--out",
        str(out),
        "--name",
        "mine",
    )
    assert "imported mine: 3 interactions, 2 users, 2 items" in " ".join(text.split())
    mapping = ["--map", "user=uid", "--map", "item=iid", "--map", "timestamp=when"]
    second = tmp_path / "again"
    again = run_json("data", "import", "--interactions", str(tmp_path / "events.csv"), *mapping, "--out", str(second))
    assert (again["interactions"], again["users"], again["items"], again["path"]) == (3, 2, 2, str(second))
    dataset = Dataset.load(out)
    assert dataset.name == "mine" and dataset.catalog.categories.tolist() == [("a", "b"), ("c",)]

    config = tmp_path / "import.toml"
    config.write_text(
        '[columns]\nuser = "uid"\nitem = "iid"\ntimestamp = "when"\nrating = "stars"\n'
        "[options]\nrating_range = [1, 5]\n"
    )
    run(
        "data",
        "import",
        "--interactions",
        str(tmp_path / "events.csv"),
        "--config",
        str(config),
        "--out",
        str(tmp_path / "viaconfig"),
        "--min-user",
        "2",
    )
    assert len(Dataset.load(tmp_path / "viaconfig").interactions) == 2  # user 2 has one event


def test_bad_mapping_is_a_usage_error(tmp_path):
    (tmp_path / "e.csv").write_text("user_id,item_id,timestamp\nu,a,1\n")
    result = runner.invoke(
        app,
        ["data", "import", "--interactions", str(tmp_path / "e.csv"), "--map", "user", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 2 and "expected FIELD=COLUMN" in result.output


def test_demo_runs_end_to_end(tmp_path, monkeypatch):
    from facetrec import cli

    monkeypatch.setattr(cli.console, "width", 300)  # the demo's tables are for people: read them unwrapped
    text = run("demo", "--out", str(tmp_path), "--users", "200", "--items", "120")
    assert "split: loo" in text and "planted interests" in text and "done." in text
    assert Dataset.load(tmp_path / "synthetic").interactions.n_users == 200
    assert "facet" in text and "learned interests" in text and "Because you liked" in text
    assert (tmp_path / "bundle" / "manifest.json").is_file()


def test_multimodal_demo_encodes_fuses_and_explains_by_modality(tmp_path):
    from facetrec.recommender import Recommender
    from facetrec.types import Query

    run("demo", "--multimodal", "--out", str(tmp_path), "--users", "150", "--items", "60")
    catalog = Dataset.load(tmp_path / "multimodal").catalog
    assert set(catalog.vectors) == {"image", "audio"}
    assert all(np.abs(v).sum(1).min() > 0 for v in catalog.vectors.values())  # every file was read
    recommender = Recommender.load(tmp_path / "multimodal-bundle")
    assert recommender.scorer.modalities == ["text", "reviews", "audio", "image", "id"]
    user = str(recommender.history.users.id_of(0))
    found = recommender.recommend(Query(user_id=user, n=5), explain=True)
    assert set(found.fields["modality"]) <= set(recommender.scorer.modalities) and len(found) == 5


def test_demo_models_belong_to_the_multimodal_path(tmp_path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--image-model", "x"])
    assert result.exit_code == 2 and "--multimodal" in result.output


def test_script_prints_one_line_errors_not_tracebacks(tmp_path):
    (tmp_path / "e.csv").write_text("user_id,item_id,timestamp\nu,a,yesterday\nu,b,tomorrow\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facetrec",
            "data",
            "import",
            "--interactions",
            str(tmp_path / "e.csv"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "unparseable timestamps" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_version_and_help():
    from facetrec import __version__

    assert __version__ in run("--version")
    assert "import" in run("data", "--help")


@pytest.mark.dataset
@pytest.mark.parametrize(
    ("name", "expected"),
    [("ml-100k", (100_000, 943, 1_682)), ("ml-latest-small", (100_836, 610, 9_742))],
)
def test_import_public_movielens_gives_published_counts(shared_dataset, tmp_path, name, expected):
    path = shared_dataset(name)
    run("data", "import", name, "--path", str(path), "--out", str(tmp_path / name))
    data = Dataset.load(tmp_path / name).interactions
    assert (len(data), data.n_users, data.n_items) == expected


def test_evaluate_writes_a_report(tmp_path):
    data = tmp_path / "synth"
    run("data", "synth", "--out", str(data), "--users", "150", "--items", "90")
    out = str(tmp_path / "r")
    found = run_json("evaluate", "--dataset", str(data), "--models", "pop", "--k", "5,10", "--out", out, "--no-track")
    assert found["settings"]["exclude_history"] is True
    report = (tmp_path / "r" / "report.md").read_text()
    assert "ndcg@5" in report and "interest_coverage@10" in report and "history items excluded" in report
    assert (tmp_path / "r" / "metrics.png").is_file()


@pytest.mark.dataset
def test_import_source_with_options(shared_dataset, tmp_path):
    path = shared_dataset("amazon-reviews-2018-small")
    run(
        "data",
        "import",
        "amazon-2018",
        "--path",
        str(path),
        "--option",
        "category=Gift_Cards",
        "--out",
        str(tmp_path / "gc"),
    )
    data = Dataset.load(tmp_path / "gc")
    assert len(data.interactions) == 2_972 and data.interactions.review is not None
    result = runner.invoke(
        app,
        ["data", "import", "amazon-2018", "--path", str(path), "--option", "colour=red", "--out", str(tmp_path / "x")],
    )
    assert result.exit_code != 0 and "unknown option(s) colour" in str(result.exception)


def test_encode_then_similar(tmp_path):
    data = tmp_path / "synth"
    run("data", "synth", "--out", str(data), "--users", "100", "--items", "60")
    encoded = run_json("encode", "--dataset", str(data), "--model", "lexical", "--cache", str(tmp_path / "cache"))
    assert encoded["items"] == 60 and encoded["encoder"].startswith("lexical")
    assert (data / "item_embeddings.npy").is_file()
    dataset = Dataset.load(data)
    first = dataset.catalog.items.ids[0]
    found = run_json("similar", first, "--dataset", str(data), "--n", "3")
    assert found["item"] == first and len(found["similar"]) == 3
    cosines = [row["cosine"] for row in found["similar"]]
    assert cosines == sorted(cosines, reverse=True) and first not in {row["item"] for row in found["similar"]}
    result = runner.invoke(app, ["similar", "no-such-item", "--dataset", str(data)])
    assert result.exit_code != 0 and "unknown item id 'no-such-item'" in str(result.exception)


def test_similar_without_embeddings_says_what_to_run(tmp_path):
    data = tmp_path / "synth"
    run("data", "synth", "--out", str(data), "--users", "60", "--items", "40")
    result = runner.invoke(app, ["similar", "i00001", "--dataset", str(data)])
    assert "facetrec encode --dataset" in str(result.exception)


def test_train_then_recommend_grouped_by_interest(tmp_path):
    data = tmp_path / "synth"
    run("data", "synth", "--out", str(data), "--users", "120", "--items", "80", "--seed", "1")
    config = tmp_path / "facet.toml"
    config.write_text(
        'kind = "facet"\n[model]\nencoder = "lexical"\nhidden = 16\nepochs = 2\nprogress = false\n'
        '[ranking]\ndiversity = "mmr"\nlam = 0.7\n'
    )
    bundle = tmp_path / "bundle"
    trained = run_json("train", "--dataset", str(data), "--out", str(bundle), "--config", str(config))
    assert trained["bundle"] == str(bundle) and trained["kind"] == "facet" and (bundle / "manifest.json").is_file()
    dataset = Dataset.load(data)
    user = str(dataset.interactions.users.id_of(0))
    found = run_json("recommend", "--bundle", str(bundle), "--user", user, "--n", "5", "--explain")
    assert found["user"] == user and len(found["items"]) == 5 and found["interests"]
    titles = {dataset.catalog.title(i) for i in range(len(dataset.catalog))}
    for row in found["items"]:
        assert row["title"] in titles and row["explanation"].startswith("Because you liked")
        assert row["label"] == found["interests"][row["interest"]] and row["because"]
    item = str(dataset.catalog.items.id_of(0))
    session = run_json("recommend", "--bundle", str(bundle), "--history", item, "--diversity", "dpp", "--lambda", "0.5")
    assert session["user"] is None and len(session["items"]) == 10 and item not in {r["item"] for r in session["items"]}
    config.write_text('kind = "facet"\n[modle]\nhidden = 16\n')
    result = runner.invoke(app, ["train", "--dataset", str(data), "--out", str(bundle), "--config", str(config)])
    assert result.exit_code != 0 and "modle" in result.output
