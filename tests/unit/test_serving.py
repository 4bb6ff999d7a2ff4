"""Multi-worker serving binds a socket on which asyncio turns Nagle's algorithm off."""

from __future__ import annotations

import asyncio
import socket

from api.serving import TcpConfig


def test_accepted_connections_get_tcp_nodelay() -> None:
    sock = TcpConfig("api.app:create_app", factory=True, host="127.0.0.1", port=0).bind_socket()
    assert sock.proto == socket.IPPROTO_TCP and sock.get_inheritable()
    seen: list[int] = []

    async def main() -> None:
        def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            s = writer.get_extra_info("socket")
            seen.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_conn, sock=sock)
        async with server:
            _, w = await asyncio.open_connection(*sock.getsockname())
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            w.close()

    asyncio.run(main())
    assert seen and seen[0] != 0
