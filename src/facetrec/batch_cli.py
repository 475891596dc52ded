"""``facetrec batch``: the Ray batch jobs of batch.py from the command line (docs/batch.md).

Results go to a Parquet file; the summary goes to stdout (a table, or JSON with --json) and the
progress line over blocks to stderr. Heavy libraries (Ray, the models) load inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from facetrec.batch import EncodeSummary, RecommendSummary

Summary = TypeVar("Summary", "EncodeSummary", "RecommendSummary")

batch_app = typer.Typer(
    help="Batch jobs on Ray: encode every item, or write every user's top-K list, to Parquet.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console(soft_wrap=True)

JSON_HELP = "Print the summary as JSON on stdout (for scripts and tests; never wrapped)."
RayAddress = Annotated[
    str | None,
    typer.Option(
        envvar="RAY_ADDRESS",
        help="Ray cluster to run on: auto (the cluster this machine belongs to), ray://HEAD:10001 or HEAD:6379; "
        "default: a local Ray instance using this machine's cores.",
    ),
]
Concurrency = Annotated[
    int | None,
    typer.Option(help="Actors, each loading the model once (default: the cluster's CPUs / --cpus-per-actor)."),
]
CpusPerActor = Annotated[float, typer.Option(help="CPUs Ray reserves for each actor (also its torch threads).")]
MaxFailedBlocks = Annotated[
    int,
    typer.Option(help="Failed blocks to accept: their rows are left out and listed in the summary (default: none)."),
]
AsJson = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@batch_app.command("encode")
def encode(
    dataset: Annotated[Path, typer.Option(help="A dataset directory (from `data import` or `data synth`).")],
    out: Annotated[Path, typer.Option(help="Parquet file to write: item_id, vector (fixed-size list of float32).")],
    modality: Annotated[
        str, typer.Option(help="text (the item text templates), or image / audio (the catalogue's files and URLs).")
    ] = "text",
    encoder: Annotated[
        str | None,
        typer.Option(
            help="text: minilm (bundled, offline; the default), minilm-onnx-int8, lexical (TF-IDF + LSA, fitted once "
            "on the whole catalogue), or a sentence-transformers name or path; image / audio: the model's path or "
            "hub name (required)."
        ),
    ] = None,
    template: Annotated[
        str, typer.Option(help="text: item-text template (default, amazon, goodbooks, ml or mind).")
    ] = "default",
    max_tokens: Annotated[int, typer.Option(help="text: truncate item texts to this many tokens.")] = 128,
    root: Annotated[
        Path | None,
        typer.Option(help="image/audio: the folder that relative file paths start from (default: this directory)."),
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="Embedding cache directory shared by the actors; nothing is encoded twice.")
    ] = None,
    block_size: Annotated[int, typer.Option(help="Items per block: the unit of work, progress and failure.")] = 1000,
    concurrency: Concurrency = None,
    cpus_per_actor: CpusPerActor = 1.0,
    max_failed_blocks: MaxFailedBlocks = 0,
    ray_address: RayAddress = None,
    as_json: AsJson = False,
) -> None:
    """Encode every catalogue item's text, image or audio on Ray and write the vectors to Parquet."""
    from facetrec.batch import encode_items

    if modality not in ("text", "image", "audio"):
        raise typer.BadParameter("choose text, image or audio", param_hint="--modality")
    if modality == "text":
        settings: dict[str, object] = {"template": template, "max_tokens": max_tokens}
    else:
        settings = {"root": None if root is None else str(root)}
    if cache is not None:
        settings["store_dir"] = str(cache)
    summary = _run(
        lambda: encode_items(
            dataset, out, modality, encoder=encoder, settings=settings, ray_address=ray_address,
            block_items=block_size, concurrency=concurrency, cpus_per_actor=cpus_per_actor,
            max_failed_blocks=max_failed_blocks,
        ),
        as_json,
    )  # fmt: skip
    if as_json:
        return
    console.print(
        f"wrote {summary.written:,} of {summary.items:,} item vectors ({summary.dim}-d, {summary.encoder_id}) to "
        f"{summary.out} in {summary.seconds:.1f} s: {summary.blocks:,} blocks on {summary.actors} actors"
        + _failed_note(summary),
        highlight=False,
        markup=False,
    )


@batch_app.command("recommend")
def recommend(
    bundle: Annotated[Path, typer.Option(help="A bundle directory from `facetrec train`.")],
    out: Annotated[Path, typer.Option(help="Parquet file to write: user_id, rank (from 1), item_id, score.")],
    k: Annotated[int, typer.Option(help="Items per user.")] = 10,
    users: Annotated[
        Path | None, typer.Option(help="A text file of user ids, one a line (default: every user of the bundle).")
    ] = None,
    block_size: Annotated[int, typer.Option(help="Users per block: the unit of work, progress and failure.")] = 1000,
    concurrency: Concurrency = None,
    cpus_per_actor: CpusPerActor = 1.0,
    max_failed_blocks: MaxFailedBlocks = 0,
    ray_address: RayAddress = None,
    as_json: AsJson = False,
) -> None:
    """Write every user's top-K list from a bundle to Parquet, on Ray (as `facetrec recommend` lists them)."""
    from facetrec.batch import recommend_all

    wanted = None
    if users is not None:
        try:
            wanted = [line.strip() for line in users.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {users}: {exc.strerror}", param_hint="--users") from None
    summary = _run(
        lambda: recommend_all(
            bundle, out, k, users=wanted, ray_address=ray_address, block_users=block_size,
            concurrency=concurrency, cpus_per_actor=cpus_per_actor, max_failed_blocks=max_failed_blocks,
        ),
        as_json,
    )  # fmt: skip
    if as_json:
        return
    console.print(
        f"wrote top-{summary.k} lists of {summary.written_users:,} of {summary.users:,} users ({summary.rows:,} rows) "
        f"to {summary.out} in {summary.seconds:.1f} s: {summary.blocks:,} blocks on {summary.actors} actors"
        + _failed_note(summary),
        highlight=False,
        markup=False,
    )


def _run(job: Callable[[], Summary], as_json: bool) -> Summary:
    """The job's summary, printed as JSON with --json, also when the job fails (the error is raised after)."""
    from facetrec.batch import BatchJobError

    try:
        summary = job()
    except BatchJobError as exc:
        if as_json and exc.summary is not None:
            print(json.dumps(exc.summary.as_dict(), indent=2))
        raise
    if as_json:
        print(json.dumps(summary.as_dict(), indent=2))
    return summary


def _failed_note(summary: EncodeSummary | RecommendSummary) -> str:
    failed = summary.failed_blocks
    return f"; {len(failed)} failed blocks accepted: {', '.join(str(f.index) for f in failed)}" if failed else ""
