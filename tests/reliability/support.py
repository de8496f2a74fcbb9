"""Helpers for the reliability suite: a loopback S3 server (moto), small Lance datasets,
recipe files, and process bookkeeping (children of a pid, via /proc).

Everything listens on 127.0.0.1 only; nothing here reaches a network.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = sys.executable

KEY_ID_VAR = "LK_RELIABILITY_AWS_KEY_ID"
SECRET_VAR = "LK_RELIABILITY_AWS_SECRET"
ENDPOINT_VAR = "LK_RELIABILITY_S3_ENDPOINT"
BUCKET = "bucket"
ROWS = 3000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child python: this repo importable, plus `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


# --- processes -----------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _live_where(field: int, value: int) -> list[int]:
    """Live processes whose /proc stat `field` (after the state: 1 ppid, 2 pgrp) is `value`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[field]) == value and fields[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def children_of(pid: int) -> list[int]:
    return _live_where(1, pid)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def worker_pids(pid: int) -> list[int]:
    """The spawn/forkserver worker processes of `pid` (not its resource tracker)."""
    return [child for child in children_of(pid) if "spawn_main" in cmdline(child)]


def group_members(pgid: int) -> list[int]:
    return _live_where(2, pgid)


def wait_until(predicate: Any, seconds: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


# --- data ----------------------------------------------------------------------------------

def make_table(rows: int = ROWS, start: int = 0) -> Any:
    import pyarrow as pa

    ids = list(range(start, start + rows))
    return pa.table({"id": pa.array(ids, pa.int64()),
                     "x": pa.array([float(i) for i in ids], pa.float32())})


def write_local_dataset(path: Path, rows: int = ROWS, rows_per_file: int = 500) -> Path:
    import lance

    lance.write_dataset(make_table(rows), str(path), max_rows_per_file=rows_per_file)
    return path


def write_recipe(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip())
    return path


@pytest.fixture
def local_dataset(tmp_path: Path) -> Path:
    return write_local_dataset(tmp_path / "data.lance")


# --- S3 ------------------------------------------------------------------------------------

@dataclass
class S3:
    endpoint: str
    key_id: str
    secret: str

    def storage_options(self) -> dict[str, str]:
        """Options for Lance in this process (the recipe's come from ${env:...})."""
        return {"aws_access_key_id": self.key_id, "aws_secret_access_key": self.secret,
                "aws_region": "us-east-1", "aws_endpoint": self.endpoint,
                "allow_http": "true", "aws_virtual_hosted_style_request": "false"}

    def write_dataset(self, rows: int = ROWS, rows_per_file: int = 500) -> str:
        import lance

        uri = f"s3://{BUCKET}/{uuid.uuid4().hex}.lance"
        lance.write_dataset(make_table(rows), uri, storage_options=self.storage_options(),
                            max_rows_per_file=rows_per_file)
        return uri


def recipe_for_s3(uri: str, *, workers: int = 2, sampler: str = "shuffle",
                  extra_options: str = "", rest: str = "") -> str:
    """A recipe whose credentials and endpoint are all `${env:...}` references."""
    return textwrap.dedent(f"""\
        loaderkit: 1
        source:
          uri: {uri}
          storage_options:
            aws_access_key_id: ${{env:{KEY_ID_VAR}}}
            aws_secret_access_key: ${{env:{SECRET_VAR}}}
            aws_endpoint: ${{env:{ENDPOINT_VAR}}}
            aws_region: us-east-1
            allow_http: "true"
            aws_virtual_hosted_style_request: "false"
        """) + textwrap.indent(textwrap.dedent(extra_options), "    ") + textwrap.dedent(f"""\
        columns: [id]
        sampler:
          type: {sampler}
          seed: 7
        loader:
          batch_size: 100
          num_workers: {workers}
          multiprocessing_context: spawn
        """) + textwrap.dedent(rest)


def start_moto_subprocess(port: int) -> subprocess.Popen[bytes]:
    """moto's S3 server as its own process on 127.0.0.1, so that a test can kill it."""
    process = subprocess.Popen(
        [PYTHON, "-c", "import sys; from moto.server import main; main(sys.argv[1:])",
         "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        raise
    return process


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A threaded moto S3 server on a free loopback port, with one bucket; its endpoint."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="setup", aws_secret_access_key="setup")
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """Credentials in this process's environment (spawn workers inherit them)."""
    creds = S3(s3_server, "AKIDRELIABILITY", f"lk-secret-{uuid.uuid4().hex}")
    monkeypatch.setenv(KEY_ID_VAR, creds.key_id)
    monkeypatch.setenv(SECRET_VAR, creds.secret)
    monkeypatch.setenv(ENDPOINT_VAR, creds.endpoint)
    return creds
