"""dispatch assignments, co-mediators, idempotency keys

Revision ID: 0002_dispatch
Revises: 0001_initial_schema
Create Date: 2026-11-27 17:43:24.611244
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_dispatch"
down_revision = "0001_initial_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", "actor", name=op.f("pk_idempotency_key")),
    )
    op.create_table(
        "co_mediator",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("area_code", sa.String(length=16), nullable=False),
        sa.Column("categories", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_co_mediator_person_id_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_co_mediator")),
    )
    op.create_index(op.f("ix_co_mediator_area_code"), "co_mediator", ["area_code"], unique=False)
    op.create_table(
        "dispatch_assignment",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="dispatched", nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('dispatched', 'accepted', 'on_site', 'completed', 'declined', 'cancelled', 'reassigned')",
            name=op.f("ck_dispatch_assignment_status"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_dispatch_assignment_incident_id_incident"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_dispatch_assignment_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_assignment")),
    )
    op.create_index(
        op.f("ix_dispatch_assignment_incident_id"),
        "dispatch_assignment",
        ["incident_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_dispatch_assignment_person_id"), "dispatch_assignment", ["person_id"], unique=False
    )
    op.create_index(
        "uq_assignment_active_incident",
        "dispatch_assignment",
        ["incident_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('dispatched', 'accepted', 'on_site')"),
    )
    op.create_index(
        "uq_assignment_active_person",
        "dispatch_assignment",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('dispatched', 'accepted', 'on_site')"),
    )
    op.add_column("incident", sa.Column("service_code", sa.String(length=32), nullable=True))
    op.add_column("incident", sa.Column("contact", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("incident", "contact")
    op.drop_column("incident", "service_code")
    op.drop_index(
        "uq_assignment_active_person",
        table_name="dispatch_assignment",
        postgresql_where=sa.text("status IN ('dispatched', 'accepted', 'on_site')"),
    )
    op.drop_index(
        "uq_assignment_active_incident",
        table_name="dispatch_assignment",
        postgresql_where=sa.text("status IN ('dispatched', 'accepted', 'on_site')"),
    )
    op.drop_index(op.f("ix_dispatch_assignment_person_id"), table_name="dispatch_assignment")
    op.drop_index(op.f("ix_dispatch_assignment_incident_id"), table_name="dispatch_assignment")
    op.drop_table("dispatch_assignment")
    op.drop_index(op.f("ix_co_mediator_area_code"), table_name="co_mediator")
    op.drop_table("co_mediator")
    op.drop_table("idempotency_key")
