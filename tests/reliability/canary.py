"""What an SSRF test needs around the code under test: a loopback server that records every connection made to
it (the canary, or a stand-in for a merchant's public server), and a network in which every outbound TCP
connection is accounted for and none leaves loopback.

``Network`` replaces name resolution with a table (a name not in it does not resolve: no DNS query leaves the
machine) and guards ``socket.connect``: loopback connections go through, the addresses given as stand-ins are
connected to a loopback server instead, and any other connection is recorded as an escape and refused before
a packet is sent.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclasses.dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class Canary:
    """An HTTP server on 127.0.0.1 and a random port. ``connections`` counts every TCP connection accepted,
    whatever was (or was not) said on it — a TLS handshake to this plain-HTTP server counts too; ``hits`` holds
    every request read. Each request is answered with ``status`` and ``headers``."""

    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers = status, headers or {}
        self.connections = 0
        self.hits: list[Hit] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one_request(self):
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    return
                self.close_connection = True
                body_length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(body_length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                canary.hits.append(Hit(self.command, self.path, headers))
                self.send_response(canary.status)
                for name, value in canary.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                canary.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request, client_address):
                pass  # a client that hung up, or spoke TLS: the connection is what counts

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Network:
    """Name resolution from ``dns`` and a guard on every TCP connection (see the module's docstring).

    ``dns[name]`` is a list of answers, one per look-up (the last one repeating); an answer is a list of
    addresses. ``stand_ins[address]`` is the loopback port that connections to ``address`` reach instead.
    """

    def __init__(self) -> None:
        self.dns: dict[str, list[list[str]]] = {}
        self.stand_ins: dict[str, int] = {}
        self.looked_up: list[str] = []
        self.connected: list[tuple[str, int]] = []  # as asked for, before any stand-in is substituted
        self.escapes: list[tuple[str, int]] = []

    def install(self, monkeypatch) -> Network:
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect
        network = self

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            name = host.decode() if isinstance(host, bytes) else host
            try:
                ipaddress.ip_address(str(name).split("%", 1)[0])
            except ValueError:
                pass
            else:  # an address needs no look-up
                return real_getaddrinfo(host, port, family, type, proto, flags)
            if name not in network.dns:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            network.looked_up.append(name)
            answers = network.dns[name]
            answer = answers[min(network.looked_up.count(name), len(answers)) - 1]
            return [
                (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in answer
            ]

        def connect(sock, address):
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return real_connect(sock, address)
            host, port = address[0], address[1]
            network.connected.append((host, port))
            if host in network.stand_ins:
                loopback = "::1" if sock.family == socket.AF_INET6 else "127.0.0.1"
                return real_connect(sock, (loopback, network.stand_ins[host], *address[2:]))
            try:
                loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
            except ValueError:  # a name resolved by the C library: a look-up outside the table
                loopback = False
            if loopback:
                return real_connect(sock, address)
            network.escapes.append((host, port))
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{host}:{port} is outside loopback (refused by the test)")

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)
        return self
