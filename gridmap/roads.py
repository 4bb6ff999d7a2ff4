"""Road network in memory (pure): directed road graph with pgRouting semantics, grid adjacency.

Road costs follow pgRouting's ``pgr_dijkstra`` (directed): an edge gives ``source → target`` at
``cost`` and ``target → source`` at ``reverse_cost``; a negative (or missing) cost means that
direction does not exist (one-way); parallel edges keep the cheapest. Used by
:mod:`gridmap.dispatch` (which re-exports both names).

Examples
--------
>>> g = RoadGraph.from_edges([1, 2], [2, 3], [5.0, 7.0], [-1.0, 7.0])
>>> g.travel_times(1, [3, 2]).tolist(), g.travel_times(3, [1]).tolist()
([12.0, 5.0], [inf])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from gridmap.crs import from_wgs84, metric_crs_for, metric_crs_for_geometry, transform_geometry
from gridmap.errors import InvalidInput

__all__ = ["RoadGraph", "grid_adjacency"]


class RoadGraph:
    """Directed road graph in memory (CSR), with a KD-tree of node positions in metres.

    Build once per road network and reuse: a search then costs well under a millisecond instead
    of pgRouting's rebuild of the whole graph on every call.
    """

    def __init__(
        self, node_ids: np.ndarray, csr: csr_matrix, xy: np.ndarray | None, crs: str | None
    ):
        self.node_ids = node_ids
        self.csr = csr
        self.metric_crs = crs
        self._xy = xy
        self._kd = cKDTree(xy) if xy is not None and len(xy) else None
        self._rev: csr_matrix | None = None

    @classmethod
    def from_edges(
        cls,
        source: Sequence[int] | np.ndarray,
        target: Sequence[int] | np.ndarray,
        cost: Sequence[float] | np.ndarray,
        reverse_cost: Sequence[float] | np.ndarray | None = None,
        *,
        geometry: Sequence[Any] | np.ndarray | None = None,
        node_ids: Sequence[int] | np.ndarray | None = None,
        node_lon: Sequence[float] | np.ndarray | None = None,
        node_lat: Sequence[float] | np.ndarray | None = None,
        metric_crs: str | None = None,
    ) -> RoadGraph:
        """Graph from pgRouting-style edge columns. Node positions (WGS84) come from
        ``node_ids``/``node_lon``/``node_lat`` or from the ends of edge ``geometry``."""
        s, t = np.asarray(source, dtype=np.int64), np.asarray(target, dtype=np.int64)
        c = np.asarray(cost, dtype="float64")
        rc = np.full(len(c), -1.0) if reverse_cost is None else np.asarray(reverse_cost, "float64")
        if not len(s) == len(t) == len(c) == len(rc):
            raise InvalidInput("edge columns differ in length", code="length-mismatch")
        ids = np.unique(np.r_[s, t] if node_ids is None else np.r_[s, t, np.asarray(node_ids)])
        u = np.r_[np.searchsorted(ids, s), np.searchsorted(ids, t)]
        v = np.r_[np.searchsorted(ids, t), np.searchsorted(ids, s)]
        w = np.r_[c, rc]
        keep = (w >= 0) & np.isfinite(w) & (u != v)
        u, v, w = u[keep], v[keep], w[keep]
        o = np.lexsort((w, v, u))  # parallel arcs: keep the cheapest (as pgRouting does)
        u, v, w = u[o], v[o], w[o]
        first = np.r_[True, (u[1:] != u[:-1]) | (v[1:] != v[:-1])] if len(u) else u > 0
        csr = csr_matrix((w[first], (u[first], v[first])), shape=(len(ids), len(ids)))
        lon = np.full(len(ids), np.nan)
        lat = np.full(len(ids), np.nan)
        if geometry is not None:
            geoms = np.asarray(list(geometry), dtype=object)
            a, b = shapely.get_point(geoms, 0), shapely.get_point(geoms, -1)
            for ends, nodes in ((a, s), (b, t)):
                lon[np.searchsorted(ids, nodes)] = shapely.get_x(ends)
                lat[np.searchsorted(ids, nodes)] = shapely.get_y(ends)
        if node_ids is not None and node_lon is not None and node_lat is not None:
            k = np.searchsorted(ids, np.asarray(node_ids, dtype=np.int64))
            lon[k], lat[k] = np.asarray(node_lon, float), np.asarray(node_lat, float)
        xy = None
        if np.isfinite(lon).any():
            ok = np.isfinite(lon) & np.isfinite(lat)
            if metric_crs is None:
                metric_crs = metric_crs_for(float(np.median(lon[ok])), float(np.median(lat[ok])))
            x, y = from_wgs84(np.where(ok, lon, 0.0), np.where(ok, lat, 0.0), metric_crs)
            xy = np.column_stack([np.where(ok, x, np.inf), np.where(ok, y, np.inf)])
        return cls(ids, csr, xy, metric_crs)

    def _index(self, nodes: Any) -> np.ndarray:
        n = np.atleast_1d(np.asarray(nodes, dtype=np.int64))
        k = np.minimum(np.searchsorted(self.node_ids, n), len(self.node_ids) - 1)
        if len(n) and (not len(self.node_ids) or np.any(self.node_ids[k] != n)):
            raise InvalidInput("unknown road node", code="unknown-node")
        return k

    def to_metric(self, lon: Any, lat: Any) -> np.ndarray:
        """WGS84 → the graph's metric CRS, as an (n, 2) array."""
        if self.metric_crs is None:
            raise InvalidInput("this road graph has no node positions", code="no-positions")
        x, y = from_wgs84(np.atleast_1d(lon), np.atleast_1d(lat), self.metric_crs)
        return np.column_stack([x, y])

    def nearest_node(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Nearest node id(s) to WGS84 point(s) and the straight-line distance in metres."""
        if self._kd is None:
            raise InvalidInput("this road graph has no node positions", code="no-positions")
        d, k = self._kd.query(self.to_metric(lon, lat))
        return self.node_ids[k], d

    def matrix(self, toward: bool = False) -> csr_matrix:
        """The CSR to search: as is, or transposed to search *toward* a node (mediators
        driving to an incident)."""
        if not toward:
            return self.csr
        if self._rev is None:
            self._rev = self.csr.transpose().tocsr()
        return self._rev

    @cached_property
    def _scale(self) -> tuple[float, float]:
        """(typical metres per cost unit over arcs, or 0 if unknown; median arc cost): the
        first search limit is a guess from them — correctness never depends on it."""
        m = self.csr
        if not m.nnz:
            return 0.0, 1.0
        speed = 0.0
        if self._xy is not None:
            u = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
            d = np.hypot(*(self._xy[u] - self._xy[m.indices]).T)
            ok = np.isfinite(d) & (m.data > 0)
            speed = float(np.median(d[ok] / m.data[ok])) if ok.any() else 0.0
        return speed, max(float(np.median(m.data)), 1e-9)

    @cached_property
    def _arc_src(self) -> dict[bool, np.ndarray]:
        return {
            t: np.repeat(np.arange(self.csr.shape[0]), np.diff(self.matrix(t).indptr))
            for t in (False, True)
        }

    def travel_times(
        self,
        from_node: int,
        to_nodes: Any,
        max_cost: float | None = None,
        *,
        toward: bool = False,
    ) -> np.ndarray:
        """Least cost from ``from_node`` to each of ``to_nodes`` (``inf`` if unreachable or over
        ``max_cost``); with ``toward=True`` the cost *from* each node *to* ``from_node``.

        Early stopping at C speed: csgraph's Dijkstra bounded by a limit that starts near the
        farthest target's expected cost and doubles until every target is settled or nothing
        is left to explore (measured 5–9× faster than a full search, and 2–4× faster than a
        pure-Python heap that stops at the last target; scripts/bench_dispatch.py).
        """
        src, tgt = int(self._index(from_node)[0]), self._index(to_nodes)
        cap = math.inf if max_cost is None else float(max_cost)
        m = self.matrix(toward)
        speed, typical = self._scale
        limit = typical * 8
        if self._xy is not None and speed > 0:
            far = np.hypot(*(self._xy[tgt] - self._xy[src]).T)
            limit = max(1.5 * float(np.max(far[np.isfinite(far)], initial=0.0)) / speed, typical)
        while True:
            limit = min(limit, cap)
            dist = np.asarray(dijkstra(m, indices=src, limit=limit))
            if limit >= cap or np.isfinite(dist[tgt]).all():
                return dist[tgt]
            seen = np.isfinite(dist)  # exhausted when no arc leaves the settled set
            if not np.any(seen[self._arc_src[toward]] & ~seen[m.indices]):
                return dist[tgt]
            limit = limit * 2 if seen.sum() * 4 < len(seen) else math.inf  # big: go all out


def grid_adjacency(
    codes: Sequence[str] | np.ndarray,
    geoms: Sequence[Any] | np.ndarray,
    *,
    metric_crs: str | None = None,
    min_shared_m: float = 1.0,
    tolerance_m: float = 0.05,
) -> dict[str, set[str]]:
    """Rook adjacency: grids whose boundaries run together for more than ``min_shared_m``
    metres (grids touching at a corner only are not neighbours). Every code gets an entry."""
    g = np.asarray(list(geoms), dtype=object)
    out: dict[str, set[str]] = {str(c): set() for c in codes}
    if len(g) < 2:
        return out
    crs = metric_crs or metric_crs_for_geometry(shapely.box(*shapely.total_bounds(g)))
    m = transform_geometry(g, "wgs84", crs)
    i, j = shapely.STRtree(m).query(m, predicate="dwithin", distance=tolerance_m)
    i, j = i[i < j], j[i < j]
    b = shapely.boundary(m)
    shared = shapely.length(shapely.intersection(b[i], shapely.buffer(b[j], tolerance_m)))
    cs = [str(c) for c in codes]
    for a, z in zip(i[shared > min_shared_m], j[shared > min_shared_m], strict=True):
        out[cs[a]].add(cs[z])
        out[cs[z]].add(cs[a])
    return out
