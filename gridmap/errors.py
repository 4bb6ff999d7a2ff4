"""Domain errors. No HTTP types here: ``api/errors.py`` maps each class to a status once.

Every error carries a stable machine ``code`` (used as the RFC 9457 ``type`` suffix) and
optional ``details`` (a list of problems, each a dict) so callers can show all problems at once.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "GridmapError",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ServiceUnavailable",
    "TooManyRequests",
    "ValidationFailed",
]


class GridmapError(Exception):
    """Base of all domain errors."""

    code = "error"

    def __init__(
        self, message: str, *, code: str | None = None, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or []


class InvalidInput(GridmapError):
    """The caller sent something we cannot use (bad value, wrong CRS, broken file)."""

    code = "invalid-input"


class ValidationFailed(InvalidInput):
    """Geometry or data validation found one or more problems (listed in ``details``)."""

    code = "validation-failed"


class NotFound(GridmapError):
    code = "not-found"


class ConflictError(GridmapError):
    code = "conflict"


class AuthenticationError(GridmapError):
    code = "unauthenticated"


class PermissionDenied(GridmapError):
    code = "forbidden"


class PayloadTooLarge(GridmapError):
    code = "payload-too-large"


class TooManyRequests(GridmapError):
    """Throttled; ``retry_after`` seconds until the next attempt may succeed."""

    code = "too-many-requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ServiceUnavailable(GridmapError):
    code = "unavailable"
