"""Runtime settings (environment prefix ``GRIDMAP_``), split by concern.

Nothing here opens connections; the CLI and ``api.create_app`` read a :class:`Settings` once and
pass it down, so tests can build an app against any database without touching the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, TypedDict

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridmap.errors import InvalidInput

__all__ = ["PROJECT_ROOT", "Settings", "get_settings"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class GeometryCaps(TypedDict):
    max_vertices: int
    max_rings: int


class Settings(BaseSettings):
    """All knobs of the service. Every field can be set as ``GRIDMAP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", extra="ignore")

    # database: an external server when given, else the private cluster under data_dir
    database_url: str | None = None
    data_dir: Path = Field(default=PROJECT_ROOT / ".gridmap")
    pg_bin: Path | None = None
    statement_timeout_ms: int = 15_000

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 2 * 1024 * 1024
    max_batch_bytes: int = 64 * 1024 * 1024  # bulk locate: 1 M points as CSV ≈ 25 MB
    max_page_size: int = 5_000
    # single lookups answer from an in-process index of the current grids, re-checked against
    # the database at most this often (a publish in the same process is seen at once)
    locate_refresh_s: float = 1.0
    # recommendations reuse the grid adjacency, road graph and co-mediator list, re-checked
    # (one stamp query) at most this often; a publish in the same process is seen at once
    dispatch_refresh_s: float = 1.0
    max_vertices: int = 20_000  # per submitted geometry (a grid has a few hundred)
    max_rings: int = 200  # per submitted geometry
    draft_lock_minutes: int = 120  # a planner's hold on communities in a draft

    # authentication: the signing key lives in data_dir/secret.key unless given
    secret_key: str | None = None
    token_ttl_minutes: int = 12 * 60
    token_audience: str = "gridmap"
    quotas_file: Path | None = Field(
        default=None,
        description='JSON such as {"mediator": {"min": 1, "max": 3}, '
        '"care_ratio": 5}; unset roles keep the Yichang defaults',
    )
    user_cache_s: float = 5.0  # how long a token check may rely on a cached user row
    login_max_failures: int = 5
    login_window_s: float = 300.0
    id_number_key: str | None = Field(default=None, description="hex, 32 bytes")

    # maps: no base tiles unless a tile URL template is given (e.g. an intranet tile server,
    # "http://tiles.intra/{z}/{x}/{y}.png"); tile_crs "gcj02" for tiles in the shifted Chinese
    # system (Amap/Tencent style): the pages then shift every vector to GCJ-02 to match them
    tile_url: str | None = None
    tile_attribution: str = ""
    tile_crs: Literal["wgs84", "gcj02"] = "wgs84"
    tile_max_zoom: int = 19
    map_vector_threshold: int = Field(
        default=4000, description="areas with more grids get vector tiles instead of GeoJSON"
    )
    map_poll_seconds: float = 5.0
    # vector tiles trust the data fingerprint (a count over all current grids, postings and
    # care links: ≈ 30 ms at 100,000 grids) this long before asking again
    tile_fingerprint_s: float = 2.0
    small_count_k: int = Field(default=11, description="care counts below this show as <k")
    chromium: Path = Path("/usr/bin/chromium")
    print_timeout_s: float = 60.0

    @property
    def secret_path(self) -> Path:
        return self.data_dir / "secret.key"

    def geometry_caps(self) -> GeometryCaps:
        """Vertex and ring caps for submitted geometries (see ``gridmap.geojson_in``)."""
        return {"max_vertices": self.max_vertices, "max_rings": self.max_rings}

    def signing_key(self) -> str:
        """The JWT signing key; created once (0600) so tokens survive restarts."""
        if self.secret_key:
            return self.secret_key
        return _key_file(self.secret_path)

    def quotas_config(self) -> dict[str, Any]:
        """Role quota overrides from ``quotas_file`` (empty: the Yichang defaults)."""
        if not self.quotas_file:
            return {}
        try:
            data = json.loads(Path(self.quotas_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(
                f"cannot read quotas file {self.quotas_file}: {exc}", code="bad-quotas"
            ) from exc
        if not isinstance(data, dict):
            raise InvalidInput("quotas file must hold a JSON object", code="bad-quotas")
        return data

    def id_key(self) -> bytes:
        """Key protecting identity numbers (HMAC + AES-GCM); apart from the token key so
        rotating one does not break the other."""
        if self.id_number_key:
            return bytes.fromhex(self.id_number_key)
        return bytes.fromhex(_key_file(self.data_dir / "id.key"))


def _key_file(path: Path) -> str:
    """A random hex key kept in ``path`` (created once, mode 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(os.urandom(32).hex())
    return path.read_text().strip()


def get_settings() -> Settings:
    """Settings from the environment; ``DATABASE_URL`` is honoured when ``GRIDMAP_`` is unset."""
    settings = Settings()
    if settings.database_url is None and os.environ.get("DATABASE_URL"):
        settings.database_url = os.environ["DATABASE_URL"]
    return settings
