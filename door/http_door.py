"""The HTTP side of the door: aiohttp in front of Triton's private HTTP port (and its metrics port).

A request is routed by `door.policy` from its method and raw path; a refused one gets 403 with
Triton's error shape (`{"error": ...}`). An allowed body is read whole, within `DoorLimits` (size,
chunk count; the parser bounds the headers), and sent on with a Content-Length, never chunked, and
with only the headers Triton's inference protocol needs: whatever framing a client chose, Triton
sees one plain, bounded request. `generate_stream` is relayed as it arrives; a client that closes
its connection has its handler cancelled (`handler_cancellation`), which closes the upstream
connection, which is how Triton tells `ltr_bls` that its client left.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from aiohttp import web

from door.limits import DoorLimits
from door.policy import Forward, Refusal, http_route

log = logging.getLogger("door.http")

# Request headers Triton's HTTP inference protocol reads; every other header stays at the door.
FORWARDED_HEADERS = ("Content-Type", "Inference-Header-Content-Length", "Accept")
RESPONSE_HEADERS = ("Content-Type", "Inference-Header-Content-Length", "Cache-Control")


class TooLarge(Exception):
    """The body is over the door's limits."""


def error_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json")


async def read_bounded(request: web.Request, limits: DoorLimits) -> bytes:
    """The whole body, or TooLarge as soon as it exceeds the byte or chunk bound."""
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise TooLarge(f"request body over the door's limit of {limits.max_body_bytes} bytes")
    parts: list[bytes] = []
    size = chunks = 0
    async for data, end_of_chunk in request.content.iter_chunks():
        size += len(data)
        chunks += end_of_chunk
        if size > limits.max_body_bytes:
            raise TooLarge(f"request body over the door's limit of {limits.max_body_bytes} bytes")
        if chunks > limits.max_chunks:
            raise TooLarge(f"request body in more than {limits.max_chunks} chunks")
        parts.append(data)
    return b"".join(parts)


def forwarded_headers(request: web.Request) -> dict[str, str] | Refusal:
    headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
    header_length = headers.get("Inference-Header-Content-Length")
    if header_length is not None and not header_length.isdigit():
        return Refusal("Inference-Header-Content-Length is not a number")
    return headers


class HttpDoor:
    def __init__(self, triton_http: str, triton_metrics: str, limits: DoorLimits) -> None:
        self.bases = {"triton": f"http://{triton_http}", "metrics": f"http://{triton_metrics}"}
        self.limits = limits
        self.session: aiohttp.ClientSession | None = None

    async def start_session(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = http_route(request.method, request.raw_path)
        if isinstance(route, Refusal):
            return error_response(403, route.reason)
        headers = forwarded_headers(request)
        if isinstance(headers, Refusal):
            return error_response(400, headers.reason)
        body = None
        if route.has_body:
            try:
                body = await read_bounded(request, self.limits)
            except TooLarge as exc:
                # aiohttp then reads and drops the rest for a bounded time (lingering close), so that
                # the client reads this answer instead of a reset connection
                return error_response(413, str(exc))
        return await self.forward(request, route, headers, body)

    async def forward(self, request: web.Request, route: Forward, headers: dict[str, str],
                      body: bytes | None) -> web.StreamResponse:
        assert self.session is not None
        url = self.bases[route.upstream] + route.path
        try:
            upstream = await self.session.request(route.method, url, data=body, headers=headers)
        except (aiohttp.ClientError, OSError) as exc:
            return error_response(502, f"Triton is not reachable: {type(exc).__name__}")
        reply_headers = {name: upstream.headers[name] for name in RESPONSE_HEADERS if name in upstream.headers}
        try:
            if not route.streams:
                data = await upstream.read()
                return web.Response(status=upstream.status, body=data, headers=reply_headers)
            response = web.StreamResponse(status=upstream.status, headers=reply_headers)
            await response.prepare(request)
            async for data in upstream.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            upstream.close()  # the client left: drop Triton's connection so that its request ends
            raise
        except aiohttp.ClientError as exc:
            upstream.close()
            if route.streams:
                raise
            return error_response(502, f"Triton's answer broke off: {type(exc).__name__}")
        finally:
            upstream.release()


async def start_http_door(host: str, port: int, triton_http: str, triton_metrics: str,
                          limits: DoorLimits, grace_s: float = 5.0) -> tuple[web.AppRunner, HttpDoor]:
    door = HttpDoor(triton_http, triton_metrics, limits)
    await door.start_session()
    app = web.Application(client_max_size=limits.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", door.handle)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace_s,
                           max_line_size=limits.max_header_line, max_field_size=limits.max_header_field,
                           max_headers=limits.max_headers)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, door
