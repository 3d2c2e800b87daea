"""The model registry on both backends: a real MariaDB and a SQLite file, migrations included."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from lume_platform.errors import AlreadyExists, InvalidRecordError, NotFound, RegistryError
from lume_platform.registry import ModelRegistry
from lume_platform.registry.registry import VERSION_TABLE
from lume_platform.registry.schema import Base

pytestmark = pytest.mark.integration

SHA = "ab" * 32
REGISTRY_TABLES = {"project", "model", "deployment", "flow", "flow_of_flows"}


@pytest.fixture
def mysql_registry_url(tmp_mysql_url: str) -> str:
    """A SQLAlchemy URL of a fresh, empty MariaDB database."""
    return tmp_mysql_url


@pytest.fixture
def sqlite_registry_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a SQLite file that does not exist yet (nor does its directory)."""
    return f"sqlite:///{tmp_path / 'nested' / 'registry.db'}"


@pytest.fixture(params=["mysql", "sqlite"])
def registry_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn."""
    return request.getfixturevalue(f"{request.param}_registry_url")


@pytest.fixture
def registry(registry_url: str) -> Iterator[ModelRegistry]:
    """A registry on an empty database (migrated on first use)."""
    registry = ModelRegistry(registry_url)
    yield registry
    registry.close()


def table_names(url: str) -> set[str]:
    """Tables in the database at ``url``, read independently of the registry."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_migrate_creates_the_schema_the_models_describe(registry_url: str) -> None:
    registry = ModelRegistry(registry_url)
    try:
        assert registry.current_revision() is None
        registry.migrate()
        assert registry.current_revision() == registry.head_revision() == "0001"
        assert table_names(registry_url) >= REGISTRY_TABLES | {VERSION_TABLE}
        engine = create_engine(registry_url)
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                differences = compare_metadata(context, Base.metadata)
        finally:
            engine.dispose()
        # The version table is Alembic's own; anything else is a drift between migration and models.
        assert [d for d in differences if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []
    finally:
        registry.close()


def test_migrate_is_idempotent_and_keeps_data(registry_url: str) -> None:
    with ModelRegistry(registry_url) as registry:
        registry.migrate()
        model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
        registry.migrate()
    with ModelRegistry(registry_url) as again:
        again.migrate()
        assert again.get_model(model.model_id) == model


def test_downgrade_to_base_and_upgrade_again(registry: ModelRegistry, registry_url: str) -> None:
    registry.migrate()
    registry.downgrade("base")
    assert registry.current_revision() is None
    assert not table_names(registry_url) & REGISTRY_TABLES
    registry.migrate()
    assert registry.current_revision() == "0001"
    assert registry.list_projects() == []


def test_concurrent_first_use_migrates_once(registry_url: str) -> None:
    registries = [ModelRegistry(registry_url) for _ in range(4)]
    errors: list[BaseException] = []

    def first_use(registry: ModelRegistry) -> None:
        try:
            registry.list_projects()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=first_use, args=(r,)) for r in registries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for registry in registries:
        registry.close()
    assert errors == []


def test_a_database_with_unversioned_registry_tables_is_refused(registry_url: str) -> None:
    registry = ModelRegistry(registry_url)
    engine = create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE model (model_id INTEGER PRIMARY KEY, author VARCHAR(10))"))
            connection.execute(text("INSERT INTO model (model_id, author) VALUES (1, 'kept')"))
        with pytest.raises(RegistryError, match="no migration history"):
            registry.migrate()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT author FROM model")).scalar_one() == "kept"
    finally:
        engine.dispose()
        registry.close()


def test_projects_crud_and_uniqueness(registry: ModelRegistry) -> None:
    project = registry.create_project("demo", "a demo")
    assert registry.get_project("demo") == project
    assert project.created.tzinfo is UTC
    with pytest.raises(AlreadyExists, match="project already has a row with project_name='demo'") as caught:
        registry.create_project("demo")
    assert (caught.value.table, caught.value.key) == ("project", {"project_name": "demo"})
    assert registry.ensure_project("demo", "ignored").description == "a demo"
    assert registry.ensure_project("other").project_name == "other"
    assert [p.project_name for p in registry.list_projects()] == ["demo", "other"]
    assert registry.update_project("demo", description="renamed").description == "renamed"
    registry.delete_project("other")
    with pytest.raises(NotFound, match="project has no row with project_name='other'"):
        registry.get_project("other")
    with pytest.raises(NotFound):
        registry.delete_project("other")


def test_models_crud_and_uniqueness(registry: ModelRegistry) -> None:
    model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
    other = registry.create_model("ada", "SLAC", "LCLS", "cu_sxr", "surrogate")
    assert registry.get_model(model.model_id) == model
    with pytest.raises(AlreadyExists) as caught:
        registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
    assert caught.value.table == "model"
    assert caught.value.key == {"author": "ada", "laboratory": "SLAC", "facility": "LCLS",
                                "beampath": "cu_hxr", "description": "surrogate"}
    assert registry.list_models(beampath="cu_sxr") == [other]
    assert registry.list_models(author="ada", facility="LCLS") == [model, other]
    assert registry.update_model(other.model_id, description="v2").description == "v2"
    with pytest.raises(AlreadyExists):
        registry.update_model(other.model_id, beampath="cu_hxr", description="surrogate")
    assert registry.get_model(other.model_id).beampath == "cu_sxr"  # nothing changed
    registry.delete_model(other.model_id)
    with pytest.raises(NotFound, match=f"model has no row with model_id={other.model_id}"):
        registry.get_model(other.model_id)


def test_deployments_and_the_latest_one(registry: ModelRegistry) -> None:
    model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
    now = datetime.now(UTC)
    old = registry.create_deployment(model.model_id, "1.0", source="https://pkg/1.0.tar.gz", sha256=SHA,
                                     package_import_name="surrogate", image="reg/surrogate:1.0",
                                     deploy_date=now - timedelta(days=2), is_live=True)
    new = registry.create_deployment(model.model_id, "1.1", source="https://pkg/1.1.tar.gz",
                                     sha256="sha256:" + SHA.upper(), package_import_name="surrogate")
    assert new.sha256 == SHA and new.image is None and new.is_live is False
    assert registry.get_latest_deployment(model.model_id) == new
    assert registry.get_latest_deployment(model.model_id, live_only=True) == old
    assert registry.list_deployments(model_id=model.model_id) == [new, old]
    with pytest.raises(AlreadyExists, match=r"deployment already has a row with model_id=\d+, version='1.0'"):
        registry.create_deployment(model.model_id, "1.0", source="s", sha256=SHA, package_import_name="p")
    with pytest.raises(NotFound, match="model has no row with model_id=4242"):
        registry.create_deployment(4242, "1.0", source="s", sha256=SHA, package_import_name="p")
    registry.update_deployment(new.deployment_id, is_live=True)
    registry.update_deployment(old.deployment_id, is_live=False)
    assert registry.get_latest_deployment(model.model_id, live_only=True).deployment_id == new.deployment_id
    with pytest.raises(AlreadyExists):
        registry.update_deployment(new.deployment_id, version="1.0")
    registry.delete_deployment(old.deployment_id)
    assert registry.list_deployments() == [registry.get_deployment(new.deployment_id)]


def test_latest_deployment_orders_within_one_second(registry: ModelRegistry) -> None:
    model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
    moment = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    for step, version in enumerate(["1", "3", "2"]):
        registry.create_deployment(model.model_id, version, source="s", sha256=SHA, package_import_name="p",
                                   deploy_date=moment + timedelta(microseconds=step * 1000))
    assert registry.get_latest_deployment(model.model_id).version == "2"


def test_latest_deployment_of_unknown_or_empty_model(registry: ModelRegistry) -> None:
    with pytest.raises(NotFound, match="model has no row with model_id=99"):
        registry.get_latest_deployment(99)
    model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
    with pytest.raises(NotFound, match="deployment has no row with model_id="):
        registry.get_latest_deployment(model.model_id)


def test_flows_and_flows_of_flows(registry: ModelRegistry) -> None:
    registry.create_project("demo")
    model = registry.create_model("ada", "SLAC", "LCLS", "cu_hxr", "surrogate")
    deployment = registry.create_deployment(model.model_id, "1.0", source="s", sha256=SHA,
                                            package_import_name="p")
    first = registry.create_flow("11111111-aaaa", "simulate", "demo", deployment.deployment_id)
    second = registry.create_flow("22222222-bbbb", "analyse", "demo")
    registry.create_flow("33333333-cccc", "pipeline", "demo")
    assert registry.get_flow(first.flow_id) == first
    with pytest.raises(AlreadyExists, match="flow already has a row with flow_id='11111111-aaaa'"):
        registry.create_flow("11111111-aaaa", "again", "demo")
    with pytest.raises(NotFound, match="project has no row with project_name='nowhere'"):
        registry.create_flow("44444444", "x", "nowhere")
    with pytest.raises(NotFound, match="deployment has no row with deployment_id=777"):
        registry.create_flow("44444444", "x", "demo", 777)
    names = [f.flow_name for f in registry.list_flows(project_name="demo")]
    assert names == ["analyse", "pipeline", "simulate"]
    assert registry.list_flows(deployment_id=deployment.deployment_id) == [first]

    children = registry.create_flow_of_flows("33333333-cccc", [second.flow_id, first.flow_id])
    assert [c.flow_id for c in children] == [second.flow_id, first.flow_id]
    assert registry.get_flow_of_flows("33333333-cccc") == children
    assert registry.get_flow_of_flows(first.flow_id) == []
    with pytest.raises(AlreadyExists, match="flow_of_flows already has a row with parent_flow_id"):
        registry.create_flow_of_flows("33333333-cccc", [first.flow_id])
    with pytest.raises(NotFound, match="flow has no row with flow_id='missing'"):
        registry.update_flow_of_flows("33333333-cccc", [first.flow_id, "missing"])
    assert registry.get_flow_of_flows("33333333-cccc") == children  # the failed update changed nothing
    with pytest.raises(InvalidRecordError, match="more than once"):
        registry.update_flow_of_flows("33333333-cccc", [first.flow_id, first.flow_id])
    with pytest.raises(InvalidRecordError, match="cannot compose itself"):
        registry.update_flow_of_flows("33333333-cccc", ["33333333-cccc"])
    assert [c.flow_id for c in registry.update_flow_of_flows("33333333-cccc", [first.flow_id])] == [
        first.flow_id]

    # Deleting a model cascades to its deployments, their flows and the compositions they are in.
    registry.delete_model(model.model_id)
    with pytest.raises(NotFound):
        registry.get_flow(first.flow_id)
    assert registry.get_flow_of_flows("33333333-cccc") == []
    registry.delete_project("demo")
    assert registry.list_flows() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r: r.create_project("x" * 101), r"project\.project_name must be at most 100 characters"),
        (lambda r: r.create_project("  "), r"project\.project_name must not be empty"),
        (lambda r: r.create_model("a", "b", "c", None, "d"), r"model\.beampath must be a string"),
        (lambda r: r.create_deployment(1, "1", source="s", sha256="abc", package_import_name="p"),
         r"deployment\.sha256 must be 64 hex digits"),
        (lambda r: r.create_deployment(1, "1", source="s", sha256=SHA, package_import_name="p",
                                       is_live="yes"),
         r"deployment\.is_live must be true or false"),
        (lambda r: r.list_models(colour="red"), "model has no field 'colour'"),
        (lambda r: r.update_model(1, created=datetime.now(UTC)), "model has no field 'created'"),
        (lambda r: r.get_model("1"), "must be an integer id"),
        (lambda r: r.create_flow_of_flows("p", []), "non-empty list"),
    ],
)
def test_malformed_values_are_refused_by_name(registry: ModelRegistry, call: object, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        call(registry)  # type: ignore[operator]
