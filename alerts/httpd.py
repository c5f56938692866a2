"""A minimal HTTP/1.1 server inside the bot's event loop (one request per connection), for the
endpoints ``run`` serves: /healthz and /metrics (``ops``) and the WebSub callback (``websub``).
Both can share one listen address; each registers its paths.

A request's head and body must arrive within ``READ_TIMEOUT_SECONDS``; a body over
``max_body`` bytes is refused with 413 before it is read. ``Content-Length`` and chunked bodies
are read; nothing else (no keep-alive, no ``Expect: 100-continue`` dance beyond answering).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger("chipwatch.httpd")

READ_TIMEOUT_SECONDS = 10.0

REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[str, ...] = ()  # extra "Name: value" lines


def text(status: int, message: str, *headers: str) -> Response:
    return Response(status=status, body=message.encode(), headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves ``routes``: an exact path, or a prefix ending in ``/`` (``/websub/``), to its
    handler. A handler that raises gets a 500 and a log line; the server goes on."""

    def __init__(self, routes: Mapping[str, Handler], *, max_body: int = 1_000_000):
        self.routes = dict(routes)
        self.max_body = max_body
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str | None:
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def paths(self) -> str:
        return ",".join(self.routes)

    async def start(self, host: str, port: int) -> None:
        """Listen; raises OSError when the address is taken or unusable."""
        self._server = await asyncio.start_server(self._serve, host, port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _handler(self, path: str) -> Handler | None:
        if path in self.routes:
            return self.routes[path]
        return next(
            (h for p, h in self.routes.items() if p.endswith("/") and path.startswith(p)), None
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                    response, method = await self._answer(reader, writer)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            lines = [
                f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Status')}",
                f"Content-Type: {response.content_type}",
                f"Content-Length: {len(response.body)}",
                "Cache-Control: no-store",
                "Connection: close",
                *response.headers,
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                writer.write(response.body)
            await writer.drain()
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[Response, str]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return text(400, "bad request line\n"), ""
        method, target = parts[0], parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        url = urlsplit(target)
        handler = self._handler(url.path)
        if handler is None:
            known = " or ".join(p for p in self.routes)
            return text(404, f"not found: try {known}\n"), method
        try:
            body = await self._body(reader, writer, headers)
        except _BadRequest as exc:
            return text(exc.status, f"{exc}\n"), method
        request = Request(method=method, path=url.path, query=url.query, headers=headers, body=body)
        try:
            return await handler(request), method
        except Exception as exc:  # a bug here must not end the endpoint
            log.exception("http_request_failed path=%s", url.path)
            return text(500, f"internal error: {type(exc).__name__}\n"), method

    async def _body(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
    ) -> bytes:
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        if not chunked and not length:
            return b""
        if not chunked and not length.isdigit():
            raise _BadRequest(400, "bad Content-Length")
        if not chunked and int(length) > self.max_body:
            raise _BadRequest(413, f"body over {self.max_body} bytes")
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if not chunked:
            return await reader.readexactly(int(length))
        chunks: list[bytes] = []
        size = 0
        while True:
            line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
            try:
                n = int(line, 16)
            except ValueError:
                raise _BadRequest(400, "bad chunk size") from None
            if n == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(chunks)
            size += n
            if size > self.max_body:
                raise _BadRequest(413, f"body over {self.max_body} bytes")
            chunks.append(await reader.readexactly(n))
            await reader.readexactly(2)
