"""A small TCP proxy that injects network faults between the code under test and a server it depends on.

Toxiproxy cannot be built here (reliability.md §4.4), so this is the ~100 lines of asyncio it takes: the proxy
listens on 127.0.0.1 and a free port, forwards to ``upstream``, and its mode says what happens to the bytes:

- ``PASS``: forwarded as they come;
- ``LATENCY``: each chunk held ``latency`` seconds first, both ways;
- ``RESET``: open connections and new ones are reset (an RST, not a clean close);
- ``BLACKHOLE``: connections are accepted and what is sent is swallowed; nothing ever answers.

``reset_next_connection(client_chunk=k)`` aims at one moment instead: the next connection opened is reset
when its client sends its ``k``-th chunk, which is not forwarded (``server_chunk=k``: when the server sends
its ``k``-th, which the client never gets: the statement ran, its answer is lost). What each side of each
connection sent is recorded (``connections``), so a test can watch a request go through once and then reset
it at each step in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import socket
import struct
import threading


class Mode(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    RESET = "reset"
    BLACKHOLE = "blackhole"


@dataclasses.dataclass
class Connection:
    number: int
    #: (from the client?, chunk number) at which this connection is reset, if it is.
    reset_at: tuple[bool, int] | None
    #: What each side sent, chunk by chunk (as read from the socket), up to the reset if there was one.
    client_chunks: list[bytes] = dataclasses.field(default_factory=list)
    server_chunks: list[bytes] = dataclasses.field(default_factory=list)
    was_reset: bool = False
    closed: threading.Event = dataclasses.field(default_factory=threading.Event)
    writers: list[asyncio.StreamWriter] = dataclasses.field(default_factory=list)


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.mode = Mode.PASS
        self.latency = 0.0
        self.connections: list[Connection] = []
        self._armed_reset: tuple[bool, int] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.close()
        self._call(self._abort_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # --- what the test sets --------------------------------------------------------------------------

    def set_mode(self, mode: Mode, *, latency: float = 0.0) -> None:
        """Switch what happens to every connection from now on; ``RESET`` also resets those already open."""
        self.mode, self.latency = mode, latency
        if mode is Mode.RESET:
            self._call(self._abort_all())

    def reset_next_connection(self, *, client_chunk: int | None = None, server_chunk: int | None = None) -> None:
        if (client_chunk is None) == (server_chunk is None):
            raise ValueError("reset at a chunk of the client or of the server")
        self._armed_reset = (True, client_chunk) if client_chunk is not None else (False, server_chunk)

    # --- the proxy -----------------------------------------------------------------------------------

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _abort_all(self) -> None:
        for connection in self.connections:
            if not connection.closed.is_set():
                _reset(connection)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        connection = Connection(number=len(self.connections) + 1, reset_at=self._armed_reset)
        self._armed_reset = None
        self.connections.append(connection)
        connection.writers.append(client_writer)
        try:
            if self.mode is Mode.RESET:
                return _reset(connection)
            if self.mode is Mode.BLACKHOLE:
                while await client_reader.read(65536):
                    pass
                return None
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return _abort(client_writer)
            connection.writers.append(upstream_writer)
            await asyncio.gather(
                self._pipe(connection, client_reader, upstream_writer, from_client=True),
                self._pipe(connection, upstream_reader, client_writer, from_client=False),
            )
        finally:
            for writer in connection.writers:
                writer.close()
            connection.closed.set()

    async def _pipe(
        self, connection: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool
    ) -> None:
        with contextlib.suppress(OSError, RuntimeError):  # the other side was reset or has gone
            sent = connection.client_chunks if from_client else connection.server_chunks
            while chunk := await reader.read(65536):
                sent.append(chunk)
                if connection.reset_at == (from_client, len(sent)):
                    return _reset(connection)
                if self.mode is Mode.BLACKHOLE:
                    continue
                if self.mode is Mode.RESET:
                    return _reset(connection)
                if self.mode is Mode.LATENCY:
                    await asyncio.sleep(self.latency)
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()  # a clean close goes on as one


def _reset(connection: Connection) -> None:
    connection.was_reset = True
    for writer in connection.writers:
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: no lingering, unsent bytes dropped, the peer's next read fails."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
