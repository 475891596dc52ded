"""Memory-mapped safetensors: equal to safetensors' own loader, mapped (not copied), read-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from facetrec.arrays import DTYPES, map_safetensors
from facetrec.errors import DataError


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for name, dtype in DTYPES.items():
        if dtype is np.bool_:
            out[name] = rng.random((5, 3)) < 0.5
        elif np.issubdtype(dtype, np.floating):
            out[name] = rng.normal(size=(7, 4)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            out[name] = rng.integers(info.min, info.max, size=(11,), dtype=dtype, endpoint=True)
    out["scalar"] = np.array(2.5, np.float32)
    out["empty"] = np.zeros((0, 8), np.float32)
    return out


def test_every_dtype_equals_safetensors_own_loader(tmp_path: Path) -> None:
    path = tmp_path / "state.safetensors"
    save_file(_arrays(), str(path))
    expected = load_file(str(path))
    mapped = map_safetensors(path)
    assert sorted(mapped) == sorted(expected)
    for name, value in expected.items():
        assert mapped[name].dtype == value.dtype, name
        assert mapped[name].shape == value.shape, name
        np.testing.assert_array_equal(mapped[name], value, err_msg=name)


def test_tensors_are_read_only_maps_not_copies(tmp_path: Path) -> None:
    path = tmp_path / "state.safetensors"
    save_file({"vectors": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(path))
    vectors = map_safetensors(path)["vectors"]
    assert isinstance(vectors, np.memmap)
    assert Path(vectors.filename) == path.resolve()
    assert not vectors.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        vectors[0, 0] = 1.0


def test_a_saved_component_maps_to_its_fitted_state(tmp_path: Path) -> None:
    from facetrec.data.synthetic import SynthConfig, generate
    from facetrec.scoring.ease import EASEScorer

    data = generate(SynthConfig(n_users=60, n_items=40, seed=0)).dataset
    scorer = EASEScorer().fit(data.interactions)
    scorer.save(tmp_path / "ease")
    mapped = map_safetensors(tmp_path / "ease" / "state.safetensors")
    for name, value in mapped.items():
        np.testing.assert_array_equal(value, getattr(scorer, name), err_msg=name)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:5], "shorter than its 8-byte header length"),
        (lambda b: b[:20], "exceeds the file"),
        (lambda b: b[:-4], "past the file's end"),
        (lambda b: b[:8] + b"x" + b[9:], "not valid JSON"),
    ],
)
def test_a_damaged_file_is_one_clear_error(tmp_path: Path, damage, message: str) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"x": np.ones((4, 4), np.float32)}, str(good))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(DataError, match=message):
        map_safetensors(bad)


def test_loading_maps_large_arrays_and_copies_small_ones(tmp_path: Path) -> None:
    from facetrec.component import MAP_MIN_BYTES
    from facetrec.data.synthetic import SynthConfig, generate
    from facetrec.scoring.ease import EASEScorer

    data = generate(SynthConfig(n_users=300, n_items=600, seed=0)).dataset
    scorer = EASEScorer().fit(data.interactions)
    scorer.save(tmp_path / "ease")
    loaded = EASEScorer.load(tmp_path / "ease")
    arrays = {n: getattr(loaded, n) for n in map_safetensors(tmp_path / "ease" / "state.safetensors")}
    large = {n for n, a in arrays.items() if a.nbytes >= MAP_MIN_BYTES}
    assert large, "the test needs one array above the mapping threshold"
    for name, value in arrays.items():
        assert isinstance(value, np.memmap) == (name in large), name
        np.testing.assert_array_equal(value, getattr(scorer, name))
    users = data.interactions.user_idx[:5]
    np.testing.assert_allclose(loaded.score(data.interactions, users), scorer.score(data.interactions, users))
