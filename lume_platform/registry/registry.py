"""The model registry API: projects, models, deployments, flows and flows of flows on MySQL or SQLite."""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, create_engine, delete, event, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from lume_platform.errors import (
    AlreadyExists,
    ConfigurationError,
    InvalidRecordError,
    NotFound,
    RegistryError,
    redact_url,
)
from lume_platform.registry.schema import (
    NAME_LENGTH,
    TEXT_LENGTH,
    VERSION_LENGTH,
    Base,
    DeploymentRow,
    FlowOfFlowsRow,
    FlowRow,
    ModelRow,
    ProjectRow,
    utc_now,
)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "lume_registry_version"
_MYSQL_LOCK = "lume_registry_migrate"
_LOCK_TIMEOUT_SECONDS = 60
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


class _Record(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class Project(_Record):
    """A group of flows."""

    project_name: str
    description: str
    created: datetime


class Model(_Record):
    """A scientific model, unique by author, laboratory, facility, beampath and description."""

    model_id: int
    created: datetime
    author: str
    laboratory: str
    facility: str
    beampath: str
    description: str


class Deployment(_Record):
    """One version of a model; unique by model and version."""

    deployment_id: int
    model_id: int
    version: str
    deploy_date: datetime
    package_import_name: str
    asset_dir: str | None
    source: str
    sha256: str
    image: str | None
    is_live: bool


class Flow(_Record):
    """A published flow; ``flow_id`` is its Prefect deployment id."""

    flow_id: str
    flow_name: str
    project_name: str
    deployment_id: int | None


RecordT = TypeVar("RecordT", bound=_Record)
Check = Callable[[str, Any], Any]


def _text(max_length: int, *, allow_empty: bool = False, optional: bool = False) -> Check:
    """A check for a string column: present (unless optional), non-blank (unless allowed), short enough."""

    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise InvalidRecordError(f"{name} must be a string, got {type(value).__name__} {value!r}")
        if not allow_empty and not value.strip():
            raise InvalidRecordError(f"{name} must not be empty")
        if len(value) > max_length:
            raise InvalidRecordError(f"{name} must be at most {max_length} characters, got {len(value)}")
        return value

    return check


def _sha256(name: str, value: Any) -> str:
    match = _SHA256.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidRecordError(f"{name} must be 64 hex digits (optionally 'sha256:…'), got {value!r}")
    return match.group(1).lower()


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRecordError(f"{name} must be true or false, got {value!r}")
    return value


def _moment(name: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidRecordError(f"{name} must be a datetime, got {value!r}")
    return value


def _identifier(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecordError(f"{name} must be an integer id, got {value!r}")
    return value


def _optional_identifier(name: str, value: Any) -> int | None:
    return None if value is None else _identifier(name, value)


# What may be written to each table, and how each value is checked.
_CHECKS: dict[str, dict[str, Check]] = {
    "project": {"project_name": _text(NAME_LENGTH), "description": _text(TEXT_LENGTH, allow_empty=True)},
    "model": {
        "author": _text(NAME_LENGTH),
        "laboratory": _text(NAME_LENGTH),
        "facility": _text(NAME_LENGTH),
        "beampath": _text(NAME_LENGTH),
        "description": _text(TEXT_LENGTH, allow_empty=True),
    },
    "deployment": {
        "model_id": _identifier,
        "version": _text(VERSION_LENGTH),
        "deploy_date": _moment,
        "package_import_name": _text(NAME_LENGTH),
        "asset_dir": _text(TEXT_LENGTH, optional=True),
        "source": _text(TEXT_LENGTH),
        "sha256": _sha256,
        "image": _text(TEXT_LENGTH, optional=True),
        "is_live": _boolean,
    },
    "flow": {
        "flow_id": _text(TEXT_LENGTH),
        "flow_name": _text(TEXT_LENGTH),
        "project_name": _text(NAME_LENGTH),
        "deployment_id": _optional_identifier,
    },
}
_ROWS: dict[str, Any] = {
    "project": ProjectRow, "model": ModelRow, "deployment": DeploymentRow, "flow": FlowRow,
    "flow_of_flows": FlowOfFlowsRow,
}


def _checked(table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``values`` for ``table``; unknown fields are refused by name."""
    allowed = _CHECKS[table]
    unknown = [name for name in values if name not in allowed]
    if unknown:
        raise InvalidRecordError(f"{table} has no field {', '.join(map(repr, unknown))}; "
                                 f"fields: {', '.join(allowed)}")
    return {name: allowed[name](f"{table}.{name}", value) for name, value in values.items()}


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless each connection asks for them.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigurationError(f"invalid model registry URL {redact_url(url)!r}: {error}") from error
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            # One shared connection, or each session would see its own empty database.
            options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            options.update(connect_args={"timeout": 30})
    else:
        # Pods outlive idle connections that MySQL closes after wait_timeout.
        options.update(pool_pre_ping=True, pool_recycle=3600)
    try:
        engine = create_engine(parsed, **options)
    except (NoSuchModuleError, ArgumentError, ImportError) as error:
        raise ConfigurationError(f"unsupported model registry URL {redact_url(url)!r}: {error}") from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


class ModelRegistry:
    """The model registry at a SQLAlchemy URL (``mysql+pymysql://…``, ``sqlite:///path``).

    The schema is migrated to the newest revision on first use (or explicitly with :meth:`migrate`).
    Records come back as frozen pydantic models. Uniqueness violations raise :class:`AlreadyExists`,
    references to missing rows :class:`NotFound`, malformed values :class:`InvalidRecordError`.
    """

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)
        self._engine = _create_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._migrated = False
        self._migration_guard = threading.Lock()

    # ----------------------------------------------------------------------------- schema migrations

    def _alembic_config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str | None:
        """The newest schema revision this version of the platform knows."""
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        with self._translating("read the schema revision"), self._engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold a lock shared by every process that might migrate this database at the same time."""
        if self._engine.dialect.name in ("mysql", "mariadb"):
            with self._engine.connect() as connection:
                acquired = connection.execute(
                    text("SELECT GET_LOCK(:name, :timeout)"),
                    {"name": _MYSQL_LOCK, "timeout": _LOCK_TIMEOUT_SECONDS},
                ).scalar()
                if acquired != 1:
                    raise RegistryError(f"another process has been migrating {self.url} for "
                                        f"{_LOCK_TIMEOUT_SECONDS} s; try again later")
                try:
                    yield
                finally:
                    connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MYSQL_LOCK})
            return
        database = self._engine.url.database
        if self._engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
            yield
            return
        with open(f"{Path(database).expanduser()}.migrate-lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            yield

    def _refuse_unversioned_tables(self, connection: Connection) -> None:
        # A LUME-services database (create_all, no history) would fail half-way with "table exists".
        tables = set(inspect(connection).get_table_names())
        if VERSION_TABLE not in tables and tables & set(Base.metadata.tables):
            found = ", ".join(sorted(tables & set(Base.metadata.tables)))
            raise RegistryError(f"{self.url} already has registry tables ({found}) but no migration history "
                                f"({VERSION_TABLE}); migrate its data into an empty database")

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision; safe to call often and from several processes."""
        with self._migration_guard, self._translating("migrate the schema of"), self._exclusive():
            with self._engine.begin() as connection:
                self._refuse_unversioned_tables(connection)
                command.upgrade(self._alembic_config(connection), "head")
            self._migrated = True

    def downgrade(self, revision: str = "base") -> None:
        """Revert the schema to ``revision`` (``"base"`` drops every registry table and its data)."""
        with self._migration_guard, self._translating("downgrade the schema of"), self._exclusive():
            with self._engine.begin() as connection:
                command.downgrade(self._alembic_config(connection), revision)
            self._migrated = False

    # ----------------------------------------------------------------------------- plumbing

    @contextmanager
    def _translating(self, action: str) -> Iterator[None]:
        """Name the action and the (password-free) database in any driver error."""
        try:
            yield
        except IntegrityError:
            raise
        except SQLAlchemyError as error:
            raise RegistryError(f"could not {action} the model registry {self.url}: {error}") from error

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        """A session in one transaction, committed on success, on a migrated schema."""
        if not self._migrated:
            self.migrate()
        with self._translating(action), self._sessions.begin() as session:
            yield session

    def _explain_conflict(self, error: IntegrityError, table: str, unique_keys: Sequence[Mapping[str, Any]],
                          parents: Sequence[tuple[str, Mapping[str, Any]]]) -> RegistryError:
        """Turn a driver's IntegrityError into NotFound (a missing parent) or AlreadyExists (a key taken).

        Reading the database again, instead of parsing driver messages, works the same on every backend.
        """
        with self._sessions() as session:
            for parent_table, key in parents:
                if None not in key.values() and session.get(_ROWS[parent_table], tuple(key.values())) is None:
                    return NotFound(parent_table, key)
            row = _ROWS[table]
            for key in unique_keys:
                query = select(row).filter_by(**key).limit(1)
                if session.execute(query).first() is not None:
                    return AlreadyExists(table, key)
        return RegistryError(f"could not write to {table} in the model registry {self.url}: {error.orig}")

    def _get(self, record: type[RecordT], table: str, key: Mapping[str, Any]) -> RecordT:
        with self._session(f"read {table} from") as session:
            row = session.get(_ROWS[table], tuple(key.values()))
            if row is None:
                raise NotFound(table, key)
            return record.model_validate(row)

    def _list(self, record: type[RecordT], table: str, filters: Mapping[str, Any],
              order: Sequence[Any]) -> list[RecordT]:
        checked = _checked(table, filters)
        with self._session(f"list {table} in") as session:
            rows = session.execute(select(_ROWS[table]).filter_by(**checked).order_by(*order)).scalars()
            return [record.model_validate(row) for row in rows]

    def _update(self, record: type[RecordT], table: str, key: Mapping[str, Any], changes: Mapping[str, Any],
                unique_keys: Callable[[RecordT], Sequence[Mapping[str, Any]]],
                parents: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> RecordT:
        checked = _checked(table, changes)
        current = self._get(record, table, key)
        if not checked:
            return current
        row = _ROWS[table]
        condition = [getattr(row, name) == value for name, value in key.items()]
        try:
            with self._session(f"update {table} in") as session:
                session.execute(update(row).where(*condition).values(**checked))
        except IntegrityError as error:
            updated = current.model_copy(update=checked)
            raise self._explain_conflict(error, table, unique_keys(updated), parents) from error
        return self._get(record, table, key)

    def _delete(self, table: str, key: Mapping[str, Any]) -> None:
        row = _ROWS[table]
        condition = [getattr(row, name) == value for name, value in key.items()]
        with self._session(f"delete from {table} in") as session:
            if session.execute(delete(row).where(*condition)).rowcount == 0:
                raise NotFound(table, key)

    # ----------------------------------------------------------------------------- projects

    def create_project(self, project_name: str, description: str = "") -> Project:
        """Create a project; :class:`AlreadyExists` if the name is taken."""
        values = _checked("project", {"project_name": project_name, "description": description})
        try:
            with self._session("create a project in") as session:
                row = ProjectRow(**values, created=utc_now())
                session.add(row)
                session.flush()
                return Project.model_validate(row)
        except IntegrityError as error:
            raise self._explain_conflict(error, "project", [{"project_name": project_name}], []) from error

    def ensure_project(self, project_name: str, description: str = "") -> Project:
        """The project with this name, created if missing (its description is left as it is)."""
        try:
            return self.get_project(project_name)
        except NotFound:
            pass
        try:
            return self.create_project(project_name, description)
        except AlreadyExists:
            # Another process created it in between.
            return self.get_project(project_name)

    def get_project(self, project_name: str) -> Project:
        """The project with this name, or :class:`NotFound`."""
        return self._get(Project, "project", {"project_name": project_name})

    def list_projects(self) -> list[Project]:
        """Every project, by name."""
        return self._list(Project, "project", {}, [ProjectRow.project_name])

    def update_project(self, project_name: str, *, description: str) -> Project:
        """Change a project's description."""
        return self._update(Project, "project", {"project_name": project_name}, {"description": description},
                            lambda _: [])

    def delete_project(self, project_name: str) -> None:
        """Delete a project and (cascading) its flows."""
        self._delete("project", {"project_name": project_name})

    # ----------------------------------------------------------------------------- models

    @staticmethod
    def _model_identity(model: Model | Mapping[str, Any]) -> dict[str, Any]:
        source = model if isinstance(model, Mapping) else model.model_dump()
        return {k: source[k] for k in ("author", "laboratory", "facility", "beampath", "description")}

    def create_model(self, author: str, laboratory: str, facility: str, beampath: str,
                     description: str = "") -> Model:
        """Create a model; :class:`AlreadyExists` if an identical one exists."""
        values = _checked("model", {"author": author, "laboratory": laboratory, "facility": facility,
                                    "beampath": beampath, "description": description})
        try:
            with self._session("create a model in") as session:
                row = ModelRow(**values, created=utc_now())
                session.add(row)
                session.flush()
                return Model.model_validate(row)
        except IntegrityError as error:
            raise self._explain_conflict(error, "model", [self._model_identity(values)], []) from error

    def get_model(self, model_id: int) -> Model:
        """The model with this id, or :class:`NotFound`."""
        return self._get(Model, "model", {"model_id": _identifier("model.model_id", model_id)})

    def list_models(self, **filters: Any) -> list[Model]:
        """Models whose fields equal ``filters`` (e.g. ``facility="LCLS"``), oldest first."""
        return self._list(Model, "model", filters, [ModelRow.model_id])

    def update_model(self, model_id: int, **changes: Any) -> Model:
        """Change a model's fields."""
        return self._update(Model, "model", {"model_id": model_id}, changes,
                            lambda model: [self._model_identity(model)])

    def delete_model(self, model_id: int) -> None:
        """Delete a model and (cascading) its deployments and their flows."""
        self._delete("model", {"model_id": model_id})

    # ----------------------------------------------------------------------------- deployments

    def create_deployment(self, model_id: int, version: str, *, source: str, sha256: str,
                          package_import_name: str, image: str | None = None, is_live: bool = False,
                          asset_dir: str | None = None, deploy_date: datetime | None = None) -> Deployment:
        """Create a deployment of a model; :class:`AlreadyExists` if that version exists already."""
        values = _checked("deployment", {
            "model_id": model_id, "version": version, "source": source, "sha256": sha256,
            "package_import_name": package_import_name, "image": image, "is_live": is_live,
            "asset_dir": asset_dir, "deploy_date": deploy_date or utc_now(),
        })
        try:
            with self._session("create a deployment in") as session:
                row = DeploymentRow(**values)
                session.add(row)
                session.flush()
                return Deployment.model_validate(row)
        except IntegrityError as error:
            raise self._explain_conflict(error, "deployment", [{"model_id": model_id, "version": version}],
                                         [("model", {"model_id": model_id})]) from error

    def get_deployment(self, deployment_id: int) -> Deployment:
        """The deployment with this id, or :class:`NotFound`."""
        return self._get(Deployment, "deployment",
                         {"deployment_id": _identifier("deployment.deployment_id", deployment_id)})

    def list_deployments(self, **filters: Any) -> list[Deployment]:
        """Deployments whose fields equal ``filters`` (e.g. ``model_id=3, is_live=True``), newest first."""
        return self._list(Deployment, "deployment", filters,
                          [DeploymentRow.deploy_date.desc(), DeploymentRow.deployment_id.desc()])

    def get_latest_deployment(self, model_id: int, *, live_only: bool = False) -> Deployment:
        """The model's most recently deployed version (only live ones with ``live_only``), or NotFound."""
        filters: dict[str, Any] = {"model_id": model_id}
        if live_only:
            filters["is_live"] = True
        deployments = self.list_deployments(**filters)
        if not deployments:
            self.get_model(model_id)
            raise NotFound("deployment", filters)
        return deployments[0]

    def update_deployment(self, deployment_id: int, **changes: Any) -> Deployment:
        """Change a deployment's fields, e.g. ``is_live=True``."""
        return self._update(
            Deployment, "deployment", {"deployment_id": deployment_id}, changes,
            lambda d: [{"model_id": d.model_id, "version": d.version}],
            [("model", {"model_id": changes["model_id"]})] if "model_id" in changes else [],
        )

    def delete_deployment(self, deployment_id: int) -> None:
        """Delete a deployment and (cascading) its flows."""
        self._delete("deployment", {"deployment_id": deployment_id})

    # ----------------------------------------------------------------------------- flows

    def create_flow(self, flow_id: str, flow_name: str, project_name: str,
                    deployment_id: int | None = None) -> Flow:
        """Register a flow (``flow_id``: its Prefect deployment id) in a project, maybe for a deployment."""
        values = _checked("flow", {"flow_id": flow_id, "flow_name": flow_name, "project_name": project_name,
                                   "deployment_id": deployment_id})
        try:
            with self._session("create a flow in") as session:
                row = FlowRow(**values)
                session.add(row)
                session.flush()
                return Flow.model_validate(row)
        except IntegrityError as error:
            raise self._explain_conflict(
                error, "flow", [{"flow_id": flow_id}],
                [("project", {"project_name": project_name}),
                 ("deployment", {"deployment_id": deployment_id})],
            ) from error

    def get_flow(self, flow_id: str) -> Flow:
        """The flow with this id, or :class:`NotFound`."""
        return self._get(Flow, "flow", {"flow_id": flow_id})

    def list_flows(self, **filters: Any) -> list[Flow]:
        """Flows whose fields equal ``filters`` (e.g. ``project_name="demo"``), by name then id."""
        return self._list(Flow, "flow", filters, [FlowRow.flow_name, FlowRow.flow_id])

    def update_flow(self, flow_id: str, **changes: Any) -> Flow:
        """Change a flow's name, project or deployment."""
        parents: list[tuple[str, Mapping[str, Any]]] = []
        if "project_name" in changes:
            parents.append(("project", {"project_name": changes["project_name"]}))
        if changes.get("deployment_id") is not None:
            parents.append(("deployment", {"deployment_id": changes["deployment_id"]}))
        return self._update(Flow, "flow", {"flow_id": flow_id}, changes, lambda _: [], parents)

    def delete_flow(self, flow_id: str) -> None:
        """Delete a flow and (cascading) any composition it takes part in."""
        self._delete("flow", {"flow_id": flow_id})

    # ----------------------------------------------------------------------------- flows of flows

    def create_flow_of_flows(self, parent_flow_id: str, flow_ids: Sequence[str]) -> list[Flow]:
        """Record that ``parent_flow_id`` runs ``flow_ids`` in this order; returns the children.

        Raises
        ------
        AlreadyExists
            If the parent already has a composition (use :meth:`update_flow_of_flows`).
        NotFound
            Naming the first of the parent and the children that is not a registered flow.
        """
        children = self._checked_children(parent_flow_id, flow_ids)
        if self.get_flow_of_flows(parent_flow_id):
            raise AlreadyExists("flow_of_flows", {"parent_flow_id": parent_flow_id})
        self._write_children(parent_flow_id, children)
        return self.get_flow_of_flows(parent_flow_id)

    def update_flow_of_flows(self, parent_flow_id: str, flow_ids: Sequence[str]) -> list[Flow]:
        """Replace the children of a composition (in one transaction)."""
        children = self._checked_children(parent_flow_id, flow_ids)
        self.get_flow(parent_flow_id)
        self._write_children(parent_flow_id, children, replace=True)
        return self.get_flow_of_flows(parent_flow_id)

    def get_flow_of_flows(self, parent_flow_id: str) -> list[Flow]:
        """The children of a composed flow in run order ([] if it composes nothing), or NotFound."""
        self.get_flow(parent_flow_id)
        with self._session("read flow_of_flows from") as session:
            rows = session.execute(
                select(FlowRow).join(FlowOfFlowsRow, FlowOfFlowsRow.flow_id == FlowRow.flow_id)
                .where(FlowOfFlowsRow.parent_flow_id == parent_flow_id).order_by(FlowOfFlowsRow.position)
            ).scalars()
            return [Flow.model_validate(row) for row in rows]

    def delete_flow_of_flows(self, parent_flow_id: str) -> None:
        """Forget a composition (the flows themselves stay)."""
        self._delete("flow_of_flows", {"parent_flow_id": parent_flow_id})

    @staticmethod
    def _checked_children(parent_flow_id: str, flow_ids: Sequence[str]) -> list[str]:
        if isinstance(flow_ids, str) or not flow_ids:
            raise InvalidRecordError("flow_of_flows needs a non-empty list of child flow ids")
        children = [_text(TEXT_LENGTH)("flow_of_flows.flow_id", flow_id) for flow_id in flow_ids]
        repeated = sorted({f for f in children if children.count(f) > 1})
        if repeated:
            raise InvalidRecordError(f"flow_of_flows lists {', '.join(repeated)} more than once")
        if parent_flow_id in children:
            raise InvalidRecordError(f"flow {parent_flow_id} cannot compose itself")
        return children

    def _write_children(self, parent_flow_id: str, children: list[str], *, replace: bool = False) -> None:
        try:
            with self._session("write flow_of_flows in") as session:
                if replace:
                    session.execute(delete(FlowOfFlowsRow)
                                    .where(FlowOfFlowsRow.parent_flow_id == parent_flow_id))
                session.add_all(
                    FlowOfFlowsRow(parent_flow_id=parent_flow_id, flow_id=flow_id, position=position)
                    for position, flow_id in enumerate(children)
                )
        except IntegrityError as error:
            parents = [("flow", {"flow_id": f}) for f in [parent_flow_id, *children]]
            raise self._explain_conflict(error, "flow_of_flows", [{"parent_flow_id": parent_flow_id}],
                                         parents) from error

    # ----------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ModelRegistry({self.url!r})"
