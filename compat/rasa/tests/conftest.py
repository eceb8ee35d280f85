"""Shared harness for the Rasa compatibility suite: paths, services, fresh names, polling, processes.

Every test gets its own database, RabbitMQ queue and exchange (random names), and removes them afterwards.
A test that takes `fresh_database` runs once per SQL dialect Rasa's `SQLTrackerStore` speaks: PostgreSQL,
MySQL/MariaDB (through PyMySQL, `dialect: mysql+pymysql`) and SQLite (a file in the test's directory).
Services come from `AMQP_URL` / `DATABASE_URL` / `MYSQL_URL` (defaults: the local ones); the database URLs
name the *admin* database in which the fresh databases are created. The Rust binaries come from `target/release`
(built by `cargo xtask rasa-compat`), or from `COLLOQUY_BIN` / `RASA_BYTES_BIN`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, TypeVar
from urllib.parse import unquote, urlparse

import pytest

# Rasa 3.6 uses the SQLAlchemy 1.4 API; its 2.0 migration banner says nothing about us.
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

REPO = Path(__file__).resolve().parents[3]
COLLOQUY_BIN = Path(os.environ.get("COLLOQUY_BIN", REPO / "target" / "release" / "colloquy"))
RASA_BYTES_BIN = Path(os.environ.get("RASA_BYTES_BIN", REPO / "target" / "release" / "examples" / "rasa_bytes"))
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
ADMIN_DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

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


def float32(value: Optional[float]) -> Optional[float]:
    """`value` rounded to a 4-byte float, as MySQL's FLOAT column (Rasa's `timestamp` there) keeps it."""
    return None if value is None else struct.unpack("<f", struct.pack("<f", value))[0]


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


# ------------------------------------------------------------------------------------------------ databases

# The dialects of Rasa's `SQLTrackerStore` we speak. Every test that takes `fresh_database` runs once per
# dialect (test ids `[postgresql]`, `[mysql]`, `[sqlite]`).
DIALECTS = ["postgresql", "mysql", "sqlite"]


@dataclass
class Database:
    """A fresh database of one dialect for one test: PostgreSQL or MySQL/MariaDB (a database of its own on the
    server), or SQLite (a file of its own in the test's directory, `name` is its path)."""

    dialect: str
    name: str
    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    password: Optional[str] = None

    @property
    def url(self) -> str:
        """The URL Colloquy takes (`--database-url`, `--tracker-store`)."""
        if self.dialect == "sqlite":
            return f"sqlite://{self.name}"
        auth = self.user if self.password is None else f"{self.user}:{self.password}"
        scheme = "postgres" if self.dialect == "postgresql" else "mysql"
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.name}"

    @property
    def rasa_dialect(self) -> str:
        """The `dialect` Rasa is configured with: SQLAlchemy's name, with PyMySQL as MySQL's driver."""
        return "mysql+pymysql" if self.dialect == "mysql" else self.dialect

    def rasa_kwargs(self) -> Dict[str, Any]:
        """`SQLTrackerStore(**kwargs)` for this database, as Rasa's endpoints.yml would give them."""
        if self.dialect == "sqlite":
            return {"dialect": "sqlite", "db": self.name}
        return {
            "dialect": self.rasa_dialect,
            "host": self.host,
            "port": self.port,
            "db": self.name,
            "username": self.user,
            "password": self.password,
        }

    def rasa_store(self, domain: Any = None, **kwargs: Any):
        """Rasa 3.6.21's own `SQLTrackerStore` on this database (it creates its table when missing)."""
        from rasa.core.tracker_store import SQLTrackerStore

        return SQLTrackerStore(domain, **self.rasa_kwargs(), **kwargs)

    def endpoints_section(self) -> str:
        """Rasa's `tracker_store` section of an endpoints.yml for this database."""
        if self.dialect == "sqlite":
            return f"tracker_store:\n  type: SQL\n  dialect: sqlite\n  db: {json.dumps(self.name)}\n"
        password = "" if self.password is None else f"\n  password: {json.dumps(self.password)}"
        return (
            f"tracker_store:\n  type: SQL\n  dialect: {self.rasa_dialect}\n  url: {self.host}\n  port: {self.port}\n"
            f"  db: {self.name}\n  username: {self.user}{password}\n"
        )

    def connect(self):
        if self.dialect == "postgresql":
            import psycopg2

            return psycopg2.connect(
                host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.name
            )
        if self.dialect == "mysql":
            import pymysql

            return pymysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password or "", database=self.name,
                charset="utf8mb4",
            )
        import sqlite3

        return sqlite3.connect(self.name, timeout=30)

    def query(self, sql: str, *args: Any) -> List[tuple]:
        """Runs `sql` (`%s` placeholders in every dialect) and returns its rows as tuples."""
        if self.dialect == "sqlite":
            sql = sql.replace("%s", "?")
        connection = self.connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, args)
            rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
            cursor.close()
            connection.commit()
        finally:
            connection.close()
        return rows

    def columns(self, table: str) -> Set[str]:
        """The column names of `table` in this database."""
        if self.dialect == "sqlite":
            return {row[1] for row in self.query(f'PRAGMA table_info("{table}")')}
        if self.dialect == "mysql":
            return {
                name
                for (name,) in self.query(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    self.name,
                    table,
                )
            }
        return {
            name
            for (name,) in self.query(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = %s AND table_name = %s",
                self.name,
                table,
            )
        }

    def tables(self) -> Set[str]:
        """The table names in this database."""
        if self.dialect == "sqlite":
            return {name for (name,) in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        schema = self.name if self.dialect == "mysql" else "public"
        return {
            name
            for (name,) in self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", schema
            )
        }


def _postgres_admin():
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


def _mysql_admin():
    import pymysql

    url = urlparse(MYSQL_URL)
    try:
        connection = pymysql.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=unquote(url.username or "root"),
            password=unquote(url.password) if url.password else "",
            database=url.path.lstrip("/") or None,
            connect_timeout=10,
            autocommit=True,
            charset="utf8mb4",
        )
    except pymysql.err.OperationalError as error:
        pytest.fail(f"MySQL/MariaDB at {MYSQL_URL} does not answer ({error}); start it (`cargo xtask services`)")
    return connection, url


@contextlib.contextmanager
def new_database(dialect: str, directory: Path) -> Iterator[Database]:
    """A fresh database of `dialect` with a unique name, removed afterwards (also when the test fails)."""
    name = f"rasa_compat_{uuid.uuid4().hex[:16]}"
    if dialect == "sqlite":
        path = directory / f"{name}.db"
        try:
            yield Database(dialect="sqlite", name=str(path))
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    if dialect == "postgresql":
        connection, url = _postgres_admin()
        create, drop = f'CREATE DATABASE "{name}"', f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        user, default_port = unquote(url.username or "postgres"), 5432
    elif dialect == "mysql":
        connection, url = _mysql_admin()
        create = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        drop = f"DROP DATABASE IF EXISTS `{name}`"
        user, default_port = unquote(url.username or "root"), 3306
    else:
        raise ValueError(f"unknown dialect {dialect!r}")
    try:
        with connection.cursor() as cursor:
            cursor.execute(create)
        try:
            yield Database(
                dialect=dialect,
                name=name,
                host=url.hostname or "127.0.0.1",
                port=url.port or default_port,
                user=user,
                password=unquote(url.password) if url.password else None,
            )
        finally:
            with connection.cursor() as cursor:
                cursor.execute(drop)
    finally:
        connection.close()


@pytest.fixture(params=DIALECTS)
def dialect(request) -> str:
    """The SQL dialect a test runs on (each test that needs a database runs on all of them)."""
    return request.param


@pytest.fixture
def fresh_database(dialect: str, tmp_path: Path) -> Iterator[Database]:
    with new_database(dialect, tmp_path) as database:
        yield database


@pytest.fixture
def make_database(dialect: str, tmp_path: Path):
    """Creates more fresh databases of the test's dialect (all dropped at the end of the test)."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(new_database(dialect, tmp_path))


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


@contextlib.contextmanager
def new_amqp_names() -> Iterator[AmqpNames]:
    """A unique queue and exchange name pair; both are deleted afterwards (also when the test fails)."""
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


@pytest.fixture
def amqp_names() -> Iterator[AmqpNames]:
    with new_amqp_names() as names:
        yield names


def write_endpoints(directory: Path, names: AmqpNames, database: Database) -> Path:
    """One Rasa `endpoints.yml` for both sides: Rasa's broker and tracker store, and `colloquy --endpoints`.

    The password goes through `${VAR}` substitution, which both Rasa and Colloquy must perform.
    """
    path = directory / "endpoints.yml"
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
"""
        + database.endpoints_section(),
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
