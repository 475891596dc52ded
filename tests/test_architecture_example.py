"""docs/architecture.md's "add a model in 30 lines" runs as written: the model registers, and
the conformance mixins shipped in facetrec.testing pass for it (train, save, load, recommend
from the CLI, serve over HTTP)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from facetrec.scoring import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
MODEL, TESTS = BLOCKS[0], BLOCKS[1]

# A real module, as the user's would be: saved bundles name the class by its import path.
example = sys.modules.setdefault("docs_architecture_example", types.ModuleType("docs_architecture_example"))
namespace = example.__dict__
exec(compile(MODEL, str(DOC), "exec"), namespace)
exec(compile(TESTS, str(DOC), "exec"), namespace)
NextItemScorer = namespace["NextItemScorer"]
TestNextItem = namespace["TestNextItem"]
TestNextItemPipeline = namespace["TestNextItemPipeline"]


def test_the_example_is_short_and_registered():
    model_lines = MODEL[MODEL.index("@dataclass") : MODEL.index("register(")].strip().splitlines()
    assert len([line for line in model_lines if line.strip()]) <= 30
    assert registry.scorer_class("next-item") is NextItemScorer


def test_the_example_learns_what_follows():
    import numpy as np

    from facetrec.ids import Vocabulary
    from facetrec.types import Interactions

    items = Vocabulary(["a", "b", "c"], "item")
    # two users go a -> b; one goes a -> c: after a, b is twice as likely as c
    train = Interactions([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 2], [1, 2, 1, 2, 1, 2], Vocabulary("xyz", "user"), items)
    scorer = NextItemScorer(popularity_weight=0.0).fit(train)
    now = Interactions([0], [0], [5], Vocabulary(["new"], "user"), items)
    np.testing.assert_allclose(scorer.score(now, np.array([0]))[0], [0.0, 2 / 3, 1 / 3], rtol=1e-6)


def test_models_of_other_packages_register_through_entry_points(tmp_path, monkeypatch):
    dist = tmp_path / "someones_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: someones-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[facetrec.models]\nthird-party-ease = facetrec.scoring.ease:EASEScorer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "SCORERS", dict(registry.SCORERS))
    monkeypatch.setattr(registry, "SEARCH_SPACES", dict(registry.SEARCH_SPACES))
    assert "third-party-ease" in registry.load_entry_points()
    assert registry.SCORERS["third-party-ease"] == "facetrec.scoring.ease:EASEScorer"  # a path: imported on use
    from facetrec.scoring.ease import EASEScorer

    assert registry.scorer_class("third-party-ease") is EASEScorer
    assert registry.load_entry_points() == []  # registering twice adds nothing
