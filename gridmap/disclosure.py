"""Small-count suppression of published counts (care subjects): threshold *k* with
complementary suppression along the area hierarchy, audited by interval propagation.

Counts 1 … k-1 are shown as ``"<k"`` (primary suppression). Where the published totals would
still pin a suppressed value down (a community total minus its visible grids, say), more cells
are hidden (complementary suppression, shown as ``"*"``), chosen among cells of at least k so a
reader learns only that they are at least k. Zeros are published: they name nobody.

The audit is what a careful reader can do with the published figures: every hidden cell is an
interval (primary ``[1, k-1]``, complementary ``[k, ∞)``), every parent equals the sum of its
children, and the intervals are tightened until nothing changes. Suppression grows until no
hidden cell is reduced to a single value. (Interval propagation is sound, not complete: a full
linear-programming audit can be sharper in rare layouts; with the cell sizes here it agrees.)

Examples
--------
>>> shown = suppress_hierarchy({"A1": 3, "A2": 40, "A3": 25, "B1": 0}, levels=(1,), k=11)
>>> [shown[c] for c in ("A1", "A2", "A3", "A", "B1", "B")]
['<11', '40', '*', '68', '0', '0']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

__all__ = ["COMPLEMENTARY", "audit", "display", "suppress_hierarchy"]

COMPLEMENTARY = "*"
_INF = 10**12


def display(value: int, k: int = 11) -> str:
    """A single count on its own, with primary suppression only (no totals published)."""
    return f"<{k}" if 0 < value < k else str(int(value))


def _tree(
    counts: Mapping[str, int], levels: Sequence[int], total: str | None
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """All cells (leaves and prefix totals) and each parent's children."""
    cells = {str(c): int(v) for c, v in counts.items()}
    children: dict[str, list[str]] = defaultdict(list)
    current = list(cells)
    for length in sorted(levels, reverse=True):
        parents: dict[str, int] = defaultdict(int)
        for code in current:
            p = code[:length]
            parents[p] += cells[code]
            children[p].append(code)
        cells.update(parents)
        current = list(parents)
    if total is not None:
        cells[total] = sum(cells[c] for c in current)
        children[total] = list(current)
    return cells, dict(children)


def audit(
    cells: Mapping[str, int],
    children: Mapping[str, list[str]],
    hidden: Mapping[str, str],
    k: int,
) -> dict[str, tuple[int, int]]:
    """Interval of every hidden cell as a reader can narrow it from the published figures."""
    iv: dict[str, tuple[int, int]] = {}
    for code, value in cells.items():
        kind = hidden.get(code)
        iv[code] = (value, value) if kind is None else ((1, k - 1) if kind == "p" else (k, _INF))
    changed = True
    while changed:
        changed = False
        for parent, kids in children.items():
            lo_sum = sum(iv[c][0] for c in kids)
            hi_sum = sum(iv[c][1] for c in kids)
            plo, phi = iv[parent]
            new_p = (max(plo, lo_sum), min(phi, hi_sum))
            if new_p != iv[parent]:
                iv[parent], changed = new_p, True
            plo, phi = new_p
            for c in kids:
                lo, hi = iv[c]
                new = (max(lo, plo - (hi_sum - hi)), min(hi, phi - (lo_sum - lo)))
                if new != (lo, hi):
                    iv[c], changed = new, True
                    lo_sum += new[0] - lo
                    hi_sum += new[1] - hi
    return {c: iv[c] for c in hidden}


def _pick(
    code: str,
    cells: Mapping[str, int],
    children: Mapping[str, list[str]],
    parent_of: Mapping[str, str],
    hidden: Mapping[str, str],
    k: int,
) -> str | None:
    """The cell to hide next so ``code`` is no longer exact: a sibling of at least k, else a
    child, else the parent (the smallest such, to lose as little as possible)."""
    parent = parent_of.get(code)
    siblings = [c for c in children.get(parent, []) if c != code] if parent else []
    for pool in (siblings, children.get(code, []), [parent] if parent else []):
        open_ = [c for c in pool if c not in hidden and cells[c] >= k]
        if open_:
            return min(open_, key=lambda c: (cells[c], c))
    for pool in (siblings, children.get(code, []), [parent] if parent else []):
        open_ = [c for c in pool if c not in hidden and cells[c] > 0]
        if open_:
            return min(open_, key=lambda c: (cells[c], c))
    return None


def suppress_hierarchy(
    counts: Mapping[str, int],
    levels: Sequence[int] = (12, 9, 6),
    *,
    k: int = 11,
    total: str | None = None,
) -> dict[str, str]:
    """Display strings for every leaf count and every published total.

    ``counts`` maps leaf codes (grid codes) to counts; ``levels`` are the code-prefix lengths of
    the published totals (community 12, street 9, district 6); ``total`` names a grand total
    when one is published too. Returns code → ``"17"``, ``"0"``, ``"<11"`` or ``"*"``.
    """
    if k < 2:
        return {c: str(v) for c, v in _tree(counts, levels, total)[0].items()}
    cells, children = _tree(counts, levels, total)
    parent_of = {c: p for p, kids in children.items() for c in kids}
    hidden: dict[str, str] = {c: "p" for c, v in cells.items() if 0 < v < k}
    while True:
        exact = [c for c, (lo, hi) in audit(cells, children, hidden, k).items() if lo == hi]
        if not exact:
            break
        progress = False
        for code in sorted(exact, key=len, reverse=True):
            pick = _pick(code, cells, children, parent_of, hidden, k)
            if pick is not None:
                hidden[pick] = "p" if cells[pick] < k else "c"
                progress = True
                break
        if not progress:  # nothing left to hide around them: hide every cell involved
            for code in exact:
                for c in [parent_of.get(code), *children.get(code, [])]:
                    if c is not None and c not in hidden and cells[c] > 0:
                        hidden[c] = "p" if cells[c] < k else "c"
                        progress = True
            if not progress:
                break
    return {
        c: (str(v) if c not in hidden else (f"<{k}" if hidden[c] == "p" else COMPLEMENTARY))
        for c, v in cells.items()
    }
