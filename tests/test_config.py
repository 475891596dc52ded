from dataclasses import dataclass

import pytest

from facetrec.config import from_dict, load_toml, to_dict
from facetrec.data.ingest import IngestOptions, InteractionColumns, ItemColumns
from facetrec.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = 3


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    rate: float = 0.5
    shape: tuple[int, ...] = ()
    pair: tuple[float, float] | None = None
    inner: Inner = Inner()
    labels: dict[str, str] | None = None


def test_values_are_converted_and_round_trip():
    config = from_dict(
        Outer, {"rate": 1, "shape": [2, 3], "pair": [1, 5], "inner": {"size": 4}, "labels": {"1": "click"}}
    )
    assert config == Outer(rate=1.0, shape=(2, 3), pair=(1.0, 5.0), inner=Inner(4), labels={"1": "click"})
    assert from_dict(Outer, to_dict(config)) == config


def test_misspelt_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError, match=r"config: unknown key 'rat' \(did you mean 'rate'\?\); valid keys: name, "):
        from_dict(Outer, {"rat": 1})
    with pytest.raises(ConfigError, match=r"outer.inner: unknown key 'sise'"):
        from_dict(Outer, {"inner": {"sise": 1}}, "outer")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": 3}, "config.name: expected str, got 3"),
        ({"rate": "fast"}, "config.rate: expected float"),
        ({"inner": {"size": True}}, "config.inner.size: expected int, got True"),
        ({"shape": 3}, "config.shape: expected a list"),
        ({"pair": [1, 2, 3]}, "config.pair: expected 2 values, got 3"),
        ({"labels": {"1": 2}}, r"config.labels.1: expected str"),
    ],
)
def test_wrong_types_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_component_validation_errors_become_config_errors():
    with pytest.raises(ConfigError, match="options: timestamp_unit 'hours' is not one of"):
        from_dict(IngestOptions, {"timestamp_unit": "hours"}, "options")


def test_import_config_from_toml(tmp_path):
    path = tmp_path / "import.toml"
    path.write_text(
        '[columns]\nuser = "uid"\nrating = "stars"\n[item_columns]\ntitle = "name"\ntext = ["blurb"]\n'
        "[options]\nrating_range = [1, 5]\n"
    )
    table = load_toml(path)
    assert from_dict(InteractionColumns, table["columns"]) == InteractionColumns(user="uid", rating="stars")
    assert from_dict(ItemColumns, table["item_columns"]).text == ("blurb",)
    assert from_dict(IngestOptions, table["options"]).rating_range == (1.0, 5.0)
    (tmp_path / "bad.toml").write_text("[columns\n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_toml(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "none.toml")
