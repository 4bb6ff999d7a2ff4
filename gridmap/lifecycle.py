"""Incident lifecycle and Open311 services (pure): status tables, checks, service codes.

Incident and assignment status moves are small tables (:data:`TRANSITIONS`,
:data:`ASSIGNMENT_TRANSITIONS`); :func:`check_transition` enforces them and
:func:`frees_mediator` tells when a mediator is free again. :data:`SERVICES` are the GeoReport v2
(Open311) service types, with :func:`service_code` (code or Chinese name → code) and
:func:`open311_status`. Used by :mod:`gridmap.dispatch` (which re-exports every name here).

Examples
--------
>>> service_code("婚姻家庭"), open311_status("resolved")[0]
('marriage_family', 'closed')
>>> frees_mediator("on_site", "resolved"), frees_mediator("reported", "dispatched")
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from gridmap.errors import InvalidInput

__all__ = [
    "ASSIGNMENT_TRANSITIONS",
    "CO_MEDIATION_CATEGORIES",
    "FREES_MEDIATOR",
    "HOLDS_MEDIATOR",
    "SERVICES",
    "TRANSITIONS",
    "Service",
    "check_transition",
    "frees_mediator",
    "open311_status",
    "service_code",
]


def _table(spec: str) -> dict[str, frozenset[str]]:
    rows = (line.split(":") for line in spec.strip().splitlines())
    return {a.strip(): frozenset(b.split()) for a, b in rows}


TRANSITIONS = _table("""
    reported: dispatched cancelled
    dispatched: accepted reported cancelled
    accepted: on_site reported cancelled
    on_site: resolved failed escalated reported
    resolved: closed
    failed: closed
    escalated: closed
    cancelled: closed reported
    closed:
""")
"""Incident status moves. ``→ reported`` means the assignment was declined, cancelled or
reassigned and the incident waits for re-dispatch (*declined* is an assignment status, see
below); ``cancelled`` is a withdrawn incident, which may be closed or reopened."""

ASSIGNMENT_TRANSITIONS = _table("""
    dispatched: accepted declined cancelled reassigned
    accepted: on_site cancelled reassigned
    on_site: completed cancelled reassigned
    completed:
    declined:
    cancelled:
    reassigned:
""")
"""Per-assignment status (kept apart from the person's own status); a person is taken while
an assignment is in ``HOLDS_MEDIATOR``."""
HOLDS_MEDIATOR = frozenset({"dispatched", "accepted", "on_site"})
FREES_MEDIATOR = frozenset(
    (a, b)
    for m in (TRANSITIONS, ASSIGNMENT_TRANSITIONS)
    for a, bs in m.items()
    for b in bs
    if a in HOLDS_MEDIATOR and b not in HOLDS_MEDIATOR
)
"""(from, to) pairs, incident or assignment, after which the mediator is free again."""


def check_transition(from_status: str, to_status: str, *, assignment: bool = False) -> None:
    """Raise :class:`InvalidInput` (``illegal-transition``) unless the move is allowed."""
    table = ASSIGNMENT_TRANSITIONS if assignment else TRANSITIONS
    for s in (from_status, to_status):
        if s not in table:
            raise InvalidInput(
                f"unknown status {s!r}", code="unknown-status", details=[{"allowed": sorted(table)}]
            )
    if to_status not in table[from_status]:
        raise InvalidInput(
            f"cannot move from {from_status!r} to {to_status!r}",
            code="illegal-transition",
            details=[{"from": from_status, "allowed": sorted(table[from_status])}],
        )


def frees_mediator(from_status: str, to_status: str) -> bool:
    """True when this (legal) move ends the mediator's active assignment."""
    return (from_status, to_status) in FREES_MEDIATOR


# ------------------------------------------------------------------------------ Open311


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    description: str
    co_mediation: bool


SERVICES: tuple[Service, ...] = (
    Service("neighbour", "邻里纠纷", "邻里之间的噪音、通行、漏水等纠纷", True),
    Service("marriage_family", "婚姻家庭", "婚姻、赡养、抚养、继承等家庭纠纷", True),
    Service("property_management", "物业纠纷", "业主与物业服务企业之间的纠纷", False),
    Service("land_contract", "土地承包", "农村土地承包经营权纠纷", True),
    Service("homestead", "宅基地", "宅基地使用权及界址纠纷", True),
    Service("demolition_compensation", "拆迁补偿", "征收拆迁及补偿安置纠纷", False),
    Service("labour", "劳动争议", "劳动报酬、劳动合同等争议", False),
    Service("other", "其他", "其他矛盾纠纷", False),
)
CO_MEDIATION_CATEGORIES = frozenset(s.code for s in SERVICES if s.co_mediation)
_SERVICE_BY_NAME = {s.name: s.code for s in SERVICES} | {s.code: s.code for s in SERVICES}


def service_code(category: str) -> str:
    """Service code for a code or Chinese name (``"婚姻家庭"`` → ``"marriage_family"``)."""
    try:
        return _SERVICE_BY_NAME[category.strip()]
    except KeyError:
        raise InvalidInput(
            f"unknown service {category!r}",
            code="unknown-service",
            details=[{"allowed": sorted(_SERVICE_BY_NAME)}],
        ) from None


_OPEN311 = {
    "reported": ("open", "已受理，等待派单"),
    "dispatched": ("open", "已派单，等待调解员接单"),
    "accepted": ("open", "调解员已接单，正在前往"),
    "on_site": ("open", "调解员已到场调解"),
    "resolved": ("closed", "调解成功，待结案"),
    "failed": ("closed", "调解未成功"),
    "escalated": ("open", "已移交上级或相关部门处理"),
    "cancelled": ("closed", "已撤销"),
    "closed": ("closed", "已结案"),
}


def open311_status(internal_status: str) -> tuple[str, str]:
    """GeoReport v2 ``status`` (open/closed) and a ``status_notes`` text for an incident."""
    try:
        return _OPEN311[internal_status]
    except KeyError:
        raise InvalidInput(f"unknown status {internal_status!r}", code="unknown-status") from None
