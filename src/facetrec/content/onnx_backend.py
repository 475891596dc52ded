"""ONNX backend: export a text encoder once, optionally quantise it to int8, run it with onnxruntime.

Why: on CPUs, onnxruntime with int8 weights encodes several times faster than torch. The graph
maps token ids to one pooled vector per text, so pooling is part of the exported model. It is
exported with the *dynamo* exporter (``torch.onnx.export(..., dynamo=True)``): the legacy
TorchScript exporter silently produced wrong hidden states for transformers-5 BERT models.

A bundle is a cache directory, built once and renamed into place (a crash never leaves a half
one): ``meta.json`` (input names, dimension, versions), ``tokenizer/``, ``fp32/model.onnx`` and,
on demand, ``int8-<recipe>/model.onnx``. The caller keys the directory by model and options.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from facetrec.errors import ConfigError

INT8_RECIPE = "dyn-pc-matmul-v1"
"""Dynamic int8: per-channel QInt8 weights of every weight MatMul (Gather/embeddings stay fp32).

Measured on all-MiniLM-L6-v2 item texts (2 CPU cores): per-tensor weights gave mean cosine 0.963
to fp32, per-channel 0.993 at the same speed. QUInt8 weights ran ~40 % slower (no u8s8 kernel),
``reduce_range`` lost accuracy, and keeping the FFN down-projections in fp32 raised the cosine to
0.996 but cost ~25-30 % of the speed. The ORT transformer optimizer fused no attention in dynamo
graphs; onnxscript's ORT fusions (MultiHeadAttention) gained only ~8 %, so neither is used.
"""

_LARGE = 1_500_000_000  # bytes of weights beyond which the graph keeps its weights in a side file


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_cache_dir() -> Path:
    """Where exported graphs live unless the caller names a directory."""
    return Path.home() / ".cache" / "facetrec" / "onnx"


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's and quantiser's warnings and log chatter (not errors) while they run."""
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)


def _fresh_tmp(target: Path) -> Path:
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, target: Path) -> None:
    """Rename a finished build into place; if another process won the race, keep theirs."""
    try:
        os.replace(tmp, target)
    except OSError:
        if not target.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def export_onnx(module: Any, example: Mapping[str, Any], path: Path) -> None:
    """Export ``module(**example) -> [batch, dim]`` with dynamic batch and sequence axes."""
    import torch

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    names = list(example)
    n_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    with _quiet(), torch.inference_mode(False), torch.no_grad():
        try:
            torch.onnx.export(
                module.eval(),
                (),
                str(path),
                kwargs=dict(example),
                dynamo=True,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_shapes={name: {0: batch, 1: seq} for name in names},
                external_data=n_bytes > _LARGE,
                optimize=True,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; all mean the same to the user
            raise ConfigError(
                f"could not export {type(module).__name__} to ONNX ({type(exc).__name__}: {exc}); "
                "use backend='torch' for this model"
            ) from exc


def quantize_int8(source: Path, target: Path) -> None:
    """Quantise ``source`` with the :data:`INT8_RECIPE` into ``target``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    heavy = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights]
    with _quiet():
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_quantize=heavy,
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            use_external_data_format=(source.parent / f"{source.name}.data").exists(),
        )


def ensure_bundle(directory: Path, make: Callable[[], tuple[Any, Mapping[str, Any], Any]]) -> None:
    """Build the fp32 bundle in ``directory`` unless it exists.

    ``make()`` returns (torch module, example inputs, tokenizer); it is called only on a miss, so
    a cached bundle is used without loading the torch model at all.
    """
    if (directory / "meta.json").is_file():
        return
    import onnxruntime
    import torch

    tmp = _fresh_tmp(directory)
    try:
        module, example, tokenizer = make()
        (tmp / "fp32").mkdir()
        export_onnx(module, example, tmp / "fp32" / "model.onnx")
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        with torch.no_grad():
            dim = int(module(**example).shape[-1])
        meta = {
            "inputs": list(example),
            "dim": dim,
            "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        _publish(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_int8(directory: Path) -> Path:
    """The int8 graph of a bundle, quantising the fp32 graph on first use."""
    target = directory / f"int8-{INT8_RECIPE}"
    if not (target / "model.onnx").is_file():
        tmp = _fresh_tmp(target)
        try:
            quantize_int8(directory / "fp32" / "model.onnx", tmp / "model.onnx")
            _publish(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target / "model.onnx"


class OnnxTextModel:
    """A bundle's tokenizer and graph, run by onnxruntime on the CPU with one thread per core."""

    def __init__(self, directory: Path, *, quantize: bool = False, threads: int | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        meta = json.loads((directory / "meta.json").read_text())
        self.directory = directory
        self.dim: int = int(meta["dim"])
        path = ensure_int8(directory) if quantize else directory / "fp32" / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # onnxruntime's fused SkipLayerNormalization kernel ran slower than the plain Add + LayerNorm
        # it replaces (int8 MiniLM: 1.5x more items/s without it), so that one fusion is turned off.
        self.session = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
        )
        self.input_names: list[str] = [i.name for i in self.session.get_inputs()]
        self.tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"))

    def run(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        """Pooled vectors (float32 [batch, dim]) for tokenised ``features``."""
        feed = {name: np.ascontiguousarray(features[name], dtype=np.int64) for name in self.input_names}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)
