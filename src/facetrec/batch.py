"""Batch jobs on Ray: encode every catalogue item, or make every user's top-K list, on a local Ray
instance or a cluster, and write the result to one Parquet file.

Both jobs cut their input (the catalogue's items, or the user ids) into blocks of consecutive
rows: block ``b`` holds rows ``b * size`` to ``(b + 1) * size - 1``. A Ray Data dataset holds one
Ray block per block, and ``map_batches`` sends each to a fixed pool of actors that load the model
(or the bundle) once and then run block after block through the in-process code: the text
encoder's templates and model (``TextItemEncoder``), the image and audio encoders, or
``Recommender.recommend_batch``; so the vectors and lists equal the in-process ones.

Failures are per block. An actor catches what goes wrong with a block (a model error, an image
that cannot be read) and returns the block's ids with the error and the first failing id instead
of results; the driver writes the good blocks as they arrive, in input order, shows a progress
line over blocks on stderr and names each failed block as it happens. Ray Data's own
``max_errored_blocks`` is not used: it drops a failed task's rows with only a log line, so the
block index, the failing id and the error could not be reported. A job with more failed blocks
than ``max_failed_blocks`` (default 0) raises :class:`BatchJobError` after the other blocks
finish; their rows are kept beside the output as ``<out>.partial``.

Ray is optional (``pip install 'facetrec[ray]'``) and imported only when a job starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from facetrec.errors import ConfigError, FacetrecError, UnknownIdError
from facetrec.types import ItemCatalog

MODALITIES = ("text", "image", "audio")
RAY_EXTRA = "pip install 'facetrec[ray]'"
_BLOCK, _ERROR, _FIRST = "__block__", "__error__", "__first_failed__"
"""Columns the actors add to each row: its block, and for a failed block the error and first failing id."""
_VECTOR = pa.list_(pa.float32())
_SHOWN = 5
"""Failed blocks named in an error message (all of them are in the summary)."""


class BatchJobError(FacetrecError, RuntimeError):
    """A batch job failed: more blocks failed than allowed, or Ray itself stopped.

    ``summary`` (an :class:`EncodeSummary` or :class:`RecommendSummary`, None when Ray stopped)
    lists every failed block.
    """

    def __init__(self, message: str, summary: EncodeSummary | RecommendSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class FailedBlock:
    """A block whose rows were not written: its index, size, first failing id and that id's error."""

    index: int
    size: int
    first_id: str
    error: str


@dataclass(frozen=True)
class EncodeSummary:
    """What :func:`encode_items` wrote."""

    out: str
    modality: str
    encoder_id: str
    dim: int
    """Vector length (0 when no block succeeded)."""
    items: int
    """Items in the catalogue."""
    written: int
    """Items written (all but those of failed blocks)."""
    missing: int
    """Written image/audio items without a file: zero vectors, as the in-process encoder gives them."""
    blocks: int
    failed_blocks: tuple[FailedBlock, ...]
    actors: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecommendSummary:
    """What :func:`recommend_all` wrote."""

    out: str
    k: int
    users: int
    """Users asked for."""
    written_users: int
    """Users whose lists were written (all but those of failed blocks)."""
    rows: int
    """Rows written: one per (user, rank)."""
    blocks: int
    failed_blocks: tuple[FailedBlock, ...]
    actors: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- the two jobs


def encode_items(
    source: str | Path | ItemCatalog,
    out: str | Path,
    modality: str = "text",
    *,
    encoder: str | None = None,
    settings: Mapping[str, Any] | None = None,
    ray_address: str | None = None,
    block_items: int = 1000,
    concurrency: int | None = None,
    cpus_per_actor: float = 1.0,
    max_failed_blocks: int = 0,
    progress: bool = True,
) -> EncodeSummary:
    """Encode every item of a dataset directory's (or an in-memory) catalogue on Ray and write
    Parquet rows (item_id, vector: fixed-size list of float32) in catalogue order to ``out``.

    ``encoder`` is the text encoder ("minilm", "minilm-onnx-int8", "lexical" or a
    sentence-transformers path or name; default minilm) or, for image and audio, the model's path
    or Hub name (required). ``settings`` are the encoder config's other fields: template,
    max_tokens, batch_size, store_dir for text (``TextEncoderConfig``); batch_size, store_dir,
    root, timeout (and max_seconds for audio) for media. The lexical encoder is fitted once on the
    whole catalogue here, on the driver, and the fitted encoder is shipped to the actors, so its
    vectors equal the in-process ones. Relative paths (model, root, store_dir) are resolved here;
    on a cluster they must exist on every node.
    """
    started = time.perf_counter()
    _check_job(block_items, concurrency, cpus_per_actor, max_failed_blocks, "block_items")
    if modality not in MODALITIES:
        raise ConfigError(f"modality: must be one of {list(MODALITIES)}, got {modality!r}")
    catalog = _catalog(source)
    setup = _TextSetup(catalog, encoder, settings) if modality == "text" else _MediaSetup(modality, encoder, settings)
    from facetrec.data.dataset import catalog_table

    table = catalog_table(catalog)
    table = table.drop_columns([c for c in table.column_names if c.startswith("vector.")])  # not read
    tables = _blocks(table, block_items)
    missing = _missing_per_block(catalog, modality, block_items, len(tables))
    writer = _VectorWriter(Path(out), setup.encoder_id, modality)
    with ray_session(ray_address) as ray, writer:
        actors = _actors(ray, concurrency, cpus_per_actor, len(tables))
        failed = _execute(
            ray, tables, _EncodeActor, (modality, setup.actor_config, setup.lexical, cpus_per_actor), actors,
            cpus_per_actor, f"encoding {modality}", progress, writer.write,
        )  # fmt: skip
    lost = {f.index for f in failed}
    summary = EncodeSummary(
        str(out), modality, setup.encoder_id, writer.dim, len(catalog), writer.rows,
        sum(m for b, m in enumerate(missing) if b not in lost), len(tables), failed, actors,
        round(time.perf_counter() - started, 3),
    )  # fmt: skip
    return _finish(summary, writer, max_failed_blocks, "item")


def recommend_all(
    bundle: str | Path,
    out: str | Path,
    k: int = 10,
    *,
    users: Sequence[str] | None = None,
    ray_address: str | None = None,
    block_users: int = 1000,
    concurrency: int | None = None,
    cpus_per_actor: float = 1.0,
    max_failed_blocks: int = 0,
    progress: bool = True,
) -> RecommendSummary:
    """Top-``k`` lists for ``users`` (default: every user of the bundle's histories) on Ray, written
    as Parquet rows (user_id, rank from 1, item_id, score) in user order to ``out``.

    Each actor loads the bundle once, as ``facetrec recommend`` does (checked, then
    ``Recommender.load``), and calls ``Recommender.recommend_batch`` on the bundle's histories for
    each block, so the lists equal the in-process ones. The bundle is read from its path by every
    actor: on a cluster it must be at that path on every node (a shared file system).
    """
    started = time.perf_counter()
    _check_job(block_users, concurrency, cpus_per_actor, max_failed_blocks, "block_users")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k: must be an integer >= 1, got {k!r}")
    from facetrec.serving.bundle import check_bundle

    root = Path(bundle).expanduser().resolve()
    check_bundle(root)
    ids = _users(root, users)
    tables = _blocks(pa.table({"user_id": pa.array(ids, pa.string())}), block_users)
    writer = _ListWriter(Path(out))
    with ray_session(ray_address) as ray, writer:
        actors = _actors(ray, concurrency, cpus_per_actor, len(tables))
        failed = _execute(
            ray, tables, _ListActor, (str(root), k), actors, cpus_per_actor, f"top-{k} lists", progress, writer.write
        )
    summary = RecommendSummary(
        str(out), k, len(ids), writer.users, writer.rows, len(tables), failed, actors,
        round(time.perf_counter() - started, 3),
    )  # fmt: skip
    return _finish(summary, writer, max_failed_blocks, "user")


# ---------------------------------------------------------------------- Ray


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a ConfigError naming the extra that installs it."""
    try:
        import ray
        import ray.data  # Ray Data is a separate part of the ray package
    except ImportError:
        raise ConfigError(f"batch jobs run on Ray, which is not installed; install it with: {RAY_EXTRA}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray for one job: the Ray this process is already connected to, else the cluster at
    ``address`` ("auto", "ray://head:10001", "head:6379"), else a new local instance using this
    machine's cores. Only a connection or instance started here is shut down afterwards."""
    from facetrec.content.media import one_line
    from facetrec.content.onnx_backend import available_cores

    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    where = {"address": address} if address else {"address": "local", "num_cpus": available_cores()}
    try:
        ray.init(**where, include_dashboard=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = f"connect to the Ray cluster at {address!r}" if address else "start a local Ray instance"
        cause = _root(exc)
        lines = str(cause).strip().splitlines()  # Ray puts the reason on the last line of a cause's traceback
        why = _reason(exc) + (f" ({one_line(lines[-1], 300)})" if cause is not exc and lines else "")
        raise ConfigError(f"cannot {target}: {why}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _actors(ray: Any, concurrency: int | None, cpus_per_actor: float, blocks: int) -> int:
    """The pool size: ``concurrency``, else as many actors as the cluster's CPUs hold; never more than blocks."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    if cpus_per_actor > cpus:
        raise ConfigError(f"cpus_per_actor: {cpus_per_actor:g} is more than the Ray cluster's {cpus:g} CPUs")
    wanted = concurrency if concurrency is not None else max(1, int(cpus // cpus_per_actor))
    return max(1, min(wanted, blocks))


def _execute(
    ray: Any,
    tables: list[pa.Table],
    actor: type,
    actor_args: tuple,
    actors: int,
    cpus_per_actor: float,
    description: str,
    progress: bool,
    write: Callable[[pa.Table], None],
) -> tuple[FailedBlock, ...]:
    """Run ``actor`` over the blocks, hand the good rows to ``write`` in block order, and return the failed blocks."""
    sizes = [t.num_rows for t in tables]
    dataset = ray.data.from_arrow(tables)
    context = dataset.context  # this dataset's own copy: the process-wide context is left as it is
    context.enable_progress_bars = False  # the line over blocks below replaces Ray's bars
    context.execution_options.preserve_order = True
    mapped = dataset.map_batches(
        actor,
        fn_constructor_args=actor_args,
        batch_size=max(sizes),
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )
    failed: dict[int, FailedBlock] = {}
    received = np.zeros(len(sizes), np.int64)
    with _quiet_ray_data(), _progress(len(sizes), description, progress) as advance:
        batches = iter(mapped.iter_batches(batch_size=None, batch_format="pyarrow"))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:  # a worker or node died, or the cluster went away: Ray's own failure
                raise BatchJobError(
                    f"the Ray job stopped: {_reason(_root(exc))} (Ray's logs on the head node have the details)"
                ) from None
            errors = batch.column(_ERROR)
            good = batch.filter(errors.is_null())
            if good.num_rows:
                write(good.drop_columns([_BLOCK, _ERROR, _FIRST]))
            bad = batch.filter(errors.is_valid())
            for row in bad.select([_BLOCK, _ERROR, _FIRST]).to_pylist():
                index = int(row[_BLOCK])
                if index not in failed:
                    failed[index] = FailedBlock(index, sizes[index], row[_FIRST], row[_ERROR])
            blocks, counts = np.unique(batch.column(_BLOCK).to_numpy(), return_counts=True)
            for index, count in zip(blocks, counts, strict=True):
                received[index] += count
                if received[index] == sizes[index]:
                    advance(failed.get(int(index)))
    return tuple(sorted(failed.values(), key=lambda f: f.index))


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's log lines (execution plans, a note that its bars are off, its view of a failure)
    kept out of the terminal while a job runs; Ray keeps them in its log files."""
    logger = logging.getLogger("ray.data")
    before = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(before)


# ---------------------------------------------------------------------- the actors


class _BlockActor:
    """What both actors share: each block of a Ray batch is run alone, and a block that fails
    becomes rows carrying its error and its first failing id instead of results.

    An actor that cannot load its model or bundle does not raise (Ray would print the worker's
    traceback and retry): it reports that error for every block it gets.
    """

    key: ClassVar[str]
    payload: ClassVar[dict[str, pa.DataType]]
    broken: str | None = None

    def run(self, rows: pa.Table) -> tuple[pa.Table | None, tuple[str, str] | None]:
        """(payload columns for ``rows``, None), or (None, (first failing id, error)) for a reported failure."""
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        blocks = batch.column(_BLOCK).to_numpy()
        parts = []
        for index in dict.fromkeys(blocks.tolist()):
            rows = batch.filter(pa.array(blocks == index)).drop_columns([_BLOCK])
            parts.append(self._block(int(index), rows))
        return pa.concat_tables(parts)

    def _block(self, index: int, rows: pa.Table) -> pa.Table:
        ids = rows.column(self.key)
        n = rows.num_rows
        failure: tuple[str, str] | None
        if self.broken is not None:
            result, failure = None, (str(ids[0].as_py()), self.broken)
        else:
            try:
                result, failure = self.run(rows)
            except Exception as exc:  # any error of this block's items: reported, never raised to Ray
                result, failure = None, self._first_failure(rows, exc)
        columns: dict[str, Any] = {self.key: ids}
        if failure is None:
            columns |= {name: result.column(name) for name in self.payload}  # type: ignore[union-attr]
        else:
            columns |= {name: pa.nulls(n, kind) for name, kind in self.payload.items()}
        columns[_BLOCK] = pa.array(np.full(n, index, np.int64))
        columns[_ERROR] = pa.array([None if failure is None else failure[1]] * n, pa.string())
        columns[_FIRST] = pa.array([None if failure is None else failure[0]] * n, pa.string())
        return pa.table(columns)

    def _first_failure(self, rows: pa.Table, exc: Exception) -> tuple[str, str]:
        """The first row that fails alone, and its error; else the first row with the block's error."""
        ids = rows.column(self.key).to_pylist()
        if len(ids) > 1:
            for i, one in enumerate(ids):
                try:
                    _, failure = self.run(rows.slice(i, 1))
                except Exception as alone:
                    return str(one), _reason(alone)
                if failure is not None:
                    return failure
        return str(ids[0]), _reason(exc)


class _EncodeActor(_BlockActor):
    """Encodes blocks of catalogue rows with one encoder, loaded once per actor."""

    key: ClassVar[str] = "item_id"
    payload: ClassVar[dict[str, pa.DataType]] = {"vector": _VECTOR}

    def __init__(self, modality: str, config: dict[str, Any], lexical: Any, threads: float) -> None:
        self.modality, self.lexical = modality, lexical
        _quiet_loading()
        try:
            if modality == "text":
                from facetrec.config import from_dict
                from facetrec.content.item_encoder import TextEncoderConfig, TextItemEncoder

                self.encoder: Any = TextItemEncoder(from_dict(TextEncoderConfig, config, "text encoder"))
                if lexical is None:
                    model = self.encoder.language_model()
                    model.threads = max(1, int(threads))  # torch threads: the actor's CPUs, not the node's
                    _ = model.dim  # loads the model now, once
            else:
                from facetrec.content.media import media_encoder

                self.encoder = media_encoder(modality, **config)
                self.encoder.model()
        except Exception as exc:
            self.broken = f"cannot load the {modality} encoder: {_reason(exc)}"

    def run(self, rows: pa.Table) -> tuple[pa.Table | None, tuple[str, str] | None]:
        from facetrec.data.dataset import catalog_from_table

        catalog = catalog_from_table(rows)
        if self.modality != "text":
            found = self.encoder.encode(catalog)
            if found.failed:
                item, reason = next(iter(found.failed.items()))
                return None, (item, f"{self.modality} file: {reason}")
            vectors = found.embeddings.vectors
        elif self.lexical is not None:
            vectors = self.lexical.encode_dense(self.encoder.texts(catalog))
        else:
            vectors = self.encoder.encode(catalog).vectors
        return pa.table({"vector": _list_array(np.asarray(vectors, np.float32))}), None


class _ListActor(_BlockActor):
    """Makes blocks of users' lists with one bundle, loaded once per actor."""

    key: ClassVar[str] = "user_id"
    payload: ClassVar[dict[str, pa.DataType]] = {"items": pa.list_(pa.string()), "scores": _VECTOR}

    def __init__(self, bundle: str, k: int) -> None:
        self.k = k
        _quiet_loading()
        try:
            from facetrec.recommender import Recommender

            self.recommender = Recommender.load(bundle)
            self.history = self.recommender.history.sorted()
        except Exception as exc:
            self.broken = f"cannot load the bundle {bundle}: {_reason(exc)}"

    def run(self, rows: pa.Table) -> tuple[pa.Table | None, tuple[str, str] | None]:
        ids = rows.column(self.key).to_pylist()
        users = self.history.users.lookup(ids)
        if (users < 0).any():
            raise UnknownIdError(f"unknown user id {ids[int(np.argmax(users < 0))]!r}")
        lists = self.recommender.recommend_batch(self.history, users, self.k)
        items = pa.array([[str(i) for i in found.ids] for found in lists], pa.list_(pa.string()))
        scores = pa.array([found.scores.tolist() for found in lists], _VECTOR)
        return pa.table({"items": items, "scores": scores}), None


def _quiet_loading() -> None:
    """No model-loading bars in an actor: Ray would print each actor's to the driver's terminal."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


# ---------------------------------------------------------------------- inputs


def _check_job(block: int, concurrency: int | None, cpus_per_actor: float, max_failed: int, name: str) -> None:
    def whole(value: object, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    if not whole(block, 1):
        raise ConfigError(f"{name}: must be an integer >= 1, got {block!r}")
    if concurrency is not None and not whole(concurrency, 1):
        raise ConfigError(f"concurrency: must be an integer >= 1 (actors), got {concurrency!r}")
    if not (isinstance(cpus_per_actor, int | float) and cpus_per_actor > 0):
        raise ConfigError(f"cpus_per_actor: must be > 0, got {cpus_per_actor!r}")
    if not whole(max_failed, 0):
        raise ConfigError(f"max_failed_blocks: must be an integer >= 0, got {max_failed!r}")


def _catalog(source: str | Path | ItemCatalog) -> ItemCatalog:
    if isinstance(source, ItemCatalog):
        return source
    from facetrec.data.dataset import Dataset

    return Dataset.load(Path(source).expanduser()).catalog


def _users(bundle: Path, users: Sequence[str] | None) -> list[str]:
    """The user ids to make lists for, each once, in the given (or the bundle's) order; unknown ones refused."""
    import pyarrow.parquet as pq

    known = pq.read_table(bundle / "data" / "users.parquet", columns=["user_id"]).column("user_id").to_pylist()
    if users is None:
        return known
    if isinstance(users, str):
        raise ConfigError("users: expected a list of user ids, got a single str; wrap it in a list")
    wanted = list(dict.fromkeys(str(u) for u in users))
    unknown = [u for u in wanted if u not in set(known)]
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise UnknownIdError(f"unknown user id {unknown[0]!r}{more}: not in the histories of the bundle {bundle}")
    if not wanted:
        raise ConfigError("users: the list is empty")
    return wanted


def _blocks(table: pa.Table, size: int) -> list[pa.Table]:
    """``table`` cut into blocks of ``size`` rows, each row tagged with its block's index."""
    if not table.num_rows:
        raise ConfigError("nothing to do: the input has no rows")
    out = []
    for index, start in enumerate(range(0, table.num_rows, size)):
        part = table.slice(start, size)
        out.append(part.append_column(_BLOCK, pa.array(np.full(part.num_rows, index, np.int64))))
    return out


def _missing_per_block(catalog: ItemCatalog, modality: str, size: int, blocks: int) -> list[int]:
    """Items without an image/audio reference in each block (none for text)."""
    if modality == "text":
        return [0] * blocks
    from facetrec.content.media import has_reference

    absent = np.array([not has_reference(ref) for ref in getattr(catalog, modality)], bool)
    return [int(absent[b * size : (b + 1) * size].sum()) for b in range(blocks)]


def _local(value: str | None) -> str | None:
    """An existing relative path made absolute (actors do not run in this directory); anything else as it is."""
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


class _TextSetup:
    """The text encoder checked here (config, model files), and what the actors need to rebuild it."""

    def __init__(self, catalog: ItemCatalog, encoder: str | None, settings: Mapping[str, Any] | None) -> None:
        from facetrec.config import from_dict, to_dict
        from facetrec.content.item_encoder import TextEncoderConfig, TextItemEncoder

        fields = {**(settings or {}), "encoder": encoder or "minilm"}
        config = from_dict(TextEncoderConfig, fields, "text encoder")
        text = TextItemEncoder(config)
        self.lexical: Any = None
        if text.is_lexical:  # fitted on the whole catalogue, once, as the in-process encoder is
            self.lexical = TextItemEncoder.fit_lexical(text.texts(catalog))
            self.encoder_id = self.lexical.encoder_id()
        else:
            self.encoder_id = text.language_model().encoder_id  # finds the model's files, loads no weights
        plain = to_dict(config)
        self.actor_config = {**plain, "encoder": _local(config.encoder), "store_dir": _local(config.store_dir)}


class _MediaSetup:
    """The image or audio encoder checked here (model config and preprocessor), for the actors to rebuild."""

    lexical = None

    def __init__(self, modality: str, model: str | None, settings: Mapping[str, Any] | None) -> None:
        from facetrec.content.media import media_encoder

        if not model:
            raise ConfigError(f"encoder: {modality} needs a model (a local path or a Hub name)")
        config = {**(settings or {}), "model": _local(model)}
        config["root"] = str(Path(config.get("root") or ".").expanduser().resolve())  # relative file paths start here
        if config.get("store_dir") is not None:
            config["store_dir"] = _local(config["store_dir"])
        self.encoder_id = media_encoder(modality, **config).encoder_id
        self.actor_config = config


# ---------------------------------------------------------------------- output


class _Writer:
    """One Parquet file, written a row group per batch to ``<out>.partial`` and renamed to ``out``
    when the job succeeds (a failed job's rows stay in the partial file)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.partial = out.with_name(out.name + ".partial")
        self._writer: Any = None

    def _append(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.partial, table.schema)
        self._writer.write_table(table)

    def _empty_schema(self) -> pa.Schema:
        raise NotImplementedError

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the file, also when the job stopped: what was written stays readable."""
        if self._writer is None:  # no block succeeded: still a readable (empty) file
            self._append(self._empty_schema().empty_table())
        self._writer.close()

    def publish(self) -> None:
        os.replace(self.partial, self.out)


class _VectorWriter(_Writer):
    def __init__(self, out: Path, encoder_id: str, modality: str) -> None:
        super().__init__(out)
        self.metadata = {"facetrec.encoder_id": encoder_id, "facetrec.modality": modality}
        self.dim = 0
        self.rows = 0

    def write(self, rows: pa.Table) -> None:
        vectors = rows.column("vector").combine_chunks()
        self.dim = self.dim or len(vectors[0])
        fixed = pa.FixedSizeListArray.from_arrays(vectors.flatten(), self.dim)
        table = pa.table({"item_id": rows.column("item_id"), "vector": fixed})
        self._append(table.replace_schema_metadata(self.metadata))
        self.rows += rows.num_rows

    def _empty_schema(self) -> pa.Schema:
        return pa.schema({"item_id": pa.string(), "vector": _VECTOR}, metadata=self.metadata)


class _ListWriter(_Writer):
    SCHEMA = pa.schema({"user_id": pa.string(), "rank": pa.int32(), "item_id": pa.string(), "score": pa.float32()})

    def __init__(self, out: Path) -> None:
        super().__init__(out)
        self.users = self.rows = 0

    def write(self, rows: pa.Table) -> None:
        """One row per (user, rank) from one row per user."""
        items, scores = rows.column("items").combine_chunks(), rows.column("scores").combine_chunks()
        lengths = np.asarray(items.value_lengths().fill_null(0), np.int64)
        starts = np.cumsum(lengths) - lengths
        ranks = np.arange(lengths.sum()) - np.repeat(starts, lengths) + 1
        table = pa.table({
            "user_id": rows.column("user_id").take(pa.array(np.repeat(np.arange(rows.num_rows), lengths))),
            "rank": pa.array(ranks, pa.int32()),
            "item_id": items.flatten(),
            "score": scores.flatten(),
        }, schema=self.SCHEMA)  # fmt: skip
        self._append(table)
        self.users += rows.num_rows
        self.rows += table.num_rows

    def _empty_schema(self) -> pa.Schema:
        return self.SCHEMA


def _list_array(vectors: np.ndarray) -> pa.Array:
    """float32 [n, d] as a list<float32> column (one list per row)."""
    n, d = vectors.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * d)
    return pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1), pa.float32()))


def _finish(summary: Any, writer: _Writer, max_failed: int, what: str) -> Any:
    """Publish the output, or raise BatchJobError when more blocks failed than allowed."""
    failed = summary.failed_blocks
    if len(failed) <= max_failed:
        writer.publish()
        return summary
    shown = "; ".join(f"block {f.index} (first failing {what} {f.first_id!r}): {f.error}" for f in failed[:_SHOWN])
    if len(failed) > _SHOWN:
        shown += f"; and {len(failed) - _SHOWN} more"
    raise BatchJobError(
        f"{len(failed)} of {summary.blocks} blocks failed (at most {max_failed} allowed): {shown}. The other "
        f"blocks' rows are in {writer.partial}; to accept failed blocks, allow them (max_failed_blocks, "
        "--max-failed-blocks)",
        summary,
    )


# ---------------------------------------------------------------------- progress and messages


@contextmanager
def _progress(total: int, description: str, enabled: bool) -> Iterator[Callable[[FailedBlock | None], None]]:
    """Yield ``advance(failed)``, called once per finished block: a rich bar over blocks on a
    terminal, plain lines otherwise (at most every 10 s); a failed block is named at once."""
    if not enabled:
        yield lambda failed: None
        return

    def line(failed: FailedBlock) -> str:
        return f"block {failed.index} failed (first failing id {failed.first_id!r}): {failed.error}"

    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks,"),
                   TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=Console(stderr=True, highlight=False)) as bar:
            task = bar.add_task(description, total=total, failed=0)
            count = 0

            def advance(failed: FailedBlock | None) -> None:
                nonlocal count
                if failed is not None:
                    count += 1
                    bar.console.print(line(failed), markup=False)
                bar.update(task, advance=1, failed=count)

            yield advance
        return
    start = last = time.perf_counter()
    done = failures = 0

    def advance(failed: FailedBlock | None) -> None:
        nonlocal done, failures, last
        done += 1
        if failed is not None:
            failures += 1
            print(line(failed), file=sys.stderr, flush=True)
        now = time.perf_counter()
        if done == total or now - last >= 10.0:
            last = now
            print(f"{description}: {done:,}/{total:,} blocks, {failures:,} failed, {now - start:.1f} s",
                  file=sys.stderr, flush=True)  # fmt: skip

    yield advance


def _reason(exc: BaseException) -> str:
    """An error as one line: facetrec's own message, or the exception's type and first line."""
    from facetrec.content.media import one_line

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return one_line(text if isinstance(exc, FacetrecError) else f"{type(exc).__name__}: {text}", 300)


def _root(exc: BaseException) -> BaseException:
    """The innermost cause of a Ray exception (Ray wraps the original in its own types)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc
