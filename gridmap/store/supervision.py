"""Raw figures for the supervision report: per grid manager, their own actions (audit trail)
and the response of incidents in their scope (incident events). No care-subject data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

__all__ = ["OPEN_STATUSES", "supervision_figures"]

OPEN_STATUSES = ("reported", "dispatched", "accepted", "on_site", "escalated")

_SQL = """
WITH m AS (
    SELECT name, area_code FROM app_user
    WHERE role = 'grid_manager' AND active
      AND (CAST(:p AS text) = '' OR area_code LIKE :p || '%')
), inc AS (  -- incidents reported in the window in each manager's scope, with response time
    SELECT m.name, i.id,
           EXTRACT(EPOCH FROM (SELECT min(e.at) FROM incident_event e
                                WHERE e.incident_id = i.id
                                  AND e.to_status IN ('accepted', 'on_site'))
                              - i.created_at) / 60.0 AS minutes
    FROM m JOIN incident i
      ON (m.area_code IS NULL OR i.grid_code LIKE m.area_code || '%')
    WHERE i.created_at >= :since AND i.created_at < :until
)
SELECT m.name, m.area_code AS scope,
       (SELECT count(*) FROM audit_log a
         WHERE a.actor = m.name AND a.at >= :since AND a.at < :until) AS actions,
       (SELECT count(*) FROM audit_log a
         WHERE a.actor = m.name AND a.at >= :since AND a.at < :until
           AND a.action LIKE 'incident.%') AS incident_actions,
       (SELECT count(DISTINCT e.incident_id) FROM incident_event e
         WHERE e.actor = m.name AND e.at >= :since AND e.at < :until) AS handled,
       (SELECT count(*) FROM inc WHERE inc.name = m.name) AS reported,
       (SELECT count(minutes) FROM inc WHERE inc.name = m.name) AS responded,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes)
          FROM inc WHERE inc.name = m.name) AS median_min,
       (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes)
          FROM inc WHERE inc.name = m.name) AS p90_min,
       (SELECT count(*) FROM incident i
         WHERE (m.area_code IS NULL OR i.grid_code LIKE m.area_code || '%')
           AND i.status = ANY(:open)) AS open_caseload
FROM m ORDER BY m.name
"""


def supervision_figures(
    session: Session, prefix: str, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """One row per active grid manager whose scope lies within ``prefix`` ("" = whole city;
    managers scoped above the prefix are left out, their figures would reach outside it).

    ``actions``: audit rows by the manager in [since, until); ``handled``: incidents they moved
    (incident events); ``reported``/``responded``: incidents reported in their scope in the
    window and how many reached accepted/on-site; ``median_min``/``p90_min``: minutes from
    report to the first accepted/on-site event; ``open_caseload``: open incidents now."""
    rows = session.execute(
        text(_SQL),
        {
            "p": prefix.replace("%", ""),
            "since": since,
            "until": until,
            "open": list(OPEN_STATUSES),
        },
    ).mappings()
    return [dict(r) for r in rows]
