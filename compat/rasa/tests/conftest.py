"""Shared harness for the Rasa compatibility suite: paths, services, fresh names, polling, processes.

Every test gets its own PostgreSQL database, RabbitMQ queue and exchange (random names), and removes them
afterwards. Services come from `AMQP_URL` / `DATABASE_URL` (defaults: the local ones); `DATABASE_URL` names
the *admin* database in which the fresh databases are created. The Rust binaries come from `target/release`
(built by `cargo xtask rasa-compat`), or from `COLLOQUY_BIN` / `RASA_BYTES_BIN`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TypeVar
from urllib.parse import unquote, urlparse

import pytest

# Rasa 3.6 uses the SQLAlchemy 1.4 API; its 2.0 migration banner says nothing about us.
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

REPO = Path(__file__).resolve().parents[3]
COLLOQUY_BIN = Path(os.environ.get("COLLOQUY_BIN", REPO / "target" / "release" / "colloquy"))
RASA_BYTES_BIN = Path(os.environ.get("RASA_BYTES_BIN", REPO / "target" / "release" / "examples" / "rasa_bytes"))
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
ADMIN_DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")

T = TypeVar("T")


def binary(path: Path) -> Path:
    """A Rust binary the tests need; a clear failure (never a skip) when it was not built."""
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo xtask rasa-compat` (or point the variable at it)")
    return path


def rasa_body(sender_id: str, event_dict: Dict[str, Any]) -> str:
    """The broker body exactly as Rasa publishes it (`TrackerStore._stream_new_events` + `PikaEventBroker._message`)."""
    body = {"sender_id": sender_id}
    body.update(event_dict)
    return json.dumps(body)


def wait_for(probe: Callable[[], Optional[T]], timeout: float, what: str, interval: float = 0.05) -> T:
    """Polls `probe` until it returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Optional[T] = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last value: {last!r})")
        time.sleep(interval)


def run_rasa_bytes(lines: List[str], export: bool = False) -> List[str]:
    """Feeds broker bodies to our `rasa_bytes` example; returns its output lines, one per input line (the
    `rasa export` body form with `export`)."""
    done = subprocess.run(
        [str(binary(RASA_BYTES_BIN))] + (["--export"] if export else []),
        input="".join(line + "\n" for line in lines).encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    out = done.stdout.decode("utf-8").split("\n")
    assert out[-1] == "", "output must end with a newline"
    assert len(out) - 1 == len(lines), f"{len(lines)} lines in, {len(out) - 1} out"
    return out[:-1]


# ---------------------------------------------------------------------------------------------- PostgreSQL


@dataclass
class Database:
    """A fresh PostgreSQL database for one test."""

    name: str
    host: str
    port: int
    user: str
    password: Optional[str]

    @property
    def url(self) -> str:
        auth = self.user if self.password is None else f"{self.user}:{self.password}"
        return f"postgres://{auth}@{self.host}:{self.port}/{self.name}"

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.name
        )

    def query(self, sql: str, *args: Any) -> List[tuple]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(sql, args)
            rows = cursor.fetchall() if cursor.description else []
        connection.close()
        return rows


def _admin_connection():
    import psycopg2

    url = urlparse(ADMIN_DATABASE_URL)
    try:
        connection = psycopg2.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            user=unquote(url.username or "postgres"),
            password=unquote(url.password) if url.password else None,
            dbname=url.path.lstrip("/") or "postgres",
            connect_timeout=10,
        )
    except psycopg2.OperationalError as error:
        pytest.fail(f"PostgreSQL at {ADMIN_DATABASE_URL} does not answer ({error}); start it (`cargo xtask services`)")
    connection.autocommit = True
    return connection, url


@pytest.fixture
def fresh_database() -> Database:
    connection, url = _admin_connection()
    name = f"rasa_compat_{uuid.uuid4().hex[:16]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    database = Database(
        name=name,
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password) if url.password else None,
    )
    try:
        yield database
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


# ------------------------------------------------------------------------------------------------ RabbitMQ


@dataclass
class AmqpNames:
    """A unique queue and exchange for one test, and the broker's address."""

    queue: str
    exchange: str
    host: str
    port: int
    user: str
    password: str
    vhost: str


async def _delete_topology(names: AmqpNames) -> None:
    import aio_pika

    connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 20)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(names.queue)
        await channel.exchange_delete(names.exchange)


@pytest.fixture
def amqp_names() -> AmqpNames:
    url = urlparse(AMQP_URL)
    tag = uuid.uuid4().hex[:12]
    names = AmqpNames(
        queue=f"rasa_compat_{tag}_events",
        exchange=f"rasa-compat-{tag}-exchange",
        host=url.hostname or "127.0.0.1",
        port=url.port or 5672,
        user=unquote(url.username or "guest"),
        password=unquote(url.password or "guest"),
        vhost=unquote(url.path[1:]) if len(url.path) > 1 else "/",
    )
    try:
        yield names
    finally:
        asyncio.run(_delete_topology(names))


def write_endpoints(directory: Path, names: AmqpNames, database: Database) -> Path:
    """One Rasa `endpoints.yml` for both sides: Rasa's broker and tracker store, and `colloquy --endpoints`.

    The password goes through `${VAR}` substitution, which both Rasa and Colloquy must perform.
    """
    path = directory / "endpoints.yml"
    password = "" if database.password is None else f"\n  password: {json.dumps(database.password)}"
    path.write_text(
        f"""\
event_broker:
  type: pika
  url: {names.host}
  port: {names.port}
  username: {names.user}
  password: ${{COMPAT_RABBITMQ_PASSWORD}}
  queues:
    - {names.queue}
  exchange_name: {names.exchange}
tracker_store:
  type: SQL
  dialect: postgresql
  url: {database.host}
  port: {database.port}
  db: {database.name}
  username: {database.user}{password}
""",
        encoding="utf-8",
    )
    os.environ["COMPAT_RABBITMQ_PASSWORD"] = names.password
    return path


# ----------------------------------------------------------------------------------------------- processes


def colloquy_env() -> Dict[str, str]:
    """The environment for `colloquy`: ours, minus anything that would override the flags under test."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COLLOQUY_") and key not in ("AMQP_URL", "DATABASE_URL", "RASA_ENVIRONMENT")
    }
    env.setdefault("RUST_LOG", "info")
    return env


class Colloquy:
    """A running `colloquy` process whose log goes to a file (shown when a test fails)."""

    def __init__(self, args: List[str], log: Path) -> None:
        self.args = args
        self.log_path = log
        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            [str(binary(COLLOQUY_BIN)), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=colloquy_env(),
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text("utf-8", "replace")

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"colloquy {' '.join(self.args)} exited with {code}:\n{self.log()}"

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then waits (bounded) for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            pytest.fail(f"colloquy did not exit within {timeout} s of SIGTERM:\n{self.log()}")
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def colloquy_processes(tmp_path: Path):
    """Starts `colloquy` processes; kills any that a test left running."""
    started: List[Colloquy] = []

    def start(*args: str) -> Colloquy:
        process = Colloquy(list(args), tmp_path / f"colloquy-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def run_colloquy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs a one-shot `colloquy` command (bounded in time)."""
    return subprocess.run(
        [str(binary(COLLOQUY_BIN)), *args],
        capture_output=True,
        timeout=timeout,
        env=colloquy_env(),
        check=False,
    )
