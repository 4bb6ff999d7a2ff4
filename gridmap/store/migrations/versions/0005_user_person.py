"""link an application user to a person (volunteers see only their own care subjects)

Revision ID: 0005_user_person
Revises: 0004_drafts
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_user_person"
down_revision = "0004_drafts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("app_user", sa.Column("person_id", sa.Integer(), nullable=True))
    # a person leaving the roster unlinks the account rather than deleting it (audit keeps it)
    op.create_foreign_key(
        op.f("fk_app_user_person_id_person"),
        "app_user",
        "person",
        ["person_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_app_user_person_id"), "app_user", ["person_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_app_user_person_id"), table_name="app_user")
    op.drop_constraint(op.f("fk_app_user_person_id_person"), "app_user", type_="foreignkey")
    op.drop_column("app_user", "person_id")
