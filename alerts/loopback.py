"""A small HTTP server on loopback that serves routes you register: the demo's feed host, and the
tests' too. Each route answers with a status, headers and a body, optionally after a delay or
dripping the body slowly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes | Callable[[], bytes] = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/xml"})
    delay: float = 0.0  # seconds before answering
    drip: float = 0.0  # seconds between body bytes (a slow-loris server)
    # Dynamic answers: called with the request headers, returns (status, headers, body).
    respond: Callable[[dict[str, str]], tuple[int, dict[str, str], bytes]] | None = None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        """A client that hangs up early (timeouts, size caps) is expected, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (random port) with its lifecycle: ``with`` it, or
    ``start()``/``close()``. Subclasses call ``_serve(handler_class, name)`` in ``__init__``;
    ``port`` lets a test bring a server back where a client still points after ``close()``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], name: str, port: int = 0) -> None:
        handler.disable_nagle_algorithm = True  # else keep-alive + delayed ACK costs ~40 ms
        self._httpd = _QuietServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True, name=name
        )

    def _serve_requests(
        self,
        handle: Callable[[BaseHTTPRequestHandler], None],
        name: str,
        *,
        methods: tuple[str, ...] = ("GET", "POST"),
        port: int = 0,
    ) -> None:
        """``_serve`` with a handler (HTTP/1.1, no request log) that passes every request of
        ``methods`` to ``handle``."""
        attrs: dict[str, object] = {
            "protocol_version": "HTTP/1.1",
            "log_message": lambda request, *args: None,
        }
        attrs.update({f"do_{m}": lambda request: handle(request) for m in methods})
        self._serve(type(f"{name}Handler", (BaseHTTPRequestHandler,), attrs), name, port)

    @staticmethod
    def _respond(
        req: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer a request; a client that hung up is no error."""
        try:
            req.send_response(status)
            req.send_header("Content-Type", content_type)
            for k, v in (headers or {}).items():
                req.send_header(k, v)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self):  # noqa: ANN201 - returns the subclass
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    stop = close

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class FeedServer(LoopbackServer):
    """``with FeedServer() as srv: srv.route("/a.xml", Route(...)); srv.url("/a.xml")``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test and demo output clean
                pass

            def do_GET(self) -> None:  # http.server's naming
                with server._lock:
                    server.requests.append((self.path, dict(self.headers)))
                    route = server.routes.get(self.path)
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    if route is None:
                        self._answer(404, {"Content-Type": "text/plain"}, b"not found")
                        return
                    if route.delay:
                        time.sleep(route.delay)
                    if route.respond is not None:
                        status, headers, body = route.respond(dict(self.headers))
                    else:
                        status, headers = route.status, route.headers
                        body = route.body() if callable(route.body) else route.body
                    self._answer(status, headers, body, drip=route.drip)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(
                self, status: int, headers: dict[str, str], body: bytes, drip: float = 0.0
            ) -> None:
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if drip:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(drip)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as a timeout test wants it to

        self._serve(Handler, "FeedServer")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, route: Route) -> str:
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if p == path)
