"""A saved component is data: loading one never imports what its manifest names, never sets
state its class does not declare, and a damaged one is one clear error."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from facetrec.component import Component, declared_state
from facetrec.errors import ConfigError, FacetrecError
from facetrec.scoring import registry
from facetrec.scoring.popularity import PopularityScorer
from facetrec.testing import small_synthetic


class RenamedPopularity(PopularityScorer):
    """A model known only once registered."""


@pytest.fixture(scope="module")
def interactions():
    return small_synthetic().dataset.interactions


@pytest.fixture
def saved(interactions, tmp_path):
    PopularityScorer().fit(interactions).save(tmp_path / "pop")
    return tmp_path / "pop"


def edit_manifest(root, **changes):
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_a_manifest_naming_a_foreign_module_is_refused_before_it_is_imported(saved, tmp_path, monkeypatch):
    sentinel = tmp_path / "imported"
    package = tmp_path / "site"
    package.mkdir()
    (package / "crafted_model.py").write_text(
        f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\n"
        "from facetrec.scoring.popularity import PopularityScorer as Evil\n"
    )
    monkeypatch.syspath_prepend(str(package))
    edit_manifest(saved, **{"class": "crafted_model.Evil"})
    with pytest.raises(ConfigError, match=r"class 'crafted_model.Evil' is not a registered facetrec model") as err:
        Component.load(saved)
    assert str(saved / "manifest.json") in str(err.value)
    assert not sentinel.exists() and "crafted_model" not in sys.modules
    with pytest.raises(ConfigError, match="not a registered"):
        PopularityScorer.load(saved)
    assert not sentinel.exists()


def test_a_registered_or_requested_class_loads_and_others_do_not(interactions, tmp_path, monkeypatch):
    RenamedPopularity().fit(interactions).save(tmp_path / "renamed")
    with pytest.raises(ConfigError, match="not a registered facetrec model"):
        Component.load(tmp_path / "renamed")
    assert type(RenamedPopularity.load(tmp_path / "renamed")) is RenamedPopularity  # the caller names it
    monkeypatch.setitem(registry.SCORERS, "renamed", f"{__name__}:RenamedPopularity")
    assert type(Component.load(tmp_path / "renamed")) is RenamedPopularity


def test_a_normal_component_loads_with_its_state(saved, interactions):
    loaded = Component.load(saved)
    original = PopularityScorer().fit(interactions)
    assert type(loaded) is PopularityScorer and loaded.n_items_ == original.n_items_
    np.testing.assert_array_equal(loaded.popularity_, original.popularity_)


@pytest.mark.parametrize("key", ["fit", "config", "_score", "backdoor_", "__class__"])
def test_manifest_state_the_class_does_not_declare_is_refused(saved, key):
    edit_manifest(saved, state={"n_items_": 3, key: 1})
    with pytest.raises(ConfigError, match=rf"manifest.json: state '{key}' is not declared by PopularityScorer"):
        Component.load(saved)


def test_array_state_the_class_does_not_declare_is_refused(saved):
    save_file({"popularity_": np.zeros(3, np.float32), "score": np.zeros(1)}, str(saved / "state.safetensors"))
    with pytest.raises(ConfigError, match=r"state.safetensors: state 'score' is not declared by PopularityScorer"):
        Component.load(saved)


def test_state_values_must_be_scalars(saved):
    edit_manifest(saved, state={"n_items_": {"nested": [1]}})
    with pytest.raises(ConfigError, match="state 'n_items_' must be a number, string, boolean or null"):
        Component.load(saved)


def test_declared_state_is_what_the_class_sets_or_annotates():
    assert {"popularity_", "n_items_"} <= declared_state(PopularityScorer)
    assert "fit" not in declared_state(PopularityScorer) and "config" not in declared_state(PopularityScorer)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("truncate state", "state.safetensors"),
        ("truncate manifest", "manifest.json: cannot be read (not valid JSON"),
        ("remove state", "state.safetensors: missing"),
        ("manifest not an object", "not a saved facetrec component"),
    ],
)
def test_a_damaged_component_is_one_clear_error(saved, damage, needle):
    state, manifest = saved / "state.safetensors", saved / "manifest.json"
    if damage == "truncate state":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "truncate manifest":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "remove state":
        state.unlink()
    else:
        manifest.write_text("[1, 2]")
    with pytest.raises(FacetrecError) as err:
        Component.load(saved)
    assert needle in str(err.value) and "\n" not in str(err.value)
