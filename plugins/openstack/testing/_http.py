"""HTTP plumbing of the emulator: requests, JSON answers, API errors, a regex router, the threaded server."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One parsed HTTP request, as the service handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: Any
    params: dict[str, str] = field(default_factory=dict)
    """Named groups of the route pattern that matched."""

    def arg(self, name: str) -> str | None:
        """The last value of a query parameter, or None."""
        values = self.query.get(name)
        return values[-1] if values else None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def microversion(self, service: str, default: str) -> tuple[int, int]:
        """The microversion the client asked for (``OpenStack-API-Version: compute 2.60``), as a tuple."""
        wanted = None
        header = self.header("OpenStack-API-Version")
        if header:
            kind, _, version = header.strip().partition(" ")
            if kind == service:
                wanted = version.strip()
        if wanted is None and service == "compute":
            wanted = self.header("X-OpenStack-Nova-API-Version")
        major, _, minor = (wanted or default).partition(".")
        return int(major), int(minor or 0)


@dataclass
class Response:
    """What a handler answers: a status, a JSON body (or none) and extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error answer in the exact body format the emulated service uses."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = dict(body)


Handler = Callable[[Request], Response]


class Router:
    """Maps (method, path regex) to handlers; patterns use named groups for path parameters."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []

    def add(self, method: str, pattern: str, handler: Handler, *, api: bool = True) -> None:
        """Register a route; ``api=False`` exempts it from fault injection (discovery, auth)."""
        self._routes.append((method, re.compile(pattern + "/?$"), handler, api))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str], bool] | None:
        """The handler for a request, its path parameters, and whether faults may hit it."""
        path_found = False
        for route_method, pattern, handler, api in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            path_found = True
            if route_method == method:
                return handler, found.groupdict(), api
        if path_found:
            raise ApiError(405, {"error": {"code": 405, "message": f"{method} is not allowed on {path}"}})
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: with Nagle on, keep-alive clients wait ~40 ms per answer
    disable_nagle_algorithm = True
    dispatch: Callable[[Request], Response]

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._answer(Response(400, {"badRequest": {"code": 400, "message": "Malformed request body"}}))
            return
        request = Request(
            method=self.command,
            path=parts.path.rstrip("/") or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=dict(self.headers.items()),
            body=body,
        )
        self._answer(type(self).dispatch(request))

    def _answer(self, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        if response.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log (tests would drown in it)."""


class HttpServer:
    """A ThreadingHTTPServer on 127.0.0.1 with an ephemeral port, served from a daemon thread."""

    def __init__(self, dispatch: Callable[[Request], Response]) -> None:
        handler = type("EmulatorHandler", (_Handler,), {"dispatch": staticmethod(dispatch)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openstack-emulator", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
