"""Staffing quotas per role and the results of assigning staff and care volunteers.

:mod:`gridmap.staffing` (the assignment) and :mod:`gridmap.staffing_report` (shortage reports)
share these types; both re-export them.

Examples
--------
>>> Quotas.from_config({"mediator": {"max": 3}, "care_ratio": 4}).mediator
RoleQuota(min=1, max=3, capacity=1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd

from gridmap.errors import InvalidInput

__all__ = ["STAFF_ROLES", "Assignment", "CareAssignment", "Quotas", "RoleQuota"]

STAFF_ROLES = ("grid_manager", "mediator", "legal_professional", "publicity", "legal_aid")


@dataclass(frozen=True)
class RoleQuota:
    """People of one role per grid (``max=None``: no upper limit) and grids per person."""

    min: int
    max: int | None
    capacity: int


@dataclass(frozen=True)
class Quotas:
    """Yichang's figures per grid; ``care_ratio`` care subjects per volunteer at most."""

    grid_manager: RoleQuota = RoleQuota(1, 1, 1)
    mediator: RoleQuota = RoleQuota(1, 2, 1)
    legal_professional: RoleQuota = RoleQuota(1, 1, 3)
    publicity: RoleQuota = RoleQuota(1, 2, 2)
    legal_aid: RoleQuota = RoleQuota(0, None, 3)
    care_ratio: int = 5

    def role(self, name: str) -> RoleQuota:
        if name not in STAFF_ROLES:
            raise InvalidInput(f"unknown role {name!r}")
        return getattr(self, name)  # type: ignore[no-any-return]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Quotas:
        """From configuration such as ``{"mediator": {"min": 1, "max": 3}, "care_ratio": 4}``."""
        base, out = cls(), dict[str, Any]()
        for f in fields(cls):
            v = cfg.get(f.name)
            if isinstance(v, Mapping):
                out[f.name] = RoleQuota(**{**vars(getattr(base, f.name)), **v})
            elif v is not None:
                out[f.name] = v
        return cls(**out)


@dataclass
class Assignment:
    """Postings (person, role, grid, cost_m, kept), moves, unfilled minimum slots, idle people."""

    postings: pd.DataFrame
    moves: pd.DataFrame
    unfilled: pd.DataFrame
    idle: pd.DataFrame
    total_cost_m: float
    min_slots: int
    certified: bool

    @property
    def coverage(self) -> float:
        """Share of minimum slots filled (1.0 when every quota minimum is met)."""
        missing = int(self.unfilled["missing"].sum()) if len(self.unfilled) else 0
        return 1.0 - missing / self.min_slots if self.min_slots else 1.0


@dataclass
class CareAssignment:
    """One row per care subject in ``links`` (volunteer NA when uncovered) and volunteer loads."""

    links: pd.DataFrame
    volunteers: pd.DataFrame
    moves: pd.DataFrame
    total_cost_m: float
    certified: bool

    @property
    def uncovered(self) -> pd.DataFrame:
        return self.links[self.links["volunteer"].isna()]
