"""Serve with several uvicorn worker processes without the Nagle delay on keep-alive requests.

Why: with ``workers > 1`` uvicorn binds the listening socket itself as
``socket.socket(family=…)``, whose ``proto`` is 0. Accepted connections inherit that, and
asyncio sets ``TCP_NODELAY`` only on sockets whose ``proto`` is ``IPPROTO_TCP``; so every
response written in two parts (headers, body) waits for the client's delayed ACK — measured
here: ≈ 55 ms per request on a keep-alive connection with 2 workers against ≈ 3 ms with one.
Binding the same socket with ``proto=IPPROTO_TCP`` restores ``TCP_NODELAY`` in every worker.

Keep-alive: uvicorn closes idle connections after 5 s by default. A client (or a reverse proxy)
that pauses a little longer and sends on the connection as the server closes it gets no answer
at all (seen in the load test: leaders pausing 3–8 s between pages). The server's idle timeout
must outlast its clients'; :data:`KEEP_ALIVE_S` is nginx's default, 75 s.
"""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

__all__ = ["KEEP_ALIVE_S", "TcpConfig", "run_workers"]


class TcpConfig(uvicorn.Config):
    """uvicorn's configuration, binding a TCP socket that asyncio recognises as TCP."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            tcp.set_inheritable(True)
            return tcp
        return sock


KEEP_ALIVE_S = 75  # idle keep-alive connections live longer than clients' and proxies' pauses


def run_workers(
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    keep_alive_s: int = KEEP_ALIVE_S,
    *,
    access_log: bool = True,
) -> None:
    """Run ``api.app:create_app`` in ``workers`` processes sharing one listening socket."""
    config = TcpConfig(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_keep_alive=keep_alive_s,
        access_log=access_log,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
