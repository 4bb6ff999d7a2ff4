"""The role × operation matrix that drives every route guard (least privilege).

Each API operation names one entry here; a test enumerates the OpenAPI operations and fails on
any operation without an entry. Object-level scope (the caller's area) is checked separately.
"""

from __future__ import annotations

__all__ = ["MATRIX", "PUBLIC_OPERATIONS", "allowed"]

ALL_ROLES = frozenset({"admin", "planner", "dispatcher", "leader", "grid_manager", "volunteer"})

# operation id → roles allowed
MATRIX: dict[str, frozenset[str]] = {
    "areas.read": ALL_ROLES - {"volunteer"},
    "auth.whoami": ALL_ROLES,
    "grids.read": ALL_ROLES - {"volunteer"},
    "gridding.run": frozenset({"admin", "planner"}),
    "grids.publish": frozenset({"admin", "planner"}),
    "grids.history": ALL_ROLES - {"volunteer"},
    "grids.rollback": frozenset({"admin", "planner"}),
    "drafts.edit": frozenset({"admin", "planner"}),
    "drafts.read": frozenset({"admin", "planner"}),
    "locate.read": frozenset({"admin", "planner", "dispatcher", "grid_manager"}),
    "incidents.create": frozenset({"admin", "dispatcher", "grid_manager"}),
    "incidents.read": frozenset({"admin", "dispatcher", "grid_manager"}),
    "incidents.dispatch": frozenset({"admin", "dispatcher"}),
    "incidents.transition": frozenset({"admin", "dispatcher", "grid_manager"}),
    "open311.create": frozenset({"admin", "dispatcher", "grid_manager"}),
    "open311.read": frozenset({"admin", "dispatcher", "grid_manager"}),
    "assignments.run": frozenset({"admin", "planner"}),
    "care_subjects.read": frozenset({"admin", "grid_manager"}),
    "care_subjects.own": frozenset({"volunteer"}),  # their own subjects: no exact point
    "reports.supervision": frozenset({"admin", "leader"}),
    "audit.read": frozenset({"admin"}),
    "reports.shortage": frozenset({"admin", "planner", "leader"}),
    # map pages (GET; browsers may use the session cookie from maps.session)
    "maps.session": frozenset({"admin", "planner", "dispatcher", "leader"}),
    "maps.coverage": frozenset({"admin", "planner", "leader"}),
    "maps.print": frozenset({"admin", "planner", "leader"}),
    "maps.tiles": frozenset({"admin", "planner", "leader"}),
    "maps.dispatch": frozenset({"admin", "dispatcher"}),
    "maps.incidents": frozenset({"admin", "leader"}),
    "maps.dashboard": frozenset({"admin", "leader"}),
    # OGC API - Features (QGIS, GDAL): reads filtered by scope and role; Part 4 edits of drafts
    "ogc.read": ALL_ROLES - {"volunteer"},
    "ogc.write": frozenset({"admin", "planner"}),
    # file exports (GeoJSON, GeoPackage, Shapefile, CSV): purpose required, audited
    "exports.read": frozenset({"admin", "planner", "leader"}),
}

# operations that need no token at all
PUBLIC_OPERATIONS = frozenset(
    {"health", "auth.token", "open311.services", "maps.login", "pages.report", "pages.planner"}
)


def allowed(operation: str, role: str) -> bool:
    """True when ``role`` may perform ``operation`` (unknown operations allow nobody)."""
    return role in MATRIX.get(operation, frozenset())
