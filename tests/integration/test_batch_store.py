"""Re-gridding through the database on a 2-process Dask LocalCluster writes the same grids."""

from __future__ import annotations

from sqlalchemy import Engine, text

from gridmap.batch import connect, dask_map
from gridmap.store.db import session_scope
from gridmap.store.grids import run_gridding, select_communities
from tests.helpers import COMMUNITY


def _rows(db: Engine, version: int) -> list[tuple[str, int, int, bytes]]:
    with db.connect() as conn:
        return [
            (r[0], r[1], r[2], bytes(r[3]))
            for r in conn.execute(
                text(
                    "SELECT code, households, population, ST_AsBinary(geom) FROM grid "
                    "WHERE version_id = :v ORDER BY code"
                ),
                {"v": version},
            )
        ]


def test_dask_gridding_writes_the_serial_grids(community: Engine) -> None:
    with session_scope(community) as s:
        chosen = select_communities(s, community=COMMUNITY)
        serial = run_gridding(s, chosen, user="planner", households_per_grid=600)
    with connect(workers=2) as client, session_scope(community) as s:
        seen: list[str] = []
        dist = run_gridding(
            s,
            chosen,
            user="planner",
            households_per_grid=600,
            progress=seen.append,
            map_jobs=dask_map(client),
        )
    assert seen == [COMMUNITY]
    assert dist.version_id != serial.version_id and dist.grids == serial.grids > 1
    assert _rows(community, dist.version_id) == _rows(community, serial.version_id)
    assert dist.quality == serial.quality
