"""Random-weight image and audio encoders, and drawn pictures and synthesised sounds, made here.

Nothing may be downloaded in tests or in the offline demo, so the image/audio path runs on tiny
models built from transformers configs (a CLIP vision tower with a projection, a wav2vec2
encoder) and saved with their preprocessors, loaded by path as a user's downloaded model would
be. Their vectors are random projections of the pixels and samples: they show the path, and
they still tell a red square from a blue circle, but they are no pretrained encoder.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

PALETTE = ("red", "green", "blue", "orange", "purple", "cyan", "magenta", "yellow", "brown", "black", "pink", "grey")


@contextmanager
def _quiet_saving():
    """transformers draws a progress bar for every shard it writes: noise for a model of kilobytes."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def save_random_image_model(folder: Path, seed: int = 0) -> Path:
    """A tiny CLIP vision tower with a projection (32 x 32 pixels in, 24-d out) and its processor."""
    import torch
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8, projection_dim=24,
    )  # fmt: skip
    with _quiet_saving():
        CLIPVisionModelWithProjection(config).save_pretrained(folder)
    # the PIL processor: the default one wants torchvision, which facetrec does not install
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_random_audio_model(folder: Path, seed: int = 0) -> Path:
    """A tiny wav2vec2 encoder (16 kHz in, 32-d out, the mean over time) and its feature extractor."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    with _quiet_saving():
        Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16_000).save_pretrained(folder)
    return folder


def draw_item(path: Path, colour: str, shape: str, size: int = 40) -> Path:
    """A PNG of one ``shape`` ("square" or "circle") in ``colour`` on white."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "white")
    box = (5, 5, size - 5, size - 5)
    pen = ImageDraw.Draw(image)
    pen.ellipse(box, fill=colour) if shape == "circle" else pen.rectangle(box, fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def tone(path: Path, hz: float, seconds: float = 0.5, rate: int = 22_050) -> Path:
    """A WAV of a sine at ``hz`` (at another rate than the models', so it is resampled)."""
    import soundfile

    t = np.arange(int(rate * seconds)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)
    return path
