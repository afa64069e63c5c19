"""A real HTTP server on 127.0.0.1 serving recorded bodies: the machine edge for HTTP sources.

Collectors fetch with the real curl through the real executor; only the server's answers are
recorded. Routes can be changed while it runs (a second cycle sees new data) and every request
path is kept, so tests can assert which query a collector asked.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    delay_s: float = 0.0


@dataclass
class Served:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def set(self, path: str, body: bytes | str, status: int = 200, delay_s: float = 0.0) -> None:
        """Serve `body` at `path`; with a query (`/x/?a=b`) only that exact query, else any query."""
        self.routes[path] = Route(body.encode() if isinstance(body, str) else body, status, delay_s=delay_s)


def _handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            served.requests.append(self.path)
            route = served.routes.get(self.path) or served.routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.send_error(404)
                return
            if route.delay_s:
                threading.Event().wait(route.delay_s)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


@contextmanager
def serve(routes: dict[str, bytes | str] | None = None) -> Iterator[Served]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served := Served("")))
    srv.daemon_threads = True
    served.base = f"http://127.0.0.1:{srv.server_address[1]}"
    for path, body in (routes or {}).items():
        served.set(path, body)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield served
    finally:
        srv.shutdown()
        srv.server_close()


def closed_port_url(path: str = "/") -> str:
    """A loopback URL nothing listens on (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
