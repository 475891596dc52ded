"""Fixtures for the service tests: a small bundle trained once per session, and real server
processes (``python -m facetrec serve``) on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from facetrec.ranking import RankConfig
from facetrec.recommender import fit_recommender
from facetrec.testing import small_synthetic

KEY = "test-key-0123456789"
PARAMS = {"encoder": "lexical", "hidden": 32, "lr": 3e-3, "dropout": 0.2, "epochs": 2, "progress": False}


@pytest.fixture(scope="session")
def data():
    return small_synthetic().dataset


@pytest.fixture(scope="session")
def bundle(data, tmp_path_factory) -> Path:
    """A facet model (lexical text encoder) on the small synthetic data, saved as a bundle."""
    path = tmp_path_factory.mktemp("bundle") / "v1"
    fit_recommender(data, "facet", PARAMS, RankConfig(candidates=50), first_only=True).save(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A `facetrec serve` child process and an HTTP client pointed at it."""

    process: subprocess.Popen
    url: str
    events: Path | str
    log: Path
    client: httpx.Client

    def kill(self) -> None:
        """SIGKILL to the server and its workers (its own process group): no shutdown handlers,
        no flushing; what was committed is all that survives."""
        self._kill_group()
        self.process.wait(timeout=30)
        self.client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        self._kill_group()  # whatever did not stop in time, workers included: never left running
        self.process.wait()
        self.client.close()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_server(bundle: Path, events: Path | str, log: Path, *extra: str, api_key: str | None = KEY) -> Server:
    """``events``: a SQLite file (``--events``) or a store location such as a PostgreSQL URL (``--store``)."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FACETREC_API_KEY", None)
    args = [sys.executable, "-m", "facetrec", "serve", "--bundle", str(bundle), "--port", str(port)]
    args += ["--store", events] if isinstance(events, str) else ["--events", str(events)]
    args += ["--log-level", "warning", *extra]
    if api_key is not None:
        args += ["--api-key", api_key]
    out = log.open("ab")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not come up in 120 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return Server(process, url, events, log, httpx.Client(base_url=url, timeout=30))


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory) -> Iterator[Server]:
    """One server process per test module, on its own event store."""
    root = tmp_path_factory.mktemp("server")
    running = start_server(bundle, root / "events.sqlite", root / "server.log")
    yield running
    running.stop()
