"""`facetrec data import`: --date-format, --encoding, --item-vectors; each drop reported once, no code locations."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.data.dataset import Dataset, read_manifest

runner = CliRunner()


def imported(*args: str):
    return runner.invoke(app, ["data", "import", *args], env={"COLUMNS": "80"})


def test_ambiguous_dates_need_date_format(tmp_path):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,when\nu,a,03/04/2021\nu,b,04/04/2021\n")
    base = ["--interactions", str(events), "--map", "timestamp=when", "--out", str(tmp_path / "o")]
    result = imported(*base)
    assert result.exit_code != 0
    assert "column 'when'" in str(result.exception) and "--date-format" in str(result.exception)
    result = imported(*base, "--date-format", "%d/%m/%Y")
    assert result.exit_code == 0, result.output
    assert Dataset.load(tmp_path / "o").interactions.timestamp.min() == 1_617_408_000  # 3 April 2021
    config = tmp_path / "import.toml"
    config.write_text('[columns]\ntimestamp = "when"\n[options]\ndate_format = "%m/%d/%Y"\n')
    result = imported("--interactions", str(events), "--config", str(config), "--out", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert Dataset.load(tmp_path / "p").interactions.timestamp.min() == 1_614_816_000  # 4 March 2021


def test_latin1_needs_encoding(tmp_path):
    events = tmp_path / "e.csv"
    events.write_bytes("user_id,item_id,timestamp\nu,café,1\n".encode("latin-1"))
    result = imported("--interactions", str(events), "--out", str(tmp_path / "o"))
    assert result.exit_code != 0 and "--encoding latin-1" in str(result.exception)
    result = imported("--interactions", str(events), "--encoding", "latin-1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert list(Dataset.load(tmp_path / "o").interactions.items.ids) == ["café"]


def test_each_drop_is_printed_once_and_recorded_in_the_manifest(tmp_path):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,timestamp\nu,a,1\nu,a,1\nu,ghost,2\n")
    items = tmp_path / "i.csv"
    items.write_text("item_id,title\na,A\ncold,C\n")
    result = imported("--interactions", str(events), "--items", str(items), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for message in (
        "dropped 1 exact duplicate interactions",
        "1 items in the interactions are missing from the catalogue",
        "1 catalogue items have no interactions; they are kept as cold-start items",
        "kept 2 of 3 interaction rows",
    ):
        assert text.count(message) == 1, text
    assert "DataWarning" not in result.output and "facetrec/data" not in result.output and ".py:" not in result.output
    manifest = read_manifest(tmp_path / "o")
    assert manifest["extras"]["ingest"]["duplicate_interactions_dropped"] == 1
    assert any("missing from the catalogue" in n for n in manifest["notes"])
    assert list(Dataset.load(tmp_path / "o").catalog.items.ids) == ["a", "cold", "ghost"]


def test_unknown_import_config_table_is_an_error(tmp_path):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,timestamp\nu,a,1\n")
    config = tmp_path / "import.toml"
    config.write_text('[colums]\nuser = "u"\n')
    result = imported("--interactions", str(events), "--config", str(config), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "colums" in result.stderr and "[columns], [item_columns], [options]" in result.stderr


def test_source_rejects_file_options(tmp_path):
    result = imported("ml-100k", "--path", str(tmp_path), "--encoding", "latin-1", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "your own files" in result.stderr


# ---------------------------------------------------------------- --item-vectors


def test_item_vectors_round_trip_through_import_and_inspect(tmp_path):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,c,3\n")
    image, audio, out = tmp_path / "image.npy", tmp_path / "audio.parquet", tmp_path / "o"
    np.save(image, np.array([[1, 2], [0, 0], [5, 6]], np.float16))  # ids are not numbers: rows in catalogue order
    rows = pa.array([[9.0, 8.0, 7.0], [1.0, 2.0, 3.0]], pa.list_(pa.float32()))
    pq.write_table(pa.table({"item_id": ["c", "a"], "audio": rows}), audio)
    vectors = ["--item-vectors", f"image={image}", "--item-vectors", f"audio={audio}"]
    result = imported("--interactions", str(events), *vectors, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["vectors"] == {"image": {"dim": 2, "items": 2}, "audio": {"dim": 3, "items": 2}}
    assert "audio.parquet: 1 items have no row; their vectors are zero (missing)" in report["notes"]
    loaded = Dataset.load(out)
    assert list(loaded.catalog.items.ids) == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded.catalog.vectors["image"], [[1, 2], [0, 0], [5, 6]])
    np.testing.assert_array_equal(loaded.catalog.vectors["audio"], [[1, 2, 3], [0, 0, 0], [9, 8, 7]])
    assert read_manifest(out)["extras"]["item_vectors"] == {"image": "image.npy", "audio": "audio.parquet"}

    result = runner.invoke(app, ["data", "inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["vectors"]
    assert stats["image"]["dim"] == 2 and stats["image"]["coverage"] == 2 / 3
    assert stats["audio"]["dim"] == 3 and stats["audio"]["coverage"] == 2 / 3
    result = runner.invoke(app, ["data", "inspect", str(out)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "item vectors" in result.stdout and "66.7%" in result.stdout


def test_item_vectors_for_a_public_source(tmp_path):
    (tmp_path / "Beauty.txt").write_text("1 1 2 3\n2 2 4\n")
    np.save(tmp_path / "feat.npy", np.eye(5, dtype=np.float32))  # row i is item 'i'; row 0 names no item
    source = ["s3rec", "--path", str(tmp_path), "--option", "name=Beauty"]
    result = imported(*source, "--item-vectors", f"image={tmp_path / 'feat.npy'}", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "feat.npy: 1 rows are for item ids the dataset lacks; they are ignored" in text
    assert "image vectors (5-d)" in text
    catalog = Dataset.load(tmp_path / "o").catalog
    np.testing.assert_array_equal(catalog.vectors["image"], np.eye(5)[catalog.items.ids.astype(int)])


def test_item_vectors_bad_arguments(tmp_path):
    events = tmp_path / "e.csv"
    events.write_text("user_id,item_id,timestamp\nu,a,1\n")
    np.save(tmp_path / "v.npy", np.array([[np.nan, 1.0]]))
    base = ["--interactions", str(events), "--out", str(tmp_path / "o")]
    result = imported(*base, "--item-vectors", "image")
    assert result.exit_code == 2 and "expected NAME=PATH" in result.stderr
    result = imported(*base, "--item-vectors", "x=a.npy", "--item-vectors", "x=b.npy")
    assert result.exit_code == 2 and "'x' is given twice" in result.stderr
    result = imported(*base, "--item-vectors", "my image=a.npy")
    assert "item vectors name 'my image'" in str(result.exception)
    result = imported(*base, "--item-vectors", f"image={tmp_path / 'v.npy'}")
    error = str(result.exception)
    assert "v.npy: 1 items have NaN or infinite values" in error and "first item 'a'" in error
    assert not (tmp_path / "o").exists()  # nothing is written when a vector file is refused
