"""Local emulators of the SDN controllers' northbound APIs, with fault injection: the sdn plugin's test fakes.

* :class:`OnosEmulator` - ONOS's network configuration REST API (``/onos/v1/network/configuration``),
  enough for the VPLS app config and port interfaces, with HTTP basic auth.
* :class:`L2vpnEmulator` - a RESTCONF (RFC 8040) datastore for ``ietf-l2vpn-svc`` (RFC 8466):
  vpn-services and sites with their site-network-accesses, ``application/yang-data+json``,
  201/204/404/409 semantics and ``ietf-restconf:errors`` bodies.

Both are real HTTP servers on 127.0.0.1 with an ephemeral port (use them as context managers), so the
drivers' real httpx clients talk to them over the wire. :class:`Faults` injects 5xx answers (before or
after the change is applied, the latter being a lost reply), latency and credential rejection.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Faults:
    """What an emulator does wrong. Change the fields at any time; they apply to the next requests."""

    error_rate: float = 0.0
    """Share of requests answered 503 before they are processed."""
    lost_reply_rate: float = 0.0
    """Share of write requests that are applied but answered 502 (the client cannot know it worked)."""
    fail_next: int = 0
    """The next N requests are answered 503 (deterministic)."""
    latency_s: float = 0.0
    reject_auth: bool = False
    """Answer 401 to every request, as if the account were disabled."""
    seed: int = 8
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.server.emulator.dispatch(self.command, self.path, dict(self.headers), body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read emulator.requests instead
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.emulator = emulator


class Emulator:
    """An HTTP server on 127.0.0.1 with basic auth and fault injection; subclasses answer in handle()."""

    content_type = "application/json"

    def __init__(self, username: str, password: str, faults: Faults | None = None) -> None:
        self.username = username
        self.password = password
        self.faults = faults or Faults()
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, status) of every request, in order."""
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        answer = self._dispatch(method, raw_path, headers, body)
        self.requests.append((method, urlsplit(raw_path).path, answer[0]))
        return answer

    def _dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        faults = self.faults
        if faults.latency_s:
            time.sleep(faults.latency_s)
        if faults.reject_auth or not self._authorized(headers):
            return self.error(401, "access-denied", "authentication failed")
        with self.lock:
            if faults.fail_next > 0:
                faults.fail_next -= 1
                return self.error(503, "operation-failed", "injected fault: service unavailable")
            if faults.roll(faults.error_rate):
                return self.error(503, "operation-failed", "injected fault: service unavailable")
            try:
                data = json.loads(body) if body else None
            except ValueError:
                return self.error(400, "malformed-message", "request body is not JSON")
            ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
            if body and not self.accepts(ctype):
                return self.error(415, "invalid-value", f"unsupported media type {ctype!r}")
            answer = self.handle(method, urlsplit(raw_path).path, data)
            if method != "GET" and answer[0] < 300 and faults.roll(faults.lost_reply_rate):
                return self.error(502, "operation-failed", "injected fault: reply lost after commit")
            return answer

    def _authorized(self, headers: dict[str, str]) -> bool:
        value = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token).decode().partition(":")
        except ValueError:
            return False
        return user == self.username and password == self.password

    def json(self, status: int, document: Any, headers: dict[str, str] | None = None) -> Answer:
        return status, {"Content-Type": self.content_type, **(headers or {})}, json.dumps(document).encode()

    def accepts(self, content_type: str) -> bool:
        return content_type.split(";")[0].strip() == self.content_type

    def error(self, status: int, tag: str, message: str) -> Answer:
        raise NotImplementedError

    def handle(self, method: str, path: str, data: Any) -> Answer:
        raise NotImplementedError


# -- ONOS ------------------------------------------------------------------------------------------


class OnosEmulator(Emulator):
    """ONOS's ``/onos/v1/network/configuration`` resource: a tree subjectClass -> subject -> configKey.

    Like ONOS, a POST applies (replaces) each config it carries, a DELETE of a config answers 204, and a
    GET of a missing config is 404 ``{"code": 404, "message": "Config for '...' not found"}``.
    """

    ROOT = "/onos/v1/network/configuration"
    ENCAPSULATIONS = ("NONE", "VLAN", "MPLS")
    SUBJECT_CLASSES = ("apps", "devices", "ports", "hosts", "links", "regions")

    def __init__(self, username: str = "onos", password: str = "rocks", faults: Faults | None = None) -> None:
        super().__init__(username, password, faults)
        # ONOS answers 200 {} for a subject class it knows but holds no config for.
        self.config: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in self.SUBJECT_CLASSES}

    # What tests inspect.
    def vplss(self) -> list[dict[str, Any]]:
        vpls = self.config.get("apps", {}).get("org.onosproject.vpls", {}).get("vpls", {})
        return list(vpls.get("vplsList", []))

    def interfaces(self, connect_point: str) -> list[dict[str, Any]]:
        return list(self.config.get("ports", {}).get(connect_point, {}).get("interfaces", []))

    def error(self, status: int, tag: str, message: str) -> Answer:
        return self.json(status, {"code": status, "message": message})

    def handle(self, method: str, path: str, data: Any) -> Answer:
        if not path.startswith(self.ROOT):
            return self.error(404, "", f"no resource at {path}")
        parts = [unquote(p) for p in path[len(self.ROOT) :].split("/") if p]
        if len(parts) > 3:
            # A subject key such as of:0000000000000001/1 holds a slash; ONOS reads it from one segment.
            parts = [parts[0], "/".join(parts[1:-1]), parts[-1]]
        if method == "GET":
            return self._get(parts)
        if method == "POST":
            if not isinstance(data, dict | list):
                return self.error(400, "", "expected a JSON document")
            problem = self._post(parts, data)
            return self.error(400, "", problem) if problem else (200, {}, b"")
        if method == "DELETE":
            self._delete(parts)
            return 204, {}, b""
        return self.error(405, "", f"{method} not allowed")

    def _get(self, parts: list[str]) -> Answer:
        node: Any = self.config
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                return self.error(404, "", f"Config for '{'/'.join(parts[: depth + 1])}' not found")
            node = node[part]
        return self.json(200, node)

    def _post(self, parts: list[str], data: Any) -> str | None:
        # Normalise every shape of POST to (subjectClass, subject, configKey, node) triples.
        triples: list[tuple[str, str, str, Any]] = []
        if len(parts) == 3:
            triples.append((parts[0], parts[1], parts[2], data))
        elif len(parts) == 2:
            triples += [(parts[0], parts[1], k, v) for k, v in data.items()]
        elif len(parts) == 1:
            triples += [(parts[0], s, k, v) for s, cfg in data.items() for k, v in cfg.items()]
        else:
            triples += [(c, s, k, v) for c, subj in data.items() for s, cfg in subj.items() for k, v in cfg.items()]
        for subject_class, _subject, key, node in triples:
            problem = self._validate(subject_class, key, node)
            if problem:
                return problem
        unknown = sorted({t[0] for t in triples} - set(self.SUBJECT_CLASSES))
        if unknown:
            return f"unknown subject class {unknown[0]!r}"
        for subject_class, subject, key, node in triples:
            self.config.setdefault(subject_class, {}).setdefault(subject, {})[key] = node
        return None

    def _validate(self, subject_class: str, key: str, node: Any) -> str | None:
        if subject_class == "apps" and key == "vpls":
            for vpls in node.get("vplsList", []):
                if not isinstance(vpls.get("name"), str) or not isinstance(vpls.get("interfaces"), list):
                    return "each VPLS needs a name and a list of interfaces"
                if vpls.get("encapsulation", "NONE") not in self.ENCAPSULATIONS:
                    return f"unknown encapsulation {vpls.get('encapsulation')!r}"
        if (
            subject_class == "ports"
            and key == "interfaces"
            and (not isinstance(node, list) or any("name" not in i for i in node))
        ):
            return "interfaces must be a list of objects with a name"
        return None

    def _delete(self, parts: list[str]) -> None:
        if not parts:
            self.config = {k: {} for k in self.SUBJECT_CLASSES}
            return
        node: Any = self.config
        for part in parts[:-1]:
            node = node.get(part, {})
        node.pop(parts[-1], None)


# -- IETF L2VPN over RESTCONF --------------------------------------------------------------------


class L2vpnEmulator(Emulator):
    """A RESTCONF server holding an ``ietf-l2vpn-svc:l2vpn-svc`` datastore.

    Lists are addressed as ``name=key`` segments; POST creates a child (201 with Location, 409
    ``data-exists`` if the key is taken), PUT creates (201) or replaces (204), DELETE answers 204 or 404
    ``invalid-value``. Like a real server it checks the ``vpn-attachment/vpn-id`` leafref on commit, so a
    vpn-service still referenced by an access cannot be deleted (409 ``in-use``).
    """

    content_type = "application/yang-data+json"
    MODULE = "ietf-l2vpn-svc"
    ROOT = "/restconf/data/"
    KEYS = {"vpn-service": "vpn-id", "site": "site-id", "site-network-access": "network-access-id"}

    def __init__(self, username: str = "admin", password: str = "admin", faults: Faults | None = None) -> None:
        super().__init__(username, password, faults)
        self.data: dict[str, Any] = {"vpn-services": {"vpn-service": []}, "sites": {"site": []}}

    # What tests inspect.
    def vpn_services(self) -> list[dict[str, Any]]:
        return list(self.data["vpn-services"]["vpn-service"])

    def sites(self) -> list[dict[str, Any]]:
        return list(self.data["sites"]["site"])

    def accesses(self) -> list[dict[str, Any]]:
        return [
            a
            for s in self.data["sites"]["site"]
            for a in s.get("site-network-accesses", {}).get("site-network-access", [])
        ]

    def error(self, status: int, tag: str, message: str) -> Answer:
        return self.json(
            status,
            {
                "ietf-restconf:errors": {
                    "error": [{"error-type": "application", "error-tag": tag, "error-message": message}]
                }
            },
        )

    def handle(self, method: str, path: str, data: Any) -> Answer:
        top = f"{self.ROOT}{self.MODULE}:l2vpn-svc"
        if not path.startswith(top):
            return self.error(404, "invalid-value", f"no data node at {path}")
        segments = [s for s in path[len(top) :].split("/") if s]
        try:
            parent, node, name = self._walk(segments)
        except LookupError as missing:
            return self.error(404, "invalid-value", f"{missing.args[0]} does not exist")
        if method == "GET":
            if node is None:
                return self.error(404, "invalid-value", f"{name} does not exist")
            body = {f"{self.MODULE}:{name}": [node] if name in self.KEYS else node}
            return self.json(200, body)
        if method == "POST":
            return self._post(node, path, data)
        if method == "PUT":
            return self._put(parent, node, name, segments[-1] if segments else "", data)
        if method == "DELETE":
            return self._delete(parent, node, name)
        return self.error(405, "operation-not-supported", f"{method} is not supported")

    def _walk(self, segments: list[str]) -> tuple[Any, Any, str]:
        """(parent container/list, node or None when the last list entry is missing, its name)."""
        parent: Any = None
        node: Any = self.data
        name = "l2vpn-svc"
        for i, segment in enumerate(segments):
            name, _, key = segment.partition("=")
            name = name.removeprefix(f"{self.MODULE}:")
            key = unquote(key)
            if node is None:
                raise LookupError("/".join(segments[:i]))
            if name in self.KEYS:
                entries = node.setdefault(name, [])
                found = next((e for e in entries if e.get(self.KEYS[name]) == key), None)
                parent, node = entries, found
                if found is None and i != len(segments) - 1:
                    raise LookupError(segment)
            else:
                parent, node = node, node.setdefault(name, {})
        return parent, node, name

    def _post(self, target: Any, path: str, data: Any) -> Answer:
        if target is None:
            return self.error(404, "invalid-value", f"{path} does not exist")
        if not isinstance(data, dict) or len(data) != 1:
            return self.error(400, "malformed-message", "POST needs one child node")
        qualified, value = next(iter(data.items()))
        child = qualified.removeprefix(f"{self.MODULE}:")
        if child not in self.KEYS:
            return self.error(400, "invalid-value", f"{qualified} is not a list this emulator knows")
        entries = value if isinstance(value, list) else [value]
        if len(entries) != 1 or not isinstance(entries[0], dict):
            return self.error(400, "malformed-message", "POST creates exactly one list entry")
        entry = entries[0]
        key = entry.get(self.KEYS[child])
        if not key:
            return self.error(400, "missing-element", f"{child} needs its key {self.KEYS[child]}")
        existing = target.setdefault(child, [])
        if any(e.get(self.KEYS[child]) == key for e in existing):
            return self.error(409, "data-exists", f"{child} {key} already exists")
        problem = self._check_refs(entry, child)
        if problem:
            return self.error(400, "invalid-value", problem)
        existing.append(entry)
        return 201, {"Location": f"{path.rstrip('/')}/{child}={key}"}, b""

    def _put(self, parent: Any, node: Any, name: str, segment: str, data: Any) -> Answer:
        if name not in self.KEYS or not isinstance(parent, list):
            return self.error(405, "operation-not-supported", "PUT is supported on list entries only")
        key = unquote(segment.partition("=")[2])
        entries = (data or {}).get(f"{self.MODULE}:{name}")
        if not isinstance(entries, list) or len(entries) != 1 or entries[0].get(self.KEYS[name]) != key:
            return self.error(400, "invalid-value", f"body must hold one {name} whose key is {key!r}")
        problem = self._check_refs(entries[0], name)
        if problem:
            return self.error(400, "invalid-value", problem)
        if node is None:
            parent.append(entries[0])
            return 201, {}, b""
        parent[parent.index(node)] = entries[0]
        return 204, {}, b""

    def _delete(self, parent: Any, node: Any, name: str) -> Answer:
        if node is None or not isinstance(parent, list):
            return self.error(404, "invalid-value", f"{name} does not exist")
        if name == "vpn-service":
            users = [
                a["network-access-id"]
                for a in self.accesses()
                if a.get("vpn-attachment", {}).get("vpn-id") == node["vpn-id"]
            ]
            if users:
                return self.error(409, "in-use", f"vpn-service {node['vpn-id']} is used by {', '.join(users)}")
        parent.remove(node)
        return 204, {}, b""

    def _check_refs(self, entry: dict[str, Any], name: str) -> str | None:
        accesses = [entry] if name == "site-network-access" else []
        if name == "site":
            accesses = entry.get("site-network-accesses", {}).get("site-network-access", [])
        known = {s["vpn-id"] for s in self.vpn_services()}
        for access in accesses:
            vpn = access.get("vpn-attachment", {}).get("vpn-id")
            if vpn is not None and vpn not in known:
                return f"vpn-attachment/vpn-id {vpn} does not refer to an existing vpn-service"
        return None
