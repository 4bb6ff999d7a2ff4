"""draft locks and the edit log behind undo/redo of planner drafts

Revision ID: 0004_drafts
Revises: 0003_app_role
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_drafts"
down_revision = "0003_app_role"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "draft_lock",
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=False),
        sa.Column(
            "locked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["area.id"],
            name=op.f("fk_draft_lock_community_id_area"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["grid_version.id"],
            name=op.f("fk_draft_lock_version_id_grid_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_draft_lock")),
    )
    op.create_index(op.f("ix_draft_lock_version_id"), "draft_lock", ["version_id"])
    op.create_table(
        "draft_op",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=32), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("removed", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("added", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.String(length=8), server_default="done", nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _now(),
        sa.CheckConstraint("state IN ('done', 'undone')", name=op.f("ck_draft_op_state")),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["grid_version.id"],
            name=op.f("fk_draft_op_version_id_grid_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_op")),
    )
    op.create_index("uq_draft_op_seq", "draft_op", ["version_id", "seq"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_draft_op_seq", table_name="draft_op")
    op.drop_table("draft_op")
    op.drop_index(op.f("ix_draft_lock_version_id"), table_name="draft_lock")
    op.drop_table("draft_lock")
