"""`facetrec evaluate`: --config tables, --param, progress on stderr, --json, best marks and ratios.

Assertions read the JSON on stdout (or plain stderr lines), never the Rich table, whose layout
depends on the terminal width; every test passes with COLUMNS=40 and COLUMNS=80.
"""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.scoring.registry import SCORERS

runner = CliRunner()
WIDTH = os.environ.get("COLUMNS", "80")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "synth"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--users", "200", "--items", "100"])
    assert result.exit_code == 0, result.output
    return out


def invoke(*args: str, columns: str = WIDTH):
    env = {"COLUMNS": columns, "FACETREC_TRACKING": "0"}  # tracking has its own tests (tests/test_tracking.py)
    return runner.invoke(app, ["evaluate", *args], env=env, catch_exceptions=False)


def results(*args: str, columns: str = WIDTH) -> dict:
    result = invoke(*args, "--json", columns=columns)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout holds the JSON and nothing else


def by_model(document: dict) -> dict[str, dict]:
    return {row["model"]: row for row in document["models"]}


def write_config(tmp_path, text: str, name: str = "run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_config_table_sets_a_models_parameters(synth, tmp_path):
    ndcg = {}
    for l2 in (0.001, 1e7):
        config = write_config(tmp_path, f'dataset = "{synth}"\nk = [5]\n[models.pop]\n[models.ease]\nl2 = {l2}\n')
        document = results("--config", config)
        assert [row["model"] for row in document["models"]] == ["pop", "ease"]  # the file's order
        ease = by_model(document)["ease"]
        assert ease["params"] == {"l2": l2}
        assert by_model(document)["pop"]["params"] == {}
        assert set(ease["metrics"]) >= {"ndcg@5", "hr@5"} and "ndcg@10" not in ease["metrics"]
        ndcg[l2] = ease["metrics"]
    assert ndcg[0.001] != ndcg[1e7]


def test_param_and_options_on_the_command_line_override_the_file(synth, tmp_path):
    config = write_config(tmp_path, f'dataset = "{synth}"\nk = 5\n[models.pop]\n[models.ease]\nl2 = 1e7\n')
    document = results("--config", config, "--models", "ease", "--k", "10", "--param", "ease.l2=0.001")
    ease = by_model(document)["ease"]
    assert list(by_model(document)) == ["ease"]
    assert ease["params"] == {"l2": 0.001}
    assert "ndcg@10" in ease["metrics"] and "ndcg@5" not in ease["metrics"]
    plain = results("--dataset", str(synth), "--models", "ease", "--param", "ease.l2=0.001")
    assert by_model(plain)["ease"]["metrics"] == ease["metrics"]


def test_param_values_are_toml_and_a_bare_word_is_a_string(synth):
    quoted = results("--dataset", str(synth), "--models", "ease", "--param", 'ease.feedback="weight"')
    bare = results("--dataset", str(synth), "--models", "ease", "--param", "ease.feedback=weight")
    assert by_model(quoted)["ease"]["params"] == by_model(bare)["ease"]["params"] == {"feedback": "weight"}
    numbers = results("--dataset", str(synth), "--models", "itemknn", "--param", "itemknn.k=5")
    assert by_model(numbers)["itemknn"]["params"] == {"k": 5}


@pytest.mark.parametrize(
    ("args", "config", "expected"),
    [
        ([], "modles = 'pop'\n", ["unknown key 'modles'", "did you mean 'models'", "valid keys: dataset, models"]),
        (["--models", "ease"], "[models.ease]\nl3 = 1\n", ["model 'ease'", "unknown key 'l3'", "valid keys: l2"]),
        (["--models", "pop", "--param", "ease.l2=5"], "", ["'ease'", "not in the run", "models in the run: pop"]),
        (["--models", "ease", "--param", "ease.alpha=5"], "", ["unknown key 'alpha'", "valid keys: l2"]),
        (["--models", "ease", "--param", "l2=5"], "", ["expected MODEL.KEY=VALUE"]),
        ([], "models = ['ease']\n[models.ease]\nl2 = 1\n", ["cannot both", "[models.KIND] table"]),
        ([], "tune = 'yes'\n", ["tune", "expected bool"]),
        ([], "kind = 'ease'\nmodels = ['pop']\n", ["kind = ... with [model], or models, not both"]),
        ([], "[model]\nl2 = 1\n", ['a [model] table needs kind = "MODEL"']),
        (["--models", "popular"], "", ["unknown model kind 'popular'", "pop, bias, itemknn"]),
        (["--models", "ease", "--param", "ease.l2=big"], "", ["model 'ease'", "l2", "expected float"]),
    ],
)
def test_mistakes_are_errors_that_name_the_valid_choices(synth, tmp_path, args, config, expected):
    extra = ["--config", write_config(tmp_path, config)] if config else []
    result = invoke("--dataset", str(synth), *extra, *args)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    for fragment in expected:
        assert fragment in message
    assert "Traceback" not in result.output


def test_progress_and_time_left_go_to_stderr(synth):
    result = invoke("--dataset", str(synth), "--models", "pop,ease", "--json")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    for expected in ("[1/2] fitting pop ...", "[2/2] fitting ease ..."):
        assert expected in lines
    assert any(line.startswith("[1/2] pop done in ") and "left" in line for line in lines)
    assert any(line.startswith("[2/2] ease done in ") and "all done" in line for line in lines)
    json.loads(result.stdout)
    assert "fitting" not in result.stdout


def test_table_output_keeps_progress_off_stdout(synth):
    result = invoke("--dataset", str(synth), "--models", "pop")
    assert result.exit_code == 0, result.output
    assert "fitting" not in result.stdout and "[1/1] fitting pop ..." in result.stderr
    assert "ndcg@10" in result.stdout


def test_best_model_is_marked_and_ratios_are_relative_to_it(synth, tmp_path):
    document = results("--dataset", str(synth), "--models", "pop,itemknn,ease", "--out", str(tmp_path / "r"))
    main = document["main_metric"]
    assert main == "ndcg@10"
    rows = by_model(document)
    top = max(rows, key=lambda kind: rows[kind]["metrics"][main])
    assert document["best"][main] == [top]
    assert rows[top]["best"][main] is True and rows[top]["best_on_main_metric"] is True
    assert rows[top]["ratio_to_best"]["ratio"] == 1.0 and rows[top]["ratio_to_best"]["ci95"] == [1.0, 1.0]
    for kind, row in rows.items():
        ratio = row["ratio_to_best"]
        assert ratio["metric"] == main and ratio["best_model"] == top
        expected = row["metrics"][main] / rows[top]["metrics"][main]
        assert ratio["ratio"] == pytest.approx(expected, abs=1e-5)
        assert ratio["ci95"][0] <= ratio["ratio"] <= ratio["ci95"][1]
        assert isinstance(row["fit_seconds"], float) and isinstance(row["eval_seconds"], float)
        for metric, best in row["best"].items():
            assert best == (kind in document["best"][metric])
    # lower is better for popularity bias: the least popular list wins
    pop_metric = "popularity@10"
    least = min(rows, key=lambda kind: rows[kind]["metrics"][pop_metric])
    assert document["best"][pop_metric] == [least] and document["higher_is_better"][pop_metric] is False
    # the report written with --out holds the same document and marks the best in the table
    written = json.loads((tmp_path / "r" / "results.json").read_text())
    assert written["best"] == document["best"]
    assert by_model(written)[top]["ratio_to_best"] == rows[top]["ratio_to_best"]
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"ratio to best {main}" in report and "**" in report and "1 (best)" in report


@pytest.mark.parametrize("columns", ["40", "80"])
def test_help_lists_every_registered_model(columns):
    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0
    squeezed = "".join(result.stdout.split())  # wrapping may split lines anywhere, even at hyphens
    options = squeezed[squeezed.index("--models") : squeezed.index("--protocol")]
    for kind in SCORERS:
        assert kind in options
    assert ",".join(SCORERS) in options


def test_tune_keeps_given_parameters_fixed(synth):
    result = invoke("--dataset", str(synth), "--models", "itemknn,ease", "--tune", "--json")
    assert result.exit_code == 0, result.output
    free = by_model(json.loads(result.stdout))
    assert len(free["itemknn"]["tuning"]) == 4
    result = invoke(
        "--dataset", str(synth), "--models", "itemknn,ease", "--tune", "--json",
        "--param", "itemknn.k=10", "--param", "ease.l2=7",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fixed = by_model(json.loads(result.stdout))
    tried = [entry["params"] for entry in fixed["itemknn"]["tuning"]]
    assert len(tried) == 2 and all(p["k"] == 10 for p in tried)
    assert {p["shrinkage"] for p in tried} == {0.0, 10.0}
    assert fixed["itemknn"]["params"]["k"] == 10
    assert fixed["ease"]["params"] == {"l2": 7} and fixed["ease"]["tuning"] == []
    assert "nothing to tune" in result.stderr


def test_sequence_model_epochs_from_the_command_line(synth):
    document = results(
        "--dataset", str(synth), "--models", "sasrec",
        "--param", "sasrec.epochs=1", "--param", "sasrec.hidden=8", "--param", "sasrec.max_len=20",
        "--param", "sasrec.progress=false", "--param", "sasrec.device=cpu",
    )  # fmt: skip
    params = by_model(document)["sasrec"]["params"]
    assert params["epochs"] == 1 and params["hidden"] == 8 and params["progress"] is False
