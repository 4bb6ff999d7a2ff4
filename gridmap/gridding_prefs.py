"""What a planner prefers where the gridding targets pull apart: households, streets or shapes.

Why a choice: on a real street network even households, compact shapes and boundaries on the
streets cannot all be had at once (``docs/gridding.md``, ``scripts/gridding_bounds.py``): grids
built from road blocks are staircases, and dense blocks must be cut off the roads to keep the
households even. The gridder prices grid edge off the roads against compactness and balance;
a preference picks those prices:

- ``balance`` (default): the compromise — households nearly as even as ``compact``, 70 % of
  the edges on roads (Yichang scenario: CV median 0.028, Polsby-Popper 0.59);
- ``streets``: edges on the streets first (81 % on roads), households less even (CV median
  0.05) — grids whose edges residents and grid managers can walk;
- ``compact``: roads ignored, round shapes and the most even households (Polsby-Popper 0.65,
  CV median 0.023; 24 % on roads), for open land or where no road data is trusted.

The prices live in a context variable, not module globals, so concurrent gridding runs (API
worker threads) each use their own preference.

Examples
--------
>>> with preferring("streets") as p:
...     (prices().cut_mu, p.use_roads)
(0.8, True)
>>> prices().cut_mu
0.12
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from gridmap.errors import InvalidInput

__all__ = [
    "DEFAULT_PREFERENCE",
    "PREFERENCES",
    "Prices",
    "check_preference",
    "preferring",
    "prices",
]


@dataclass(frozen=True)
class Prices:
    """Prices of grid edge off the roads, per typical grid side, against Polsby-Popper."""

    cut_mu: float  # in the bisection's cut scores (gridding_bisect, gridding_lines)
    polish_mu: float  # in the polishing objective (polish, balance, regroup, lloyd)
    use_roads: bool  # False: the roads neither make blocks nor turn the cut directions
    wide_regroup: bool = True  # search wider where households stay uneven (gridding_regroup)


PREFERENCES: dict[str, Prices] = {
    "balance": Prices(cut_mu=0.12, polish_mu=0.25, use_roads=True),
    # households give way here by choice: the wider search would cost ≈ 35 % more CPU
    "streets": Prices(cut_mu=0.8, polish_mu=3.0, use_roads=True, wide_regroup=False),
    "compact": Prices(cut_mu=0.12, polish_mu=0.25, use_roads=False),
}
DEFAULT_PREFERENCE = "balance"

_CURRENT: ContextVar[Prices] = ContextVar("gridding_prices", default=PREFERENCES["balance"])


def prices() -> Prices:
    """The prices of the gridding run in progress (the default outside :func:`preferring`)."""
    return _CURRENT.get()


def check_preference(prefer: str | None) -> str:
    """The preference's name (None: the default); an unknown one is a 4xx naming the choices."""
    name = DEFAULT_PREFERENCE if prefer is None else prefer
    if name not in PREFERENCES:
        raise InvalidInput(
            f"prefer must be one of {', '.join(PREFERENCES)}, not {prefer!r}",
            code="invalid-preference",
        )
    return name


@contextmanager
def preferring(prefer: str | None) -> Iterator[Prices]:
    """Grid with the prices of ``prefer`` inside the block (None: the default)."""
    name = check_preference(prefer)
    token = _CURRENT.set(PREFERENCES[name])
    try:
        yield PREFERENCES[name]
    finally:
        _CURRENT.reset(token)
