"""Ray batch jobs (facetrec.batch): the vectors and lists they write equal the in-process ones,
every item and user is written once, a failing block is reported by index and first failing id,
and bad inputs are refused before Ray starts. One local Ray instance (2 CPUs) serves the module."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from facetrec.batch import BatchJobError, encode_items, import_ray, recommend_all
from facetrec.batch_cli import batch_app
from facetrec.content.item_encoder import TextItemEncoder
from facetrec.content.media import media_encoder
from facetrec.data.dataset import Dataset
from facetrec.data.synthetic import SynthConfig, generate
from facetrec.errors import ConfigError, DataError, UnknownIdError
from facetrec.ids import Vocabulary
from facetrec.recommender import Recommender, fit_recommender
from facetrec.testing.media import PALETTE, draw_item, save_random_image_model
from facetrec.types import ItemCatalog, object_array

pytest.importorskip("ray.data", reason="the batch jobs need the ray extra (pip install 'facetrec[ray]')")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """300 users, 200 items, written as a dataset directory."""
    synthetic = generate(SynthConfig(n_users=300, n_items=200, n_topics=6, max_interests=3, mean_events_per_user=15))
    return synthetic.dataset.save(tmp_path_factory.mktemp("data")).parent


@pytest.fixture(scope="module")
def bundle(data, tmp_path_factory) -> Path:
    return fit_recommender(Dataset.load(data), "ease", {}, encoder="none").save(tmp_path_factory.mktemp("b")).parent


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> tuple[Dataset, Path, Path]:
    """A dataset of 12 items with drawn pictures at paths relative to a folder (item 7's file is
    missing, item 10 has none), that folder, and a tiny random CLIP vision model."""
    root = tmp_path_factory.mktemp("pictures")
    refs: list[str | None] = []
    for i in range(12):
        ref = f"img/{i}.png"
        if i != 7:
            draw_item(root / ref, PALETTE[i], "circle" if i % 2 else "square")
        refs.append(None if i == 10 else ref)
    events = generate(SynthConfig(n_users=5, n_items=12, n_topics=2, max_interests=1)).dataset
    catalog = ItemCatalog(events.catalog.items, image=object_array(refs))
    return Dataset("pictures", events.interactions, catalog), root, save_random_image_model(root / "model")


def read(path: Path) -> dict[str, list]:
    return pq.read_table(path).to_pydict()


def test_recommend_all_writes_the_in_process_lists_of_every_user(ray_local, bundle, tmp_path):
    out = tmp_path / "lists.parquet"
    summary = recommend_all(bundle, out, k=10, block_users=64, concurrency=2, progress=False)

    assert (summary.users, summary.written_users, summary.rows) == (300, 300, 3000)
    assert (summary.blocks, summary.failed_blocks, summary.actors) == (5, (), 2)
    table = pq.read_table(out)
    assert [str(t) for t in table.schema.types] == ["string", "int32", "string", "float"]
    rows = table.to_pydict()
    recommender = Recommender.load(bundle)
    history = recommender.history
    expected = recommender.recommend_batch(history, np.arange(history.n_users), 10)
    users = np.array(rows["user_id"])
    assert list(dict.fromkeys(rows["user_id"])) == history.users.ids.tolist()  # each user once, in order
    for u, found in enumerate(expected):
        mine = np.flatnonzero(users == history.users.id_of(u))
        assert [rows["rank"][r] for r in mine] == list(range(1, 11))
        assert [rows["item_id"][r] for r in mine] == found.ids.tolist()
        np.testing.assert_allclose([rows["score"][r] for r in mine], found.scores, rtol=1e-6)


def test_recommend_cli_writes_the_asked_users_once_with_a_json_summary(ray_local, bundle, tmp_path):
    wanted = tmp_path / "users.txt"
    wanted.write_text("u00005\nu00001\n\nu00005\n")
    out = tmp_path / "some.parquet"
    args = ["recommend", "--bundle", str(bundle), "--out", str(out), "--k", "5", "--users", str(wanted), "--json"]
    result = CliRunner().invoke(batch_app, args)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["users"], summary["written_users"], summary["rows"], summary["k"]) == (2, 2, 10, 5)
    assert summary["failed_blocks"] == [] and summary["out"] == str(out)
    rows = read(out)
    assert rows["user_id"] == ["u00005"] * 5 + ["u00001"] * 5


def test_encode_minilm_vectors_equal_the_in_process_encoder(ray_local, tmp_path):
    catalog = generate(SynthConfig(n_users=20, n_items=48, n_topics=6, max_interests=2)).dataset.catalog
    out = tmp_path / "minilm.parquet"
    summary = encode_items(catalog, out, encoder="minilm", block_items=16, concurrency=1, progress=False)

    expected = TextItemEncoder(encoder="minilm").encode(catalog)
    assert (summary.items, summary.written, summary.blocks, summary.dim) == (48, 48, 3, expected.dim)
    assert summary.encoder_id == expected.encoder_id
    table = pq.read_table(out)
    assert table.schema.field("vector").type.list_size == expected.dim
    assert table.schema.metadata[b"facetrec.encoder_id"].decode() == expected.encoder_id
    assert table.column("item_id").to_pylist() == catalog.items.ids.tolist()
    vectors = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(48, -1)
    np.testing.assert_allclose(vectors, expected.vectors, atol=1e-5)


def test_encode_cli_lexical_is_fitted_once_on_the_whole_catalogue(ray_local, data, tmp_path):
    out = tmp_path / "lexical.parquet"
    args = ["encode", "--dataset", str(data), "--out", str(out), "--encoder", "lexical", "--block-size", "64", "--json"]
    result = CliRunner().invoke(batch_app, args)

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    catalog = Dataset.load(data).catalog
    expected = TextItemEncoder(encoder="lexical").encode(catalog)
    assert (summary["items"], summary["written"], summary["blocks"]) == (200, 200, 4)
    assert summary["encoder_id"] == expected.encoder_id
    rows = read(out)
    assert rows["item_id"] == catalog.items.ids.tolist()
    np.testing.assert_allclose(np.array(rows["vector"]), expected.vectors, atol=1e-6)


def test_a_failing_image_block_is_named_and_fails_the_job(ray_local, pictures, tmp_path, monkeypatch):
    dataset, root, model = pictures
    ids = dataset.catalog.items.ids.tolist()
    data = tmp_path / "data"
    dataset.save(data)
    out = tmp_path / "images.parquet"
    monkeypatch.chdir(root)  # relative picture paths start from the working directory by default
    args = ["encode", "--dataset", str(data), "--out", str(out), "--modality", "image", "--encoder", str(model)]
    result = CliRunner().invoke(batch_app, [*args, "--block-size", "4", "--concurrency", "1", "--json"])

    assert result.exit_code != 0
    assert isinstance(result.exception, BatchJobError)
    message = str(result.exception)
    assert "1 of 3 blocks failed" in message and f"block 1 (first failing item {ids[7]!r})" in message
    assert "not found" in message and "Traceback" not in result.stderr
    summary = json.loads(result.stdout)
    assert summary["failed_blocks"][0]["index"] == 1 and summary["failed_blocks"][0]["first_id"] == ids[7]
    assert f"block 1 failed (first failing id {ids[7]!r})" in result.stderr  # said as it happened
    assert not out.exists()
    kept = [ids[i] for i in (0, 1, 2, 3, 8, 9, 10, 11)]
    assert pq.read_table(tmp_path / "images.parquet.partial").column("item_id").to_pylist() == kept


def test_failed_blocks_can_be_accepted_and_the_rest_equals_the_in_process_encoder(ray_local, pictures, tmp_path):
    catalog, root, model = pictures[0].catalog, pictures[1], pictures[2]
    ids = catalog.items.ids.tolist()
    out = tmp_path / "images.parquet"
    summary = encode_items(
        catalog, out, "image", encoder=str(model), settings={"root": str(root)}, block_items=4, concurrency=1,
        max_failed_blocks=1, progress=False,
    )  # fmt: skip

    assert len(summary.failed_blocks) == 1
    failed = summary.failed_blocks[0]
    assert (failed.index, failed.size, failed.first_id) == (1, 4, ids[7]) and "not found" in failed.error
    assert (summary.written, summary.missing) == (8, 1)
    expected = media_encoder("image", str(model), root=str(root)).encode(catalog).embeddings.vectors
    rows = read(out)
    kept = [0, 1, 2, 3, 8, 9, 10, 11]
    assert rows["item_id"] == [ids[i] for i in kept]
    np.testing.assert_allclose(np.array(rows["vector"]), expected[kept], atol=1e-5)
    assert not np.array(rows["vector"])[kept.index(10)].any()  # no picture: a zero vector, as in-process


def test_missing_inputs_are_refused_before_ray_starts(tmp_path, bundle):
    with pytest.raises(ConfigError, match="no manifest.json"):
        recommend_all(tmp_path / "no-bundle", tmp_path / "out.parquet")
    with pytest.raises(DataError, match="not a facetrec dataset directory"):
        encode_items(tmp_path / "no-data", tmp_path / "out.parquet")
    with pytest.raises(UnknownIdError, match="unknown user id 'nobody' and 1 more"):
        recommend_all(bundle, tmp_path / "out.parquet", users=["u00001", "nobody", "nobody-2"])
    with pytest.raises(ConfigError, match="image needs a model"):
        encode_items(ItemCatalog(Vocabulary(["a"], "item")), tmp_path / "out.parquet", "image")
    with pytest.raises(ConfigError, match="block_users: must be an integer >= 1"):
        recommend_all(bundle, tmp_path / "out.parquet", block_users=0)
    assert not (tmp_path / "out.parquet").exists()


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ConfigError, match=r"pip install 'facetrec\[ray\]'"):
        import_ray()
