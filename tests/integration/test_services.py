"""The local services of hack/services.sh answer for real: MariaDB, FerretDB and Prefect with its worker."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES_SH = ROOT / "hack" / "services.sh"
pytest_plugins = ["pytester"]
SERVICE_VARIABLES = ("LUME_TEST_MYSQL_URL", "LUME_TEST_MONGODB_URL", "PREFECT_API_URL", "LUME_TEST_WORK_POOL")


def _connect(mysql_url: str, database: str | None = None) -> pymysql.connections.Connection:
    url = make_url(mysql_url)
    return pymysql.connect(
        host=url.host, port=url.port, user=url.username, password=url.password,
        database=database or url.database, autocommit=True, connect_timeout=10,
    )


def test_mariadb_answers_as_the_lume_user(mysql_url: str) -> None:
    with _connect(mysql_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT VERSION(), CURRENT_USER(), DATABASE()")
        version, user, database = cursor.fetchone()
    assert "MariaDB" in version
    assert user == "lume@%"
    assert database == "lume_test"


def test_mariadb_through_sqlalchemy(mysql_url: str) -> None:
    engine = create_engine(mysql_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 40 + 2")).scalar_one() == 42
    finally:
        engine.dispose()


def test_tmp_mysql_database_is_fresh_and_writable(mysql_url: str, tmp_mysql_database: str) -> None:
    with _connect(mysql_url, tmp_mysql_database) as connection, connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        assert cursor.fetchall() == ()
        cursor.execute("CREATE TABLE models (id INT PRIMARY KEY, name VARCHAR(64) UNIQUE)")
        cursor.execute("INSERT INTO models VALUES (1, 'surrogate')")
        with pytest.raises(pymysql.err.IntegrityError):
            cursor.execute("INSERT INTO models VALUES (2, 'surrogate')")
        cursor.execute("SELECT name FROM models")
        assert cursor.fetchall() == (("surrogate",),)


def test_tmp_mysql_url_points_at_the_tmp_database(tmp_mysql_url: str, tmp_mysql_database: str) -> None:
    engine = create_engine(tmp_mysql_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT DATABASE()")).scalar_one() == tmp_mysql_database
    finally:
        engine.dispose()


def test_the_lume_user_is_confined_to_lume_databases(mysql_url: str) -> None:
    with _connect(mysql_url) as connection, connection.cursor() as cursor:
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            cursor.execute("CREATE DATABASE notlume_x")
        # `lume\_%` in the grant: the underscore is literal, so `lumex` is outside it.
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            cursor.execute("CREATE DATABASE lumex")


def test_ferretdb_pings_stores_and_enforces_unique_indexes(
    mongodb_url: str, tmp_mongo_database: str
) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=10_000)
    try:
        assert client.admin.command("ping")["ok"] == 1.0
        collection = client[tmp_mongo_database]["results"]
        collection.create_index("hash", unique=True)
        collection.insert_one({"hash": "h1", "outputs": {"emittance": 1.5e-6}})
        with pytest.raises(DuplicateKeyError):
            collection.insert_one({"hash": "h1", "outputs": {}})
        found = collection.find_one({"outputs.emittance": {"$gt": 1e-6}}, {"_id": False})
        assert found == {"hash": "h1", "outputs": {"emittance": 1.5e-6}}
        assert tmp_mongo_database in client.list_database_names()
    finally:
        client.close()


def test_tmp_mongo_database_is_dropped_after_the_test(pytester: pytest.Pytester, mongodb_url: str) -> None:
    # An inner session uses the fixture and reports the name; afterwards the database must be gone.
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(
        """
        def test_write(tmp_mongo_database, mongodb_url):
            from pymongo import MongoClient
            MongoClient(mongodb_url)[tmp_mongo_database]["c"].insert_one({"a": 1})
            print("DATABASE=" + tmp_mongo_database)
        """
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    line = next(line for line in result.outlines if "DATABASE=" in line)
    name = line.split("DATABASE=", 1)[1].strip()
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    try:
        assert name not in client.list_database_names()
    finally:
        client.close()


def test_service_fixtures_fail_loudly_without_services_env(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(
        """
        def test_mysql(mysql_url): pass
        def test_mongo(mongodb_url): pass
        def test_prefect(prefect_api_url): pass
        def test_pool(work_pool_name): pass
        """
    )
    for variable in SERVICE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=4)
    output = result.stdout.str()
    for variable in SERVICE_VARIABLES:
        assert f"{variable} is not set" in output
    assert "hack/services.sh up" in output


def test_prefect_is_healthy_with_a_process_pool_and_an_online_worker(
    prefect_api_url: str, work_pool_name: str
) -> None:
    with httpx.Client(base_url=prefect_api_url, timeout=10.0) as client:
        assert client.get("/health").json() is True
        pool = client.get(f"/work_pools/{work_pool_name}")
        assert pool.status_code == 200, pool.text
        assert pool.json()["type"] == "process"
        workers = client.post(f"/work_pools/{work_pool_name}/workers/filter", json={}).json()
    assert f"{work_pool_name}-worker" in [w["name"] for w in workers if w["status"] == "ONLINE"]


def _services_pids() -> dict[str, str]:
    state = Path(os.environ.get("LUME_STATE", ROOT / ".state")) / "services"
    pids = {name: (state / f"{name}.pid").read_text().strip() for name in ("mariadb", "ferretdb")}
    for name in ("server", "worker"):
        pids[name] = (state / "prefect" / "run" / f"{name}.pid").read_text()
    return pids


def test_a_second_up_is_a_quick_no_op(prefect_api_url: str) -> None:
    before = _services_pids()
    started = time.monotonic()
    done = subprocess.run([SERVICES_SH, "up"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "starting" not in done.stderr
    assert _services_pids() == before
    # Generous for a shared 2-core machine; unloaded it takes about a second or two.
    assert elapsed < 60


def test_status_reports_every_service_running() -> None:
    done = subprocess.run([SERVICES_SH, "status"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for service in ("mariadb", "ferretdb", "server", "worker"):
        assert f"{service}: running" in done.stdout
    assert "healthy" in done.stdout


def test_usage_errors_name_the_commands() -> None:
    done = subprocess.run([SERVICES_SH, "start"], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "usage:" in done.stderr and "up | down [--purge] | status" in done.stderr
    # A mistyped --purge must not fall back to a plain down (nor stop anything).
    done = subprocess.run([SERVICES_SH, "down", "--purg"], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "unknown option for down: --purg" in done.stderr


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_second_set_recovers_from_lost_pid_files_and_purges(
    tmp_path: Path, free_port_factory: Callable[[], int]
) -> None:
    # A separate set on free ports with its own state dir, as a fresh checkout would have; the
    # FerretDB binary comes from the shared cache. Costs one Prefect start-up.
    ports = {name: free_port_factory() for name in ("MYSQL", "MONGODB", "PREFECT")}
    env = {**os.environ, "LUME_STATE": str(tmp_path / "state")}
    env.update({f"LUME_SERVICES_{name}_PORT": str(port) for name, port in ports.items()})

    def services(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([SERVICES_SH, *args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"services.sh {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    state = tmp_path / "state" / "services"
    try:
        services("up")
        written = (tmp_path / "state" / "services.env").read_text()
        assert f"LUME_TEST_MONGODB_URL=mongodb://127.0.0.1:{ports['MONGODB']}/" in written
        assert f"PREFECT_API_URL=http://127.0.0.1:{ports['PREFECT']}/api" in written
        mysql_url = f"mysql+pymysql://lume:lume@127.0.0.1:{ports['MYSQL']}/lume_test"

        # A lost pid file and a stale one (pid 1 is not mariadbd): both processes still hold
        # their ports and are recognised as ours, replaced, and answer again.
        (state / "ferretdb.pid").unlink()
        (state / "mariadb.pid").write_text("1\n")
        again = services("up")
        assert "stopping leftover mariadb" in again.stderr
        assert "stopping leftover ferretdb" in again.stderr
        test_mariadb_through_sqlalchemy(mysql_url)
        client: MongoClient[dict[str, Any]] = MongoClient(
            f"mongodb://127.0.0.1:{ports['MONGODB']}/", serverSelectionTimeoutMS=10_000
        )
        try:
            assert client.admin.command("ping")["ok"] == 1.0
        finally:
            client.close()
        assert "starting" not in again.stderr.split("prefect:", 1)[1], "Prefect should have been left running"
    finally:
        services("down", "--purge")
    assert not any(_listening(port) for port in ports.values())
    assert not state.exists()
