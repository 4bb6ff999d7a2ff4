"""Password hashing, tokens and the login throttle."""

from __future__ import annotations

import pytest

from gridmap.errors import AuthenticationError
from gridmap.security import (
    LoginThrottle,
    TokenClaims,
    hash_password,
    issue_token,
    read_token,
    verify_password,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_throttle_window() -> None:
    clock = Clock()
    th = LoginThrottle(max_failures=3, window_s=60, clock=clock)
    for _ in range(3):
        assert th.retry_after("u") == 0
        th.failed("u")
        clock.t += 1
    assert th.retry_after("u") > 0 and th.retry_after("other") == 0
    clock.t += 58  # the oldest failure leaves the window
    assert th.retry_after("u") == 0
    th.failed("u")
    th.succeeded("u")
    assert th.retry_after("u") == 0


def test_argon2_and_tokens() -> None:
    h = hash_password("long enough pw")
    assert h.startswith("$argon2id$") and verify_password(h, "long enough pw")
    assert not verify_password(h, "wrong") and not verify_password(None, "x")
    with pytest.raises(AuthenticationError):
        hash_password("short")
    tok = issue_token(TokenClaims("a", "leader", "420502", 2), "k" * 32, "aud", 5)
    claims = read_token(tok, "k" * 32, "aud")
    assert claims == TokenClaims("a", "leader", "420502", 2)
    for key, aud in (("x" * 32, "aud"), ("k" * 32, "other")):
        with pytest.raises(AuthenticationError):
            read_token(tok, key, aud)
    expired = issue_token(TokenClaims("a", "leader", None, 0), "k" * 32, "aud", -1)
    with pytest.raises(AuthenticationError, match="expired"):
        read_token(expired, "k" * 32, "aud")
