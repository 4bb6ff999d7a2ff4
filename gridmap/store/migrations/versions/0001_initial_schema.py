"""initial schema: areas, grids, staff, incidents, roads, users, audit

Revision ID: 0001_initial_schema
Revises: (none)
Create Date: 2026-11-27 17:32:11.693976
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001_initial_schema"
down_revision = None
branch_labels = None
depends_on = None

AUDIT_GUARD = """
CREATE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
"""


def upgrade() -> None:
    # PostGIS for geometry, pgRouting for road routing (IF NOT EXISTS: an external server may
    # already have them, created by its DBA).
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("area_code", sa.String(length=16), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'planner', 'dispatcher', 'leader', 'grid_manager', 'volunteer')",
            name=op.f("ck_app_user_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("name", name=op.f("uq_app_user_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=True),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_table(
        "generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("feature_count", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generation")),
    )
    op.create_table(
        "grid_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("quality", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'superseded', 'discarded')",
            name=op.f("ck_grid_version_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_version")),
    )
    op.create_geospatial_table(
        "area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("households", sa.Integer(), nullable=True),
        sa.Column("population", sa.Integer(), nullable=True),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column("synthetic", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('city', 'district', 'street', 'community')", name=op.f("ck_area_kind")
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_area_geom_valid")
        ),
        sa.CheckConstraint(
            "households IS NULL OR households >= 0", name=op.f("ck_area_households")
        ),
        sa.CheckConstraint(
            "population IS NULL OR population >= 0", name=op.f("ck_area_population")
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generation.id"], name=op.f("fk_area_generation_id_generation")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["area.id"], name=op.f("fk_area_parent_id_area"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_area")),
        sa.UniqueConstraint("code", name=op.f("uq_area_code")),
    )
    op.create_geospatial_index(
        "idx_area_geom", "area", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index(op.f("ix_area_kind"), "area", ["kind"], unique=False)
    op.create_index(op.f("ix_area_parent_id"), "area", ["parent_id"], unique=False)
    op.create_geospatial_table(
        "road_edge",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("reverse_cost", sa.Float(), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=False),
        sa.Column("road_class", sa.String(length=32), nullable=True),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generation.id"], name=op.f("fk_road_edge_generation_id_generation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_road_edge")),
    )
    op.create_geospatial_index(
        "idx_road_edge_geom",
        "road_edge",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_road_edge_source"), "road_edge", ["source"], unique=False)
    op.create_index(op.f("ix_road_edge_target"), "road_edge", ["target"], unique=False)
    op.create_geospatial_table(
        "grid",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="residential", nullable=False),
        sa.Column("households", sa.Integer(), server_default="0", nullable=False),
        sa.Column("population", sa.Integer(), server_default="0", nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('residential', 'enterprise', 'religious', 'comprehensive', 'other')",
            name=op.f("ck_grid_kind"),
        ),
        sa.CheckConstraint(
            "ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name=op.f("ck_grid_geom_valid")
        ),
        sa.CheckConstraint("households >= 0 AND population >= 0", name=op.f("ck_grid_counts")),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_grid_validity")
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["area.id"], name=op.f("fk_grid_community_id_area")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["grid_version.id"],
            name=op.f("fk_grid_version_id_grid_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid")),
    )
    op.create_geospatial_index(
        "idx_grid_geom", "grid", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
    )
    op.create_index(op.f("ix_grid_community_id"), "grid", ["community_id"], unique=False)
    op.create_index(op.f("ix_grid_version_id"), "grid", ["version_id"], unique=False)
    op.create_index(
        "uq_grid_current_code",
        "grid",
        ["code"],
        unique=True,
        postgresql_where=sa.text("valid_from IS NOT NULL AND valid_to IS NULL"),
    )
    op.create_index("uq_grid_version_code", "grid", ["version_id", "code"], unique=True)
    op.create_geospatial_table(
        "household_unit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("ext_id", sa.String(length=64), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "footprint",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.CheckConstraint(
            "households >= 0 AND residents >= 0", name=op.f("ck_household_unit_counts")
        ),
        sa.ForeignKeyConstraint(
            ["community_id"], ["area.id"], name=op.f("fk_household_unit_community_id_area")
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generation.id"],
            name=op.f("fk_household_unit_generation_id_generation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_household_unit")),
        sa.UniqueConstraint("ext_id", name=op.f("uq_household_unit_ext_id")),
    )
    op.create_geospatial_index(
        "idx_household_unit_geom",
        "household_unit",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        op.f("ix_household_unit_community_id"), "household_unit", ["community_id"], unique=False
    )
    op.create_geospatial_table(
        "person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="available", nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("id_number_hash", sa.String(length=128), nullable=True),
        sa.Column("id_number_enc", sa.LargeBinary(), nullable=True),
        sa.Column("id_number_masked", sa.String(length=32), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=True),
        sa.Column("caseload_cap", sa.Integer(), server_default="5", nullable=False),
        sa.Column(
            "home",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "position",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("position_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('available', 'busy', 'off_duty')", name=op.f("ck_person_status")
        ),
        sa.CheckConstraint("caseload_cap >= 0", name=op.f("ck_person_caseload_cap")),
        sa.ForeignKeyConstraint(
            ["community_id"], ["area.id"], name=op.f("fk_person_community_id_area")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("id_number_hash", name=op.f("uq_person_id_number_hash")),
    )
    op.create_geospatial_index(
        "idx_person_home",
        "person",
        ["home"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "idx_person_position",
        "person",
        ["position"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_person_community_id"), "person", ["community_id"], unique=False)
    op.create_geospatial_table(
        "care_subject",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("grid_code", sa.String(length=20), nullable=True),
        sa.Column("volunteer_id", sa.Integer(), nullable=True),
        sa.Column("id_number_enc", sa.LargeBinary(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('community_correction', 'released', 'other')",
            name=op.f("ck_care_subject_category"),
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_id"],
            ["person.id"],
            name=op.f("fk_care_subject_volunteer_id_person"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_subject")),
        sa.UniqueConstraint("code", name=op.f("uq_care_subject_code")),
    )
    op.create_geospatial_index(
        "idx_care_subject_geom",
        "care_subject",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_care_subject_grid_code"), "care_subject", ["grid_code"], unique=False)
    op.create_index(
        op.f("ix_care_subject_volunteer_id"), "care_subject", ["volunteer_id"], unique=False
    )
    op.create_geospatial_table(
        "incident",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="reported", nullable=False),
        sa.Column("reported_x", sa.Float(), nullable=True),
        sa.Column("reported_y", sa.Float(), nullable=True),
        sa.Column("reported_crs", sa.String(length=32), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("grid_code", sa.String(length=20), nullable=True),
        sa.Column("mediator_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reported_by", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.CheckConstraint(
            "status IN ('reported', 'dispatched', 'accepted', 'on_site', 'resolved', 'failed', 'escalated', 'closed', 'cancelled')",
            name=op.f("ck_incident_status"),
        ),
        sa.ForeignKeyConstraint(["grid_id"], ["grid.id"], name=op.f("fk_incident_grid_id_grid")),
        sa.ForeignKeyConstraint(
            ["mediator_id"], ["person.id"], name=op.f("fk_incident_mediator_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
        sa.UniqueConstraint("public_id", name=op.f("uq_incident_public_id")),
    )
    op.create_geospatial_index(
        "idx_incident_geom",
        "incident",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(op.f("ix_incident_category"), "incident", ["category"], unique=False)
    op.create_index(op.f("ix_incident_grid_code"), "incident", ["grid_code"], unique=False)
    op.create_index(op.f("ix_incident_grid_id"), "incident", ["grid_id"], unique=False)
    op.create_index(op.f("ix_incident_mediator_id"), "incident", ["mediator_id"], unique=False)
    op.create_index(op.f("ix_incident_status"), "incident", ["status"], unique=False)
    op.create_table(
        "posting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=20), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column(
            "valid_from",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('grid_manager', 'mediator', 'legal_professional', 'publicity', 'legal_aid', 'care_volunteer')",
            name=op.f("ck_posting_role"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_posting_validity")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["person.id"],
            name=op.f("fk_posting_person_id_person"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting")),
    )
    op.create_index("ix_posting_grid_role", "posting", ["grid_code", "role"], unique=False)
    op.create_index(op.f("ix_posting_person_id"), "posting", ["person_id"], unique=False)
    op.create_table(
        "incident_event",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
            name=op.f("fk_incident_event_incident_id_incident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_event")),
    )
    op.create_index(
        op.f("ix_incident_event_incident_id"), "incident_event", ["incident_id"], unique=False
    )
    # The audit trail is append-only whatever role writes to it.
    op.execute(AUDIT_GUARD)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_reject_change()")
    op.drop_index(op.f("ix_incident_event_incident_id"), table_name="incident_event")
    op.drop_table("incident_event")
    op.drop_index(op.f("ix_posting_person_id"), table_name="posting")
    op.drop_index("ix_posting_grid_role", table_name="posting")
    op.drop_table("posting")
    op.drop_index(op.f("ix_incident_status"), table_name="incident")
    op.drop_index(op.f("ix_incident_mediator_id"), table_name="incident")
    op.drop_index(op.f("ix_incident_grid_id"), table_name="incident")
    op.drop_index(op.f("ix_incident_grid_code"), table_name="incident")
    op.drop_index(op.f("ix_incident_category"), table_name="incident")
    op.drop_geospatial_index(
        "idx_incident_geom", table_name="incident", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("incident")
    op.drop_index(op.f("ix_care_subject_volunteer_id"), table_name="care_subject")
    op.drop_index(op.f("ix_care_subject_grid_code"), table_name="care_subject")
    op.drop_geospatial_index(
        "idx_care_subject_geom",
        table_name="care_subject",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("care_subject")
    op.drop_index(op.f("ix_person_community_id"), table_name="person")
    op.drop_geospatial_index(
        "idx_person_position", table_name="person", postgresql_using="gist", column_name="position"
    )
    op.drop_geospatial_index(
        "idx_person_home", table_name="person", postgresql_using="gist", column_name="home"
    )
    op.drop_geospatial_table("person")
    op.drop_index(op.f("ix_household_unit_community_id"), table_name="household_unit")
    op.drop_geospatial_index(
        "idx_household_unit_geom",
        table_name="household_unit",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("household_unit")
    op.drop_index("uq_grid_version_code", table_name="grid")
    op.drop_index(
        "uq_grid_current_code",
        table_name="grid",
        postgresql_where=sa.text("valid_from IS NOT NULL AND valid_to IS NULL"),
    )
    op.drop_index(op.f("ix_grid_version_id"), table_name="grid")
    op.drop_index(op.f("ix_grid_community_id"), table_name="grid")
    op.drop_geospatial_index(
        "idx_grid_geom", table_name="grid", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("grid")
    op.drop_index(op.f("ix_road_edge_target"), table_name="road_edge")
    op.drop_index(op.f("ix_road_edge_source"), table_name="road_edge")
    op.drop_geospatial_index(
        "idx_road_edge_geom", table_name="road_edge", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("road_edge")
    op.drop_index(op.f("ix_area_parent_id"), table_name="area")
    op.drop_index(op.f("ix_area_kind"), table_name="area")
    op.drop_geospatial_index(
        "idx_area_geom", table_name="area", postgresql_using="gist", column_name="geom"
    )
    op.drop_geospatial_table("area")
    op.drop_table("grid_version")
    op.drop_table("generation")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("app_user")
