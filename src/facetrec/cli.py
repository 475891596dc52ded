"""The ``facetrec`` command: the only place that reads argv and the environment.

Heavy libraries are imported inside commands so that ``facetrec --help`` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from facetrec import __version__
from facetrec.errors import FacetrecError

app = typer.Typer(
    help="facetrec: multi-interest recommendation with pretrained language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Get, import, synthesise, split and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


def _cache_dir() -> Path:
    return Path(os.environ.get("FACETREC_CACHE_DIR", Path.home() / ".cache" / "facetrec"))


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        key, sep, column = value.partition("=")
        if not sep or not key or not column:
            raise typer.BadParameter(f"expected FIELD=COLUMN, got {value!r}", param_hint=option)
        out[key.strip()] = column.strip()
    return out


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        console.print(f"facetrec {__version__}")
        raise typer.Exit()


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. ml-100k (see `facetrec data sources`).")],
    cache: Annotated[
        Path | None, typer.Option(help="Download folder (default: $FACETREC_CACHE_DIR or ~/.cache/facetrec).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Download again even if a verified copy exists.")] = False,
) -> None:
    """Download a public dataset and verify its checksum."""
    from facetrec.data.sources.fetch import fetch

    path = fetch(name, cache or _cache_dir(), force=force)
    console.print(
        f"[green]✓[/green] {name} is in {path}\nimport it with: facetrec data import {name} --path {path} "
        f"--out data/{name}"
    )


@data_app.command("sources")
def data_sources() -> None:
    """List the public datasets facetrec can read."""
    from rich.table import Table

    from facetrec.data.sources import SOURCES

    table = Table(title="public dataset sources")
    table.add_column("name")
    table.add_column("description")
    for source in SOURCES.values():
        table.add_row(source.name, source.description)
    console.print(table)


@data_app.command("import")
def data_import(
    out: Annotated[Path, typer.Option(help="Dataset directory to write (Parquet + manifest.json).")],
    source: Annotated[
        str | None,
        typer.Argument(help="A public source name (see `facetrec data sources`); omit it to import your own files."),
    ] = None,
    path: Annotated[Path | None, typer.Option(help="Local folder holding the source's raw files.")] = None,
    interactions: Annotated[
        Path | None, typer.Option(help="Your interactions file (CSV/TSV/Parquet/JSONL, .gz ok).")
    ] = None,
    items: Annotated[Path | None, typer.Option(help="Your item catalogue file.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="TOML file with columns, item_columns and options tables (see docs/data.md)."),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="Interaction column mapping FIELD=COLUMN, e.g. --map user=userId (repeatable)."),
    ] = None,
    item_map: Annotated[
        list[str] | None, typer.Option("--item-map", help="Catalogue mapping FIELD=COLUMN, e.g. --item-map title=name.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: the source or file name).")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="A source option KEY=VALUE, e.g. --option category=Gift_Cards (repeatable)."),
    ] = None,
    min_user: Annotated[int, typer.Option(help="k-core: keep users with at least this many events.")] = 0,
    min_item: Annotated[int, typer.Option(help="k-core: keep items with at least this many events.")] = 0,
) -> None:
    """Import a public dataset (by name, from --path) or your own files into a dataset directory."""
    from facetrec.config import from_dict, load_toml
    from facetrec.data.ingest import IngestOptions, InteractionColumns, ItemColumns, load_files
    from facetrec.data.sources import load_source

    kcore = {"min_user_interactions": min_user, "min_item_interactions": min_item}
    if source is not None:
        if path is None:
            raise typer.BadParameter(
                "give the folder holding the raw files (or run `facetrec data fetch` first)", param_hint="--path"
            )
        with _stage(f"reading {source} from {path}"):
            options = {**_source_options(source, _pairs(option, "--option")), **{k: v for k, v in kcore.items() if v}}
            dataset = load_source(source, path, **options)
    else:
        if interactions is None:
            raise typer.BadParameter("name a public source or give --interactions FILE", param_hint="--interactions")
        table = load_toml(config) if config else {}
        columns = from_dict(InteractionColumns, {**table.get("columns", {}), **_pairs(map_, "--map")}, "columns")
        item_columns = from_dict(
            ItemColumns, {**table.get("item_columns", {}), **_pairs(item_map, "--item-map")}, "item_columns"
        )
        options = from_dict(
            IngestOptions, {**table.get("options", {}), **{k: v for k, v in kcore.items() if v}}, "options"
        )
        with _stage(f"reading {interactions}" + (f" and {items}" if items else "")):
            dataset = load_files(
                interactions, items, name=name, columns=columns, item_columns=item_columns, options=options
            )
    if name:
        dataset = type(dataset)(name, dataset.interactions, dataset.catalog, dataset.notes, dataset.extras)
    with _stage(f"writing {out}"):
        dataset.save(out)
    _print_notes(dataset.notes)
    i = dataset.interactions
    console.print(
        f"imported [bold]{dataset.name}[/bold]: {len(i):,} interactions, {i.n_users:,} users, "
        f"{i.n_items:,} items -> {out}"
    )


@data_app.command("inspect")
def data_inspect(directory: Annotated[Path, typer.Argument(help="A dataset directory from `data import`.")]) -> None:
    """Print counts, sparsity, sequence-length and popularity distributions and text coverage."""
    from facetrec.console import stats_tables
    from facetrec.data.dataset import Dataset
    from facetrec.data.inspect import describe

    with _stage(f"loading {directory}"):
        dataset = Dataset.load(directory)
    for table in stats_tables(describe(dataset)):
        console.print(table)
    _print_notes(dataset.notes)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    users: Annotated[int, typer.Option(help="Number of users.")] = 2000,
    items: Annotated[int, typer.Option(help="Number of items.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
) -> None:
    """Generate synthetic multi-interest data with known answers (topics, user interests)."""
    from facetrec.data.synthetic import SynthConfig, generate

    with _stage(f"generating {users:,} users x {items:,} items (seed {seed})"):
        synthetic = generate(SynthConfig(n_users=users, n_items=items, seed=seed))
    with _stage(f"writing {out}"):
        synthetic.dataset.save(out)
        synthetic.save_truth(out)
    console.print(f"wrote {synthetic.dataset!r} with its ground truth to {out}")


@data_app.command("split")
def data_split(
    directory: Annotated[Path, typer.Argument(help="A dataset directory.")],
    protocol: Annotated[str, typer.Option(help="loo, temporal, ratio or multi-target.")] = "loo",
    seed: Annotated[int, typer.Option(help="Seed for protocols that sample users.")] = 0,
) -> None:
    """Split a dataset and print the size of each part (nothing is written)."""
    from facetrec.console import split_table
    from facetrec.data.dataset import Dataset
    from facetrec.data.split import make_split

    split = make_split(Dataset.load(directory).interactions, protocol, seed)
    console.print(split_table(split))
    _print_notes(split.notes)


@app.command()
def evaluate(
    dataset: Annotated[Path, typer.Option(help="A dataset directory (from `data import` or `data synth`).")],
    models: Annotated[
        str, typer.Option(help="Comma-separated model kinds: pop, itemknn, ease, als, bpr, sasrec.")
    ] = "pop,itemknn,ease,als",
    protocol: Annotated[str, typer.Option(help="loo, temporal, ratio or multi-target.")] = "loo",
    k: Annotated[str, typer.Option(help="Cut-offs, comma-separated, e.g. 10,20,50.")] = "10",
    out: Annotated[Path | None, typer.Option(help="Write report.md, results.json and plots here.")] = None,
    tune: Annotated[bool, typer.Option(help="Pick each model's settings on the validation targets first.")] = False,
    include_history: Annotated[
        bool, typer.Option(help="Let already-seen items be ranked (RecBole's choice for sequential models).")
    ] = False,
    sampled: Annotated[
        int | None, typer.Option(help="Rank among N sampled negatives (NOT comparable to full ranking).")
    ] = None,
    first_only: Annotated[
        bool, typer.Option(help="Keep each user's first event per item (drop repeat views/carts/purchases).")
    ] = False,
    click_auc: Annotated[
        bool, typer.Option(help="Treat view events as shown-but-not-clicked impressions and report click AUC.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for splits, models and bootstrap.")] = 0,
) -> None:
    """Fit and evaluate models side by side on one split (full ranking by default)."""
    from dataclasses import replace

    from facetrec.console import results_table
    from facetrec.data.dataset import Dataset
    from facetrec.evaluation.experiment import default_metrics, run_experiment
    from facetrec.evaluation.protocol import EvalConfig
    from facetrec.evaluation.report import write_report

    cutoffs = tuple(int(v) for v in k.split(",") if v.strip())
    with _stage(f"loading {dataset}"):
        data = Dataset.load(dataset)
        interests = _planted_interests(dataset)
    has_categories = any(len(c) for c in data.catalog.categories) or interests is not None
    config = EvalConfig(metrics=default_metrics(has_categories, interests is not None, cutoffs), seed=seed)
    config = replace(config, exclude_history=not include_history, sampled_negatives=sampled)
    with console.status("fitting and evaluating…") as status:
        experiment = run_experiment(
            data,
            [m.strip() for m in models.split(",") if m.strip()],
            protocol=protocol,
            config=config,
            tune=tune,
            seed=seed,
            first_only=first_only,
            click_auc=click_auc,
            interests=interests,
            on_event=lambda message: (console.print(f"  {message}"), status.update(message)),
        )
    console.print(results_table(experiment))
    if out is not None:
        for path in write_report(experiment, out):
            console.print(f"wrote {path}")


def _source_options(source: str, raw: dict[str, str]) -> dict[str, object]:
    """Convert --option strings to the type of the reader's default (int, float, bool or str)."""
    from facetrec.data.sources import get_source

    spec = get_source(source)
    spec.check_options(raw)
    typed: dict[str, object] = {}
    for key, value in raw.items():
        default = spec.defaults().get(key)
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                typed[key] = value.lower() in ("true", "1", "yes")
            elif isinstance(default, int | float):
                typed[key] = type(default)(value)
            else:
                typed[key] = value
        except ValueError:
            message = f"{key}={value!r} is not a valid {type(default).__name__}"
            raise typer.BadParameter(message, param_hint="--option") from None
    return typed


def _planted_interests(directory: Path):
    """Ground-truth interests when the dataset is synthetic (truth files beside it)."""
    from facetrec.data.synthetic import SyntheticData

    if not (directory / "truth.json").is_file():
        return None
    synthetic = SyntheticData.load(directory)
    return synthetic.item_topic, synthetic.interest_matrix()


@app.command()
def encode(
    dataset: Annotated[Path, typer.Option(help="A dataset directory; the embeddings are written into it.")],
    model: Annotated[
        str,
        typer.Option(
            help="minilm (bundled, offline), lexical (TF-IDF + LSA), or a sentence-transformers "
            "model name or local path."
        ),
    ] = "minilm",
    backend: Annotated[
        str, typer.Option(help="torch, or onnx (int8-quantised ONNX Runtime, faster on CPUs).")
    ] = "torch",
    max_tokens: Annotated[int, typer.Option(help="Truncate item texts to this many tokens.")] = 128,
    cache: Annotated[
        Path | None,
        typer.Option(help="Embedding cache (default: $FACETREC_CACHE_DIR/embeddings); nothing is encoded twice."),
    ] = None,
) -> None:
    """Encode every item's text (title, categories, tags, description) into item embeddings."""
    from facetrec.content.store import save_item_embeddings
    from facetrec.data.dataset import Dataset
    from facetrec.scoring.content_knn import ContentKNNConfig, encode_catalog

    if backend not in ("torch", "onnx"):
        raise typer.BadParameter("choose torch or onnx", param_hint="--backend")
    if backend == "onnx" and model != "minilm":
        raise typer.BadParameter("the onnx backend is wired for the bundled minilm model", param_hint="--backend")
    name = "minilm-onnx-int8" if backend == "onnx" else model
    data = Dataset.load(dataset)
    config = ContentKNNConfig(encoder=name, max_tokens=max_tokens, store_dir=str(cache or _cache_dir() / "embeddings"))
    with _stage(f"encoding {len(data.catalog):,} items with {name}"):
        embeddings = encode_catalog(data.catalog, config)
    save_item_embeddings(embeddings, dataset)
    console.print(f"wrote {len(embeddings):,} x {embeddings.dim} embeddings ({embeddings.encoder_id}) to {dataset}")


@app.command()
def similar(
    item: Annotated[str, typer.Argument(help="An item id.")],
    dataset: Annotated[Path, typer.Option(help="A dataset directory with embeddings from `facetrec encode`.")],
    n: Annotated[int, typer.Option(help="How many neighbours.")] = 10,
) -> None:
    """Print the items whose embeddings are nearest to ITEM, with titles: a sanity check to read."""
    import numpy as np
    from rich.table import Table

    from facetrec.content.store import load_item_embeddings
    from facetrec.data.dataset import Dataset

    data = Dataset.load(dataset)
    vectors = load_item_embeddings(dataset, data.catalog.items).normalize().vectors
    index = data.catalog.items.index(item)
    if not 1 <= n < len(vectors):
        raise typer.BadParameter(f"must be between 1 and {len(vectors) - 1}", param_hint="--n")
    scores = vectors @ vectors[index]
    scores[index] = -np.inf
    order = np.argsort(-scores, kind="stable")[:n]
    table = Table(title=f"nearest to {item}: {data.catalog.title(index)}")
    for column in ("item", "title", "cosine"):
        table.add_column(column, justify="right" if column == "cosine" else "left")
    for j in order:
        table.add_row(str(data.catalog.items.id_of(int(j))), data.catalog.title(int(j)), f"{scores[j]:.3f}")
    console.print(table)


@app.command()
def train(
    dataset: Annotated[Path, typer.Option(help="A dataset directory (from `data import` or `data synth`).")],
    out: Annotated[Path, typer.Option(help="Where to write the bundle (scorer, catalogue, histories).")],
    model: Annotated[str, typer.Option(help="Model kind, e.g. facet, sasrec-text, sasrec, ease.")] = "facet",
    config: Annotated[
        Path | None, typer.Option(help="TOML with optional `kind`, a [model] table and a [ranking] table.")
    ] = None,
    first_only: Annotated[bool, typer.Option(help="Keep each user's first event per item.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for training.")] = 0,
) -> None:
    """Train a model on a whole dataset and save a bundle for `recommend` and `serve`."""
    from facetrec.config import from_dict, load_toml
    from facetrec.data.dataset import Dataset
    from facetrec.ranking import RankConfig
    from facetrec.recommender import fit_recommender

    settings = load_toml(config) if config is not None else {}
    unknown = sorted(set(settings) - {"kind", "model", "ranking"})
    if unknown:
        raise typer.BadParameter(f"unknown keys {unknown}; use kind, [model] and [ranking]", param_hint="--config")
    kind = settings.get("kind", model)
    ranking = from_dict(RankConfig, settings.get("ranking", {}), f"{config} [ranking]")
    with _stage(f"loading {dataset}"):
        data = Dataset.load(dataset)
    console.print(f"training {kind} on {len(data.interactions):,} events")
    recommender = fit_recommender(data, kind, settings.get("model", {}), ranking, seed, first_only)
    path = recommender.save(out)
    console.print(f"wrote bundle {path.parent}")


@app.command()
def recommend(
    bundle: Annotated[Path, typer.Option(help="A bundle directory from `facetrec train`.")],
    user: Annotated[str | None, typer.Option(help="A known user id.")] = None,
    history: Annotated[
        str | None, typer.Option(help="Comma-separated item ids: a new user's or a session's history.")
    ] = None,
    n: Annotated[int, typer.Option(help="How many items.")] = 10,
    diversity: Annotated[str | None, typer.Option(help="none, mmr, dpp, quotas or calibration.")] = None,
    lam: Annotated[
        float | None, typer.Option("--lambda", help="Relevance vs diversity trade-off (1 = relevance only).")
    ] = None,
    explain: Annotated[bool, typer.Option(help="Say why each item is recommended.")] = False,
) -> None:
    """Print recommendations for a user or a raw history, grouped by the interest that produced them."""
    import numpy as np
    from rich.table import Table

    from facetrec.recommender import Recommender
    from facetrec.types import Query

    if user is None and not history:
        raise typer.BadParameter("give --user or --history", param_hint="--user")
    with _stage(f"loading {bundle}"):
        recommender = Recommender.load(bundle)
    query = Query(user_id=user, history=tuple(h.strip() for h in (history or "").split(",") if h.strip()), n=n)
    overrides = {k: v for k, v in {"diversity": diversity, "lam": lam}.items() if v is not None}
    found = recommender.interests(query)
    labels = found[1] if found else []
    listing = recommender.recommend(query, explain=explain, **overrides)
    table = Table(title=f"recommendations for {user or 'the given history'}")
    for column in ("interest", "item", "title", "score") + (("why",) if explain else ()):
        table.add_column(column)
    interest = listing.fields["interest"]
    for group in dict.fromkeys(interest.tolist()):
        name = labels[group] if 0 <= group < len(labels) else "popular"
        for r in np.flatnonzero(interest == group):
            title = recommender.catalog.title(int(listing.idx[r]))
            row = [name, str(listing.ids[r]), title, f"{listing.scores[r]:.3f}"]
            if explain:
                row.append(str(listing.fields["explanation"][r]))
            table.add_row(*row)
            name = ""
    console.print(table)


@app.command()
def serve(
    bundle: Annotated[Path, typer.Option(help="A bundle directory from `facetrec train` or `facetrec retrain`.")],
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the service to the network.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    events: Annotated[
        Path | None, typer.Option(help="SQLite event store (default: events.sqlite beside the bundle directory).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="FACETREC_API_KEY", help="Key for POST /events and /admin (default: a random one, printed)."
        ),
    ] = None,
    fold_every: Annotated[int, typer.Option(help="Fold posted events into the histories every N events.")] = 256,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve recommendations, events, interests and a web page over HTTP (docs/serving.md)."""
    import secrets

    from facetrec.serving.server import run

    if not 1 <= port <= 65535:
        raise typer.BadParameter("must be between 1 and 65535", param_hint="--port")
    if fold_every < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--fold-every")
    page = f"http://{host}:{port}/"
    if not api_key:
        api_key = secrets.token_urlsafe(24)
        console.print(f"no --api-key or FACETREC_API_KEY: writes need this key for this run: {api_key}")
        page += f"#key={api_key}"  # the page reads it from the fragment, which is never sent to the server
    console.print(f"web page: {page}\nAPI: http://{host}:{port}/docs (OpenAPI)", soft_wrap=True)
    run(bundle, host, port, events, api_key, fold_every, log_level)


@app.command()
def retrain(
    bundle: Annotated[Path, typer.Option(help="The bundle the service runs.")],
    events: Annotated[Path, typer.Option(help="The service's SQLite event store.")],
    out: Annotated[Path, typer.Option(help="Where to write the new bundle.")],
    epochs: Annotated[int | None, typer.Option(help="Override the model's epochs.")] = None,
) -> None:
    """Fold the stored events into a new bundle offline; swap it in with POST /admin/reload."""
    from facetrec.serving.retrain import retrain as fold_and_fit
    from facetrec.serving.store import SQLiteEventStore

    if not events.is_file():
        raise typer.BadParameter(f"{events} does not exist", param_hint="--events")
    store = SQLiteEventStore(events)
    try:
        with _stage(f"retraining {bundle} with the events in {events}"):
            manifest, n = fold_and_fit(bundle, store, out, epochs)
    finally:
        store.close()
    console.print(f"wrote bundle {manifest.parent} ({n:,} new events folded in)")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its dataset.")] = Path("demo-output"),
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 2000,
    items: Annotated[int, typer.Option(help="Synthetic items.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Run the end-to-end job: synthesise, import, split, inspect."""
    from facetrec.demo import run_demo

    run_demo(console, out, users=users, items=items, seed=seed)


def _stage(message: str):
    from facetrec.console import stage

    return stage(console, message)


def _print_notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def main() -> None:
    """Entry point: facetrec's own errors print as one clear line, not a traceback."""
    try:
        app()
    except FacetrecError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(2) from None
