"""systemd's notify protocol (sd_notify) without a dependency, and a frame-fed watchdog.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket) to a
``Type=notify`` service; the service sends newline-separated ``KEY=VALUE``
datagrams to it: ``READY=1`` when it is serving, ``WATCHDOG=1`` as a keep-alive,
``STOPPING=1``, ``STATUS=…`` for ``systemctl status``. Without ``NOTIFY_SOCKET``
(run by hand, in tests) every call is a no-op.

:class:`Watchdog` sends ``WATCHDOG=1`` only when the daemon reported since the
last keep-alive that a frame made it end to end (``frame_flowed()``): a thread
that is alive while the pipeline is wedged proves nothing, so a wedged pipeline
misses its keep-alives and systemd restarts the service (``WatchdogSec=``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from edgeportrait.logsafe import Throttle

logger = logging.getLogger(__name__)


def _address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    if addr.startswith("@"):
        return "\0" + addr[1:]  # abstract namespace socket
    if addr.startswith("/"):
        return addr
    # vsock:… (systemd ≥ 253, for VMs) and anything else: not for an appliance on bare metal
    logger.debug("NOTIFY_SOCKET %r: unsupported address family; notifications disabled", addr)
    return None


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"STATUS=camera offline"``) to systemd.

    Returns True when it was sent; False when not running under systemd or the send
    failed (logged, never raised: a missed notification must not take the daemon down).
    """
    addr = _address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8", "replace"))
        return True
    except OSError as e:
        logger.warning("sd_notify %s failed: %s", state.split("=", 1)[0], e)
        return False


def ready(status: str | None = None) -> bool:
    """Tell systemd the service is up (``Type=notify`` start is complete)."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def stopping(status: str | None = None) -> bool:
    """Tell systemd a clean stop has begun (it then waits up to ``TimeoutStopSec``)."""
    return notify("STOPPING=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def status(text: str) -> bool:
    """Free-form status line shown by ``systemctl status``."""
    return notify(f"STATUS={_one_line(text)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def watchdog_interval_s() -> float | None:
    """The ``WatchdogSec=`` systemd set for this process, in seconds, or None.

    ``WATCHDOG_PID`` names the process meant; a child that inherited the
    environment must not feed its parent's watchdog.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not a number; watchdog disabled", usec)
        return None
    return value / 1e6 if value > 0 else None


class Watchdog:
    """Feeds systemd's watchdog while frames flow end to end.

    The daemon calls :meth:`frame_flowed` whenever a frame has gone all the way
    through the pipeline. A timer thread, every half interval (systemd's advice),
    sends ``WATCHDOG=1`` only if that happened since the previous keep-alive.

    ``excuse`` (optional) covers an outage the daemon already handles: when no frame
    flowed but ``excuse()`` returns True — e.g. the camera is reported offline and
    its supervisor thread is alive and reopening it — the keep-alive is still sent,
    so an unplugged camera shows as ``offline`` in health instead of a restart loop.
    Without it, any pause in frames lets systemd restart the service.
    """

    def __init__(
        self,
        interval_s: float | None = None,
        *,
        send: Callable[[str], bool] = notify,
        excuse: Callable[[], bool] | None = None,
    ) -> None:
        self.interval_s = interval_s if interval_s is not None else watchdog_interval_s()
        self._send = send
        self._excuse = excuse
        self._flowed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0  # keep-alives sent
        self.missed = 0  # keep-alives withheld in a row
        self._missed_log = Throttle(every=20)

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def frame_flowed(self) -> None:
        """Report that a frame made it end to end (cheap; call it for every frame)."""
        self._flowed.set()

    def start(self) -> None:
        """Start the keep-alive timer (a no-op when systemd asked for no watchdog)."""
        if self.interval_s is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()
        logger.info("systemd watchdog: keep-alive every %.1fs while frames flow", self.interval_s / 2)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def tick(self) -> bool:
        """One keep-alive decision (the timer calls this); True when WATCHDOG=1 was sent."""
        flowed = self._flowed.is_set()
        self._flowed.clear()
        excused = False
        if not flowed and self._excuse is not None:
            try:
                excused = bool(self._excuse())
            except Exception:
                logger.exception("watchdog excuse check failed")
        if flowed or excused:
            self._send("WATCHDOG=1")
            self.pings += 1
            self.missed = 0
            self._missed_log.reset()
            return True
        self.missed += 1
        # once, not per tick: the journal should show why systemd is about to restart us
        if self._missed_log.allow():
            logger.warning("systemd watchdog: no frame went through the pipeline; keep-alive withheld")
        return False

    def _run(self) -> None:
        assert self.interval_s is not None
        period = self.interval_s / 2
        while not self._stop.wait(period):
            self.tick()
