"""What a capture leaves behind on the device: the numbered result and the file.

- ``SeqCounter``: ``seq`` increases by one per result, across restarts (kept
  in the state directory, written atomically before the number is used).
- ``recover_numbering``: the two above made consistent at start, after a crash.
- ``CaptureStore``: portraits under ``capture.output_dir``, whole or not at all,
  the oldest deleted beyond ``max_files``/``max_bytes``.

(The results waiting for the broker are MQTT's: ``publish.spool``.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from edgeportrait.config import CaptureConfig
from edgeportrait.imageio import atomic_write
from edgeportrait.logsafe import shown

logger = logging.getLogger(__name__)


def default_state_dir() -> Path:
    """$STATE_DIRECTORY (systemd StateDirectory=) or ~/.local/state/edgeportrait."""
    from edgeportrait.paths import state_dir

    return state_dir()


class SeqCounter:
    """The result sequence number, persisted so it keeps increasing across restarts."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "seq"
        self._lock = threading.RLock()
        self.trusted = False  # True when the number was read back from disk
        self._last = self._read()
        # the highest number recorded on disk: a result numbered above it must not
        # leave the device, or a start after a crash would hand its number out again
        self._durable = self._last
        self._retry_at = 0.0

    def _read(self) -> int:
        try:
            value = max(0, int(self.path.read_text().strip() or 0))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            # A damaged counter must not stop the daemon; starting from the
            # spool's or files' highest number is the next best thing.
            logger.warning("%s: unreadable (%s); seq restarts from the highest known", self.path, e)
            return 0
        self.trusted = True
        return value

    def bump_to(self, value: int) -> None:
        """Never hand out a number at or below ``value`` (e.g. one still in the spool)."""
        with self._lock:
            self._last = max(self._last, value)

    @property
    def last(self) -> int:
        return self._last

    def next(self) -> int:
        """The next number; written to disk before it is returned, so it is never reused."""
        with self._lock:
            n = self._last + 1
            self.commit(n)
            return n

    def commit(self, n: int) -> None:
        """Record ``n`` (normally ``last + 1``) as used, on disk first.

        A capture names its file with ``last + 1``, writes it, and only then
        commits the number: a capture that fails to save uses no number, so
        subscribers never see a gap in ``seq``.
        """
        with self._lock:
            atomic_write(self.path, f"{n}\n".encode())
            self._last = max(self._last, n)
            self._durable = max(self._durable, n)

    @property
    def durable(self) -> int:
        """The highest number recorded on disk."""
        return self._durable

    def durable_now(self, retry_every_s: float = 1.0) -> int:
        """:attr:`durable`, after trying again (at most every ``retry_every_s``) to record ``last``
        when a write failed before (a full or missing state directory that came back)."""
        with self._lock:
            if self._durable < self._last and time.monotonic() >= self._retry_at:
                try:
                    self.commit(self._last)
                    logger.info("%s: recorded seq %d again", self.path, self._last)
                except OSError:
                    self._retry_at = time.monotonic() + retry_every_s
            return self._durable


class CaptureStore:
    """Portrait files under ``output_dir``, bounded by count and bytes (oldest go first)."""

    def __init__(self, output_dir: Path, max_files: int, max_bytes: int) -> None:
        self.dir = Path(output_dir)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.pruned = 0
        self._lock = threading.Lock()

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def _numbered(self) -> list[tuple[int, Path]]:
        out = []
        for _, name, path, _ in self._files():
            with contextlib.suppress(ValueError):
                out.append((int(name[:-4].rsplit("-", 1)[-1]), path))
        return out

    def highest_seq(self) -> int:
        """The highest seq in the portraits' names (``…-<seq>.jpg``), 0 if none."""
        return max((n for n, _ in self._numbered()), default=0)

    def newest(self) -> Path | None:
        """The newest portrait file (highest seq in its name), or None."""
        try:
            numbered = self._numbered()
        except OSError:
            return None
        return max(numbered)[1] if numbered else None

    def remove_unfinished(self, last_seq: int) -> int:
        """Delete portraits numbered above ``last_seq``: captures a crash cut short.

        A portrait's number is committed only after its result is in the spool;
        a file above the committed number never got a result, and keeping it
        would leave a number that no subscriber will ever see.
        """
        removed = 0
        for n, path in self._numbered():
            if n > last_seq:
                try:
                    path.unlink()
                except OSError as e:
                    logger.warning("%s: cannot remove an unfinished capture: %s", path, e)
                    continue
                removed += 1
                logger.warning("%s: capture cut short by a crash (no result was made); removed", path)
        return removed

    def write(self, name: str, data: bytes) -> Path:
        """Save a portrait; a missing ``output_dir`` (deleted while running) is made again."""
        path = self.dir / name
        try:
            atomic_write(path, data)
        except FileNotFoundError:
            logger.warning("%s: gone; making it again", shown(self.dir))
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        self.prune(keep=path)
        return path

    def _files(self) -> list[tuple[float, str, Path, int]]:
        out = []
        with os.scandir(self.dir) as it:
            for e in it:
                # only our own finished portraits; temporaries start with "."
                if e.name.startswith(".") or not e.name.endswith(".jpg") or not e.is_file():
                    continue
                try:
                    st = e.stat()
                except OSError:
                    continue
                out.append((st.st_mtime, e.name, Path(e.path), st.st_size))
        out.sort()
        return out

    def prune(self, keep: Path | None = None) -> int:
        """Delete the oldest portraits beyond the bounds; never ``keep`` (the newest)."""
        with self._lock:
            try:
                files = self._files()
            except OSError as e:
                logger.warning("%s: cannot list for pruning: %s", self.dir, e)
                return 0
            total = sum(f[3] for f in files)
            count = len(files)
            removed = 0
            for _, _, path, size in files:
                if count <= self.max_files and total <= self.max_bytes:
                    break
                if keep is not None and path == keep:
                    continue
                try:
                    path.unlink()
                except OSError as e:
                    logger.warning("%s: cannot delete: %s", path, e)
                    continue
                count -= 1
                total -= size
                removed += 1
            if removed:
                self.pruned += removed
                logger.info("%s: deleted %d oldest portrait(s) to stay within bounds", self.dir, removed)
            return removed


def recover_numbering(
    cfg: CaptureConfig, state_dir: Path, spool_highest: int | None
) -> tuple[SeqCounter, CaptureStore]:
    """The seq counter and the capture store as a crash may have left them, made consistent.

    ``spool_highest``: the highest seq among results still waiting to be delivered
    (the MQTT spool; None without MQTT). Raises ``OSError`` when the output
    directory cannot be made.
    """
    seq = SeqCounter(state_dir)
    store = CaptureStore(cfg.output_dir, cfg.max_files, cfg.max_bytes)
    store.prepare()
    if spool_highest is not None:
        # a result spooled just before a crash keeps its number
        seq.bump_to(spool_highest)
    if seq.trusted and spool_highest is not None:
        # a portrait above every recorded number never got a result out: a capture
        # cut short (results leave only once their number is on disk)
        store.remove_unfinished(seq.last)
    else:
        # no counter on disk (first start, or lost), or no MQTT (the file is the
        # delivery, and nothing else records its number): never reuse a file's number
        seq.bump_to(store.highest_seq())
    if seq.last > seq.durable:
        try:  # what the spool or the files said, recorded for the next start
            seq.commit(seq.last)
        except OSError as e:
            # not fatal: results above the recorded number wait in the spool until it is
            logger.error("cannot record seq %d in %s: %s", seq.last, state_dir, e.strerror or e)
    return seq, store
