"""SQLAlchemy 2 tables of the model registry, with LUME-services' table and column names.

The migrations in ``lume_platform/registry/migrations`` create exactly this schema (a test compares them);
change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Column sizes, shared with the input checks of the registry API so that a value too long is refused
# with a message instead of being truncated by MySQL or kept whole by SQLite.
NAME_LENGTH = 100
TEXT_LENGTH = 255
VERSION_LENGTH = 64
SHA256_LENGTH = 64

# Explicit constraint names, so that migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes, stored naive in UTC (MySQL DATETIME has no zone) with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            # DATETIME keeps whole seconds only; two deployments in one second must still order.
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_now() -> datetime:
    """Now, in UTC (a default evaluated per row, unlike LUME-services' import-time default)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base holding the registry's metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ProjectRow(Base):
    """A project groups flows (a Prefect 1 project in LUME-services; a label or namespace here)."""

    __tablename__ = "project"

    project_name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(String(TEXT_LENGTH), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class ModelRow(Base):
    """A scientific model, identified by who made it and where it applies."""

    __tablename__ = "model"
    __table_args__ = (UniqueConstraint("author", "laboratory", "facility", "beampath", "description"),)

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    author: Mapped[str] = mapped_column(String(NAME_LENGTH))
    laboratory: Mapped[str] = mapped_column(String(NAME_LENGTH))
    facility: Mapped[str] = mapped_column(String(NAME_LENGTH))
    beampath: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str] = mapped_column(String(TEXT_LENGTH))


class DeploymentRow(Base):
    """One version of a model, packaged as an image and/or a Python package."""

    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    deployment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model.model_id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    deploy_date: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    package_import_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    asset_dir: Mapped[str | None] = mapped_column(String(TEXT_LENGTH), nullable=True)
    source: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    image: Mapped[str | None] = mapped_column(String(TEXT_LENGTH), nullable=True)
    is_live: Mapped[bool] = mapped_column(Boolean, default=False)


class FlowRow(Base):
    """A published flow: ``flow_id`` is the Prefect deployment id (Prefect 3 has no flow registration)."""

    __tablename__ = "flow"

    flow_id: Mapped[str] = mapped_column(String(TEXT_LENGTH), primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(TEXT_LENGTH))
    project_name: Mapped[str] = mapped_column(
        ForeignKey("project.project_name", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployment.deployment_id", ondelete="CASCADE"), nullable=True, index=True
    )


class FlowOfFlowsRow(Base):
    """One child of a composed flow, at ``position`` in the order the parent runs them."""

    __tablename__ = "flow_of_flows"
    __table_args__ = (
        UniqueConstraint("parent_flow_id", "flow_id"),
        UniqueConstraint("parent_flow_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_flow_id: Mapped[str] = mapped_column(ForeignKey("flow.flow_id", ondelete="CASCADE"))
    flow_id: Mapped[str] = mapped_column(ForeignKey("flow.flow_id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
