"""Session fixtures for the real local services that `hack/services.sh up` starts (never skipped)."""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Callable, Iterator

import pymysql
import pytest
from pymongo import MongoClient
from sqlalchemy.engine import URL, make_url

# Below the kernel's ephemeral range (32768+), so that no outgoing connection takes a port between
# the moment a test picks it and the moment its server binds it.
TEST_PORT_RANGE = (20000, 32000)
SERVICES_HINT = "start the services with `hack/services.sh up` and `source .state/services.env` (set -a)"


def _service_setting(name: str) -> str:
    """The value of ``name`` from services.env, or a test failure that says how to get it."""
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"{name} is not set: {SERVICES_HINT}", pytrace=False)
    return value


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """SQLAlchemy URL of the test MariaDB (mysql+pymysql://…/lume_test)."""
    return _service_setting("LUME_TEST_MYSQL_URL")


@pytest.fixture(scope="session")
def mongodb_url() -> str:
    """MongoDB URL of the test FerretDB (mongodb://127.0.0.1:27018/)."""
    return _service_setting("LUME_TEST_MONGODB_URL")


@pytest.fixture(scope="session")
def prefect_api_url() -> str:
    """PREFECT_API_URL of the test Prefect server."""
    return _service_setting("PREFECT_API_URL")


@pytest.fixture(scope="session")
def work_pool_name() -> str:
    """The `process` work pool served by the test worker (cwd: the repository root)."""
    return _service_setting("LUME_TEST_WORK_POOL")


def _mysql_admin_connection(url: URL) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
        autocommit=True, connect_timeout=10,
    )


@pytest.fixture
def tmp_mysql_database(mysql_url: str) -> Iterator[str]:
    """Name of a fresh, empty MariaDB database (`lume_t_…`) for one test, dropped afterwards."""
    url = make_url(mysql_url)
    # The test user may create any `lume_*` database; the prefix keeps this within its grant.
    name = _unique_name("lume_t")
    with _mysql_admin_connection(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with _mysql_admin_connection(url) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def tmp_mysql_url(mysql_url: str, tmp_mysql_database: str) -> str:
    """SQLAlchemy URL (password included) of ``tmp_mysql_database``."""
    return make_url(mysql_url).set(database=tmp_mysql_database).render_as_string(hide_password=False)


@pytest.fixture
def tmp_mongo_database(mongodb_url: str) -> Iterator[str]:
    """Name of a fresh MongoDB database for one test, dropped afterwards."""
    name = _unique_name("lume_t")
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=10_000)
    try:
        if name in client.list_database_names():
            pytest.fail(f"database {name} exists already", pytrace=False)
        yield name
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture(scope="session")
def free_port_factory() -> Callable[[], int]:
    """Returns a function that finds a free loopback TCP port for a server a test starts."""
    def free_port() -> int:
        for _ in range(200):
            port = random.randint(*TEST_PORT_RANGE)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port in {TEST_PORT_RANGE}")

    return free_port
