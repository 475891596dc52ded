"""Experiment tracking with MLflow: each evaluation, tuning trial and benchmark becomes a run.

A run records what was run (params: the configuration, flattened to dotted keys), what came of
it (metrics), where it came from (tags: facetrec's version and git commit, the command line,
the dataset's name and fingerprint) and the files it wrote (artifacts). Runs that belong to one
command (a model of an evaluation, a trial of a search) are children of that command's run.

The store is ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI`` when given (a server, or a database
such as ``sqlite:///path/mlflow.db``), else MLflow's local default: a SQLite database
``mlflow.db`` in the current directory, with artifacts in ``mlruns/`` beside it. (MLflow's
older ``./mlruns`` file store is in maintenance mode and refuses new runs.)

Tracking never costs a result: when the store cannot be reached or refuses a value, one
warning says so and the command goes on untracked. MLflow is imported only when a run starts
(it takes about a second).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from facetrec import __version__

ENV_SWITCH = "FACETREC_TRACKING"
"""Set to 0 (or false, no, off) to switch tracking off where no --no-track option reaches."""

_MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
_BATCH = 100  # MLflow's limit on params (and tags) per log_batch call


class TrackingWarning(UserWarning):
    """Tracking failed; the results were kept and the run went on without tracking."""


def enabled_by_env() -> bool:
    """False when ``$FACETREC_TRACKING`` is 0, false, no or off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def resolve_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<current directory>/mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"model": {"l2": 5}}`` -> ``{"model.l2": 5}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def key(name: str) -> str:
    """A metric or param name MLflow accepts: ``ndcg@10`` -> ``ndcg_at_10`` (MLflow allows letters,
    digits and ``_-. /:`` only)."""
    return re.sub(r"[^\w.\- /:]", "_", name.replace("@", "_at_"))


def dataset_tags(directory: str | Path) -> dict[str, str]:
    """Name, path and content fingerprint of a dataset directory (from its manifest.json)."""
    directory = Path(directory)
    tags = {"dataset.path": str(directory)}
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return tags
    for field in ("name", "fingerprint"):
        if manifest.get(field):
            tags[f"dataset.{field}" if field != "name" else "dataset"] = str(manifest[field])
    return tags


@cache
def git_commit() -> str | None:
    """The commit of the facetrec checkout this code runs from, with "-dirty" when tracked files
    have changes; None for an installed package (no checkout)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except OSError:  # no git on this machine
        return None
    return (commit + ("-dirty" if dirty else "")) if commit else None


def context_tags() -> dict[str, str]:
    """Where a run came from: facetrec's version and commit, and the command line."""
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    tags = {"facetrec.version": __version__, "facetrec.command": command, "mlflow.source.name": command}
    commit = git_commit()
    if commit:
        tags["facetrec.git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    return tags


def _warn(message: str) -> None:
    warnings.warn(message, TrackingWarning, stacklevel=2)


class _Store:
    """The MLflow client of one command's runs; ``client`` becomes None after the first failure."""

    def __init__(self, uri: str, warn: Callable[[str], None]) -> None:
        self.uri, self.warn = uri, warn
        self.client: Any = None
        self.client = self._attempt(self._connect)

    def _connect(self) -> Any:
        from mlflow.tracking import MlflowClient

        if "MLFLOW_LOGGING_LEVEL" not in os.environ:  # MLflow's INFO lines would mix into the progress on stderr
            logging.getLogger("mlflow").setLevel(logging.WARNING)
        return MlflowClient(tracking_uri=self.uri)

    def call(self, action: Callable[[], Any]) -> Any:
        """``action()``, or None once tracking has failed."""
        return None if self.client is None else self._attempt(action)

    def _attempt(self, action: Callable[[], Any]) -> Any:
        """Run ``action``; on any failure warn, stop tracking and return None."""
        try:
            return action()
        except Exception as exc:
            self.client = None
            self.warn(
                f"tracking to {self.uri} failed ({type(exc).__name__}: {exc}); the results are kept and the run "
                "goes on without tracking"
            )
            return None

    def artifact_location(self, experiment: str) -> str | None:
        """For a local SQLite store, ``mlruns/EXPERIMENT`` beside the database (MLflow would use
        the current directory's ``mlruns``); other stores choose their own."""
        if not self.uri.startswith("sqlite:///"):
            return None
        folder = re.sub(r"[^\w.-]+", "-", experiment).strip("-") or "default"
        return (Path(self.uri.removeprefix("sqlite:///")).resolve().parent / "mlruns" / folder).as_uri()

    def experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=self.artifact_location(name))


class Run:
    """One MLflow run, or none (tracking off, or failed earlier): every method is safe to call."""

    def __init__(self, store: _Store | None = None, run_id: str | None = None, experiment_id: str | None = None):
        self._store, self.run_id, self._experiment_id = store, run_id, experiment_id

    @property
    def active(self) -> bool:
        return self._store is not None and self._store.client is not None and self.run_id is not None

    @property
    def uri(self) -> str | None:
        return self._store.uri if self._store is not None else None

    def log(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        step: int = 0,
    ) -> None:
        """Params (flattened; a param cannot change once logged), numeric metrics and tags."""
        if not self.active:
            return
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        param_list = [Param(key(k), str(v)[:_MAX_PARAM_LENGTH]) for k, v in flatten(params or {}).items()]
        metric_list = [
            Metric(key(k), float(v), now, step)
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        tag_list = [RunTag(k, str(v)[:_MAX_PARAM_LENGTH]) for k, v in (tags or {}).items()]
        store = self._store
        assert store is not None and store.client is not None
        for start in range(0, max(len(param_list), len(tag_list), len(metric_list)), _BATCH):
            chunk = slice(start, start + _BATCH)
            store.call(
                lambda chunk=chunk: store.client.log_batch(  # type: ignore[union-attr]
                    self.run_id, metrics=metric_list[chunk], params=param_list[chunk], tags=tag_list[chunk]
                )
            )

    def log_history(self, name: str, values: Sequence[float]) -> None:
        """A metric's values over steps (e.g. the validation score after each epoch)."""
        for step, value in enumerate(values):
            self.log(metrics={name: value}, step=step)

    def log_artifacts(self, paths: Sequence[str | Path]) -> None:
        """Copy files into the run's artifacts."""
        store = self._store
        for path in paths:
            if self.active:
                store.call(lambda path=path: store.client.log_artifact(self.run_id, str(path)))  # type: ignore[union-attr]

    def log_child(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        status: str = "FINISHED",
    ) -> Run:
        """A finished child run (one model of an evaluation, one trial of a search)."""
        if not self.active:
            return Run()
        store = self._store
        assert store is not None
        child_tags = {"mlflow.parentRunId": self.run_id, **context_tags(), **(tags or {})}
        created = store.call(
            lambda: store.client.create_run(  # type: ignore[union-attr]
                self._experiment_id, tags={k: str(v) for k, v in child_tags.items()}, run_name=name
            )
        )
        if created is None:
            return Run()
        child = Run(store, created.info.run_id, self._experiment_id)
        child.log(params=params, metrics=metrics)
        store.call(lambda: store.client.set_terminated(child.run_id, status))  # type: ignore[union-attr]
        return child


@contextmanager
def track(
    experiment: str,
    run_name: str | None = None,
    *,
    uri: str | None = None,
    enabled: bool = True,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] = _warn,
) -> Iterator[Run]:
    """A run in ``experiment`` (created when new) for the block: FINISHED when the block ends,
    FAILED (KILLED on Ctrl-C) when it raises. With ``enabled`` false nothing is imported or
    written and the run's methods do nothing. ``warn`` receives the message of a failure
    (default: a :class:`TrackingWarning`)."""
    if not enabled:
        yield Run()
        return
    store = _Store(resolve_uri(uri), warn)
    experiment_id = store.call(lambda: store.experiment_id(experiment))
    all_tags = {**context_tags(), **(tags or {})}
    created = store.call(
        lambda: store.client.create_run(  # type: ignore[union-attr]
            experiment_id, tags={k: str(v) for k, v in all_tags.items()}, run_name=run_name
        )
    )
    run = Run(store, created.info.run_id if created is not None else None, experiment_id)
    run.log(params=params)
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if run.active:
            store.call(lambda: store.client.set_terminated(run.run_id, status))  # type: ignore[union-attr]
