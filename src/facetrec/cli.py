"""The ``facetrec`` command: the only place that reads argv and the environment.

Heavy libraries are imported inside commands so that ``facetrec --help`` stays instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from facetrec import __version__
from facetrec.batch_cli import batch_app
from facetrec.errors import FacetrecError

if TYPE_CHECKING:
    from facetrec.summaries import LLMConfig, Summary
    from facetrec.types import ItemCatalog, UserState

app = typer.Typer(
    help="facetrec: multi-interest recommendation with pretrained language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[model] table" must not be read as markup
)
data_app = typer.Typer(
    help="Get, import, synthesise, split and inspect datasets.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(data_app, name="data")
app.add_typer(batch_app, name="batch")
console = Console(soft_wrap=True)  # lines are never broken inside a path or an id; tables still fit
JSON_HELP = "Print the result as JSON on stdout (for scripts and tests; never wrapped)."
LlmUrl = Annotated[
    str | None,
    typer.Option(
        help="Base URL of an OpenAI-compatible chat endpoint (e.g. http://127.0.0.1:8080/v1): its model names "
        "each interest and explains it in a sentence (docs/serving.md)."
    ),
]
LlmModel = Annotated[str | None, typer.Option(help="The model the chat endpoint should use (with --llm-url).")]
LlmApiKey = Annotated[
    str | None, typer.Option(envvar="FACETREC_LLM_API_KEY", help="Bearer key for the chat endpoint, if it needs one.")
]
LlmMaxTokens = Annotated[int, typer.Option(help="Most tokens the model may write per interest.")]
LlmCache = Annotated[
    Path | None,
    typer.Option(help="Directory that keeps the model's answers across runs and workers (default: memory only)."),
]


def _emit(value: object) -> None:
    """Print ``value`` as JSON on stdout, plainly (no Rich markup, highlighting or wrapping)."""
    import json

    print(json.dumps(value, indent=2, default=str))


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
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Download a public dataset and verify its checksum."""
    from facetrec.data.sources.fetch import fetch

    path = fetch(name, cache or _cache_dir(), force=force)
    if as_json:
        _emit({"dataset": name, "path": str(path)})
        return
    console.print(
        f"[green]✓[/green] {name} is in {path}\nimport it with: facetrec data import {name} --path {path} "
        f"--out data/{name}"
    )


@data_app.command("sources")
def data_sources(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List the public datasets facetrec can read."""
    from rich.table import Table

    from facetrec.data.sources import SOURCES

    if as_json:
        _emit([{"name": s.name, "description": s.description} for s in SOURCES.values()])
        return

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
    date_format: Annotated[
        str | None,
        typer.Option(
            help="How date strings are written, as a strftime pattern, e.g. %d/%m/%Y or %m/%d/%Y; needed for "
            "dates such as 03/04/2021 whose day and month order is ambiguous (ISO 8601 and epoch numbers need none)."
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(help="Text encoding of CSV/TSV/JSONL files (default utf-8), e.g. latin-1 or cp1252."),
    ] = None,
    item_vectors: Annotated[
        list[str] | None,
        typer.Option(
            "--item-vectors",
            help="Precomputed item vectors NAME=PATH, a .npy (a row per item) or .parquet (item_id and a list "
            "column) file, e.g. --item-vectors image=image_feat.npy (repeatable; see docs/data.md).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Import a public dataset (by name, from --path) or your own files into a dataset directory."""
    import warnings

    from facetrec.config import from_dict
    from facetrec.data.ingest import IngestOptions, InteractionColumns, ItemColumns, load_files
    from facetrec.data.sources import load_source
    from facetrec.data.vectors import attach_item_vectors

    vector_files = _vector_files(item_vectors)
    kcore = {"min_user_interactions": min_user, "min_item_interactions": min_item}
    given = {"date_format": date_format, "encoding": encoding}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if source is not None:
            if path is None:
                raise typer.BadParameter(
                    "give the folder holding the raw files (or run `facetrec data fetch` first)", param_hint="--path"
                )
            for key, value in given.items():
                if value is not None:
                    flag = "--" + key.replace("_", "-")
                    message = f"applies to your own files (--interactions); the {source} reader knows its format"
                    raise typer.BadParameter(message, param_hint=flag)
            with _stage(f"reading {source} from {path}"):
                options = {
                    **_source_options(source, _pairs(option, "--option")),
                    **{k: v for k, v in kcore.items() if v},
                }
                dataset = load_source(source, path, **options)
        else:
            if interactions is None:
                raise typer.BadParameter(
                    "name a public source or give --interactions FILE", param_hint="--interactions"
                )
            table = _import_table(config)
            columns = from_dict(InteractionColumns, {**table.get("columns", {}), **_pairs(map_, "--map")}, "columns")
            item_columns = from_dict(
                ItemColumns, {**table.get("item_columns", {}), **_pairs(item_map, "--item-map")}, "item_columns"
            )
            overrides = {k: v for k, v in {**kcore, **given}.items() if v}
            options = from_dict(IngestOptions, {**table.get("options", {}), **overrides}, "options")
            with _stage(f"reading {interactions}" + (f" and {items}" if items else "")):
                dataset = load_files(
                    interactions, items, name=name, columns=columns, item_columns=item_columns, options=options
                )
        if vector_files:
            with _stage(f"reading item vectors {', '.join(vector_files)}"):
                dataset = attach_item_vectors(dataset, vector_files)
    if name:
        dataset = type(dataset)(name, dataset.interactions, dataset.catalog, dataset.notes, dataset.extras)
    with _stage(f"writing {out}"):
        dataset.save(out)
    developer_only = (DeprecationWarning, PendingDeprecationWarning)  # hidden by Python's default filters too
    warned = [str(w.message) for w in caught if not issubclass(w.category, developer_only)]
    i = dataset.interactions
    vectors = {k: {"dim": v.shape[1], "items": int(v.any(axis=1).sum())} for k, v in dataset.catalog.vectors.items()}
    if as_json:
        counts = {"interactions": len(i), "users": i.n_users, "items": i.n_items}
        notes = {"notes": list(dataset.notes), "warnings": warned}
        _emit({"name": dataset.name, "path": str(out), **counts, "vectors": vectors, **notes})
        return
    _print_import_messages(dataset.notes, warned)
    sets = "".join(f", {k} vectors ({v['dim']}-d)" for k, v in vectors.items())
    console.print(
        f"imported [bold]{dataset.name}[/bold]: {len(i):,} interactions, {i.n_users:,} users, "
        f"{i.n_items:,} items{sets} -> {out}"
    )


def _vector_files(values: list[str] | None) -> dict[str, Path]:
    """--item-vectors NAME=PATH values by name; a name given twice is an error, not a silent overwrite."""
    from facetrec.data.vectors import check_name

    out: dict[str, Path] = {}
    for value in values or []:
        key, sep, path = (part.strip() for part in value.partition("="))
        if not sep or not key or not path:
            raise typer.BadParameter(
                f"expected NAME=PATH such as image=image.npy, got {value!r}", param_hint="--item-vectors"
            )
        if key in out:
            raise typer.BadParameter(f"{key!r} is given twice", param_hint="--item-vectors")
        check_name(key)
        out[key] = Path(path)
    return out


def _import_table(config: Path | None) -> dict:
    """The import TOML file, whose only tables are columns, item_columns and options."""
    from facetrec.config import load_toml

    table = load_toml(config) if config else {}
    unknown = sorted(set(table) - {"columns", "item_columns", "options"})
    if unknown:
        raise typer.BadParameter(
            f"{config}: unknown key(s) {', '.join(unknown)}; valid tables: [columns], [item_columns], [options]",
            param_hint="--config",
        )
    return table


def _print_import_messages(notes: tuple[str, ...], warned: list[str]) -> None:
    """Each note once, then each warning that is not already a note (messages only, no code locations)."""
    from rich.text import Text

    shown = set()
    for kind, message in [*(("note", n) for n in notes), *(("warning", w) for w in warned)]:
        if message in shown:
            continue
        shown.add(message)
        console.print(Text.assemble((f"{kind}: ", "yellow"), message), soft_wrap=True)


@data_app.command("inspect")
def data_inspect(
    directory: Annotated[Path, typer.Argument(help="A dataset directory from `data import`.")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Print counts, sparsity, sequence-length and popularity distributions, text and vector coverage."""
    from dataclasses import asdict

    from facetrec.console import stats_tables
    from facetrec.data.dataset import Dataset
    from facetrec.data.inspect import describe

    with _stage(f"loading {directory}"):
        dataset = Dataset.load(directory)
    stats = describe(dataset)
    if as_json:
        _emit({**asdict(stats), "notes": list(dataset.notes)})
        return
    for table in stats_tables(stats):
        console.print(table)
    if stats.vectors:
        console.print(_vectors_table(stats.vectors))
    _print_notes(dataset.notes)


def _vectors_table(vectors: dict):  # type: ignore[no-untyped-def]
    """The precomputed item vector sets: name, dimensions and share of items that have a vector."""
    from rich.table import Table

    table = Table(title="item vectors")
    table.add_column("name")
    table.add_column("dims", justify="right")
    table.add_column("share of items", justify="right")
    for name, stats in vectors.items():
        table.add_row(name, str(stats.dim), f"{stats.coverage:.1%}")
    return table


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Dataset directory to write.")],
    users: Annotated[int, typer.Option(help="Number of users.")] = 2000,
    items: Annotated[int, typer.Option(help="Number of items.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Generate synthetic multi-interest data with known answers (topics, user interests)."""
    from facetrec.data.synthetic import SynthConfig, generate

    with _stage(f"generating {users:,} users x {items:,} items (seed {seed})"):
        synthetic = generate(SynthConfig(n_users=users, n_items=items, seed=seed))
    with _stage(f"writing {out}"):
        synthetic.dataset.save(out)
        synthetic.save_truth(out)
    if as_json:
        i = synthetic.dataset.interactions
        _emit({"path": str(out), "interactions": len(i), "users": i.n_users, "items": i.n_items})
        return
    console.print(f"wrote {synthetic.dataset!r} with its ground truth to {out}")


@data_app.command("split")
def data_split(
    directory: Annotated[Path, typer.Argument(help="A dataset directory.")],
    protocol: Annotated[str, typer.Option(help="loo, temporal, ratio or multi-target.")] = "loo",
    seed: Annotated[int, typer.Option(help="Seed for protocols that sample users.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Split a dataset and print the size of each part (nothing is written)."""
    from facetrec.console import split_table
    from facetrec.data.dataset import Dataset
    from facetrec.data.split import make_split

    split = make_split(Dataset.load(directory).interactions, protocol, seed)
    if as_json:
        _emit({"protocol": split.protocol, **split.sizes(), "notes": list(split.notes)})
        return
    console.print(split_table(split))
    _print_notes(split.notes)


class _KindsHelp(typer.core.TyperCommand):
    """A command whose --help lists model kinds: the registered ones for ``{kinds}``, those with a
    search space for ``{tunable}``, read only when help is shown (importing the registry, or
    Optuna, at start-up would slow every command down)."""

    def format_help(self, ctx, formatter) -> None:  # type: ignore[no-untyped-def]
        for param in self.params:
            if param.help and "{kinds}" in param.help:
                from facetrec.scoring.registry import SCORERS

                param.help = param.help.replace("{kinds}", ", ".join(SCORERS))
            if param.help and "{tunable}" in param.help:
                from facetrec.tuning import SPACES

                param.help = param.help.replace("{tunable}", ", ".join(SPACES))
        super().format_help(ctx, formatter)


TRACK_HELP = (
    "Record the run in MLflow (params, metrics, tags, artifacts); --no-track, or FACETREC_TRACKING=0, switches it off."
)
TRACKING_URI_HELP = (
    "MLflow store: a server (http://host:5000) or a database (sqlite:///path/mlflow.db); default "
    "$MLFLOW_TRACKING_URI, else mlflow.db in the current directory with artifacts in mlruns/ beside it."
)


@app.command(cls=_KindsHelp)
def evaluate(
    ctx: typer.Context,
    dataset: Annotated[
        Path | None, typer.Option(help="A dataset directory (from `data import` or `data synth`).")
    ] = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated model kinds, any of the registered ones: {kinds}.")
    ] = "pop,itemknn,ease,als",
    protocol: Annotated[str, typer.Option(help="loo, temporal, ratio or multi-target.")] = "loo",
    k: Annotated[str, typer.Option(help="Cut-offs, comma-separated, e.g. 10,20,50 (main metric: ndcg@first).")] = "10",
    out: Annotated[Path | None, typer.Option(help="Write report.md, results.json and plots here.")] = None,
    tune: Annotated[
        bool, typer.Option(help="Pick each model's settings on the validation targets first (given --param stay).")
    ] = False,
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
    config: Annotated[
        Path | None,
        typer.Option(
            help="TOML file with any of these options (dataset, models, protocol, k, seed, tune, ...) and a "
            "[models.KIND] table of parameters per model, e.g. [models.ease] l2 = 500, or one model as "
            'kind = "ease" with a [model] table (what `facetrec tune` writes); options given on the command '
            "line override it (docs/evaluation.md)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="A model parameter MODEL.KEY=VALUE, the value in TOML syntax (a bare word is a string), e.g. "
            "--param ease.l2=500 --param facet.routing=hard --param sasrec.epochs=40 (repeatable; overrides "
            "--config)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON on stdout (progress stays on stderr).")
    ] = False,
    track: Annotated[bool, typer.Option(envvar="FACETREC_TRACKING", help=TRACK_HELP)] = True,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_URI_HELP)] = None,
) -> None:
    """Fit and evaluate models side by side on one split (full ranking by default).

    Stdout gets the results only (a table, or JSON with --json); progress with an estimate of
    the time left goes to stderr. The run is recorded in MLflow, one child run per model
    (docs/tuning.md).
    """
    from dataclasses import replace

    from facetrec import tracking
    from facetrec.console import results_table, stage
    from facetrec.data.dataset import Dataset
    from facetrec.errors import ConfigError
    from facetrec.evaluation.experiment import check_params, default_metrics, run_experiment
    from facetrec.evaluation.protocol import EvalConfig
    from facetrec.evaluation.report import results_document, write_report

    err = Console(stderr=True)
    run = _evaluate_settings(ctx, config, err)
    kinds, params = run["models"], run["params"]
    try:
        params = check_params(kinds, params)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--param/--config") from None
    if run["dataset"] is None:
        raise typer.BadParameter('give the dataset directory, or dataset = "DIR" in --config', param_hint="--dataset")
    directory = Path(run["dataset"])
    with stage(err, f"loading {directory}"):
        data = Dataset.load(directory)
        interests = _planted_interests(directory)
    has_categories = any(len(c) for c in data.catalog.categories) or interests is not None
    cutoffs = run["k"]
    config_ = EvalConfig(metrics=default_metrics(has_categories, interests is not None, cutoffs), seed=run["seed"])
    config_ = replace(config_, exclude_history=not run["include_history"], sampled_negatives=run["sampled"])
    options = ("protocol", "seed", "tune", "include_history", "sampled", "first_only", "click_auc")
    settings = {"dataset": str(directory), "models": ",".join(kinds), "k": ",".join(map(str, cutoffs))}
    settings.update({name: run[name] for name in options})
    with tracking.track(
        "facetrec evaluate",
        f"{data.name} {run['protocol']}",
        uri=tracking_uri,
        enabled=track,
        params=settings,
        tags=tracking.dataset_tags(directory),
        warn=_tracking_warning,
    ) as tracked:
        with _Progress(err, kinds, params) as on_event:
            experiment = run_experiment(
                data,
                kinds,
                protocol=run["protocol"],
                config=config_,
                params=params,
                tune=run["tune"],
                tune_metric=config_.metrics[0],
                seed=run["seed"],
                first_only=run["first_only"],
                click_auc=run["click_auc"],
                interests=interests,
                on_event=on_event,
            )
        if run["json"]:
            _emit(results_document(experiment))
        else:
            console.print(results_table(experiment))
        _track_models(tracked, experiment)
        if run["out"] is not None:
            paths = write_report(experiment, Path(run["out"]))
            for path in paths:
                err.print(f"wrote {path}", highlight=False, markup=False)
            tracked.log_artifacts(paths)
    _note_tracked(tracked)


def _track_models(tracked, experiment) -> None:  # type: ignore[no-untyped-def]
    """One child run per model of an evaluation: its whole config, test metrics and timings; the
    parent gets each model's main metric, for comparing runs at a glance."""
    from facetrec.config import from_dict, to_dict
    from facetrec.scoring.registry import scorer_class

    main = experiment.main_metric
    for run in experiment.runs:
        config = to_dict(from_dict(scorer_class(run.kind).config_class, run.params, f"model {run.kind!r}"))
        ratio = experiment.ratios.get(run.kind)
        metrics = {**run.test.summary, **run.other, "fit_seconds": run.fit_seconds, "eval_seconds": run.test.seconds}
        if ratio is not None:
            metrics["ratio_to_best"] = ratio.ratio
        tracked.log_child(run.kind, params=config, metrics=metrics, tags={"model": run.kind, "tuned": run.tuning != []})
        tracked.log(metrics={f"{run.kind}/{main}": run.test.summary.get(main)})


def _tracking_warning(message: str) -> None:
    """A tracking failure, as one plain line on stderr (the command goes on)."""
    Console(stderr=True, soft_wrap=True).print(f"warning: {message}", markup=False, highlight=False)


def _note_tracked(tracked) -> None:  # type: ignore[no-untyped-def]
    """Say where the run was recorded (stderr: stdout keeps the results)."""
    if tracked.active:
        _note(f"tracked as MLflow run {tracked.run_id} in {tracked.uri}")


def _evaluate_settings(ctx: typer.Context, config: Path | None, err: Console) -> dict:
    """The run's settings: each from the command line if given there, else from --config, else
    the option's default; models as a list and their parameters (file tables under --param)."""
    import re

    from facetrec.config import from_dict, load_toml
    from facetrec.errors import ConfigError
    from facetrec.evaluation.experiment import RunConfig

    table: dict = {}
    if config is not None:
        try:
            table = _one_model_form(load_toml(config), config)
            from_dict(RunConfig, table, str(config))
        except ConfigError as exc:
            text = config.read_text() if config.is_file() else ""
            hint = (
                "; a models = ... list and [models.KIND] tables cannot both be in one file: give every model "
                "its own [models.KIND] table (an empty one runs it with its defaults)"
                if re.search(r"^\s*models\s*=", text, re.M) and re.search(r"^\s*\[models\.", text, re.M)
                else ""
            )
            raise typer.BadParameter(str(exc) + hint, param_hint="--config") from None
    run = {}
    for name in RunConfig.__dataclass_fields__:
        option = "as_json" if name == "json" else name
        run[name] = table[name] if name in table and not _given(ctx, option) else ctx.params[option]
    where = "--models" if _given(ctx, "models") else "--config"
    file_params: dict = {}
    if isinstance(run["models"], dict):
        file_params, kinds = run["models"], list(run["models"])
    else:
        kinds = run["models"].split(",") if isinstance(run["models"], str) else list(run["models"])
        file_params = table["models"] if isinstance(table.get("models"), dict) else {}
    kinds = [kind.strip() for kind in kinds if kind.strip()]
    if not kinds:
        raise typer.BadParameter("name at least one model kind", param_hint=where)
    _check_kinds(kinds, where)
    unused = [kind for kind in file_params if kind not in kinds]
    if unused:
        err.print(
            f"note: {config} has parameters for {', '.join(unused)}, not in --models {','.join(kinds)}; "
            "they are not used",
            highlight=False,
            markup=False,
        )
    params = {kind: dict(file_params[kind]) for kind in kinds if file_params.get(kind)}
    for kind, values in _model_params(ctx.params.get("param") or []).items():
        params.setdefault(kind, {}).update(values)
    run["models"], run["params"] = kinds, params
    run["k"] = _cutoffs(run["k"], "--k" if _given(ctx, "k") else "--config")
    return run


def _one_model_form(table: dict, config: Path) -> dict:
    """A file naming one model with ``kind`` and a ``[model]`` table (the shape ``facetrec train
    --config`` reads and ``facetrec tune`` writes) read as the same ``[models.KIND]`` table."""
    if "kind" not in table and "model" not in table:
        return table
    if "models" in table:
        raise typer.BadParameter(
            f"{config}: give one model as kind = ... with [model], or models, not both", param_hint="--config"
        )
    kind, model = table.get("kind"), table.get("model", {})
    if not isinstance(kind, str) or not isinstance(model, dict):
        raise typer.BadParameter(
            f'{config}: a [model] table needs kind = "MODEL" beside it, e.g. kind = "ease" with [model] l2 = 500',
            param_hint="--config",
        )
    return {**{k: v for k, v in table.items() if k not in ("kind", "model")}, "models": {kind: model}}


def _given(ctx: typer.Context, option: str) -> bool:
    """Whether ``option`` was set on the command line or by its environment variable (not a default)."""
    source = ctx.get_parameter_source(option)  # typer may vendor click: compare by name, not by enum identity
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _check_kinds(kinds: list[str], where: str) -> None:
    from facetrec.scoring.registry import SCORERS

    unknown = [kind for kind in kinds if kind not in SCORERS]
    if unknown:
        raise typer.BadParameter(
            f"unknown model kind {unknown[0]!r}; choose from {', '.join(SCORERS)}", param_hint=where
        )


def _cutoffs(value: object, where: str) -> tuple[int, ...]:
    """Cut-offs from 10, "10,20" or [10, 20]."""
    parts = value if isinstance(value, list | tuple) else str(value).split(",")
    try:
        cutoffs = tuple(int(str(v).strip()) for v in parts if str(v).strip())
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated whole numbers such as 10,20, got {value!r}", param_hint=where
        ) from None
    if not cutoffs or min(cutoffs) < 1:
        raise typer.BadParameter(f"expected cut-offs of at least 1, got {value!r}", param_hint=where)
    return cutoffs


def _model_params(values: list[str]) -> dict[str, dict[str, object]]:
    """--param MODEL.KEY=VALUE strings as {model: {key: value}}, values read as TOML (a bare word is a string)."""
    out: dict[str, dict[str, object]] = {}
    for target, value in _toml_pairs(values, "--param", "MODEL.KEY=VALUE such as ease.l2=500").items():
        kind, dot, key = target.rpartition(".")
        if not dot or not kind or not key:
            example = "MODEL.KEY=VALUE such as ease.l2=500"
            raise typer.BadParameter(f"expected {example}, got {target!r}", param_hint="--param")
        out.setdefault(kind, {})[key] = value
    return out


class _Progress:
    """Progress lines for stderr: plain lines, or above a Rich status line when it is a terminal.

    Models that draw their own training bar (``progress`` in their config) get the terminal to
    themselves while they are tuned and fitted: two live displays would garble each other.
    """

    def __init__(self, err: Console, kinds: list[str], params: dict[str, dict]) -> None:
        self.err, self.status, self.running = err, None, False
        self.own_bars = {kind for kind in kinds if _draws_own_bar(kind, params.get(kind, {}))}

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.err.is_terminal:
            self.status = self.err.status("starting…")
        return self.show

    def show(self, message: str) -> None:
        import re

        if self.status is None:
            typer.echo(message, err=True)
            return
        self.err.print(message, highlight=False, markup=False)
        training = re.match(r"\[\d+/\d+\] (?:fitting|tuning) (\S+?)(?::| \.\.\.)", message)
        if training and training.group(1) in self.own_bars:
            self._stop()
        else:
            self.status.update(message)
            if not self.running:
                self.status.start()
                self.running = True

    def _stop(self) -> None:
        if self.status is not None and self.running:
            self.status.stop()
            self.running = False

    def __exit__(self, *exc: object) -> None:
        self._stop()


def _draws_own_bar(kind: str, params: dict) -> bool:
    """Whether ``kind``'s training loop shows its own progress bar with these parameters."""
    from facetrec.scoring.registry import scorer_class

    fields = scorer_class(kind).config_class.__dataclass_fields__
    return "progress" in fields and bool(params.get("progress", fields["progress"].default))


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


@app.command(cls=_KindsHelp)
def tune(
    model: Annotated[str, typer.Option(help="The model kind to tune; those with a search space: {tunable}.")],
    dataset: Annotated[Path, typer.Option(help="A dataset directory (from `data import` or `data synth`).")],
    trials: Annotated[int, typer.Option(help="Most trials to run.")] = 20,
    budget_minutes: Annotated[
        float | None,
        typer.Option(help="Start no new trial after this many minutes (a running trial finishes); default: no limit."),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="Split whose validation targets score the trials: loo, temporal, ratio or multi-target.")
    ] = "loo",
    metric: Annotated[
        str, typer.Option(help="Validation metric to optimise, name@k, e.g. ndcg@10 or recall@20.")
    ] = "ndcg@10",
    seed: Annotated[
        int, typer.Option(help="Seeds the split, the sampler (the same seed tries the same settings) and the models.")
    ] = 0,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="Fix a setting instead of searching it: MODEL.KEY=VALUE, the value in TOML syntax, e.g. "
            "--param sasrec.epochs=20 (repeatable)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the best setting here as TOML that `train --config` and `evaluate --config` read "
            "(default: tune-MODEL.toml)."
        ),
    ] = None,
    track: Annotated[bool, typer.Option(envvar="FACETREC_TRACKING", help=TRACK_HELP)] = True,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_URI_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Search a model's settings with Optuna on the validation targets (never the test targets).

    One line per trial goes to stderr; the trials and the best setting go to stdout, and the
    best setting to --out. Models trained epoch by epoch (sasrec, sasrec-text, facet) report
    each epoch's validation score, and trials below the median of earlier ones are pruned. The
    search is recorded in MLflow, one child run per trial (docs/tuning.md).
    """
    from facetrec import tracking
    from facetrec.data.dataset import Dataset
    from facetrec.data.split import PROTOCOLS
    from facetrec.errors import ConfigError, DataError
    from facetrec.evaluation.protocol import parse_metric
    from facetrec.tuning import best_config_toml, space_for
    from facetrec.tuning import tune as search

    if trials < 1:
        raise typer.BadParameter(f"must be at least 1, got {trials}", param_hint="--trials")
    if budget_minutes is not None and not budget_minutes > 0:
        raise typer.BadParameter(f"must be more than 0 minutes, got {budget_minutes}", param_hint="--budget-minutes")
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(
            f"unknown protocol {protocol!r}; choose {', '.join(PROTOCOLS)}", param_hint="--protocol"
        )
    try:
        parse_metric(metric)
    except DataError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    given = _model_params(param or [])
    stray = [kind for kind in given if kind != model]
    if stray:
        raise typer.BadParameter(
            f"{stray[0]}.{next(iter(given[stray[0]]))} names model {stray[0]!r}, but --model is {model!r}; "
            f"write {model}.KEY=VALUE",
            param_hint="--param",
        )
    fixed = given.get(model, {})
    try:
        space_for(model, fixed)  # before the data is loaded: a wrong model or setting fails at once
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model" if not fixed else "--model/--param") from None
    with _stage(f"loading {dataset}"):
        data = Dataset.load(dataset)
    out = out or Path(f"tune-{model}.toml")
    settings = {"model": model, "dataset": str(dataset), "protocol": protocol, "metric": metric, "seed": seed,
                "trials": trials, "budget_minutes": budget_minutes, "fixed": fixed}  # fmt: skip
    with tracking.track(
        "facetrec tune",
        f"{model} on {data.name}",
        uri=tracking_uri,
        enabled=track,
        params=settings,
        tags=tracking.dataset_tags(dataset),
        warn=_tracking_warning,
    ) as tracked:

        def on_trial(record, result) -> None:  # type: ignore[no-untyped-def]
            _note(_trial_line(record, result, trials))
            status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(record.state, "FAILED")
            child = tracked.log_child(
                f"trial {record.number}",
                params=record.params,
                metrics={metric: record.score, "seconds": record.seconds},
                tags={"trial": record.number, "state": record.state},
                status=status,
            )
            child.log_history("epoch_valid_ndcg@10", record.epochs)

        timeout = None if budget_minutes is None else budget_minutes * 60
        result = search(
            data, model, trials=trials, timeout=timeout, protocol=protocol, metric=metric, seed=seed, fixed=fixed,
            on_trial=on_trial,
        )  # fmt: skip
        best = result.best
        if best is not None:
            out.write_text(best_config_toml(result))
            _note(f"wrote {out}")
            tracked.log(params={"best": best.params}, metrics={f"best_{metric}": best.score})
            tracked.log_artifacts([out])
        document = {**result.document(), "config": str(out) if best is not None else None}
        document["tracking"] = {"uri": tracked.uri, "run_id": tracked.run_id} if tracked.active else None
        if as_json:
            _emit(document)
        else:
            console.print(_trials_table(result))
    _note_tracked(tracked)
    if best is None:
        _note(f"error: no trial completed ({len(result.trials)} pruned or failed); nothing written to {out}")
        raise typer.Exit(1)


def _trial_line(record, result, trials: int) -> str:  # type: ignore[no-untyped-def]
    """``[3/20] trial 2 COMPLETE in 2.1 s: l2=123.4 -> ndcg@10 0.0712 | best 0.0801 (trial 1)``."""
    shown = _params_text(record.params, result.fixed)
    if record.state == "COMPLETE":
        outcome = f"-> {result.metric} {record.score:.4f}"
    elif record.state == "PRUNED":
        outcome = f"-> pruned after epoch {len(record.epochs)}" + (
            f" (epoch validation {record.epochs[-1]:.4f})" if record.epochs else ""
        )
    else:
        outcome = "-> failed"
    best = result.best
    so_far = f"best {best.score:.4f} (trial {best.number})" if best is not None else "no trial completed yet"
    step = f"[{len(result.trials)}/{trials}] trial {record.number}"
    return f"{step} {record.state} in {record.seconds:.1f} s: {shown} {outcome} | {so_far}"


def _params_text(params: dict, fixed: dict) -> str:
    """The searched settings, compactly (``lr=0.0004131, hidden=64``); fixed ones are left out."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items() if k not in fixed
    )


def _trials_table(result):  # type: ignore[no-untyped-def]
    """Every trial with its state, validation score, time and searched settings; the best in bold."""
    from rich.table import Table

    best = result.best
    title = f"tune {result.kind} on {result.dataset}: validation {result.metric} ({result.direction}d)"
    table = Table(title=title)
    for column in ("trial", "state", result.metric, "seconds", "settings"):
        table.add_column(column, justify="right" if column in (result.metric, "seconds", "trial") else "left")
    for record in result.trials:
        score = "-" if record.score is None else f"{record.score:.4f}"
        style = "bold" if best is not None and record.number == best.number else None
        settings = _params_text(record.params, result.fixed)
        table.add_row(str(record.number), record.state, score, f"{record.seconds:.1f}", settings, style=style)
    if best is not None:
        table.caption = f"best: trial {best.number}, {result.metric} {best.score:.4f}"
    return table


@app.command()
def encode(
    dataset: Annotated[Path, typer.Option(help="A dataset directory; the embeddings are written into it.")],
    modality: Annotated[
        str,
        typer.Option(
            help="text (title, categories, tags, description), or image / audio (the catalogue's image or "
            "audio files and URLs, stored as the dataset's item vectors of that name)."
        ),
    ] = "text",
    model: Annotated[
        str,
        typer.Option(
            help="text: minilm (bundled, offline), lexical (TF-IDF + LSA), or a sentence-transformers model name "
            "or local path; image: a CLIP/SigLIP (or other vision) model; audio: a CLAP, AST or wav2vec2 model, "
            "each by local path or hub name."
        ),
    ] = "minilm",
    backend: Annotated[
        str, typer.Option(help="torch, or onnx (int8-quantised ONNX Runtime, faster on CPUs; text only).")
    ] = "torch",
    max_tokens: Annotated[int, typer.Option(help="Truncate item texts to this many tokens.")] = 128,
    root: Annotated[
        Path | None, typer.Option(help="image/audio: the folder that relative file paths in the catalogue start from.")
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Embedding cache (default: $FACETREC_CACHE_DIR/embeddings); nothing is encoded twice."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Encode every item's text, image or audio into item embeddings."""
    from facetrec.data.dataset import Dataset

    if modality not in ("text", "image", "audio"):
        raise typer.BadParameter("choose text, image or audio", param_hint="--modality")
    if backend not in ("torch", "onnx"):
        raise typer.BadParameter("choose torch or onnx", param_hint="--backend")
    if backend == "onnx" and (model != "minilm" or modality != "text"):
        raise typer.BadParameter("the onnx backend is wired for the bundled minilm model", param_hint="--backend")
    store = str(cache or _cache_dir() / "embeddings")
    data = Dataset.load(dataset)
    if modality != "text":
        _encode_media(dataset, data, modality, model, root, store, as_json)
        return
    from facetrec.content.item_encoder import TextItemEncoder
    from facetrec.content.store import save_item_embeddings

    name = "minilm-onnx-int8" if backend == "onnx" else model
    encoder = TextItemEncoder(encoder=name, max_tokens=max_tokens, store_dir=store)
    _note(f"encoding {len(data.catalog):,} items with {name}")
    embeddings = encoder.encode(data.catalog, progress=True)  # a bar with items/s and ETA on stderr
    save_item_embeddings(embeddings, dataset)
    if as_json:
        _emit({"path": str(dataset), "items": len(embeddings), "dim": embeddings.dim, "encoder": embeddings.encoder_id})
        return
    console.print(f"wrote {len(embeddings):,} x {embeddings.dim} embeddings ({embeddings.encoder_id}) to {dataset}")


def _encode_media(directory: Path, data, modality: str, model: str, root: Path | None, store: str, as_json: bool):  # type: ignore[no-untyped-def]
    """Encode the catalogue's image or audio references and store them as the item vectors ``modality``."""
    from facetrec.content.media import media_encoder
    from facetrec.data.vectors import with_item_vectors

    encoder = media_encoder(modality, model, store_dir=store, root=None if root is None else str(root))
    _note(f"encoding the {modality} of {len(data.catalog):,} items with {model}")
    found = encoder.encode(data.catalog, progress=True)
    source = found.embeddings.encoder_id
    note = f"{modality} vectors encoded with {source}: {found.summary()}"
    with_item_vectors(data, modality, found.embeddings.vectors, [note], source).save(directory)
    if as_json:
        _emit({
            "path": str(directory), "modality": modality, "items": len(data.catalog), "dim": found.embeddings.dim,
            "encoded": found.encoded, "missing": found.missing, "failed": found.failed,
            "encoder": found.embeddings.encoder_id,
        })  # fmt: skip
        return
    console.print(f"wrote {modality} vectors ({found.embeddings.dim}-d) into {directory}: {found.summary()}")


@app.command()
def similar(
    item: Annotated[str, typer.Argument(help="An item id.")],
    dataset: Annotated[Path, typer.Option(help="A dataset directory with embeddings from `facetrec encode`.")],
    n: Annotated[int, typer.Option(help="How many neighbours.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
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
    if as_json:
        rows = [{"item": str(data.catalog.items.id_of(int(j))), "title": data.catalog.title(int(j)),
                 "cosine": float(scores[j])} for j in order]  # fmt: skip
        _emit({"item": item, "title": data.catalog.title(index), "similar": rows})
        return
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
    model: Annotated[str, typer.Option(help="Model kind (see `facetrec models`), e.g. facet, sasrec-text, ease.")] = (
        "facet"
    ),
    config: Annotated[
        Path | None, typer.Option(help="TOML with optional `kind`, `encoder`, a [model] table and a [ranking] table.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="A model setting KEY=VALUE (TOML value), e.g. --param epochs=40 (repeatable)."),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="Item encoder whose embeddings the bundle stores: auto (the model's own, else lexical "
            "when items have text), none, lexical, minilm, or a sentence-transformers path or name."
        ),
    ] = None,
    first_only: Annotated[bool, typer.Option(help="Keep each user's first event per item.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for training.")] = 0,
    cold_items: Annotated[
        int,
        typer.Option(help="List places given to items no event has reached, found through the item graph (0: off)."),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Train a model on a whole dataset and save a bundle for `recommend` and `serve`.

    Under `torchrun --nproc_per_node N -m facetrec train ...` the N processes train a torch model
    together (docs/distributed.md); rank 0 alone reports and writes the bundle.
    """
    from contextlib import nullcontext

    from facetrec.config import from_dict, load_toml
    from facetrec.data.dataset import Dataset
    from facetrec.ranking import RankConfig
    from facetrec.recommender import fit_recommender
    from facetrec.training import is_primary

    settings = load_toml(config) if config is not None else {}
    unknown = sorted(set(settings) - {"kind", "encoder", "model", "ranking"})
    if unknown:
        raise typer.BadParameter(
            f"unknown keys {unknown}; use kind, encoder, [model] and [ranking]", param_hint="--config"
        )
    kind = settings.get("kind", model)
    params = {**settings.get("model", {}), **_toml_pairs(param, "--param")}
    ranking = from_dict(RankConfig, settings.get("ranking", {}), f"{config} [ranking]")
    primary = is_primary()
    with _stage(f"loading {dataset}") if primary else nullcontext():
        data = Dataset.load(dataset)
    if primary:
        _note(f"training {kind} on {len(data.interactions):,} events")
    chosen = encoder or settings.get("encoder", "auto")
    recommender = fit_recommender(data, kind, params, ranking, seed, first_only, encoder=chosen, cold_items=cold_items)
    if not primary:  # another process of a distributed run: it holds the same weights as rank 0
        return
    path = recommender.save(out)
    if as_json:
        embedded = recommender.embeddings.encoder_id if recommender.embeddings is not None else None
        _emit({"bundle": str(path.parent), "kind": kind, "events": len(data.interactions), "embeddings": embedded})
        return
    console.print(f"wrote bundle {path.parent}", highlight=False)


def _toml_pairs(values: list[str] | None, option: str, form: str = "KEY=VALUE") -> dict[str, object]:
    """KEY=VALUE pairs with TOML values (``epochs=40``, ``routing="hard"``; a bare word is a string)."""
    import tomllib

    out: dict[str, object] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise typer.BadParameter(f"expected {form}, got {value!r}", param_hint=option)
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()  # a bare word: routing=hard means the string "hard"
    return out


@app.command()
def recommend(
    bundle: Annotated[Path, typer.Option(help="A bundle directory from `facetrec train`.")],
    user: Annotated[str | None, typer.Option(help="A known user id.")] = None,
    history: Annotated[
        str | None, typer.Option(help="Comma-separated item ids: a new user's or a session's history.")
    ] = None,
    n: Annotated[int, typer.Option(help="How many items.")] = 10,
    diversity: Annotated[str | None, typer.Option(help="none, mmr, dpp, quotas, calibration or xquad.")] = None,
    lam: Annotated[
        float | None, typer.Option("--lambda", help="Relevance vs diversity trade-off (1 = relevance only).")
    ] = None,
    explain: Annotated[bool, typer.Option(help="Say why each item is recommended.")] = False,
    llm_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_api_key: LlmApiKey = None,
    llm_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the model's answers; then the template labels.")
    ] = 30.0,
    llm_max_tokens: LlmMaxTokens = 120,
    llm_cache: LlmCache = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Print recommendations for a user or a raw history, grouped by the interest that produced them;
    with --llm-url, each interest's name and sentence from a language model too."""
    import numpy as np
    from rich.table import Table

    from facetrec.recommender import Recommender, list_rows
    from facetrec.types import Query

    if user is None and not history:
        raise typer.BadParameter("give --user or --history", param_hint="--user")
    llm = _llm(llm_url, llm_model, llm_api_key, llm_timeout, llm_timeout, llm_max_tokens, llm_cache)
    with _stage(f"loading {bundle}"):
        recommender = Recommender.load(bundle)
    query = Query(user_id=user, history=tuple(h.strip() for h in (history or "").split(",") if h.strip()), n=n)
    overrides = {k: v for k, v in {"diversity": diversity, "lam": lam}.items() if v is not None}
    found = recommender.interests(query)
    labels = found[1] if found else []
    listing = recommender.recommend(query, explain=explain, **overrides)
    summaries = _summaries(llm, found, recommender.catalog) if llm is not None else None
    if as_json:
        out = {"user": user, "interests": labels, "items": list_rows(recommender, listing, labels)}
        if summaries is not None:
            out["summaries"] = [summary.as_dict() for summary in summaries]
        _emit(out)
        return
    for j, summary in enumerate(summaries or []):
        said = summary.sentence if summary.source == "llm" else f"(template label: {summary.reason})"
        console.print(f"interest {j + 1}: {summary.name} - {said}", highlight=False, markup=False)
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
def models(as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List the registered models: what each needs from the data and what it can do."""
    from rich.table import Table

    from facetrec.scoring.registry import describe

    rows = describe()
    if as_json:
        _emit(rows)
        return
    table = Table(title="registered models")
    for column in ("kind", "needs", "can", "summary"):
        table.add_column(column, no_wrap=column == "kind")
    for row in rows:
        table.add_row(row["kind"], ", ".join(row["needs"]), ", ".join(row["can"]), row["summary"])
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
    store: Annotated[
        str | None,
        typer.Option(
            help="Event store as a location: postgresql://user@host/db, sqlite:///path (instead of --events)."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="FACETREC_API_KEY", help="Key for POST /events and /admin (default: a random one, printed)."
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Worker processes; each loads the bundle, all share the event store.")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send a request body; a slower one gets a 408.")
    ] = 10.0,
    llm_url: LlmUrl = None,
    llm_model: LlmModel = None,
    llm_api_key: LlmApiKey = None,
    llm_timeout: Annotated[float, typer.Option(help="Seconds one chat call may take.")] = 30.0,
    llm_budget: Annotated[
        float,
        typer.Option(
            help="Seconds GET /users/{id}/interests waits for the model; then the template labels, and a late "
            "answer is kept for the next request."
        ),
    ] = 5.0,
    llm_max_tokens: LlmMaxTokens = 120,
    llm_cache: LlmCache = None,
) -> None:
    """Serve recommendations, events, interests and a web page over HTTP (docs/serving.md)."""
    import secrets

    from facetrec.serving.server import run

    if not 1 <= port <= 65535:
        raise typer.BadParameter("must be between 1 and 65535", param_hint="--port")
    if workers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--workers")
    if events is not None and store is not None:
        raise typer.BadParameter("give --store or --events, not both", param_hint="--store")
    if not 0 < body_timeout < float("inf"):
        raise typer.BadParameter("must be a positive number of seconds", param_hint="--body-timeout")
    llm = _llm(llm_url, llm_model, llm_api_key, llm_timeout, llm_budget, llm_max_tokens, llm_cache)
    page = f"http://{host}:{port}/"
    if not api_key:
        api_key = secrets.token_urlsafe(24)
        typer.echo(f"no --api-key or FACETREC_API_KEY: writes need this key for this run: {api_key}")
        page += f"#key={api_key}"  # the page reads it from the fragment, which is never sent to the server
    typer.echo(f"web page: {page}\nAPI: http://{host}:{port}/docs (OpenAPI)")  # plain: never wrapped
    if llm is not None:
        typer.echo(f"interest summaries: model {llm.model!r} at {llm.url}")
    run(bundle, host, port, store or events, api_key, workers, log_level, body_timeout, llm)


@app.command()
def retrain(
    bundle: Annotated[Path, typer.Option(help="The bundle the service runs.")],
    out: Annotated[Path, typer.Option(help="Where to write the new bundle.")],
    events: Annotated[Path | None, typer.Option(help="The service's SQLite event store.")] = None,
    store: Annotated[
        str | None, typer.Option(help="The service's event store as a location: postgresql://..., sqlite:///...")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the model's epochs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Fold the stored events into a new bundle offline; swap it in with POST /admin/reload."""
    from facetrec.serving.retrain import retrain as fold_and_fit
    from facetrec.serving.store import open_store

    if (events is None) == (store is None):
        raise typer.BadParameter("give one of --events or --store", param_hint="--store")
    if events is not None and not events.is_file():
        raise typer.BadParameter(f"{events} does not exist", param_hint="--events")
    opened = open_store(store or events)
    try:
        with _stage(f"retraining {bundle} with the events in {opened.location}"):
            manifest, n = fold_and_fit(bundle, opened, out, epochs)
    finally:
        opened.close()
    if as_json:
        _emit({"bundle": str(manifest.parent), "events_folded": n})
        return
    console.print(f"wrote bundle {manifest.parent} ({n:,} new events folded in)", highlight=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its dataset.")] = Path("demo-output"),
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 2000,
    items: Annotated[int, typer.Option(help="Synthetic items.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    multimodal: Annotated[
        bool,
        typer.Option(
            help="Run the image and audio path instead: a picture and a sound per item, encoded, fused with the "
            "ID and the text, and each recommendation's matching modality."
        ),
    ] = False,
    image_model: Annotated[
        str | None,
        typer.Option(help="--multimodal: an image model by local path or hub name (default: random weights)."),
    ] = None,
    audio_model: Annotated[
        str | None,
        typer.Option(help="--multimodal: an audio model by local path or hub name (default: random weights)."),
    ] = None,
) -> None:
    """Run the end-to-end job: synthesise, import, split, train, evaluate, recommend."""
    from facetrec.demo import run_demo, run_multimodal_demo

    if multimodal:
        run_multimodal_demo(
            console, out, users=users, items=items, seed=seed, image_model=image_model, audio_model=audio_model
        )
        return
    if image_model or audio_model:
        raise typer.BadParameter("the image and audio models are for the --multimodal demo", param_hint="--multimodal")
    run_demo(console, out, users=users, items=items, seed=seed)


def _llm(
    url: str | None,
    model: str | None,
    api_key: str | None,
    timeout: float,
    budget: float,
    max_tokens: int,
    cache: Path | None,
) -> LLMConfig | None:
    """The --llm-* options as an LLMConfig, or None without --llm-url."""
    from facetrec.summaries import LLMConfig

    if url is None:
        if model is not None:
            raise typer.BadParameter("--llm-model needs --llm-url (the chat endpoint)", param_hint="--llm-model")
        return None
    if model is None:
        raise typer.BadParameter(
            "--llm-url needs --llm-model (the model's name at the endpoint)", param_hint="--llm-model"
        )
    cache_dir = str(cache.resolve()) if cache is not None else None
    return LLMConfig(url, model, api_key or None, timeout, budget, max_tokens, cache_dir=cache_dir)


def _summaries(llm: LLMConfig, found: tuple[UserState, list[str]] | None, catalog: ItemCatalog) -> list[Summary]:
    """Each interest's summary from the language model (none without interests)."""
    from facetrec.summaries import Summarizer, evidence

    if found is None:
        return []
    summarizer = Summarizer(llm)
    try:
        return summarizer.summarize(evidence(found[0], found[1], catalog))
    finally:
        summarizer.close()


def _note(message: str) -> None:
    """A progress line on stderr, printed plainly (stdout keeps the results)."""
    print(message, file=sys.stderr, flush=True)


def _stage(message: str):
    """A spinner, then a tick line with the duration, on stderr (stdout keeps the results)."""
    from rich.markup import escape

    from facetrec.console import stage

    return stage(Console(stderr=True, soft_wrap=True, highlight=False), escape(message))


def _print_notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def main() -> None:
    """Entry point: facetrec's own errors print as one clear line, not a traceback."""
    try:
        app()
    except FacetrecError as exc:
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise SystemExit(2) from None
