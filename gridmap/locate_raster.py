"""The tiled lookup raster behind :class:`gridmap.locate.GridIndex` (pure): layout and build.

Pixels live in an equirectangular space, an affine image of lon/lat. The raster is a table of
64 × 64-pixel tiles: a tile inside one grid or outside all is stored in the table itself
(``-1`` outside, ``-2 - g`` grid ``g``); a mixed tile is an index into ``stack`` (one byte per
pixel) and ``palette`` (≤ 64 labels per tile). A label is a grid index, ``-1`` outside,
``-2`` (``_CHECK``) for an exact STRtree check, or ``≤ -3`` for a candidate set: a row of
``sets`` holding up to ``_K`` grids (in code order) that may cover points of a boundary pixel.
Building holds one 512 × 512-pixel block at a time.

Examples
--------
>>> _ranges(np.array([0, 10]), np.array([2, 3])).tolist()
[0, 1, 10, 11, 12]
>>> [a.shape for a in empty_raster()]
[(1, 1), (1, 64, 64), (1, 64), (1, 4)]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import shapely

__all__ = ["Raster", "build_raster", "empty_raster"]

_TS = 6  # tile side = 2**_TS pixels
_T = 1 << _TS
_BT = 8  # tiles per block side: the raster is built one 512 × 512-pixel block at a time
_B = _T * _BT
_PAL = 64  # palette: up to 64 distinct labels per mixed tile (more → STRtree check)
_K = 4  # candidate grids kept per boundary pixel (more → STRtree check)
_STEP = 0.5  # boundary sample spacing (pixels): every edge point is ≤ _STEP / 2 from a sample
_DELTA = 0.3  # a sample also marks the neighbour pixels it is within _DELTA of (> _STEP / 2)
_OUT, _CHECK = -1, -2


class Raster(NamedTuple):
    """Tile table, mixed tiles, their palettes and the candidate sets of boundary pixels."""

    tiles: np.ndarray  # (rows, cols) int32
    stack: np.ndarray  # (mixed tiles, _T, _T) uint8: slot in the tile's palette
    palette: np.ndarray  # (mixed tiles, _PAL) int32: labels
    sets: np.ndarray  # (candidate sets, _K) int64: grid indexes, -1 padding


def empty_raster() -> Raster:
    """The raster of no grids: one tile, outside everything."""
    return Raster(
        np.full((1, 1), -1, dtype=np.int32),
        np.zeros((1, _T, _T), dtype=np.uint8),
        np.full((1, _PAL), _OUT, dtype=np.int32),
        np.full((1, _K), -1, dtype=np.int64),
    )


def build_raster(
    geoms: np.ndarray, rank: np.ndarray, lon0: float, lat0: float, dlon: float, dlat: float
) -> Raster:
    """Rasterize WGS84 (Multi)Polygons ``geoms`` (at least one) with pixel ``(0, 0)`` at
    ``(lon0, lat0)`` and pixels ``dlon`` × ``dlat`` degrees; ``rank`` is each grid's position
    in code order (candidate sets keep grids in that order)."""
    return _Builder(geoms, rank, lon0, lat0, dlon, dlat).build()


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + n)`` for each pair, vectorised."""
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.repeat(np.cumsum(lens) - lens, lens)
    return np.repeat(starts, lens) + (np.arange(total) - offs)


class _Builder:
    """State of one build: the grids' edges in pixels and the candidate sets seen so far."""

    def __init__(
        self,
        geoms: np.ndarray,
        rank: np.ndarray,
        lon0: float,
        lat0: float,
        dlon: float,
        dlat: float,
    ):
        self.geoms = geoms
        self.rank = rank
        self.n = len(rank)  # grids (one rank per code)
        self._lon0, self._lat0, self._dlon, self._dlat = lon0, lat0, dlon, dlat
        self.tiles = np.full((1, 1), -1, dtype=np.int32)

    def _to_px(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (lon - self._lon0) / self._dlon, (lat - self._lat0) / self._dlat

    def build(self) -> Raster:
        """Fill the tile table block by block (bounded memory: one 512² block at a time)."""
        px = shapely.transform(self.geoms, lambda c: np.column_stack(self._to_px(c[:, 0], c[:, 1])))
        parts, pidx = shapely.get_parts(px, return_index=True)
        rings, ridx = shapely.get_rings(parts, return_index=True)
        xy, cidx = shapely.get_coordinates(rings, return_index=True)
        same = cidx[1:] == cidx[:-1]
        self._e = np.column_stack([xy[:-1][same], xy[1:][same]])  # x1, y1, x2, y2 (pixels)
        self._egrid = pidx[ridx[cidx[:-1][same]]]
        self._eptr = np.searchsorted(self._egrid, np.arange(len(px) + 1))
        self._set_ids: dict[tuple[int, ...], int] = {}
        tree = shapely.STRtree(px)
        _, _, maxu, maxv = shapely.total_bounds(px)
        nbx, nby = int(maxu + 3) // _B + 1, int(maxv + 3) // _B + 1  # ≥ 2 clean pixels around
        self.tiles = np.full((nby * _BT, nbx * _BT), -1, dtype=np.int32)
        stack: list[np.ndarray] = []
        palettes: list[np.ndarray] = []
        for by in range(nby):
            for bx in range(nbx):
                c0, r0 = bx * _B, by * _B
                cand = tree.query(shapely.box(c0 - 1, r0 - 1, c0 + _B + 1, r0 + _B + 1))
                if len(cand):
                    lab = self._block(np.sort(cand), c0, r0)
                    self._store(lab, bx, by, stack, palettes)
        empty = empty_raster()
        sets = np.full((max(len(self._set_ids), 1), _K), -1, dtype=np.int64)
        for key, i in self._set_ids.items():
            sets[i] = key
        return Raster(
            self.tiles,
            np.stack(stack) if stack else empty.stack,
            np.stack(palettes) if stack else empty.palette,
            sets,
        )

    def _block(self, cand: np.ndarray, c0: int, r0: int) -> np.ndarray:
        """Labels of one block: grid index, -1 outside, -2 STRtree check, ≤ -3 candidate set."""
        eidx = _ranges(self._eptr[cand], self._eptr[cand + 1] - self._eptr[cand])
        e, g = self._e[eidx], self._egrid[eidx]
        lab = np.full(_B * _B, _OUT, dtype=np.int64)
        # even-odd scanline fill by pixel centre, per grid (rows r with r + .5 in [ymin, ymax))
        ymin, ymax = np.minimum(e[:, 1], e[:, 3]), np.maximum(e[:, 1], e[:, 3])
        lo = np.maximum(np.ceil(ymin - 0.5), r0).astype(np.int64)
        n = np.maximum(np.minimum(np.ceil(ymax - 0.5), r0 + _B).astype(np.int64) - lo, 0)
        sel = np.repeat(np.arange(len(n)), n)
        if len(sel):
            r = lo[sel] + _ranges(np.zeros(len(n), dtype=np.int64), n)
            x1, y1, x2, y2 = e[sel].T
            x = x1 + (r + 0.5 - y1) * (x2 - x1) / (y2 - y1)
            o = np.lexsort((x, r, g[sel]))
            xs, rs, gs = x[o], r[o], g[sel][o]
            ca = np.clip(np.ceil(xs[0::2] - 0.5), c0, c0 + _B).astype(np.int64)
            cb = np.clip(np.ceil(xs[1::2] - 0.5), c0, c0 + _B).astype(np.int64)
            w = np.maximum(cb - ca, 0)
            flat = np.repeat((rs[0::2] - r0) * _B - c0, w) + _ranges(ca, w)
            lab[flat] = np.repeat(gs[0::2], w)
            lab[np.bincount(flat, minlength=_B * _B) > 1] = _CHECK  # overlapping interiors
        # boundary: samples every _STEP along each edge near the block; a sample marks its
        # pixel and the neighbours it is within _DELTA of, so every pixel within
        # _DELTA - _STEP / 2 px (0.5 m at 10 m cells) of an edge has that grid as a candidate
        near = (np.maximum(e[:, 0], e[:, 2]) >= c0 - 1) & (
            np.minimum(e[:, 0], e[:, 2]) < c0 + _B + 1
        )
        near &= (ymax >= r0 - 1) & (ymin < r0 + _B + 1)
        e, g = e[near], g[near]
        steps = np.ceil(np.hypot(e[:, 2] - e[:, 0], e[:, 3] - e[:, 1]) / _STEP).astype(np.int64)
        steps = np.maximum(steps, 1)
        t = _ranges(np.zeros(len(steps), dtype=np.int64), steps + 1) / np.repeat(steps, steps + 1)
        es, gs = np.repeat(e, steps + 1, axis=0), np.repeat(g, steps + 1)
        sx, sy = es[:, 0] + t * (es[:, 2] - es[:, 0]), es[:, 1] + t * (es[:, 3] - es[:, 1])
        col, row = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
        fx, fy = sx - col, sy - row
        keys = []
        for ox, mx in ((0, True), (-1, fx < _DELTA), (1, fx > 1 - _DELTA)):
            for oy, my in ((0, True), (-1, fy < _DELTA), (1, fy > 1 - _DELTA)):
                c, rr = col + ox - c0, row + oy - r0
                ok = np.asarray(mx & my) & (c >= 0) & (c < _B) & (rr >= 0) & (rr < _B)
                keys.append((rr[ok] * _B + c[ok]) * self.n + gs[ok])
        pairs = np.unique(np.concatenate(keys))
        pix, grid = pairs // self.n, pairs % self.n
        band = np.unique(pix)
        if not len(band):
            return lab
        fill = lab[band]
        inside = fill >= 0  # a grid covering the whole pixel is a candidate too
        pix, grid = np.r_[pix, band[inside]], np.r_[grid, fill[inside]]
        o = np.lexsort((self.rank[grid], pix))
        pix, grid = pix[o], grid[o]
        dup = np.r_[False, (pix[1:] == pix[:-1]) & (grid[1:] == grid[:-1])]
        pix, grid = pix[~dup], grid[~dup]
        start = np.r_[True, pix[1:] != pix[:-1]]
        group = np.cumsum(start) - 1
        pos = np.arange(len(pix)) - np.flatnonzero(start)[group]
        sets = np.full((len(band), _K + 1), -1, dtype=np.int64)
        sets[group[pos <= _K], pos[pos <= _K]] = grid[pos <= _K]
        uniq, inv = np.unique(sets, axis=0, return_inverse=True)
        ids = np.array([self._set_id(tuple(u)) for u in uniq.tolist()], dtype=np.int64)
        lab[band] = np.where(fill == _CHECK, _CHECK, ids[inv.ravel()])
        return lab

    def _set_id(self, key: tuple[int, ...]) -> int:
        """Label of a candidate set (grids by rank); more than _K candidates → STRtree check."""
        if key[_K] >= 0:
            return _CHECK
        return -3 - self._set_ids.setdefault(key[:_K], len(self._set_ids))

    def _store(
        self, lab: np.ndarray, bx: int, by: int, stack: list[np.ndarray], pals: list[np.ndarray]
    ) -> None:
        """Compress a block into tiles: uniform tiles in the table, mixed ones as palettes."""
        base = int(lab.min())  # block palette (labels span a small range), then per tile
        present = np.flatnonzero(np.bincount(lab - base))
        remap = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        vals, inv = present + base, remap[lab - base]
        tiles = inv.reshape(_BT, _T, _BT, _T).transpose(0, 2, 1, 3).reshape(_BT * _BT, _T * _T)
        lo, hi = tiles.min(axis=1), tiles.max(axis=1)
        slot = np.zeros(len(vals), dtype=np.int64)
        for i in range(_BT * _BT):
            ty, tx = by * _BT + i // _BT, bx * _BT + i % _BT
            if lo[i] == hi[i] and vals[lo[i]] >= _OUT:
                self.tiles[ty, tx] = -vals[lo[i]] - 2  # uniform: -1 outside, -2 - g grid g
                continue
            used = np.flatnonzero(np.bincount(tiles[i], minlength=len(vals)))
            pal = np.full(_PAL, _CHECK, dtype=np.int32)
            keep = len(used) if len(used) <= _PAL else _PAL - 1  # overflow → STRtree check
            pal[:keep] = vals[used[:keep]]
            slot[used] = np.minimum(np.arange(len(used)), _PAL - 1)
            self.tiles[ty, tx] = len(stack)
            stack.append(slot[tiles[i]].astype(np.uint8).reshape(_T, _T))
            pals.append(pal)
