"""SQLAlchemy 2 / GeoAlchemy2 models: the whole data model of DESIGN.md.

Geometry is stored in EPSG:4326, lon/lat order; areas and grids are MultiPolygons with a
validity CHECK so nothing invalid can ever be committed, whatever path wrote it.
The migrations in ``migrations/versions`` are the source of truth for the schema; these models
mirror them for the ORM (a test compares the two).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AREA_KINDS = ("city", "district", "street", "community")
GRID_KINDS = ("residential", "enterprise", "religious", "comprehensive", "other")
ROLES = ("admin", "planner", "dispatcher", "leader", "grid_manager", "volunteer")
STAFF_ROLES = (
    "grid_manager",
    "mediator",
    "legal_professional",
    "publicity",
    "legal_aid",
    "care_volunteer",
)
PERSON_STATUS = ("available", "busy", "off_duty")
CARE_CATEGORIES = ("community_correction", "released", "other")
INCIDENT_STATUS = (
    "reported",
    "dispatched",
    "accepted",
    "on_site",
    "resolved",
    "failed",
    "escalated",
    "closed",
    "cancelled",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _valid(column: str = "geom") -> str:
    return f"ST_IsValid({column}) AND NOT ST_IsEmpty({column})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Generation(Base):
    """One committed load (boundaries, roads, households…): source, time and user (mapit style)."""

    __tablename__ = "generation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    feature_count: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)


class Area(Base):
    """District ▸ street ▸ community, each a MultiPolygon."""

    __tablename__ = "area"
    __table_args__ = (
        CheckConstraint(_in("kind", AREA_KINDS), name="kind"),
        CheckConstraint(_valid(), name="geom_valid"),
        CheckConstraint("households IS NULL OR households >= 0", name="households"),
        CheckConstraint("population IS NULL OR population >= 0", name="population"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("area.id", ondelete="RESTRICT"), index=True
    )
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"))
    synthetic: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", 4326, spatial_index=True), nullable=False
    )


class GridVersion(Base):
    """A set of grids: a draft, or a published version with dated validity."""

    __tablename__ = "grid_version"
    __table_args__ = (
        CheckConstraint(
            _in("status", ("draft", "published", "superseded", "discarded")), name="status"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Grid(Base):
    """One grid (网格) of a community in one version. Current = published, valid_to IS NULL."""

    __tablename__ = "grid"
    __table_args__ = (
        CheckConstraint(_in("kind", GRID_KINDS), name="kind"),
        CheckConstraint(_valid(), name="geom_valid"),
        CheckConstraint("households >= 0 AND population >= 0", name="counts"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
        Index("uq_grid_version_code", "version_id", "code", unique=True),
        Index(
            "uq_grid_current_code",
            "code",
            unique=True,
            postgresql_where=text("valid_from IS NOT NULL AND valid_to IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("grid_version.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(20))
    community_id: Mapped[int] = mapped_column(ForeignKey("area.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), server_default="residential")
    households: Mapped[int] = mapped_column(Integer, server_default="0")
    population: Mapped[int] = mapped_column(Integer, server_default="0")
    valid_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    geom: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", 4326, spatial_index=True), nullable=False
    )


class DraftLock(Base):
    """A planner's hold on a community while editing it in a draft; others get 409 until expiry."""

    __tablename__ = "draft_lock"
    community_id: Mapped[int] = mapped_column(
        ForeignKey("area.id", ondelete="CASCADE"), primary_key=True
    )
    version_id: Mapped[int] = mapped_column(
        ForeignKey("grid_version.id", ondelete="CASCADE"), index=True
    )
    locked_by: Mapped[str] = mapped_column(String(64))
    locked_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DraftOp(Base):
    """One edit of a draft: the grid rows it removed and added, so it can be undone and redone."""

    __tablename__ = "draft_op"
    __table_args__ = (
        CheckConstraint(_in("state", ("done", "undone")), name="state"),
        Index("uq_draft_op_seq", "version_id", "seq", unique=True),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("grid_version.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    op: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    removed: Mapped[list[Any]] = mapped_column(JSONB)
    added: Mapped[list[Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(8), server_default="done")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()


class HouseholdUnit(Base):
    """A building or address point with household and resident counts. No names here."""

    __tablename__ = "household_unit"
    __table_args__ = (CheckConstraint("households >= 0 AND residents >= 0", name="counts"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ext_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)
    households: Mapped[int] = mapped_column(Integer)
    residents: Mapped[int] = mapped_column(Integer)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"))
    geom: Mapped[Any] = mapped_column(Geometry("POINT", 4326, spatial_index=True), nullable=False)
    footprint: Mapped[Any | None] = mapped_column(
        Geometry("MULTIPOLYGON", 4326, spatial_index=False)
    )


class Person(Base):
    """Staff and volunteers. Identity numbers only ever stored protected."""

    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint(_in("status", PERSON_STATUS), name="status"),
        CheckConstraint("caseload_cap >= 0", name="caseload_cap"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    roles: Mapped[str] = mapped_column(Text)  # comma-separated STAFF_ROLES
    status: Mapped[str] = mapped_column(String(16), server_default="available")
    phone: Mapped[str | None] = mapped_column(String(32))
    id_number_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_masked: Mapped[str | None] = mapped_column(String(32))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("area.id"), index=True)
    caseload_cap: Mapped[int] = mapped_column(Integer, server_default="5")
    home: Mapped[Any | None] = mapped_column(Geometry("POINT", 4326, spatial_index=True))
    position: Mapped[Any | None] = mapped_column(Geometry("POINT", 4326, spatial_index=True))
    position_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class Posting(Base):
    """Person ↔ grid ↔ role for a period (grid by code: postings outlive grid versions)."""

    __tablename__ = "posting"
    __table_args__ = (
        CheckConstraint(_in("role", STAFF_ROLES), name="role"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="validity"),
        Index("ix_posting_grid_role", "grid_code", "role"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    grid_code: Mapped[str] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[datetime] = _now()
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CareSubject(Base):
    """Person under community correction or recently released: restricted data."""

    __tablename__ = "care_subject"
    __table_args__ = (CheckConstraint(_in("category", CARE_CATEGORIES), name="category"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # pseudonymous
    category: Mapped[str] = mapped_column(String(32))
    grid_code: Mapped[str | None] = mapped_column(String(20), index=True)
    volunteer_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    geom: Mapped[Any | None] = mapped_column(Geometry("POINT", 4326, spatial_index=True))
    created_at: Mapped[datetime] = _now()


class Incident(Base):
    """A reported dispute, located to a grid and handled by a mediator."""

    __tablename__ = "incident"
    __table_args__ = (CheckConstraint(_in("status", INCIDENT_STATUS), name="status"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="reported", index=True)
    reported_x: Mapped[float | None] = mapped_column(Float)
    reported_y: Mapped[float | None] = mapped_column(Float)
    reported_crs: Mapped[str | None] = mapped_column(String(32))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id"), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(20), index=True)
    mediator_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    outcome: Mapped[str | None] = mapped_column(String(16))
    service_code: Mapped[str | None] = mapped_column(String(32))
    contact: Mapped[str | None] = mapped_column(Text)
    reported_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    geom: Mapped[Any | None] = mapped_column(Geometry("POINT", 4326, spatial_index=True))


class IncidentEvent(Base):
    """Every state transition of an incident (who, when, from, to)."""

    __tablename__ = "incident_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), index=True
    )
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = _now()
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)


class RoadEdge(Base):
    """pgRouting edge table (source/target node ids, costs in seconds)."""

    __tablename__ = "road_edge"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[int] = mapped_column(BigInteger, index=True)
    target: Mapped[int] = mapped_column(BigInteger, index=True)
    cost: Mapped[float] = mapped_column(Float)
    reverse_cost: Mapped[float] = mapped_column(Float)
    length_m: Mapped[float] = mapped_column(Float)
    road_class: Mapped[str | None] = mapped_column(String(32))
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generation.id"))
    geom: Mapped[Any] = mapped_column(
        Geometry("LINESTRING", 4326, spatial_index=True), nullable=False
    )


class AppUser(Base):
    """Who may do what where: one role and an area scope (NULL = whole city)."""

    __tablename__ = "app_user"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    area_code: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")
    # the person behind the account (volunteers: whose care subjects they may see)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("person.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _now()


class AuditLog(Base):
    """Who did what when, with before/after. Append-only."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _now()
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


ASSIGNMENT_STATUS = (
    "dispatched",
    "accepted",
    "on_site",
    "completed",
    "declined",
    "cancelled",
    "reassigned",
)
EXCLUSIVE_ASSIGNMENT = ("dispatched", "accepted", "on_site")  # the person is taken


class DispatchAssignment(Base):
    """One mediator sent to one incident. At most one exclusive assignment per person and per
    incident at any time (partial unique indexes), so two dispatchers can never take the same
    mediator: the second INSERT fails and becomes a 409."""

    __tablename__ = "dispatch_assignment"
    __table_args__ = (
        CheckConstraint(_in("status", ASSIGNMENT_STATUS), name="status"),
        Index(
            "uq_assignment_active_person",
            "person_id",
            unique=True,
            postgresql_where=text(f"status IN {EXCLUSIVE_ASSIGNMENT!r}"),
        ),
        Index(
            "uq_assignment_active_incident",
            "incident_id",
            unique=True,
            postgresql_where=text(f"status IN {EXCLUSIVE_ASSIGNMENT!r}"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), server_default="dispatched")
    reason_code: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)


class CoMediator(Base):
    """Invited co-mediators (e.g. people's congress deputies) for an area and categories."""

    __tablename__ = "co_mediator"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"))
    area_code: Mapped[str] = mapped_column(String(16), index=True)
    categories: Mapped[str | None] = mapped_column(Text)  # comma-separated; NULL = all


class IdempotencyKey(Base):
    """Replays of a write with the same Idempotency-Key get the first answer back."""

    __tablename__ = "idempotency_key"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    actor: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
