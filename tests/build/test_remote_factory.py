"""The bundled `recipes/remote_lancedb.yaml` and its factory, `loaderkit.connections:
remote_table`: it opens what the recipe says (uri, table, api_key, host), the key read from
the environment of the process that opens it. No LanceDB Cloud here: a local HTTP server
stands in for it, and records what the client sent."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.safety.support import REPO, subprocess_env

RECIPE = REPO / "recipes" / "remote_lancedb.yaml"
KEY = "sk-lk-test-" + os.urandom(8).hex()  # unique: a hit anywhere can only be this key


@dataclass
class FakeCloud:
    """A LanceDB server that knows no table: every request is recorded and answered 404."""

    url: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            body = b'{"message": "not found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def build(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = subprocess_env(**env)
    if "LANCEDB_API_KEY" not in env:
        environment.pop("LANCEDB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "loaderkit", "build", str(RECIPE), *args],
                          cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=300, check=False)


def line_of(text: str) -> int:
    return next(n for n, line in enumerate(RECIPE.read_text().splitlines(), 1) if text in line)


def test_remote_table_opens_the_recipes_database_and_table_with_its_key(
        cloud: FakeCloud) -> None:
    build("--set", f"source.host_override={cloud.url}", LANCEDB_API_KEY=KEY)
    assert cloud.requests, "the factory never reached the recipe's host"
    path, headers = cloud.requests[0]
    assert path.startswith("/v1/table/train/")  # the recipe's `table`
    assert headers["x-lancedb-database"] == "my-project"  # the recipe's `uri`: db://my-project
    assert headers["x-api-key"] == KEY  # the recipe's api_key: ${env:LANCEDB_API_KEY}


def test_a_remote_table_that_cannot_be_opened_is_a_located_diagnostic_without_frames(
        cloud: FakeCloud) -> None:
    result = build("--set", f"source.host_override={cloud.url}", LANCEDB_API_KEY=KEY)
    assert result.returncode == 1
    where = f"{RECIPE}:{line_of('connection_factory:')}:23: error LK411 "
    assert result.stdout.startswith(where), result.stdout
    assert "KeyError" not in result.stdout
    assert "in your code" not in result.stdout  # loaderkit's and lancedb's frames are not
    assert "Traceback" not in result.stdout + result.stderr
    assert KEY not in result.stdout + result.stderr


def test_a_remote_recipe_without_its_key_names_the_missing_variable() -> None:
    result = build()
    assert result.returncode == 1
    assert result.stdout.startswith(
        f"{RECIPE}:{line_of('api_key:')}:12: error LK103 environment "
        "variable LANCEDB_API_KEY is not set"), result.stdout


def test_lint_warns_about_the_variable_the_remote_factory_needs() -> None:
    environment = subprocess_env()
    environment.pop("LANCEDB_API_KEY", None)
    result = subprocess.run([sys.executable, "-m", "loaderkit", "lint", str(RECIPE)], cwd=REPO,
                            env=environment, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0
    assert "warning LK106 environment variable LANCEDB_API_KEY is not set" in result.stdout
