"""FastAPI layer: thin routers over gridmap's domain and store modules."""

from api.app import create_app

__all__ = ["create_app"]
