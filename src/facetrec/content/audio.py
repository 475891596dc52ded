"""The audio ItemEncoder: each item's sound file -> one unit-norm vector from an audio model.

Works with CLAP (``ClapModel`` audio features) and with AST- or wav2vec2-style encoders that
``AutoModel`` loads (the mean of the last hidden states over time), by local path or Hub name.
Files are decoded with soundfile (WAV, FLAC, OGG, MP3: what libsndfile reads), mixed down to
mono, cut to ``max_seconds`` and resampled to the feature extractor's rate; the model's own
``AutoFeatureExtractor`` makes its inputs. Reading, caching and failure reports are media.py's.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from facetrec.content.media import (
    MediaEncoderConfig,
    MediaError,
    MediaItemEncoder,
    load_pretrained,
    projected,
    undecodable,
)
from facetrec.errors import ConfigError

MIN_SECONDS = 0.1
"""Shorter clips count as failed: convolutional front ends (wav2vec2) cannot read them."""


@dataclass(frozen=True)
class AudioEncoderConfig(MediaEncoderConfig):
    """How item audio is encoded: MediaEncoderConfig's settings and how much of each file is heard."""

    max_seconds: float = 30.0
    """Only a file's first ``max_seconds`` are encoded; CLAP hears at most its own window (10 s),
    taken from the start, since its extractor would crop longer clips at random."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.max_seconds >= MIN_SECONDS:
            raise ConfigError(f"AudioEncoderConfig.max_seconds: must be >= {MIN_SECONDS}, got {self.max_seconds!r}")


def decode_audio(data: bytes, sampling_rate: int, max_samples: int) -> np.ndarray:
    """A mono float32 waveform at ``sampling_rate``, at most ``max_samples`` long (only that much is read)."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as file:
            source = file.samplerate
            wave = file.read(math.ceil(max_samples * source / sampling_rate), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports broken files in several ways; one must not stop the encode
        raise undecodable("audio file", exc) from None
    mono = wave.mean(1)
    if len(mono) < MIN_SECONDS * source:
        raise MediaError(f"shorter than {MIN_SECONDS:g} s ({len(mono)} samples at {source} Hz)")
    if not np.isfinite(mono).all():
        raise MediaError("holds NaN or infinite samples")
    if source != sampling_rate:
        common = math.gcd(source, sampling_rate)
        mono = resample_poly(mono, sampling_rate // common, source // common)
    return np.asarray(mono[:max_samples], np.float32)


class AudioItemEncoder(MediaItemEncoder):
    """The audio :class:`ItemEncoder`: ``encode(catalog)`` -> a MediaEncoding of ``catalog.audio``."""

    modality = "audio"

    def __init__(self, config: AudioEncoderConfig) -> None:
        from transformers import AutoConfig, AutoFeatureExtractor

        super().__init__(config)
        self.model_config = load_pretrained("audio", self.model_path, "config", AutoConfig.from_pretrained)
        self.extractor = load_pretrained(
            "audio",
            self.model_path,
            "feature extractor (preprocessor_config.json)",
            AutoFeatureExtractor.from_pretrained,
        )
        self.is_clap = self.model_config.model_type == "clap"
        self.sampling_rate = int(self.extractor.sampling_rate)
        seconds = min(config.max_seconds, self.extractor.max_length_s) if self.is_clap else config.max_seconds
        self.max_samples = math.ceil(seconds * self.sampling_rate)

    def _settings(self) -> str:
        return f"max_s={self.max_samples / self.sampling_rate:g}"

    def _load_model(self) -> Any:
        import torch
        from transformers import AutoModel

        return load_pretrained(
            "audio", self.model_path, "weights", partial(AutoModel.from_pretrained, dtype=torch.float32)
        )

    def _decode(self, data: bytes) -> np.ndarray:
        return decode_audio(data, self.sampling_rate, self.max_samples)

    def _prepare(self, decoded: np.ndarray) -> dict[str, Any]:
        # One clip per call: CLAP's extractor marks a random clip of a batch as "longer" otherwise.
        return dict(self.extractor([decoded], sampling_rate=self.sampling_rate, return_tensors="pt"))

    def _forward(self, batch: dict[str, Any]) -> Any:
        model = self.model()
        if self.is_clap:
            return projected(model.get_audio_features(**batch))
        return model(**batch).last_hidden_state.mean(1)

    def _blank(self) -> np.ndarray:
        return np.zeros(self.sampling_rate, np.float32)
