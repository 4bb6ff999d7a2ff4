"""Password hashing (Argon2id) and bearer tokens (HS256 JWT with audience, expiry and a
per-user token version, so ``gridmap token --revoke`` invalidates every earlier token)."""

from __future__ import annotations

import functools
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from jwt.algorithms import HMACAlgorithm

from gridmap.errors import AuthenticationError

__all__ = [
    "TokenClaims",
    "hash_password",
    "issue_token",
    "new_password",
    "read_token",
    "verify_password",
]

_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommendation)
_ALGORITHM = "HS256"


class _CheckedOnceHMAC(HMACAlgorithm):
    """HS256 whose key checks run once per key, not once per token: PyJWT probes every HMAC
    key for PEM, SSH and DER forms on each decode (≈ 0.2 ms, the largest single cost of an
    authenticated lookup). The signature itself is still verified on every token."""

    @functools.lru_cache(maxsize=8)  # noqa: B019 (a handful of keys, held for the process)
    def prepare_key(self, key: str | bytes) -> bytes:
        return super().prepare_key(key)


_JWT = jwt.PyJWT()
_JWT._jws.unregister_algorithm(_ALGORITHM)  # the reader's own registry, not PyJWT's global one
_JWT._jws.register_algorithm(_ALGORITHM, _CheckedOnceHMAC(HMACAlgorithm.SHA256))


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AuthenticationError("password must have at least 8 characters", code="weak-password")
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class TokenClaims:
    user: str
    role: str
    area: str | None
    version: int


def issue_token(claims: TokenClaims, key: str, audience: str, ttl_minutes: int) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": claims.user,
        "role": claims.role,
        "area": claims.area,
        "ver": claims.version,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_minutes * 60,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, key, algorithm=_ALGORITHM)


_VERIFIED: dict[tuple[str, str, str], dict[str, Any]] = {}  # (token, key, audience) → claims
_VERIFIED_MAX = 4096


def read_token(token: str, key: str, audience: str) -> TokenClaims:
    """Verified claims; any defect (alg none, bad signature, audience, expiry) is a 401.

    A token verified once is remembered with its claims (a dispatcher sends the same token
    all shift; verifying it is a third of a lookup's own CPU): a repeat skips the signature
    check, which is deterministic for the same token, key and audience, but never the expiry.
    An expired or unknown token goes through the full check again."""
    cache_key = (token, key, audience)
    data = _VERIFIED.get(cache_key)
    if data is None or int(data["exp"]) <= time.time():
        try:
            data = _JWT.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=audience,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token expired", code="token-expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}", code="invalid-token") from exc
        if len(_VERIFIED) >= _VERIFIED_MAX:
            _VERIFIED.clear()
        _VERIFIED[cache_key] = data
    return TokenClaims(
        user=str(data["sub"]),
        role=str(data.get("role", "")),
        area=data.get("area"),
        version=int(data.get("ver", 0)),
    )


class LoginThrottle:
    """Failed-login counter per key (user name and client address) over a sliding window.

    After ``max_failures`` failures within ``window_s`` seconds the key is refused until the
    oldest failure leaves the window; a success clears the key. In memory, per process: enough
    to stop online guessing against one server (put a shared store behind it when scaling out).
    """

    def __init__(
        self, max_failures: int = 5, window_s: float = 300.0, clock: Any = time.monotonic
    ) -> None:
        self.max_failures, self.window_s, self.clock = max_failures, window_s, clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = self.clock()
        kept = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def retry_after(self, key: str) -> int:
        """Seconds to wait before ``key`` may try again (0 = may try now)."""
        recent = self._recent(key)
        if len(recent) < self.max_failures:
            return 0
        return max(1, int(recent[0] + self.window_s - self.clock()) + 1)

    def failed(self, key: str) -> None:
        self._recent(key)
        self._failures.setdefault(key, []).append(self.clock())

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
