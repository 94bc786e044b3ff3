"""The camera supervisor the daemon runs: one reader thread, a watchdog, reopen with backoff.

Threads:

* a **reader** (one per opened source) opens the source and reads frames in a
  loop. It is the only thread that touches the source (backends are not
  thread-safe), so stills are taken by it too, on request: each request is a
  ``concurrent.futures.Future`` the reader completes and the caller waits on.
* the **supervisor** ticks a few times a second. It notices a reader that has
  failed, an open that takes longer than ``camera.open_timeout_s``, and a reader
  that has delivered nothing for the stall timeout — also when the reader is
  stuck forever inside the backend's ``read()``, which no exception will ever
  report. A stuck reader is *abandoned*: told to stop (``interrupt()``), left to
  close its own source whenever its read returns, and replaced by a fresh
  reader after a backoff that doubles per failure up to
  ``camera.reopen_backoff_max_s``.

A thread stuck in a C call cannot be killed from Python, and while it is stuck it
usually still holds the device, so reopening keeps failing. The camera therefore
counts as *wedged* when :data:`MAX_ABANDONED` readers are stuck at once, or one
has been stuck for longer than ``wedged_after_s``; then no new readers are
started and :meth:`Camera.supervisor_alive` turns False — the daemon stops
excusing the missing frames to the systemd watchdog, and systemd restarts the
process, which is the only cure left.

States (``Camera.state``): ``ok`` — frames arrive; ``stalled`` — a source was
open but no frame came for the stall timeout; ``offline`` — the source cannot
be opened (or has ended, or the camera is not started).

The stall timeout is ``camera.stall_timeout_s``, but never less than three frame
intervals (a 0.2 fps folder slideshow is not stalled between two pictures).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Literal

from edgeportrait.capture.base import CameraError, Frame, FrameSource, SourceEnded
from edgeportrait.capture.factory import create_source
from edgeportrait.config.camera import CameraConfig
from edgeportrait.logsafe import Throttle, redact

logger = logging.getLogger(__name__)

State = Literal["ok", "stalled", "offline"]
Listener = Callable[[Frame], None]

#: readers stuck in a backend that we leave behind before we stop opening new ones
MAX_ABANDONED = 2
#: how long stop() waits for the reader and supervisor threads
STOP_TIMEOUT_S = 2.0


def reopen_delay(failures: int, initial: float, cap: float) -> float:
    """Wait before reopen attempt after ``failures`` consecutive failures: initial, 2×, 4×… up to cap."""
    return min(cap, initial * 2 ** min(max(failures - 1, 0), 32))


class _Reader:
    """Book-keeping of one reader thread and the source it owns."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.started = time.monotonic()
        self.opened_at: float | None = None
        self.last_frame: float | None = None
        self.source: FrameSource | None = None
        self.cancelled = threading.Event()
        self.abandoned_at: float | None = None
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.ended = False

    def interrupt(self) -> None:
        self.cancelled.set()
        src = self.source
        if src is not None:
            try:
                src.interrupt()
            except Exception as e:  # a backend without a working interrupt; we abandon it anyway
                logger.debug("camera: interrupt failed: %s", e)


class Camera:
    """Supervises one camera source: keeps frames coming, survives faults, reports health.

    >>> cam = Camera(cfg.camera); cam.start()
    >>> frame = cam.wait_frame(None, timeout=5)      # the next frame from now
    >>> cam.stats()  # {"state": "ok", "fps": 29.9, "frames": 1234, "dropped": 0, "reconnects": 0}
    >>> cam.stop()

    Frames handed out by the Camera carry a camera-wide ``index`` that increases by
    one per frame across reconnects. ``source_factory`` exists for tests and tools:
    it is called (in the reader thread) for every (re)open.
    """

    def __init__(
        self,
        cfg: CameraConfig,
        source_factory: Callable[[CameraConfig], FrameSource] = create_source,
        *,
        backoff_initial_s: float = 0.5,
    ) -> None:
        self.cfg = cfg
        self._factory = source_factory
        self._backoff_initial = backoff_initial_s
        self.stall_timeout_s = max(cfg.stall_timeout_s, 3.0 / cfg.fps)
        self._tick = min(0.25, self.stall_timeout_s / 5)
        # checked once per tick, so a gap is acted on one tick early: a stall is then reported
        # within stall_timeout_s of the last frame, never later
        self._stall_after = self.stall_timeout_s - self._tick
        self._fps_window_s = max(2.0, 4.0 / cfg.fps)

        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._listeners: list[Listener] = []
        self._latest: Frame | None = None
        self._seq = 0
        self._frames = 0
        self._dropped = 0
        self._reconnects = 0
        self._ever_opened = False
        self._state: State = "offline"
        self._state_listeners: list[Callable[[State], None]] = []
        self._last_error: str | None = "not started"
        self._last_frame_ts: float | None = None
        self._recent: deque[float] = deque(maxlen=512)
        # still requests waiting for the reader thread, the one that owns the device
        self._stills: list[Future[Frame]] = []

        self._stop = threading.Event()
        self._running = False
        self._supervisor: threading.Thread | None = None
        self._reader: _Reader | None = None
        self._abandoned: list[_Reader] = []
        self._generation = 0
        self._failures = 0
        self._next_attempt = 0.0
        self._heartbeat = 0.0
        self._wedged = False
        # the first failure of a frame listener with its traceback, then one per thousand
        self._listener_faults = Throttle(every=1000)
        # V4L2 reads give up after 10 s, FFmpeg's after open_timeout_s: a reader stuck much
        # longer than that is stuck for good
        self.wedged_after_s = max(60.0, 2 * cfg.open_timeout_s + self.stall_timeout_s)
        # camera faults (open errors, reopen delays): each new message at its level, repeats at DEBUG
        # but every 20th; forgotten once frames flow again
        self._faults = Throttle(every=20)

    # --- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the supervisor, which opens the source; returns at once (see wait_frame)."""
        if self._running:
            return
        self._stop.clear()
        self._running = True
        self._last_error = "starting"
        self._heartbeat = time.monotonic()
        self._supervisor = threading.Thread(target=self._supervise, name="camera-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop reading and close the source; returns within about STOP_TIMEOUT_S.

        A reader stuck inside a backend that ignores interrupt() is left behind (it is a
        daemon thread and closes its source if the backend ever returns).
        """
        if not self._running:
            return
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(STOP_TIMEOUT_S)
        with self._lock:
            reader, self._reader = self._reader, None
            self._running = False
            self._set_state("offline")
            self._last_error = "stopped"
            for req in self._stills:
                req.set_exception(CameraError("camera stopped"))
            self._stills.clear()
            self._new_frame.notify_all()
        if reader is not None:
            reader.interrupt()
            if reader.thread is not None:
                reader.thread.join(STOP_TIMEOUT_S)
                if reader.thread.is_alive():
                    logger.warning(
                        "camera: reader still blocked in the backend after %.0fs; leaving it", STOP_TIMEOUT_S
                    )

    # --- what the daemon reads ----------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def last_error(self) -> str | None:
        """Why the camera is not ``ok`` (None while it is)."""
        return self._last_error

    @property
    def source_name(self) -> str:
        reader = self._reader
        src = reader.source if reader is not None else None
        return src.name if src is not None else redact(self.cfg.source)

    def latest(self) -> Frame | None:
        """The newest frame, however old (check ``frame.ts``), or None before the first."""
        return self._latest

    def wait_frame(self, after: Frame | int | float | None, timeout: float) -> Frame:
        """The first frame newer than ``after``; CameraError after ``timeout`` seconds at most.

        ``after``: a Frame or an ``int`` index (a frame with a higher index), a ``float``
        ``time.monotonic()`` timestamp (a frame captured later), or None (a frame newer
        than the latest one at the time of the call). While the camera is down this waits
        for it to come back, up to ``timeout``; when the camera is stopped it raises at once.
        """
        deadline = time.monotonic() + timeout
        with self._new_frame:
            after_index: int | None = None
            after_ts: float | None = None
            if after is None:
                after_index = self._seq
            elif isinstance(after, Frame):
                after_index = after.index
            elif isinstance(after, float):
                after_ts = after
            else:
                after_index = int(after)
            while True:
                frame = self._latest
                if frame is not None and (
                    (after_index is not None and frame.index > after_index)
                    or (after_ts is not None and frame.ts > after_ts)
                ):
                    return frame
                if not self._running:
                    raise CameraError(self._not_running())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CameraError(self._why_no_frame(timeout))
                self._new_frame.wait(remaining)

    def capture_still(self, timeout: float) -> Frame:
        """A full-resolution still (picamera2 switches mode for it; other backends: the next frame).

        Taken by the reader thread between two stream frames; not given to listeners.
        CameraError after ``timeout`` seconds at most.
        """
        req: Future[Frame] = Future()
        with self._lock:
            if not self._running:
                raise CameraError(self._not_running())
            self._stills.append(req)
        try:
            return req.result(timeout)
        except FutureTimeout:
            pass
        with self._lock:
            if req in self._stills:
                self._stills.remove(req)
        if req.done():  # finished between the timeout and the lock
            return req.result()
        # never cancelled: the reader may hold it already and will still complete it, unheard
        raise CameraError(self._why_no_frame(timeout, "no still"))

    def add_state_listener(self, listener: Callable[[State], None]) -> None:
        """Call ``listener(state)`` whenever the state changes (ok, stalled, offline).

        Called with the camera's lock held, from whichever thread changed the state:
        it must only record or signal (set an Event), never block or call back.
        """
        with self._lock:
            self._state_listeners.append(listener)

    def _set_state(self, state: State) -> None:
        """(with ``_lock`` held)"""
        if state == self._state:
            return
        self._state = state
        for fn in self._state_listeners:
            try:
                fn(state)
            except Exception:
                logger.exception("camera state listener failed")

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(frame)`` for every stream frame, from the reader thread.

        It must not block (put the frame into a bounded queue, drop and count when
        full); an exception from it is logged and does not stop the camera.
        """
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def count_dropped(self, n: int = 1) -> None:
        """Count frames the consumer did not take (its queue was full); shown in stats()."""
        with self._lock:
            self._dropped += n

    def stats(self) -> dict[str, object]:
        """``{"state", "fps", "frames", "dropped", "reconnects"}`` for health, plus ``error``."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._recent if t > now - self._fps_window_s]
            fps = 0.0
            if self._state == "ok" and len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) / (recent[-1] - recent[0])
            return {
                "state": self._state,
                "fps": round(fps, 2),
                "frames": self._frames,
                "dropped": self._dropped,
                "reconnects": self._reconnects,
                "error": None if self._state == "ok" else self._last_error,
            }

    def supervisor_alive(self) -> bool:
        """True while the supervisor is ticking and can still bring the camera back.

        False when it has stopped, or when the camera is wedged (readers stuck in the
        backend; see the module docstring): then only a process restart helps, and the
        daemon should let the systemd watchdog do it.
        """
        return self._running and not self._wedged and time.monotonic() - self._heartbeat < max(2.0, 10 * self._tick)

    # --- internals ----------------------------------------------------------------------
    def _not_running(self) -> str:
        why = self._last_error if self._last_error not in (None, "stopped", "not started") else None
        return f"camera {self.source_name}: not running" + (f" ({why})" if why else "")

    def _why_no_frame(self, timeout: float, what: str = "no new frame") -> str:
        detail = f"camera {self._state}"
        if self._state != "ok" and self._last_error:
            detail += f": {self._last_error}"
        return f"camera {self.source_name}: {what} within {timeout:g}s ({detail})"

    def _supervise(self) -> None:
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            self._heartbeat = now
            try:
                self._check(now)
            except Exception:  # the supervisor must outlive any bug in one tick
                logger.exception("camera: supervisor tick failed")

    def _check(self, now: float) -> None:
        reader = self._reader
        if reader is not None:
            assert reader.thread is not None
            if not reader.thread.is_alive():
                self._reader = None
                if reader.ended:
                    logger.warning("camera: %s; not reopening", reader.error)
                    with self._lock:
                        self._last_error = reader.error
                        # nothing left to do: waiters get their error now, not at their timeout
                        self._running = False
                        self._set_state("offline")
                        self._new_frame.notify_all()
                    self._stop.set()
                    return
                self._failed(now)
            elif reader.opened_at is None and now - reader.started > self.cfg.open_timeout_s:
                self._abandon(reader, f"opening took longer than {self.cfg.open_timeout_s:g}s", "offline", now)
            elif reader.opened_at is not None:
                last = reader.last_frame or reader.opened_at
                if now - last > self._stall_after:
                    self._abandon(reader, f"no frame for {now - last:.1f}s", "stalled", now)
        # a stall is noticed from the camera-wide last frame, so a reader that failed and is
        # being replaced still shows "stalled" once the gap exceeds the timeout
        with self._lock:
            if self._state == "ok" and (self._last_frame_ts is None or now - self._last_frame_ts > self._stall_after):
                self._set_state("stalled")
                self._last_error = self._last_error_or(f"no frame for {self.stall_timeout_s:g}s")
                logger.warning("camera %s: stalled (%s)", self.source_name, self._last_error)
        self._abandoned = [r for r in self._abandoned if r.thread is not None and r.thread.is_alive()]
        wedged = len(self._abandoned) >= MAX_ABANDONED or any(
            r.abandoned_at is not None and now - r.abandoned_at > self.wedged_after_s for r in self._abandoned
        )
        if wedged != self._wedged:
            self._wedged = wedged
            if wedged:
                with self._lock:
                    self._last_error = f"{self.source_name}: reads stuck in the camera driver; a restart is needed"
                logger.error(
                    "camera %s: %d reader(s) stuck in the backend; not reopening until they return "
                    "(the systemd watchdog restarts the daemon)",
                    self.source_name,
                    len(self._abandoned),
                )
            else:
                logger.info("camera %s: stuck readers have returned; reopening", self.source_name)
        if self._reader is None and now >= self._next_attempt and not self._wedged:
            self._spawn()

    def _fault_level(self, message: str, level: int = logging.INFO) -> int:
        """``level`` for a new message; DEBUG for a repeat, but every 20th repeat at ``level``.

        A camera unplugged for a month retries every reopen_backoff_max_s; the journal should
        say so now and then, not 5000 times a day.
        """
        return level if self._faults.allow(message) else logging.DEBUG

    def _last_error_or(self, default: str) -> str:
        return self._last_error if self._last_error not in (None, "starting") else default

    def _spawn(self) -> None:
        self._generation += 1
        reader = _Reader(self._generation)
        reader.thread = threading.Thread(
            target=self._read_loop, args=(reader,), name=f"camera-reader-{reader.generation}", daemon=True
        )
        self._reader = reader
        reader.thread.start()

    def _failed(self, now: float) -> None:
        """Schedule the next open after a failed or abandoned reader: doubling backoff with a cap."""
        self._failures += 1
        delay = reopen_delay(self._failures, self._backoff_initial, self.cfg.reopen_backoff_max_s)
        self._next_attempt = now + delay
        logger.log(
            self._fault_level(f"reopen {delay}"),
            "camera %s: reopening in %.1fs (attempt %d)",
            self.source_name,
            delay,
            self._failures + 1,
        )

    def _abandon(self, reader: _Reader, why: str, state: State, now: float) -> None:
        name = self.source_name
        reader.interrupt()
        reader.abandoned_at = now
        self._abandoned.append(reader)
        with self._lock:
            self._reader = None
            self._set_state(state)
            self._last_error = f"{name}: {why}"
        logger.warning("camera %s: %s; closing and reopening", name, why)
        self._failed(now)

    def _read_loop(self, reader: _Reader) -> None:
        src: FrameSource | None = None
        try:
            src = self._factory(self.cfg)
            reader.source = src
            if reader.cancelled.is_set():
                return
            src.open()
            if reader.cancelled.is_set():
                return
            with self._lock:
                reader.opened_at = time.monotonic()
                if self._ever_opened:
                    self._reconnects += 1
                self._ever_opened = True
            while not reader.cancelled.is_set():
                self._serve_stills(reader, src)
                frame = src.read()
                if reader.cancelled.is_set():
                    break  # abandoned while reading: this frame belongs to nobody
                self._publish(reader, frame)
        except SourceEnded as e:
            reader.error, reader.ended = str(e), True
            self._reader_failed(reader, str(e), "offline")
        except CameraError as e:
            self._reader_failed(reader, str(e), "offline" if reader.opened_at is None else None)
        except Exception as e:  # a backend bug must not kill the camera; it is reopened like a fault
            logger.exception("camera: unexpected error in the reader")
            self._reader_failed(reader, f"{type(e).__name__}: {e}", "offline" if reader.opened_at is None else None)
        finally:
            if src is not None:
                src.close()

    def _reader_failed(self, reader: _Reader, error: str, state: State | None) -> None:
        reader.error = error
        with self._lock:
            if reader is not self._reader:
                return  # abandoned: its replacement owns the state now
            self._last_error = error
            if state is not None and self._state != state:
                self._set_state(state)
            # a read error with the state still "ok": the supervisor reopens at once and marks
            # the camera stalled only if no frame comes back within the stall timeout
        logger.log(self._fault_level(error, logging.WARNING), "camera: %s", error)

    def _serve_stills(self, reader: _Reader, src: FrameSource) -> None:
        with self._lock:
            pending, self._stills = self._stills, []
        for req in pending:
            try:
                still = src.capture_still()
            except CameraError as e:
                req.set_exception(CameraError(str(e)))
                raise
            with self._lock:
                self._seq += 1
                frame = dataclasses.replace(still, index=self._seq)
            req.set_result(frame)

    def _publish(self, reader: _Reader, frame: Frame) -> None:
        with self._lock:
            if reader is not self._reader:
                return  # abandoned a moment ago: its frame belongs to nobody
            self._seq += 1
            # one array is shared by every listener and latest(): read-only, so a consumer that
            # draws on it fails loudly instead of corrupting what the others see
            frame.image.flags.writeable = False
            frame = dataclasses.replace(frame, index=self._seq)
            reader.last_frame = frame.ts
            self._latest = frame
            self._frames += 1
            self._last_frame_ts = frame.ts
            self._recent.append(frame.ts)
            if self._state != "ok":
                logger.info("camera %s: ok (frames flowing)", reader.source.name if reader.source else "?")
            self._set_state("ok")
            self._last_error = None
            self._failures = 0
            self._faults.reset()
            listeners = list(self._listeners)
            self._new_frame.notify_all()
        for listener in listeners:
            try:
                listener(frame)
            except Exception:
                # the first one with its traceback, then a line per thousand: a broken consumer
                # must neither stop the camera nor flood the journal at 30 lines a second
                if self._listener_faults.allow():
                    logger.exception("camera: frame listener failed (%d times)", self._listener_faults.count())
