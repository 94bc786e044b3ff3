"""The kiosk's HTTP server: the page, the live MJPEG stream, snapshots, the latest portrait, health.

Why the standard library's :class:`http.server.ThreadingHTTPServer` and not
a framework: the runtime dependencies are fixed (no aiohttp, no Starlette),
and the job suits threads. Each /stream.mjpg viewer is a thread that blocks
on a Condition until a newer frame exists and then in ``sendall`` — both
release the GIL — and the number of viewers is small and bounded
(``http.max_viewers``), so a thread per connection costs a few hundred kB
of stack, not a design problem. The frame is encoded and framed once by the
producer; a viewer thread only hands a ready bytes object to the kernel, so
the per-frame Python work per viewer is a few microseconds, not an encode.
The parts that a framework would add and a camera on a network needs are
done here on purpose: a fixed route table (nothing is served by name),
bounded request lines and headers, a cap on connections, a send timeout
that drops a stalled viewer, a prompt ``stop()`` that closes every
connection and joins its thread, and token checks with
:func:`hmac.compare_digest`.

Routes (anything else is 404; a known path with another method is 405):

=================  =========  ==============================================
``/``              GET        the kiosk page (HTML, CSS and JS inline)
``/stream.mjpg``   GET        ``multipart/x-mixed-replace`` MJPEG, one part per frame
``/snapshot.jpg``  GET        the latest preview frame (503 until there is one)
``/latest.jpg``    GET        the newest portrait file, full size (404 before the first)
``/healthz``       GET        the health JSON: 200 while ``state`` is ``running``, else 503
``/events``        GET        Server-Sent Events for the page (see :mod:`edgeportrait.web.events`)
``/capture``       POST       ``{"countdown_s"?}`` → 202 ``{"id"}``; 403/409/503 ``{"error", "detail"}``
=================  =========  ==============================================

GET routes also answer HEAD. The query string is ignored (it may carry a
cache-buster) except ``token``.

Access: when a token is configured (always, on any address but loopback) a
request carries it as ``Authorization: Bearer TOKEN``, as ``?token=TOKEN``
(GET only: a kiosk browser's start URL, Home Assistant's MJPEG camera URL),
or as the cookie the page sets when it was loaded with one of those. Without
a token the server only listens on loopback, and a request whose Host is not
a loopback name is refused (a web page cannot reach it by DNS rebinding).
The Host header is never used for anything else; POST /capture needs
``Content-Type: application/json`` and no cross-site ``Sec-Fetch-Site``, so
another web site open in the same browser cannot trigger a capture.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import math
import os
import select
import socket
import stat
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, cast

from edgeportrait.config.http import TOKEN_PATTERN, TOKEN_RULE, HttpConfig, is_loopback
from edgeportrait.errors import FatalError
from edgeportrait.paths import read_secret
from edgeportrait.web.backend import CaptureRefused, KioskBackend
from edgeportrait.web.events import KEEPALIVE, KEEPALIVE_S, RETRY_MS, EventHub, SubscribersFull, sse
from edgeportrait.web.frames import BOUNDARY, FrameBroadcaster, ViewersFull

logger = logging.getLogger(__name__)

# path -> (methods, the handler's method name). Exact matches only: nothing is looked up by name.
ROUTES: dict[str, tuple[frozenset[str], str]] = {
    "/": (frozenset({"GET", "HEAD"}), "_page"),
    "/stream.mjpg": (frozenset({"GET", "HEAD"}), "_stream"),
    "/snapshot.jpg": (frozenset({"GET", "HEAD"}), "_snapshot"),
    "/latest.jpg": (frozenset({"GET", "HEAD"}), "_latest"),
    "/healthz": (frozenset({"GET", "HEAD"}), "_healthz"),
    "/events": (frozenset({"GET", "HEAD"}), "_events"),
    "/capture": (frozenset({"POST"}), "_capture"),
}

# A request line or header section beyond these is not from a browser, HA or curl.
MAX_REQUEST_LINE = 4096
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY = 1024  # POST /capture carries {"countdown_s": 3}
MAX_PORTRAIT_BYTES = 64 * 1024 * 1024
# A socket write (one frame, one event) that takes longer drops that client: a viewer
# on a dead Wi-Fi link must not hold its slot (and its thread) for minutes.
SEND_TIMEOUT_S = 5.0
COOKIE = "edgeportrait_kiosk"
# How often the accept loop looks for stop(): the bound on how long stop() waits for it.
POLL_S = 0.1
# How often an idle stream or event connection checks whether its client has gone.
IDLE_CHECK_S = 0.5
COOKIE_MAX_AGE_S = 365 * 86400
# Extra connections beyond viewers and event streams: page loads, snapshots, health checks.
SPARE_CONNECTIONS = 16

_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    # the page's URL may carry ?token=: never send it on as a Referer
    ("Referrer-Policy", "no-referrer"),
)


def read_token(cfg: HttpConfig) -> str | None:
    """The access token from ``http.token`` or ``http.token_file`` (a bare name: $CREDENTIALS_DIRECTORY)."""
    if cfg.token is not None:
        return cfg.token.get_secret_value()
    if cfg.token_file is None:
        return None
    raw = read_secret("http.token_file", cfg.token_file)
    token = raw.decode("utf-8", "replace").strip()
    if not TOKEN_PATTERN.match(token):
        raise FatalError(f"http.token_file: {cfg.token_file}: the token must be {TOKEN_RULE}")
    return token


def _same(given: str, expected: bytes) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected)


class _HeaderBudget:
    """``rfile`` while the headers are read: raises LineTooLong once ``limit`` bytes have been read."""

    def __init__(self, raw: Any, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def readline(self, size: int = -1) -> bytes:
        want = self._left + 1 if size < 0 else min(size, self._left + 1)
        line = cast(bytes, self._raw.readline(want))
        self._left -= len(line)
        if self._left < 0:
            raise http.client.LineTooLong("header section")
        return line


class KioskPage:
    """The page: index.html with kiosk.css and kiosk.js inlined, and a CSP that allows exactly those."""

    def __init__(self) -> None:
        static = resources.files("edgeportrait.web").joinpath("static")
        html = static.joinpath("index.html").read_text("utf-8")
        css = static.joinpath("kiosk.css").read_text("utf-8")
        js = static.joinpath("kiosk.js").read_text("utf-8")
        if "</" in css or "</script" in js:
            raise RuntimeError("kiosk.css/kiosk.js must not close their own tag")
        html = html.replace("/*KIOSK_CSS*/", css).replace("/*KIOSK_JS*/", js)
        self.body = html.encode("utf-8")

        def digest(text: str) -> str:
            return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"

        self.csp = (
            "default-src 'none'; img-src 'self'; connect-src 'self'; "
            f"script-src {digest(js)}; style-src {digest(css)}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )


class _Handler(BaseHTTPRequestHandler):
    server_version = "edgeportrait"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    # a request line without a version ("GET /", or garbage) is answered with a status line
    # and headers like any other, not HTTP/0.9's bare body
    default_request_version = "HTTP/1.0"
    server: _Server

    # -- reading the request (bounded) ------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # every read and write on this connection; a write that takes longer drops the client
        self.connection.settimeout(self.server.kiosk.send_timeout_s)
        self._set_cookie = False

    def handle_one_request(self) -> None:
        self.close_connection = True
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if not self.raw_requestline:
                return
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline, self.request_version, self.command = "", "HTTP/1.0", ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
                return
            raw, self.rfile = self.rfile, cast(Any, _HeaderBudget(self.rfile, MAX_HEADER_BYTES))
            try:
                ok = self.parse_request()
            finally:
                self.rfile = raw
            if not ok:
                return
            self._dispatch()
            self.wfile.flush()
        except (TimeoutError, ConnectionError) as e:
            logger.debug("http: %s: connection dropped: %s", self.client_address[0], type(e).__name__)
        except OSError as e:
            logger.debug("http: %s: %s", self.client_address[0], e)

    def _dispatch(self) -> None:
        kiosk = self.server.kiosk
        target = self.path
        # origin-form only: an absolute URI ("http://host/…"), an authority or "*" names nothing here
        if not target.startswith("/"):
            return self._error(404, "not_found", "no such path")
        path, _, query = target.partition("?")
        route = ROUTES.get(path)
        if route is None:
            return self._error(404, "not_found", "no such path")
        methods, handler = route
        if self.command not in methods:
            return self._error(405, "method_not_allowed", "method not allowed", [("Allow", ", ".join(sorted(methods)))])
        if kiosk.token is None and not self._host_is_loopback():
            return self._error(403, "forbidden", "this server answers loopback names only (set http.token)")
        if kiosk.token is not None and not self._authorized(path, query):
            return self._error(401, "unauthorized", "a valid token is required", [("WWW-Authenticate", "Bearer")])
        getattr(self, handler)()

    def _client_gone(self) -> bool:
        """True when the client closed its end (checked while a stream is idle, without blocking).

        A viewer that leaves while no frame flows (camera offline) would otherwise keep its
        slot until the next write; a page that reconnects its stream would then use them up.
        """
        try:
            poller = select.poll()  # not select.select: a daemon's fds may be numbered past 1024
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            # readable: either the end of the stream (b"") or bytes the client sent after its request
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    # -- access ---------------------------------------------------------------------

    def _host_is_loopback(self) -> bool:
        host = self.headers.get("Host")
        if host is None:
            return True  # HTTP/1.0 without Host: not a browser
        host = host.strip()
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return is_loopback(name)

    def _authorized(self, path: str, query: str) -> bool:
        kiosk = self.server.kiosk
        assert kiosk.token is not None
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and _same(given.strip(), kiosk.token):
            self._set_cookie = path == "/"
            return True
        for part in self.headers.get_all("Cookie") or []:
            for item in part.split(";"):
                name, _, value = item.strip().partition("=")
                if name == COOKIE and _same(value, kiosk.cookie):
                    return True
        if self.command in ("GET", "HEAD") and query:
            try:
                values = urllib.parse.parse_qs(query, max_num_fields=16).get("token", [])
            except ValueError:
                values = []
            if any(_same(v, kiosk.token) for v in values[:1]):
                self._set_cookie = path == "/"
                return True
        return False

    # -- responses ----------------------------------------------------------------------

    def _start(self, code: int, ctype: str, length: int | None, extra: list[tuple[str, str]] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in _SECURITY_HEADERS:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        for name, value in extra or []:
            self.send_header(name, value)
        self.end_headers()

    def _body(self, code: int, ctype: str, body: bytes, extra: list[tuple[str, str]] | None = None) -> None:
        self._start(code, ctype, len(body), extra)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any, extra: list[tuple[str, str]] | None = None) -> None:
        self._body(code, "application/json", json.dumps(obj).encode() + b"\n", extra)

    def _error(self, code: int, error: str, detail: str, extra: list[tuple[str, str]] | None = None) -> None:
        self._json(code, {"error": error, "detail": detail}, extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # the standard library's errors (bad request line, headers too large): JSON like ours,
        # with its short message only (never the request text it may quote)
        self.close_connection = True
        try:
            status = HTTPStatus(code)
            slug, phrase = status.name.lower(), status.phrase
        except ValueError:
            slug, phrase = "error", "error"
        detail = (message or phrase).split(" (")[0][:100]
        if not getattr(self, "command", None):
            self.command = "GET"
        self._error(code, slug, detail)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # the path without its query: ?token= must not reach the journal
        path = getattr(self, "path", "").partition("?")[0][:100]
        logger.debug("http: %s %s %s → %s", self.client_address[0], getattr(self, "command", ""), path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http: %s: %s", self.client_address[0], (format % args)[:200])

    # -- routes -------------------------------------------------------------------------

    def _page(self) -> None:
        kiosk = self.server.kiosk
        extra = [
            ("Content-Security-Policy", kiosk.page.csp),
            ("X-Frame-Options", "DENY"),
        ]
        if self._set_cookie:
            extra.append(
                (
                    "Set-Cookie",
                    f"{COOKIE}={kiosk.cookie.decode()}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict",
                )
            )
        self._body(200, "text/html; charset=utf-8", kiosk.page.body, extra)

    def _stream(self) -> None:
        kiosk = self.server.kiosk
        frames = kiosk.frames
        try:
            viewer = frames.register()
        except ViewersFull as e:
            return self._error(503, "too_many_viewers", str(e), [("Retry-After", "5")])
        dropped = False
        try:
            self._start(200, f"multipart/x-mixed-replace; boundary={BOUNDARY}", None, [("Pragma", "no-cache")])
            if self.command == "HEAD":
                return
            while not kiosk.stopping.is_set():
                frame = frames.next_frame(viewer, timeout=IDLE_CHECK_S)
                if frame is None:
                    if viewer.closed or self._client_gone():
                        break
                    continue  # no new frame (camera down, nobody composing yet): keep waiting
                # one sendall of the ready part; the socket timeout bounds it (SEND_TIMEOUT_S)
                self.wfile.write(frame.part)
                frames.sent_frame(viewer, frame)
        except TimeoutError:
            dropped = True
            logger.info("http: dropped a stalled stream viewer (%s)", self.client_address[0])
        except OSError:
            pass  # the viewer went away
        finally:
            frames.unregister(viewer, dropped=dropped)

    def _snapshot(self) -> None:
        frame = self.server.kiosk.frames.snapshot(timeout=1.0)
        if frame is None:
            return self._error(503, "no_frame", "no preview frame yet", [("Retry-After", "1")])
        self._body(200, "image/jpeg", frame.jpeg)

    def _latest(self) -> None:
        # the path comes from the daemon's own record of its newest portrait, never from the request
        path = self.server.kiosk.backend.latest_portrait()
        data = None
        if path is not None:
            try:
                with open(path, "rb") as f:
                    st = os.fstat(f.fileno())
                    if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_PORTRAIT_BYTES:
                        data = f.read(MAX_PORTRAIT_BYTES + 1)
            except OSError as e:  # pruned meanwhile, or unreadable
                logger.debug("http: latest portrait %s: %s", path, e.strerror or e)
        if data is None:
            return self._error(404, "no_portrait", "no portrait yet")
        self._body(200, "image/jpeg", data)

    def _healthz(self) -> None:
        try:
            report = self.server.kiosk.backend.health()
        except Exception:
            logger.exception("http: health report failed")
            return self._error(503, "internal", "the health report failed")
        self._json(200 if report.get("state") == "running" else 503, report)

    def _events(self) -> None:
        kiosk = self.server.kiosk
        try:
            sub = kiosk.events.subscribe()
        except SubscribersFull as e:
            return self._error(503, "too_many_clients", str(e), [("Retry-After", "5")])
        try:
            self._start(200, "text/event-stream; charset=utf-8", None, [("X-Accel-Buffering", "no")])
            if self.command == "HEAD":
                return
            first = f"retry: {RETRY_MS}\n\n".encode()
            if not sub.replayed:  # no status published yet: the page still needs review_s & co.
                first += sse("status", kiosk.backend.kiosk_state())
            self.wfile.write(first)
            last = time.monotonic()
            while not kiosk.stopping.is_set():
                msg = sub.get(timeout=min(IDLE_CHECK_S, kiosk.keepalive_s))
                if msg is None:
                    if sub.closed or self._client_gone():
                        break
                    if time.monotonic() - last >= kiosk.keepalive_s:
                        self.wfile.write(KEEPALIVE)
                        last = time.monotonic()
                    continue
                self.wfile.write(msg)
                last = time.monotonic()
        except TimeoutError:
            logger.info("http: dropped a stalled event stream (%s)", self.client_address[0])
        except OSError:
            pass
        finally:
            kiosk.events.unsubscribe(sub)

    def _capture(self) -> None:
        kiosk = self.server.kiosk
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self._error(415, "unsupported_media_type", "send Content-Type: application/json")
        if self.headers.get("Sec-Fetch-Site", "same-origin").lower() not in ("same-origin", "none"):
            return self._error(403, "forbidden", "cross-site requests cannot trigger a capture")
        if "Transfer-Encoding" in self.headers:
            return self._error(411, "length_required", "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return self._error(413, "too_large", f"the body must be at most {MAX_BODY} bytes")
        body = self.rfile.read(length) if length else b""
        try:
            countdown = _parse_capture(body)
        except ValueError as e:
            return self._error(400, "bad_request", str(e))
        try:
            if not kiosk.backend.kiosk_state().get("capture_allowed", True):
                raise CaptureRefused("not_allowed", "captures from the kiosk page are switched off")
            cid = kiosk.backend.capture(countdown)
        except CaptureRefused as e:
            code = {"busy": 409, "stopping": 503, "not_allowed": 403}.get(e.code, 409)
            extra = [("Retry-After", "2")] if code == 503 else None
            return self._json(code, {"error": e.code, "detail": e.detail}, extra)
        except Exception:
            logger.exception("http: capture request failed")
            return self._error(500, "internal", "the capture could not be queued")
        self._json(202, {"id": cid})


def _parse_capture(body: bytes) -> float | None:
    """``countdown_s`` from a POST /capture body (empty = ``{}``); ValueError says what is wrong."""
    if not body.strip():
        return None
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=lambda c: _refuse(f"{c} is not a number"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(data) - {"countdown_s"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0][:40]!r}; only countdown_s")
    c = data.get("countdown_s")
    if c is None:
        return None
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or not 0 <= c <= 60:
        raise ValueError("countdown_s must be a number from 0 to 60")
    return float(c)


def _refuse(why: str) -> Any:
    raise ValueError(why)


class _Server(ThreadingHTTPServer):
    """A thread per connection, each tracked, so that stop() can close them all and join them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 32

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, kiosk: KioskServer) -> None:
        self.address_family = family
        self.kiosk = kiosk
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        self.refused = 0
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            full = len(self._conns) >= self.kiosk.max_connections or self.kiosk.stopping.is_set()
            if not full:
                t = threading.Thread(
                    target=self._serve_one, args=(request, client_address), name="kiosk-http", daemon=True
                )
                self._conns[request] = t
        if full:
            self.refused += 1
            try:  # a short answer without waiting on the client, then close
                request.setblocking(False)
                request.send(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        t.start()

    def _serve_one(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            logger.exception("http: request from %s failed", client_address[0])
        finally:
            self.shutdown_request(request)
            with self._conns_lock:
                self._conns.pop(request, None)

    def close_connections(self) -> list[threading.Thread]:
        """Shut every open connection down (a thread stuck in a write to a stalled client wakes up)."""
        with self._conns_lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return [t for _, t in conns]

    @property
    def connections(self) -> int:
        with self._conns_lock:
            return len(self._conns)


class KioskServer:
    """The kiosk web server; ``start()`` listens, ``stop()`` closes every connection and joins its thread."""

    def __init__(
        self,
        cfg: HttpConfig,
        frames: FrameBroadcaster,
        events: EventHub,
        backend: KioskBackend,
        *,
        send_timeout_s: float = SEND_TIMEOUT_S,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.cfg = cfg
        self.frames = frames
        self.events = events
        self.backend = backend
        self.send_timeout_s = send_timeout_s
        self.keepalive_s = keepalive_s
        token = read_token(cfg)
        if token is None and not is_loopback(cfg.host):
            # the config refuses this too; a hand-made HttpConfig must not get around it
            raise FatalError(f"http.host {cfg.host} is not loopback: a token is required")
        self.token = token.encode() if token is not None else None
        # the page's cookie: derived from the token, so the cookie is not the token itself
        self.cookie = (
            hmac.new(self.token, b"edgeportrait kiosk cookie", hashlib.sha256).hexdigest().encode()
            if self.token is not None
            else b""
        )
        self.max_connections = frames.max_viewers + events.max_subscribers + SPARE_CONNECTIONS
        self.page = KioskPage()
        self.stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        host = self.cfg.host.strip("[]")
        try:
            info = socket.getaddrinfo(host, self.cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, address = info[0]
            self._httpd = _Server((str(address[0]), int(address[1])), family, self)
        except OSError as e:
            raise FatalError(f"http: cannot listen on {self.cfg.host}:{self.cfg.port}: {e.strerror or e}") from None
        self.stopping.clear()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": POLL_S}, name="kiosk-http-accept", daemon=True
        )
        self._thread.start()
        logger.info("kiosk: serving %s (token %s)", self.url, "required" if self.token else "not set: loopback only")

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1]) if self._httpd is not None else self.cfg.port

    @property
    def url(self) -> str:
        host = self.cfg.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def stop(self, timeout: float = 3.0) -> None:
        """Stop accepting, end every stream and event connection, join their threads (reverse of start)."""
        httpd = self._httpd
        if httpd is None:
            return
        self.stopping.set()
        deadline = time.monotonic() + timeout
        httpd.shutdown()  # the accept loop ends within its poll interval
        self.frames.close_viewers()
        self.events.close_subscribers()
        threads = httpd.close_connections()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in threads if t.is_alive()]
        if alive:
            logger.warning("kiosk: %d connection thread(s) still running after stop", len(alive))
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd = None
        self._thread = None

    def stats(self) -> dict[str, Any]:
        """Stream, event and connection figures (for the health report and benchmarks)."""
        httpd = self._httpd
        return {
            "stream": self.frames.stats(),
            "events": self.events.stats(),
            "connections": httpd.connections if httpd is not None else 0,
            "refused_connections": httpd.refused if httpd is not None else 0,
        }
