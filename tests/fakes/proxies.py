"""Proxies on loopback, for feeds fetched through one: a SOCKS5 proxy (RFC 1928, with the
username/password method of RFC 1929) and an HTTP forward proxy. Each records who asked for
what, and relays the bytes unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
import threading


class _ThreadedServer:
    """An asyncio server in its own thread; ``start()``/``close()``, or a context manager."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()

        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)
        return self

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    first: bytes = b"",
) -> None:
    up_reader, up_writer = upstream

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    if first:
        up_writer.write(first)
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


class Socks5Proxy(_ThreadedServer):
    """SOCKS5 CONNECT; with ``username`` and ``password``, only that user may connect."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self.username, self.password = username, password

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            version, n = await reader.readexactly(2)
            methods = await reader.readexactly(n)
            wanted = 2 if self.username is not None else 0
            if version != 5 or wanted not in methods:
                writer.write(b"\x05\xff")
                return
            writer.write(bytes([5, wanted]))
            user = None
            if wanted == 2:
                _, ulen = await reader.readexactly(2)
                user = (await reader.readexactly(ulen)).decode()
                (plen,) = await reader.readexactly(1)
                given = (await reader.readexactly(plen)).decode()
                ok = user == self.username and given == self.password
                writer.write(b"\x01\x00" if ok else b"\x01\x01")
                if not ok:
                    self.requests.append({"refused": user})
                    return
            _, command, _, kind = await reader.readexactly(4)
            if kind == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            elif kind == 3:
                (length,) = await reader.readexactly(1)
                host = (await reader.readexactly(length)).decode()
            else:
                host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
            (port,) = struct.unpack("!H", await reader.readexactly(2))
            self.requests.append({"user": user, "host": host, "port": port, "kind": kind})
            if command != 1:
                writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
                return
            try:
                upstream = await asyncio.open_connection(host, port)
            except OSError:
                writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
                return
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            await writer.drain()
            await _relay(reader, writer, upstream)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class HttpProxy(_ThreadedServer):
    """An HTTP forward proxy for http:// targets: one request a connection (it answers with
    ``Connection: close``), the request line rewritten to origin form."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.decode().split(" ")
            self.requests.append({"method": method, "target": target})
            hostport, _, path = target.removeprefix("http://").partition("/")
            host, _, port = hostport.partition(":")
            headers = [
                h
                for h in rest.split(b"\r\n")
                if h and not h.lower().startswith((b"connection:", b"proxy-"))
            ]
            request = b"\r\n".join(
                [f"{method} /{path} {version}".encode(), *headers, b"Connection: close", b"", b""]
            )
            upstream = await asyncio.open_connection(host, int(port or 80))
            await _relay(reader, writer, upstream, first=request)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            ValueError,
        ):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class Balancer(_ThreadedServer):
    """A reverse proxy in front of several instances (TCP, as nginx's ``upstream`` with
    failover): each connection goes to the first of ``upstreams`` (loopback ports) that
    accepts it."""

    def __init__(self, upstreams: list[int]) -> None:
        super().__init__()
        self.upstreams = upstreams

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for port in self.upstreams:
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            self.requests.append({"upstream": port})
            await _relay(reader, writer, upstream)
            return
        writer.close()
