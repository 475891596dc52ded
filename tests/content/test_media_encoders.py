"""Image and audio item encoders: vectors, failures as zero rows, the content-hash cache, references.

Tiny randomly initialised models (CLIP, CLIP vision with projection, SigLIP vision, CLAP,
wav2vec2, AST) are saved with their processors into a temporary folder and loaded by that path,
as a user would load a downloaded model; the pictures and sounds are drawn and synthesised here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import soundfile
from PIL import Image, ImageDraw

from facetrec.content.audio import AudioItemEncoder, decode_audio
from facetrec.content.image import ImageItemEncoder, decode_image
from facetrec.content.media import MediaError, MediaItemEncoder, media_encoder, read_reference
from facetrec.content.store import EmbeddingStore
from facetrec.errors import ConfigError
from facetrec.ids import Vocabulary
from facetrec.types import ItemCatalog

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
IMAGE_MODELS = ("clip", "clip-vision-projection", "siglip-vision")
AUDIO_MODELS = ("clap", "wav2vec2", "ast")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan", "black")


def save_image_models(root: Path) -> dict[str, Path]:
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    torch.manual_seed(0)
    vision = {**SMALL, "image_size": 32, "patch_size": 8}
    clip_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    models = {
        "clip": (
            CLIPModel(CLIPConfig(text_config={**SMALL, "vocab_size": 64}, vision_config=vision, projection_dim=16)),
            clip_processor,
        ),
        "clip-vision-projection": (
            CLIPVisionModelWithProjection(CLIPVisionConfig(**vision, projection_dim=24)),
            clip_processor,
        ),
        "siglip-vision": (
            SiglipVisionModel(SiglipVisionConfig(**vision)),
            SiglipImageProcessor(size={"height": 32, "width": 32}),
        ),
    }
    for name, (model, processor) in models.items():
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    return {name: root / name for name in models}


def save_audio_models(root: Path) -> dict[str, Path]:
    import torch
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTModel,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    torch.manual_seed(0)
    clap_audio = {
        "spec_size": 64,
        "num_mel_bins": 16,
        "patch_size": 4,
        "patch_stride": (4, 4),
        "hidden_size": 32,
        "patch_embeds_hidden_size": 16,
        "depths": [1, 1],
        "num_attention_heads": [2, 2],
        "window_size": 4,
        "enable_fusion": False,
    }
    models = {
        "clap": (
            ClapModel(ClapConfig(text_config={**SMALL, "vocab_size": 64}, audio_config=clap_audio, projection_dim=16)),
            ClapFeatureExtractor(
                feature_size=16,
                sampling_rate=16_000,
                max_length_s=2,
                hop_length=320,
                fft_window_size=400,
                frequency_max=8_000,
                truncation="rand_trunc",
            ),
        ),
        "wav2vec2": (
            Wav2Vec2Model(
                Wav2Vec2Config(
                    **SMALL,
                    conv_dim=(16, 16),
                    conv_kernel=(10, 3),
                    conv_stride=(5, 2),
                    num_conv_pos_embeddings=16,
                    num_conv_pos_embedding_groups=2,
                )
            ),
            Wav2Vec2FeatureExtractor(sampling_rate=16_000),
        ),
        "ast": (
            ASTModel(ASTConfig(**SMALL, num_mel_bins=32, max_length=64, frequency_stride=16, time_stride=16)),
            ASTFeatureExtractor(num_mel_bins=32, max_length=64),
        ),
    }
    for name, (model, processor) in models.items():
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    return {name: root / name for name in models}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {**save_image_models(root), **save_audio_models(root)}


# ---------------------------------------------------------------------- files


def draw(path: Path, shape: str, colour: str, size: tuple[int, int] = (48, 40)) -> Path:
    image = Image.new("RGB", size, "white")
    pen = ImageDraw.Draw(image)
    box = (6, 6, size[0] - 6, size[1] - 6)
    pen.ellipse(box, fill=colour) if shape == "circle" else pen.rectangle(box, fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def tone(path: Path, hz: float, *, rate: int = 22_050, seconds: float = 1.0, stereo: bool = True) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.stack([wave, wave], 1) if stereo else wave, rate)
    return path


def garbage(path: Path) -> Path:
    path.write_bytes(b"\x00\x17 this is not what the name says \xff" * 8)
    return path


def catalog(column: str, refs: list[object]) -> ItemCatalog:
    return ItemCatalog(Vocabulary([f"item{i}" for i in range(len(refs))]), **{column: refs})


def count_rows(monkeypatch: pytest.MonkeyPatch, cls: type[MediaItemEncoder]) -> list[int]:
    """Batch sizes the model is asked to run, in order."""
    seen: list[int] = []
    original = cls._forward

    def counting(self: MediaItemEncoder, batch: dict) -> object:
        seen.append(len(next(iter(batch.values()))))
        return original(self, batch)

    monkeypatch.setattr(cls, "_forward", counting)
    return seen


def assert_unit_or_zero(vectors: np.ndarray, zero_rows: list[int]) -> None:
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_array_equal(norms[zero_rows], 0.0)
    np.testing.assert_allclose(np.delete(norms, zero_rows), 1.0, atol=1e-5)


# ---------------------------------------------------------------------- images


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_images_give_unit_vectors_equal_for_equal_files_and_different_for_different_pictures(
    models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    red = draw(tmp_path / "red.png", "square", "red")
    copy = tmp_path / "elsewhere" / "copy.png"
    copy.parent.mkdir()
    copy.write_bytes(red.read_bytes())
    blue = draw(tmp_path / "blue.png", "circle", "blue")
    result = media_encoder("image", str(models[name])).encode(catalog("image", [str(red), str(blue), str(copy)]))

    vectors = result.embeddings.vectors
    assert vectors.shape[0] == 3 and result.embeddings.normalized and result.embeddings.modality == "image"
    assert_unit_or_zero(vectors, [])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert vectors[0] @ vectors[1] < 0.999
    assert (result.missing, result.failed, result.encoded) == (0, {}, 3)
    assert name.split("-")[0] in result.embeddings.encoder_id


def test_missing_and_broken_images_get_zero_rows_counted_with_reasons(
    models: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    red = draw(tmp_path / "red.png", "square", "red")
    refs = [str(red), None, "", str(tmp_path / "absent.png"), str(garbage(tmp_path / "broken.png")), float("nan")]
    done: list[int] = []
    with caplog.at_level(logging.WARNING, logger="facetrec.content.media"):
        result = media_encoder("image", str(models["clip"])).encode(catalog("image", refs), progress=done.append)

    assert_unit_or_zero(result.embeddings.vectors, [1, 2, 3, 4, 5])
    assert result.missing == 3 and result.encoded == 1 and sum(done) == 3  # progress counts items with a reference
    assert set(result.failed) == {"item3", "item4"}
    assert result.failed["item3"].startswith("not found:") and "absent.png" in result.failed["item3"]
    assert result.failed["item4"].startswith("not a readable image")
    assert "BytesIO" not in result.failed["item4"] and "\n" not in result.failed["item4"]
    summary = result.summary()
    assert "1 of 6 items encoded, 3 without image, 2 failed" in summary and "absent.png" in summary
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [summary]


def test_a_catalogue_without_images_is_all_zero_rows_of_the_model_dimension(models: dict[str, Path]) -> None:
    result = media_encoder("image", str(models["clip-vision-projection"])).encode(catalog("image", [None, None]))
    assert result.embeddings.vectors.shape == (2, 24) and not result.embeddings.vectors.any()
    assert result.missing == 2


def test_the_cache_serves_unchanged_files_without_loading_the_model(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [draw(tmp_path / f"{c}.png", "square", c) for c in ("red", "green", "blue")]
    items = catalog("image", [*map(str, files), str(files[0])])  # item3 shares item0's file
    settings = {"store_dir": str(tmp_path / "store"), "batch_size": 2}
    runs = count_rows(monkeypatch, ImageItemEncoder)
    first = media_encoder("image", str(models["clip"]), **settings).encode(items)
    assert sum(runs) == 3  # each distinct file once
    encoder = media_encoder("image", str(models["clip"]), **settings)
    assert EmbeddingStore(tmp_path / "store").count(encoder.encoder_id) == 3

    runs.clear()
    second = encoder.encode(items)
    assert runs == [] and encoder._model is None
    np.testing.assert_array_equal(second.embeddings.vectors, first.embeddings.vectors)

    draw(files[1], "circle", "green")  # the same name, new content
    third = encoder.encode(items)
    assert runs == [1]
    assert third.embeddings.vectors[1] @ first.embeddings.vectors[1] < 0.999
    np.testing.assert_array_equal(np.delete(third.embeddings.vectors, 1, 0), np.delete(first.embeddings.vectors, 1, 0))


@pytest.mark.parametrize("name", ["clip", "siglip-vision"])
def test_batches_give_the_vectors_of_one_image_at_a_time(models: dict[str, Path], tmp_path: Path, name: str) -> None:
    refs = [str(draw(tmp_path / f"{i}.png", ("square", "circle")[i % 2], c)) for i, c in enumerate(COLOURS)]
    refs.insert(3, str(draw(tmp_path / "wide.png", "circle", "red", size=(90, 30))))  # another aspect ratio
    one = media_encoder("image", str(models[name]), batch_size=1).encode(catalog("image", refs))
    many = media_encoder("image", str(models[name]), batch_size=3).encode(catalog("image", refs))
    np.testing.assert_allclose(many.embeddings.vectors, one.embeddings.vectors, atol=1e-5)


def test_relative_paths_resolve_against_root_and_file_urls_work(models: dict[str, Path], tmp_path: Path) -> None:
    picture = draw(tmp_path / "shop" / "pics" / "red.png", "square", "red")
    refs = ["pics/red.png", picture.as_uri(), str(picture), "pics/absent.png"]
    result = media_encoder("image", str(models["clip"]), root=str(tmp_path / "shop")).encode(catalog("image", refs))
    vectors = result.embeddings.vectors
    np.testing.assert_array_equal(vectors[0], vectors[1])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert str(tmp_path / "shop" / "pics" / "absent.png") in result.failed["item3"]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Serves ``tmp_path/site`` over http on a free local port; gives a file's URL."""
    site = tmp_path / "site"
    site.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield lambda path: f"http://127.0.0.1:{server.server_address[1]}/{path.relative_to(site).as_posix()}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_urls_are_fetched(models: dict[str, Path], tmp_path: Path, serve: Callable[[Path], str]) -> None:
    picture = draw(tmp_path / "site" / "img" / "blue.png", "circle", "blue")
    refs = [serve(picture), str(picture), serve(tmp_path / "site" / "img" / "absent.png")]
    result = media_encoder("image", str(models["clip"])).encode(catalog("image", refs))
    np.testing.assert_array_equal(result.embeddings.vectors[0], result.embeddings.vectors[1])
    assert result.failed["item2"].startswith("HTTP 404")


def test_unreachable_urls_and_odd_references_fail_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot fetch http://127.0.0.1:9/"):
        read_reference("http://127.0.0.1:9/x.png", timeout=2)
    with pytest.raises(MediaError, match="unsupported URL scheme 's3'"):
        read_reference("s3://bucket/x.png")
    with pytest.raises(MediaError, match="not a path or URL: 42"):
        read_reference(42)
    with pytest.raises(MediaError, match="is a directory"):
        read_reference(tmp_path)


def test_transparent_pixels_become_white() -> None:
    import io

    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(buffer, format="PNG")
    assert decode_image(buffer.getvalue()).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("name", ["clip", "siglip-vision"])
def test_the_exported_image_tower_gives_the_torch_vectors(models: dict[str, Path], tmp_path: Path, name: str) -> None:
    import onnxruntime
    import torch

    encoder = media_encoder("image", str(models[name]))
    path = encoder.export_onnx(tmp_path / "onnx" / "image.onnx")
    pixels = torch.cat([
        encoder.inputs(draw(tmp_path / f"{c}.png", "circle", c).read_bytes())["pixel_values"]
        for c in COLOURS
    ])  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (vectors,) = session.run(["vectors"], {"pixel_values": pixels.numpy()})
    expected = encoder.embed({"pixel_values": pixels})
    np.testing.assert_allclose(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), expected, atol=1e-5)


# ---------------------------------------------------------------------- audio


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_sounds_give_unit_vectors_equal_for_equal_files_and_different_for_different_tones(
    models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    low = tone(tmp_path / "a440.wav", 440)
    high = tone(tmp_path / "a880.flac", 880, rate=44_100, stereo=False)
    copy = tmp_path / "again.wav"
    copy.write_bytes(low.read_bytes())
    refs = [str(low), str(high), str(copy), None, str(garbage(tmp_path / "broken.wav"))]
    result = media_encoder("audio", str(models[name])).encode(catalog("audio", refs))

    vectors = result.embeddings.vectors
    assert result.embeddings.modality == "audio" and result.embeddings.normalized
    assert_unit_or_zero(vectors, [3, 4])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert vectors[0] @ vectors[1] < 0.999
    assert result.missing == 1 and list(result.failed) == ["item4"]
    assert result.failed["item4"].startswith("not a readable audio file")


def test_decoding_mixes_down_resamples_and_truncates(tmp_path: Path) -> None:
    path = tone(tmp_path / "a440.wav", 440, rate=22_050, seconds=3.0)
    wave = decode_audio(path.read_bytes(), sampling_rate=16_000, max_samples=32_000)
    assert wave.dtype == np.float32 and wave.shape == (32_000,)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.fft.rfftfreq(len(wave), 1 / 16_000)[np.argmax(spectrum)] == pytest.approx(440, abs=1)
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)

    with pytest.raises(MediaError, match="shorter than 0.1 s"):
        decode_audio(tone(tmp_path / "click.wav", 440, seconds=0.01).read_bytes(), 16_000, 32_000)


@pytest.mark.parametrize("name", ["wav2vec2", "clap"])
def test_only_the_first_max_seconds_are_heard(models: dict[str, Path], tmp_path: Path, name: str) -> None:
    rate = 16_000
    start = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    soundfile.write(tmp_path / "a.wav", np.concatenate([start, np.zeros(2 * rate)]), rate)
    soundfile.write(tmp_path / "b.wav", np.concatenate([start, np.random.default_rng(0).normal(size=2 * rate)]), rate)
    encoder = media_encoder("audio", str(models[name]), max_seconds=1.0, root=str(tmp_path))
    vectors = encoder.encode(catalog("audio", ["a.wav", "b.wav"])).embeddings.vectors
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    longer = media_encoder("audio", str(models[name]), max_seconds=2.0, root=str(tmp_path))
    assert longer.encoder_id != encoder.encoder_id
    vectors = longer.encode(catalog("audio", ["a.wav", "b.wav"])).embeddings.vectors
    assert vectors[0] @ vectors[1] < 0.999


@pytest.mark.parametrize("name", AUDIO_MODELS)
def test_audio_batches_give_the_vectors_of_one_clip_at_a_time(
    models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    seconds = [1.0, 1.0, 0.5, 1.0, 0.5, 1.5, 1.0]  # clips of several lengths
    refs = [str(tone(tmp_path / f"{i}.wav", 220 * (i + 1), seconds=s)) for i, s in enumerate(seconds)]
    one = media_encoder("audio", str(models[name]), batch_size=1).encode(catalog("audio", refs))
    many = media_encoder("audio", str(models[name]), batch_size=3).encode(catalog("audio", refs))
    np.testing.assert_allclose(many.embeddings.vectors, one.embeddings.vectors, atol=1e-5)


def test_the_audio_cache_is_kept_apart_from_other_settings(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = [str(tone(tmp_path / "a.wav", 440, seconds=2.0)), str(tone(tmp_path / "b.wav", 660, seconds=2.0))]
    runs = count_rows(monkeypatch, AudioItemEncoder)
    store = str(tmp_path / "store")
    first = media_encoder("audio", str(models["wav2vec2"]), store_dir=store).encode(catalog("audio", refs))
    again = media_encoder("audio", str(models["wav2vec2"]), store_dir=store).encode(catalog("audio", refs[::-1]))
    assert sum(runs) == 2
    np.testing.assert_array_equal(again.embeddings.vectors, first.embeddings.vectors[::-1])
    media_encoder("audio", str(models["wav2vec2"]), store_dir=store, max_seconds=1.0).encode(catalog("audio", refs))
    assert sum(runs) == 4
    assert len(EmbeddingStore(store).encoder_ids()) == 2


# ---------------------------------------------------------------------- configuration


def test_bad_models_and_settings_are_config_errors(models: dict[str, Path], tmp_path: Path) -> None:
    absent = str(tmp_path / "no-such-model")
    with pytest.raises(ConfigError, match="no-such-model"):
        media_encoder("image", absent)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"image model .*empty.*cannot load its config"):
        media_encoder("image", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match=r"audio model .*clip.*feature extractor"):
        media_encoder("audio", str(models["clip"]))
    with pytest.raises(ConfigError, match=r"must be one of \['image', 'audio'\], got 'video'"):
        media_encoder("video", str(models["clip"]))
    with pytest.raises(ConfigError, match="unknown key 'batchsize'.*batch_size"):
        media_encoder("image", str(models["clip"]), batchsize=4)
    with pytest.raises(ConfigError, match="batch_size"):
        media_encoder("image", str(models["clip"]), batch_size=0)
    with pytest.raises(ConfigError, match="max_seconds"):
        media_encoder("audio", str(models["clap"]), max_seconds=0.0)


def test_the_encoder_id_names_modality_model_and_settings(models: dict[str, Path]) -> None:
    image = media_encoder("image", str(models["clip"]))
    audio = media_encoder("audio", str(models["clap"]), max_seconds=60)
    assert isinstance(image, ImageItemEncoder) and isinstance(audio, AudioItemEncoder)
    assert image.encoder_id.startswith("image:clip@") and image.dim == 16
    assert audio.encoder_id.startswith("audio:clap@") and "max_s=2|" in audio.encoder_id  # CLAP hears 2 s at most


# ---------------------------------------------------------------------- the CLI


def test_encode_command_stores_image_vectors_in_the_dataset(models: dict[str, Path], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from facetrec.cli import app
    from facetrec.data.dataset import Dataset
    from facetrec.types import Interactions

    media = tmp_path / "media"
    draw(media / "a.png", "square", "red")
    draw(media / "b.png", "circle", "blue")
    items = Vocabulary(["a", "b", "c"], "item")
    catalog = ItemCatalog(items, image=np.array(["a.png", "b.png", "gone.png"], dtype=object))
    users = Vocabulary(["u"], "user")
    events = Interactions(
        user_idx=np.array([0, 0]), item_idx=np.array([0, 1]), timestamp=np.array([1, 2]), users=users, items=items
    )
    Dataset("pics", events, catalog).save(tmp_path / "data")
    args = ["encode", "--dataset", str(tmp_path / "data"), "--modality", "image", "--model", str(models["clip"])]
    args += ["--root", str(media), "--cache", str(tmp_path / "cache"), "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["encoded"], report["missing"], list(report["failed"])) == (2, 0, ["c"])
    stored = Dataset.load(tmp_path / "data")
    assert stored.extras["item_vectors"] == {"image": report["encoder"]}  # what made them, as imports record files
    assert any(note.startswith("image vectors encoded with") for note in stored.notes)
    vectors = stored.catalog.vectors["image"]
    assert vectors.shape == (3, report["dim"])
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-5)
    assert not vectors[2].any()  # the missing file is a missing modality, not a vector
    bad = CliRunner().invoke(app, ["encode", "--dataset", str(tmp_path / "data"), "--modality", "video"])
    assert bad.exit_code == 2 and "choose text, image or audio" in bad.output
