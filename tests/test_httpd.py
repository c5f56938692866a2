"""The small HTTP server ``run`` answers on (ops and the WebSub callback): routes by exact path
or prefix, bodies by Content-Length or chunked, limits, and a handler's crash."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from alerts.httpd import HttpServer, Request, Response, text


async def _echo(request: Request) -> Response:
    return text(200, f"{request.method} {request.path} {request.query} {len(request.body)}\n")


async def _crash(request: Request) -> Response:
    raise RuntimeError("a bug")


@pytest.fixture
async def server():
    server = HttpServer({"/exact": _echo, "/hub/": _echo, "/crash": _crash}, max_body=1000)
    await server.start("127.0.0.1", 0)
    yield f"http://{server.address}"
    await server.aclose()


async def test_routes_by_exact_path_or_prefix(server):
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{server}/exact?a=1")).text == "GET /exact a=1 0\n"
        assert (await client.post(f"{server}/hub/abc", content=b"xyz")).text == "POST /hub/abc  3\n"
        missing = await client.get(f"{server}/exact/more")
        assert missing.status_code == 404
        assert missing.text == "not found: try /exact or /hub/ or /crash\n"
        head = await client.head(f"{server}/exact")
        assert head.status_code == 200 and head.content == b""


async def test_a_chunked_body_is_read_and_a_large_one_refused(server):
    async def chunks(parts):
        for part in parts:
            yield part

    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{server}/hub/x", content=chunks([b"a" * 300, b"b" * 200]))
        assert answer.text == "POST /hub/x  500\n"
        too_long = await client.post(f"{server}/hub/x", content=chunks([b"a" * 600] * 2))
        assert too_long.status_code == 413
        declared = await client.post(f"{server}/hub/x", content=b"a" * 1001)
        assert declared.status_code == 413


async def test_a_crashing_handler_is_a_500_and_the_server_goes_on(server, caplog):
    async with httpx.AsyncClient() as client:
        crashed = await client.get(f"{server}/crash")
        assert crashed.status_code == 500 and crashed.text == "internal error: RuntimeError\n"
        assert (await client.get(f"{server}/exact")).status_code == 200
    assert "http_request_failed path=/crash" in caplog.text


async def test_a_bad_request_line_is_a_400(server):
    host, port = server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"NONSENSE\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
