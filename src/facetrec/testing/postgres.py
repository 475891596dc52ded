"""A throwaway PostgreSQL server for the PostgreSQL store's tests and for CI.

``FACETREC_TEST_POSTGRES_URL`` names a server to use (its user must be allowed to create
databases). Without it, :func:`server` finds PostgreSQL's programs (``pg_config --bindir``,
``/usr/lib/postgresql/*/bin``, ``PATH``), creates a cluster in a temporary directory with
``initdb``, starts it on a free loopback port with its Unix socket in that directory, and stops
and deletes it afterwards. ``initdb`` refuses to run as root, so as root the cluster belongs to
the ``postgres`` user (else ``nobody``). When no server can be started, :class:`Unavailable`
says why and the tests that need one skip with that reason.

Each test gets an empty database of its own (:func:`database`, the ``postgres_url`` fixture, which
a test module imports as ``postgres_url_fixture``) on one server per test process. CI starts
the server once for the whole run::

    url=$(python -m facetrec.testing.postgres start DIR)   # prints the URL
    python -m facetrec.testing.postgres stop DIR
"""

from __future__ import annotations

import atexit
import functools
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV = "FACETREC_TEST_POSTGRES_URL"
"""A server to test against instead of starting one."""


class Unavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def binaries() -> Path:
    """The directory holding PostgreSQL's ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)  # newest first
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).resolve().parent))
    for directory in candidates:
        if all((Path(directory) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    raise Unavailable(
        "PostgreSQL's initdb, pg_ctl and postgres were not found (pg_config --bindir, /usr/lib/postgresql/*/bin, "
        f"PATH); install PostgreSQL (Debian: apt-get install postgresql) or set {ENV}"
    )


def start(directory: Path) -> str:
    """Create a cluster in ``directory`` and start it on a free loopback port; returns its URL."""
    bindir = binaries()
    directory.mkdir(parents=True, exist_ok=True)
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to an unprivileged user
        user = _unprivileged_user()
        shutil.chown(directory, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = directory / "data", _free_port()
    _run("initdb", [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={directory}"
    log = directory / "server.log"
    try:
        _run(
            "pg_ctl start",
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
        )
    except Unavailable as exc:
        said = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
        raise Unavailable(f"{exc}; the server's log: {said[-1] if said else '(empty)'}") from None
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def stop(directory: Path) -> None:
    """Stop the cluster :func:`start` created in ``directory`` (fast: connections are cut)."""
    as_user = ["runuser", "-u", directory.owner(), "--"] if os.geteuid() == 0 else []
    _run(
        "pg_ctl stop", [*as_user, str(binaries() / "pg_ctl"), "-D", str(directory / "data"), "-m", "fast", "-w", "stop"]
    )


@contextmanager
def server() -> Iterator[str]:
    """A server's URL: ``FACETREC_TEST_POSTGRES_URL``, else a temporary cluster, deleted afterwards."""
    if url := os.environ.get(ENV):
        yield url
        return
    directory = Path(tempfile.mkdtemp(prefix="facetrec-pg-"))
    try:
        url = start(directory)
        try:
            yield url
        finally:
            stop(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def database(url: str) -> Iterator[str]:
    """A new, empty database on the server at ``url``, dropped afterwards; yields its URL."""
    import psycopg

    name = f"facetrec_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@functools.cache
def shared_server() -> str | Unavailable:
    """One server per process, started on first use and stopped at exit (or why there is none)."""
    stack = ExitStack()
    try:
        url = stack.enter_context(server())
    except Unavailable as exc:
        return exc
    atexit.register(stack.close)
    return url


@pytest.fixture(name="postgres_url")
def postgres_url_fixture() -> Iterator[str]:
    """An empty database of its own on the shared test server; skips, saying why, without one."""
    found = shared_server()
    if isinstance(found, Unavailable):
        pytest.skip(f"no PostgreSQL server to test the PostgreSQL store: {found}")
    with database(found) as url:
        yield url


def _run(what: str, command: list[str]) -> None:
    """Run ``command``; a failure is Unavailable with its last line of output."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit status {done.returncode}"]
        raise Unavailable(f"{what}: {lines[-1]}")


def _unprivileged_user() -> str:
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise Unavailable("running as root and neither a 'postgres' nor a 'nobody' user exists for initdb")


def _version(path: str) -> float:
    """15 for /usr/lib/postgresql/15/bin (0 when it is not a number)."""
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str]) -> int:
    """``start DIR`` (prints the URL) or ``stop DIR``."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m facetrec.testing.postgres start|stop DIR", file=sys.stderr)
        return 2
    try:
        if argv[0] == "start":
            print(start(Path(argv[1])))
        else:
            stop(Path(argv[1]))
    except (Unavailable, OSError) as exc:
        print(f"PostgreSQL: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
