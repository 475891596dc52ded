"""`facetrec serve` argument checks that need no server."""

from __future__ import annotations

from typer.testing import CliRunner

from facetrec.cli import app
from facetrec.errors import ConfigError


def test_serve_refuses_a_missing_bundle_before_creating_a_store(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--bundle", str(tmp_path / "nothing"), "--api-key", "k"])
    assert isinstance(result.exception, ConfigError) and "no manifest.json" in str(result.exception)
    assert not (tmp_path / "events.sqlite").exists()


def test_serve_checks_port_and_workers(tmp_path):
    for args, hint in ((["--port", "0"], "--port"), (["--workers", "0"], "--workers")):
        result = CliRunner().invoke(app, ["serve", "--bundle", str(tmp_path), *args])
        assert result.exit_code == 2 and hint in result.output
