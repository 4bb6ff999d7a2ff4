"""Request limits: the body cap enforced while streaming (so chunked uploads cannot bypass it)
and strict JSON (no NaN or Infinity, which Python's parser accepts but JSON does not have)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "StrictJSONRoute"]


def _no_constants(name: str) -> Any:
    raise json.JSONDecodeError(
        f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)", name, 0
    )


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400 overflows to infinity
        raise json.JSONDecodeError("a number is out of range (overflows to infinity)", text, 0)
    return value


class StrictJSONRequest(Request):
    """``json()`` refuses ``NaN``, ``Infinity`` and ``-Infinity``; FastAPI turns the decode
    error into a 422 (problem+json that does not echo the body)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(
                await self.body(), parse_constant=_no_constants, parse_float=_finite
            )
        return self._json


class StrictJSONRoute(APIRoute):
    """Route class of every router: bodies are parsed as strict JSON (also for handlers that
    call ``request.json()`` themselves). A NaN coordinate must never reach geometry code."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


class BodyLimit:
    """Pure ASGI middleware: 413 problem+json once a body passes ``max_bytes``."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0
        exceeded = False
        replied = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks turn a failed body read into their own error (FastAPI: 400);
            # once the cap was passed, whatever they answer is replaced by our 413.
            nonlocal replied
            if not exceeded:
                await send(message)
            elif not replied:
                replied = True
                await self._reject(send, limit)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not replied:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        body: dict[str, Any] = {
            "type": "https://gridmap.invalid/problems/payload-too-large",
            "title": "payload too large",
            "status": 413,
            "detail": f"request body exceeds {limit} bytes",
        }
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


class _TooLarge(Exception):
    pass
