"""The kiosk HTTP server over real sockets: stream, snapshot, portrait, health, events, capture, access, stop."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import free_port
from pydantic import SecretStr
from web_helpers import FakeBackend, MjpegReader, connect, jpeg, raw, read_head, request

from edgeportrait.config import HttpConfig, PreviewConfig
from edgeportrait.errors import FatalError
from edgeportrait.web import CaptureRefused, EventHub, FrameBroadcaster, KioskServer, PreviewEncoder

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "k1osk-t0ken-for-tests-0123456789"

Factory = Callable[..., KioskServer]


@pytest.fixture
def kiosk() -> Iterator[Factory]:
    """Starts a KioskServer on a free loopback port; stops it (and checks the stop was prompt) after the test."""
    servers: list[KioskServer] = []

    def make(
        backend: FakeBackend | None = None,
        *,
        max_viewers: int = 5,
        token: str | None = None,
        events: EventHub | None = None,
        **kw: float,
    ) -> KioskServer:
        cfg = HttpConfig(
            enabled=True, port=free_port(), max_viewers=max_viewers, token=SecretStr(token) if token else None
        )
        server = KioskServer(cfg, FrameBroadcaster(max_viewers), events or EventHub(), backend or FakeBackend(), **kw)
        server.start()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.stop()


def _stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kiosk-http")]


# -- the stream ------------------------------------------------------------------------------


def test_stream_parts_are_whole_jpegs_with_content_length(kiosk: Factory) -> None:
    """/stream.mjpg is multipart/x-mixed-replace; every part has Content-Length and is the JPEG published."""
    s = kiosk()
    reader = MjpegReader(s.port)
    try:
        assert reader.status == 200
        assert reader.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        assert reader.headers["cache-control"] == "no-store"
        assert s.frames.wait_viewers(1, 5)
        for i in range(5):
            sent = jpeg(i)
            s.frames.publish(sent, time.monotonic())
            got = reader.part()
            assert got == sent
            assert cv2.imdecode(np.frombuffer(got, np.uint8), cv2.IMREAD_COLOR) is not None
    finally:
        reader.close()
    # a frame counts as sent once sendall returned on the server's side, which may be just after the
    # reader has its last byte
    deadline = time.monotonic() + 5
    while s.frames.stats()["sent"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = s.frames.stats()
    assert stats["sent"] == 5 and stats["latency_ms_p95"] is not None


def test_each_frame_is_encoded_once_however_many_viewers(kiosk: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four viewers, twelve frames: the producer encodes twelve times and every viewer receives all twelve."""
    import edgeportrait.web.preview as preview

    encodes = []
    real = preview.encode_jpeg

    def counting(img: np.ndarray, quality: int = 92) -> bytes:
        encodes.append(1)
        return real(img, quality)

    monkeypatch.setattr(preview, "encode_jpeg", counting)
    s = kiosk(max_viewers=4)
    clock = [0.0]
    encoder = PreviewEncoder(s.frames, lambda: PreviewConfig(max_fps=10), clock=lambda: clock[0])
    readers = [MjpegReader(s.port) for _ in range(4)]
    try:
        assert s.frames.wait_viewers(4, 5)
        received: list[list[bytes]] = [[] for _ in readers]
        for i in range(12):
            clock[0] += 0.1  # one max_fps period per frame
            img = np.full((96, 128, 3), i * 20, np.uint8)
            assert encoder.offer(img, time.monotonic())
            for r, got in zip(readers, received, strict=True):
                got.append(r.part())  # lockstep: each viewer has frame i before i+1 is published
        assert len(encodes) == encoder.encoded == s.frames.published == 12
        assert all(len(got) == 12 for got in received)
        assert all(got == received[0] for got in received)  # the very same bytes to everyone
    finally:
        for r in readers:
            r.close()


def test_stalled_viewer_slows_neither_the_producer_nor_another_viewer(kiosk: Factory) -> None:
    """A client that never reads: publish() stays instant, the other viewer gets every frame, the stalled one goes."""
    s = kiosk(send_timeout_s=1.0)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", s.port))
    stalled.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
    good = MjpegReader(s.port)
    try:
        assert s.frames.wait_viewers(2, 5)
        big = jpeg(0) + bytes(300_000)  # ~300 kB parts fill the stalled socket's buffers in a few frames
        slowest_publish = 0.0
        deadline = time.monotonic() + 20
        n = 0
        while s.frames.stats()["dropped"] == 0:
            assert time.monotonic() < deadline, "the stalled viewer was never dropped"
            t0 = time.perf_counter()
            s.frames.publish(big + n.to_bytes(4, "big"), time.monotonic())
            slowest_publish = max(slowest_publish, time.perf_counter() - t0)
            assert good.part().endswith(n.to_bytes(4, "big"))  # the good viewer has every frame, in order
            n += 1
        assert slowest_publish < 0.25  # never waits on a viewer (a stalled write lasts send_timeout_s = 1 s)
        assert s.frames.wait_viewers(1, 5)
        assert n > 10  # the stall really happened after its buffers filled
        for _ in range(3):  # and the good viewer goes on
            s.frames.publish(big + n.to_bytes(4, "big"), time.monotonic())
            assert good.part().endswith(n.to_bytes(4, "big"))
            n += 1
    finally:
        good.close()
        stalled.close()


def test_viewers_beyond_max_viewers_get_503_with_retry_after(kiosk: Factory) -> None:
    s = kiosk(max_viewers=2)
    a, b = MjpegReader(s.port), MjpegReader(s.port)
    try:
        assert s.frames.wait_viewers(2, 5)
        third = request(s.port, "GET", "/stream.mjpg")
        assert third.status == 503 and third.headers["retry-after"] and third.json()["error"] == "too_many_viewers"
        a.close()
        assert s.frames.wait_viewers(1, 5)
        c = MjpegReader(s.port)
        assert c.status == 200
        c.close()
    finally:
        a.close()
        b.close()
    assert s.frames.stats()["refused"] == 1


def test_wanted_follows_viewers_and_snapshots(kiosk: Factory) -> None:
    """The daemon composes previews only while wanted: a viewer connected, or a snapshot asked for lately."""
    s = kiosk()
    assert not s.frames.wanted()
    r = MjpegReader(s.port)
    assert s.frames.wait_viewers(1, 5) and s.frames.wanted()
    r.close()
    s.frames.publish(jpeg(1), time.monotonic())  # the write to the closed socket ends the viewer
    assert s.frames.wait_viewers(0, 5) and not s.frames.wanted()
    assert request(s.port, "GET", "/snapshot.jpg").status == 200
    assert s.frames.wanted()  # for a few seconds after a snapshot


def test_snapshot_is_503_until_a_frame_exists_then_the_latest_frame(kiosk: Factory) -> None:
    s = kiosk()
    first = request(s.port, "GET", "/snapshot.jpg")
    assert first.status == 503 and first.headers["retry-after"] == "1"
    s.frames.publish(jpeg(1), time.monotonic())
    s.frames.publish(jpeg(2), time.monotonic())
    got = request(s.port, "GET", "/snapshot.jpg?t=123")
    assert got.status == 200 and got.headers["content-type"] == "image/jpeg" and got.body == jpeg(2)


def test_snapshot_waits_for_a_fresh_frame_after_a_quiet_spell() -> None:
    """An old frame is not served at once: the request wakes the producer and waits (briefly) for a new one."""
    frames = FrameBroadcaster(2)
    frames.publish(b"old", time.monotonic() - 60)
    out: list[bytes] = []
    t = threading.Thread(target=lambda: out.append(frames.snapshot(timeout=5).jpeg))  # type: ignore[union-attr]
    t.start()
    frames.publish(b"fresh", time.monotonic())
    t.join(5)
    assert out == [b"fresh"]
    # with no fresh frame coming, it answers with what there is once its wait is over
    frames.publish(b"stale", time.monotonic() - 60)
    t0 = time.monotonic()
    got = frames.snapshot(timeout=0.3)
    assert got is not None and got.jpeg == b"stale" and time.monotonic() - t0 >= 0.3


def test_a_new_viewer_does_not_start_with_a_stale_frame(kiosk: Factory) -> None:
    s = kiosk()
    s.frames.publish(b"minutes old", time.monotonic() - 120)
    r = MjpegReader(s.port)
    try:
        assert s.frames.wait_viewers(1, 5)
        s.frames.publish(jpeg(1), time.monotonic())
        assert r.part() == jpeg(1)
    finally:
        r.close()


# -- the latest portrait, health, the page --------------------------------------------------------


def test_latest_jpg_is_the_backends_newest_portrait_whatever_the_query(kiosk: Factory, tmp_path: Path) -> None:
    backend = FakeBackend()
    s = kiosk(backend)
    assert request(s.port, "GET", "/latest.jpg").status == 404
    portrait = tmp_path / "000001.jpg"
    portrait.write_bytes(jpeg(7, 640, 480))
    backend.portrait = portrait
    for target in ("/latest.jpg", "/latest.jpg?seq=1", "/latest.jpg?path=/etc/passwd", "/latest.jpg?../../etc"):
        got = request(s.port, "GET", target)
        assert got.status == 200 and got.body == portrait.read_bytes(), target
    portrait.unlink()  # pruned meanwhile
    assert request(s.port, "GET", "/latest.jpg").status == 404


@pytest.mark.parametrize(("state", "code"), [("running", 200), ("degraded", 503), ("starting", 503), ("explode", 503)])
def test_healthz_is_200_only_while_running(kiosk: Factory, state: str, code: int) -> None:
    got = request(kiosk(FakeBackend(state=state)).port, "GET", "/healthz")
    assert got.status == code and got.headers["content-type"] == "application/json"
    if state != "explode":
        assert got.json()["state"] == state


def test_page_is_self_contained_with_stable_ids_and_a_strict_csp(kiosk: Factory) -> None:
    got = request(kiosk().port, "GET", "/")
    assert got.status == 200 and got.headers["content-type"].startswith("text/html")
    html = got.body.decode()
    for element in ("live", "capture", "countdown", "review", "status"):
        assert f'id="{element}"' in html
    assert "http://" not in html and "https://" not in html  # no CDN, nothing from outside
    csp = got.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "'unsafe-inline'" not in csp
    assert got.headers["x-frame-options"] == "DENY" and got.headers["referrer-policy"] == "no-referrer"
    assert request(kiosk().port, "HEAD", "/").body == b""


# -- nothing else is served -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/nope",
        "/index.html",
        "/kiosk.js",
        "/static/kiosk.js",
        "/static/index.html",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/stream.mjpg/../../etc/passwd",
        "/latest.jpg/..",
        "/%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/healthz/",
        "/HEALTHZ",
        "/%00",
        "/server.py",
        "http://127.0.0.1/etc/passwd",
        "http://127.0.0.1/healthz",
        "file:///etc/passwd",
        "127.0.0.1:80",
        "*",
    ],
)
def test_anything_but_the_routes_is_404_and_serves_no_file(kiosk: Factory, target: str) -> None:
    got = raw(kiosk().port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert got.status == 404, target
    assert got.json()["error"] == "not_found"
    for leak in (b"root:", b"<html", b"import ", b"EventSource"):
        assert leak not in got.body


@pytest.mark.parametrize(
    ("method", "target"),
    [("PUT", "/"), ("DELETE", "/latest.jpg"), ("OPTIONS", "/capture"), ("TRACE", "/"), ("POST", "/healthz"),
     ("GET", "/capture"), ("PATCH", "/events"), ("FOO", "/stream.mjpg")],
)
def test_other_methods_are_405_with_allow(kiosk: Factory, method: str, target: str) -> None:
    got = request(kiosk().port, method, target)
    assert got.status == 405 and got.headers["allow"]


def test_request_line_and_headers_are_bounded(kiosk: Factory) -> None:
    port = kiosk().port
    assert raw(port, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n").status == 414
    big = b"X-Big: " + b"b" * 20_000 + b"\r\n"
    assert raw(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n" + big + b"\r\n").status == 431
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(300))
    assert raw(port, b"GET / HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n").status == 431
    assert raw(port, b"GARBAGE\r\n\r\n").status == 400
    # after all that, the server still answers
    assert request(port, "GET", "/healthz").status == 200


# -- access -----------------------------------------------------------------------------------------


def test_a_network_address_without_a_token_is_refused_at_config_validation() -> None:
    with pytest.raises(ValueError, match="reachable from the network: set http.token_file"):
        HttpConfig(host="0.0.0.0")
    HttpConfig(host="0.0.0.0", token=SecretStr(TOKEN))
    HttpConfig(host="::1")
    HttpConfig(host="localhost")
    # and a hand-made config cannot get around it
    cfg = HttpConfig.model_construct(host="192.0.2.10", port=8080, token=None, token_file=None, max_viewers=1)
    with pytest.raises(FatalError, match="token is required"):
        KioskServer(cfg, FrameBroadcaster(1), EventHub(), FakeBackend())


def test_token_bearer_query_and_cookie(kiosk: Factory) -> None:
    """With a token: Bearer, ?token= (GET) or the page's cookie; without it 401, also for a near miss."""
    s = kiosk(token=TOKEN)
    port = s.port
    for target in ("/", "/healthz", "/snapshot.jpg", "/latest.jpg", "/events", "/stream.mjpg"):
        assert request(port, "GET", target).status == 401, target
    assert request(port, "GET", "/healthz", {"Authorization": "Bearer " + TOKEN[:-1] + "x"}).status == 401
    assert request(port, "GET", "/healthz", {"Authorization": "Bearer " + TOKEN + "x"}).status == 401
    assert request(port, "GET", "/healthz?token=é").status == 401
    assert request(port, "GET", "/healthz", {"Authorization": "Basic " + TOKEN}).status == 401
    assert request(port, "GET", "/healthz", {"Authorization": "Bearer " + TOKEN}).status == 200
    assert request(port, "GET", f"/healthz?token={TOKEN}").status == 200
    page = request(port, "GET", f"/?token={TOKEN}")
    assert page.status == 200
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    jar = cookie.split(";")[0]
    assert request(port, "GET", "/healthz", {"Cookie": "other=1; " + jar}).status == 200
    assert request(port, "GET", "/healthz", {"Cookie": jar[:-1] + "0"}).status in (401,)
    # a token in the query does not authorize a POST (only the header or the cookie do)
    post = {"Content-Type": "application/json"}
    assert request(port, "POST", f"/capture?token={TOKEN}", post, b"{}").status == 401
    assert request(port, "POST", "/capture", {**post, "Authorization": "Bearer " + TOKEN}, b"{}").status == 202
    assert request(port, "POST", "/capture", {**post, "Cookie": jar}, b"{}").status == 202
    # Home Assistant's MJPEG camera: the stream URL with ?token=
    r = MjpegReader(port, f"/stream.mjpg?token={TOKEN}")
    assert r.status == 200
    r.close()


def test_without_a_token_only_loopback_host_names_are_answered(kiosk: Factory) -> None:
    """DNS rebinding: a page from evil.example that resolves to 127.0.0.1 is refused (Host is not trusted)."""
    port = kiosk().port
    assert raw(port, b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n").status == 403
    assert raw(port, b"GET /healthz HTTP/1.1\r\nHost: evil.example:8080\r\n\r\n").status == 403
    for host in (f"127.0.0.1:{port}", "localhost", f"[::1]:{port}", "127.0.0.2"):
        assert raw(port, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()).status == 200, host


def test_token_is_never_logged(kiosk: Factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="edgeportrait")
    s = kiosk(token=TOKEN)
    request(s.port, "GET", f"/healthz?token={TOKEN}")
    request(s.port, "GET", "/healthz?token=wrong")
    assert TOKEN not in caplog.text and "wrong" not in caplog.text


# -- events ------------------------------------------------------------------------------------------


class SseReader:
    def __init__(self, port: int) -> None:
        self.sock = connect(port)
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        self.status, self.headers, self._buf = read_head(self.sock)

    def message(self) -> tuple[str, str]:
        """The next message as (field, value) of its first line: ("event", name) or ("", comment) or ("retry", ms)."""
        while b"\n\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\n\n")
        self.last = msg.decode()
        first = self.last.split("\n")[0]
        name, _, value = first.partition(":")
        return name, value.strip()

    def event(self) -> tuple[str, dict[str, object]]:
        while True:
            name, value = self.message()
            if name == "event":
                data = self.last.split("\n")[1]
                assert data.startswith("data: ")
                return value, json.loads(data[6:])

    def close(self) -> None:
        self.sock.close()


def test_events_deliver_and_replay_the_newest_status(kiosk: Factory) -> None:
    s = kiosk()
    s.events.publish("status", {"camera": "ok", "message": ""})
    s.events.publish("status", {"camera": "offline", "message": "The camera is offline — reconnecting…"})
    a = SseReader(s.port)
    try:
        assert a.status == 200 and a.headers["content-type"].startswith("text/event-stream")
        assert a.message() == ("retry", "2000")
        assert a.event() == ("status", {"camera": "offline", "message": "The camera is offline — reconnecting…"})
        s.events.publish("countdown", {"id": "x1", "seconds": 3, "trigger": "mqtt"})
        s.events.publish("portrait", {"id": "x1", "seq": 42})
        assert a.event() == ("countdown", {"id": "x1", "seconds": 3, "trigger": "mqtt"})
        assert a.event() == ("portrait", {"id": "x1", "seq": 42})
        b = SseReader(s.port)  # a page that connects later learns the state at once
        assert b.event()[1]["camera"] == "offline"
        b.close()
    finally:
        a.close()


def test_events_start_with_the_backend_state_when_no_status_was_published(kiosk: Factory) -> None:
    a = SseReader(kiosk(FakeBackend(review_s=7)).port)
    try:
        name, data = a.event()
        assert name == "status" and data["review_s"] == 7 and data["capture_allowed"] is True
    finally:
        a.close()


def test_events_send_keepalive_comments(kiosk: Factory) -> None:
    a = SseReader(kiosk(keepalive_s=0.2).port)
    try:
        a.event()
        assert a.message() == ("", "keep-alive")
    finally:
        a.close()


def test_a_slow_event_subscriber_is_dropped_not_waited_for() -> None:
    hub = EventHub(queue_size=4)
    slow, fast = hub.subscribe(), hub.subscribe()
    for i in range(4):
        hub.publish("portrait", {"id": str(i), "seq": i})
        assert fast.get(1) is not None
    hub.publish("portrait", {"id": "4", "seq": 4})  # slow's queue is full: dropped, publish does not wait
    assert slow.dropped and slow.closed and not fast.dropped
    assert hub.stats()["dropped"] == 1 and hub.subscribers == 1
    with pytest.raises(ValueError):
        hub.publish("bad\nname", {})


# -- capture -----------------------------------------------------------------------------------------


def _post(port: int, body: bytes, headers: dict[str, str] | None = None) -> object:
    return request(port, "POST", "/capture", {"Content-Type": "application/json", **(headers or {})}, body)


def test_capture_calls_the_backend_and_answers_202_with_the_id(kiosk: Factory) -> None:
    backend = FakeBackend()
    port = kiosk(backend).port
    got = _post(port, b'{"countdown_s": 3}')
    assert got.status == 202 and got.json() == {"id": "cap-1"}  # type: ignore[attr-defined]
    assert _post(port, b"").status == 202  # type: ignore[attr-defined]
    assert _post(port, b"{}", {"Content-Type": "application/json; charset=utf-8"}).status == 202  # type: ignore[attr-defined]
    assert backend.calls == [3.0, None, None]


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"{", {}, 400),
        (b"[]", {}, 400),
        (b'{"countdown_s": 100}', {}, 400),
        (b'{"countdown_s": true}', {}, 400),
        (b'{"countdown_s": NaN}', {}, 400),
        (b'{"countdown_s": "3"}', {}, 400),
        (b'{"path": "/etc/passwd"}', {}, 400),
        (b"\xff\xfe", {}, 400),
        (b"x" * 2000, {}, 413),
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"countdown_s=3", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b"{}", {"Sec-Fetch-Site": "cross-site"}, 403),
        (b"{}", {"Sec-Fetch-Site": "same-site"}, 403),
    ],
)
def test_bad_capture_requests_change_nothing(kiosk: Factory, body: bytes, headers: dict[str, str], code: int) -> None:
    backend = FakeBackend()
    got = _post(kiosk(backend).port, body, headers)
    assert got.status == code and "error" in got.json()  # type: ignore[attr-defined]
    assert backend.calls == []


@pytest.mark.parametrize(
    ("refusal", "code"),
    [(CaptureRefused("busy", "4 captures already waiting"), 409), (CaptureRefused("stopping", "stopping"), 503)],
)
def test_refused_captures_answer_409_or_503_with_error_and_detail(
    kiosk: Factory, refusal: CaptureRefused, code: int
) -> None:
    got = _post(kiosk(FakeBackend(refuse=refusal)).port, b"{}")
    assert got.status == code  # type: ignore[attr-defined]
    assert got.json() == {"error": refusal.code, "detail": refusal.detail}  # type: ignore[attr-defined]


def test_capture_from_the_page_can_be_switched_off(kiosk: Factory) -> None:
    backend = FakeBackend(capture_allowed=False)
    got = _post(kiosk(backend).port, b"{}")
    assert got.status == 403 and got.json()["error"] == "not_allowed" and backend.calls == []  # type: ignore[attr-defined]


# -- connections and stop ----------------------------------------------------------------------------------


def test_stop_is_prompt_with_viewers_events_a_stalled_client_and_a_half_sent_request(kiosk: Factory) -> None:
    s = kiosk(max_viewers=4, send_timeout_s=30.0)
    viewers = [MjpegReader(s.port) for _ in range(3)]
    events = [SseReader(s.port) for _ in range(2)]
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", s.port))
    stalled.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n".encode())
    half = connect(s.port)
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: local")  # and then nothing
    try:
        for e in events:
            e.event()
        assert s.frames.wait_viewers(4, 5)
        big = bytes(400_000)
        for _ in range(30):  # enough to wedge the stalled viewer's thread in a write
            s.frames.publish(big, time.monotonic())
            for v in viewers:
                v.part()
        assert len(_stream_threads()) >= 7
        t0 = time.monotonic()
        s.stop()
        took = time.monotonic() - t0
        assert took < 1.5, f"stop took {took:.2f} s"
        assert _stream_threads() == []
        for v in viewers:  # their streams ended
            with pytest.raises((EOFError, OSError, AssertionError)):
                while True:
                    v.part()
    finally:
        for v in viewers:
            v.close()
        for e in events:
            e.close()
        stalled.close()
        half.close()


def test_connections_beyond_the_cap_are_refused_not_queued(kiosk: Factory) -> None:
    s = kiosk(max_viewers=1)
    cap = s.max_connections
    idle = [connect(s.port) for _ in range(cap)]  # connected, never send a request
    try:
        # accepted in order: by the time this one is, the idle ones hold every slot
        got = raw(s.port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert got.status == 503 and s.stats()["refused_connections"] == 1
    finally:
        for c in idle:
            c.close()


def test_preview_encoder_paces_to_max_fps_and_only_when_wanted() -> None:
    frames = FrameBroadcaster(2)
    clock = [100.0]
    cfg = PreviewConfig(width=320, height=180, max_fps=10, jpeg_quality=70)
    enc = PreviewEncoder(frames, lambda: cfg, clock=lambda: clock[0])
    img = np.zeros((1080, 1920, 3), np.uint8)
    assert not enc.due() and not enc.offer(img, 0.0)  # nobody watching: nothing composed, nothing encoded
    viewer = frames.register()
    assert enc.due() and enc.offer(img, 0.0)
    assert not enc.due() and not enc.offer(img, 0.0)  # within 1/max_fps
    clock[0] += 0.1
    assert enc.offer(img, 0.0)
    latest = frames.latest()
    assert latest is not None
    decoded = cv2.imdecode(np.frombuffer(latest[0], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (180, 320, 3)  # fitted inside preview.width × preview.height
    frames.unregister(viewer)
    clock[0] += 1
    assert not enc.due()
    assert enc.encoded == 2


def test_preview_encoder_takes_every_frame_of_a_jittery_camera_at_max_fps_and_no_more() -> None:
    """Frames at max_fps, each a few ms early or late, are all taken; frames at twice the rate are halved."""
    frames = FrameBroadcaster(1)
    clock = [100.0]
    cfg = PreviewConfig(width=320, height=180, max_fps=50)
    enc = PreviewEncoder(frames, lambda: cfg, clock=lambda: clock[0])
    frames.register()
    img = np.zeros((64, 64, 3), np.uint8)
    jitter = [0.0, -0.003, 0.002, -0.002, 0.003, -0.001] * 10
    taken = 0
    for i, j in enumerate(jitter):  # a 50 fps camera: every 20 ms, ±3 ms
        clock[0] = 100.0 + i * 0.02 + j
        taken += enc.offer(img, clock[0])
    assert taken == len(jitter)
    start, taken = clock[0] + 1.0, 0
    for i in range(100):  # 100 fps for one second: at most max_fps of them
        clock[0] = start + i * 0.01
        taken += enc.offer(img, clock[0])
    assert 48 <= taken <= 51


def test_listens_on_ipv6_loopback(kiosk: Factory) -> None:
    """http.host ::1 binds an IPv6 socket; its url has the brackets."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    cfg = HttpConfig(enabled=True, host="::1", port=free_port())
    server = KioskServer(cfg, FrameBroadcaster(1), EventHub(), FakeBackend())
    try:
        server.start()
    except FatalError as e:
        pytest.skip(f"no IPv6 loopback here: {e}")
    try:
        assert server.url == f"http://[::1]:{server.port}/"
        with socket.create_connection(("::1", server.port), timeout=5) as s:
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: [::1]:{server.port}\r\n\r\n".encode())
            status, _, _ = read_head(s)
        assert status == 200
    finally:
        server.stop()
