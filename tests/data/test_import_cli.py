"""`facetrec data import`: --date-format, --encoding and each drop reported once, without code locations."""

from __future__ import annotations

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
