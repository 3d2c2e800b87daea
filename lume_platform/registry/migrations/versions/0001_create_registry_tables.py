"""Create the model registry tables: project, model, deployment, flow, flow_of_flows."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types this revision creates: later schema changes get their own revision.
NAME = sa.String(length=100)
TEXT = sa.String(length=255)


def _utc_datetime() -> sa.types.TypeEngine[object]:
    # Microseconds on MySQL too, so that deployments made within one second still order.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create the five tables with their keys, cascading foreign keys and indexes."""
    op.create_table(
        "project",
        sa.Column("project_name", NAME, nullable=False),
        sa.Column("description", TEXT, nullable=False),
        sa.Column("created", _utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("project_name", name="pk_project"),
    )
    op.create_table(
        "model",
        sa.Column("model_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created", _utc_datetime(), nullable=False),
        sa.Column("author", NAME, nullable=False),
        sa.Column("laboratory", NAME, nullable=False),
        sa.Column("facility", NAME, nullable=False),
        sa.Column("beampath", NAME, nullable=False),
        sa.Column("description", TEXT, nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_model"),
        sa.UniqueConstraint("author", "laboratory", "facility", "beampath", "description",
                            name="uq_model_author_laboratory_facility_beampath_description"),
    )
    op.create_table(
        "deployment",
        sa.Column("deployment_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("deploy_date", _utc_datetime(), nullable=False),
        sa.Column("package_import_name", NAME, nullable=False),
        sa.Column("asset_dir", TEXT, nullable=True),
        sa.Column("source", TEXT, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("image", TEXT, nullable=True),
        sa.Column("is_live", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.model_id"], name="fk_deployment_model_id_model",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("deployment_id", name="pk_deployment"),
        sa.UniqueConstraint("model_id", "version", name="uq_deployment_model_id_version"),
        sa.Index("ix_deployment_model_id", "model_id"),
    )
    op.create_table(
        "flow",
        sa.Column("flow_id", TEXT, nullable=False),
        sa.Column("flow_name", TEXT, nullable=False),
        sa.Column("project_name", NAME, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.deployment_id"],
                                name="fk_flow_deployment_id_deployment", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_name"], ["project.project_name"],
                                name="fk_flow_project_name_project", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("flow_id", name="pk_flow"),
        sa.Index("ix_flow_deployment_id", "deployment_id"),
        sa.Index("ix_flow_project_name", "project_name"),
    )
    op.create_table(
        "flow_of_flows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("parent_flow_id", TEXT, nullable=False),
        sa.Column("flow_id", TEXT, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["flow_id"], ["flow.flow_id"], name="fk_flow_of_flows_flow_id_flow",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_flow_id"], ["flow.flow_id"],
                                name="fk_flow_of_flows_parent_flow_id_flow", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_flow_of_flows"),
        sa.UniqueConstraint("parent_flow_id", "flow_id", name="uq_flow_of_flows_parent_flow_id_flow_id"),
        sa.UniqueConstraint("parent_flow_id", "position", name="uq_flow_of_flows_parent_flow_id_position"),
        sa.Index("ix_flow_of_flows_flow_id", "flow_id"),
    )


def downgrade() -> None:
    """Drop the five tables, children first."""
    for table in ("flow_of_flows", "flow", "deployment", "model", "project"):
        op.drop_table(table)
