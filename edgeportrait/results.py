"""What a capture leaves behind: the numbered result, the file, and the spool entry.

- ``SeqCounter``: ``seq`` increases by one per result, across restarts (kept
  in the state directory, written atomically before the number is used).
- ``CaptureStore``: portraits under ``capture.output_dir``, whole or not at all,
  the oldest deleted beyond ``max_files``/``max_bytes``.
- ``jpeg_for_mqtt``: the JPEG for ``B/result/image``, scaled down until it fits
  ``mqtt.max_image_bytes`` (the file on disk keeps full size).
- ``Spool``: results waiting for the broker's acknowledgement, on disk, so a
  broker outage or a SIGKILL between capture and delivery loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeportrait.imageio import atomic_write, encode_jpeg, fsync_dir
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


def jpeg_for_mqtt(image: np.ndarray, full_jpeg: bytes, max_bytes: int, quality: int) -> bytes:
    """``full_jpeg`` if it fits, else the image scaled down (then quality lowered) until it does."""
    if len(full_jpeg) <= max_bytes:
        return full_jpeg
    h, w = image.shape[:2]
    # JPEG size grows roughly with the pixel count: aim a little below the
    # limit, then shrink further in steps until it fits.
    scale = min(1.0, (max_bytes / len(full_jpeg)) ** 0.5 * 0.9)
    q = quality
    data = full_jpeg
    for _ in range(12):
        nw, nh = max(16, int(w * scale)), max(16, int(h * scale))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        data = encode_jpeg(small, q)
        if len(data) <= max_bytes:
            return data
        if nw == 16 or nh == 16:
            q = max(10, q - 15)
        scale *= 0.8
    return data


@dataclass
class SpoolEntry:
    seq: int
    meta_path: Path
    image_path: Path
    result: dict[str, Any]
    response_topic: str | None
    correlation_data: bytes | None

    def image(self) -> bytes:
        return self.image_path.read_bytes()


class Spool:
    """Results waiting for the broker, one JSON + one JPEG per ``seq``, in ``seq`` order.

    An entry is written image first, then its JSON (both atomically and
    fsync'ed); the JSON's presence is what makes an entry exist, so a power cut
    leaves either a whole entry or an orphan image that the next start removes.
    Beyond ``max_files``/``max_bytes`` the oldest entries are dropped (the
    portraits stay in ``capture.output_dir``) and counted in ``dropped``.
    """

    def __init__(self, directory: Path, max_files: int, max_bytes: int) -> None:
        self.dir = Path(directory)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cleanup()

    def _cleanup(self) -> None:
        metas = {p.stem for p in self.dir.glob("*.json")}
        for p in self.dir.iterdir():
            stale_tmp = p.name.startswith(".")
            orphan = p.suffix == ".jpg" and p.stem not in metas
            if stale_tmp or orphan:
                with contextlib.suppress(OSError):
                    p.unlink()

    def _seqs(self) -> list[int]:
        out = []
        for p in self.dir.glob("*.json"):
            with contextlib.suppress(ValueError):
                out.append(int(p.stem))
        return sorted(out)

    def highest_seq(self) -> int:
        with self._lock:
            seqs = self._seqs()
        return seqs[-1] if seqs else 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._seqs())

    def stats(self) -> dict[str, int]:
        with self._lock:
            seqs = self._seqs()
            size = sum(self._entry_bytes(s) for s in seqs)
        return {"entries": len(seqs), "bytes": size, "dropped": self.dropped}

    def _paths(self, seq: int) -> tuple[Path, Path]:
        return self.dir / f"{seq:012d}.json", self.dir / f"{seq:012d}.jpg"

    def _entry_bytes(self, seq: int) -> int:
        total = 0
        for p in self._paths(seq):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def put(
        self,
        seq: int,
        result: dict[str, Any],
        image: bytes,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        meta, img = self._paths(seq)
        doc = {
            "result": result,
            "response_topic": response_topic,
            "correlation_data": correlation_data.hex() if correlation_data is not None else None,
        }
        with self._lock:
            atomic_write(img, image)
            atomic_write(meta, json.dumps(doc).encode())
            self._enforce_bounds()
            self._changed.notify_all()

    def _enforce_bounds(self) -> None:
        seqs = self._seqs()
        total = sum(self._entry_bytes(s) for s in seqs)
        while seqs and (len(seqs) > self.max_files or total > self.max_bytes):
            oldest = seqs.pop(0)
            total -= self._entry_bytes(oldest)
            self._remove(oldest)
            self.dropped += 1
            logger.warning("spool full: dropped undelivered result seq %d (its file stays on disk)", oldest)

    def _remove(self, seq: int) -> None:
        meta, img = self._paths(seq)
        # JSON first: without it the entry no longer exists, whatever happens next
        for p in (meta, img):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        fsync_dir(self.dir)

    def remove(self, seq: int) -> None:
        with self._lock:
            self._remove(seq)

    def oldest(self) -> SpoolEntry | None:
        """The entry with the lowest seq (damaged entries are dropped and logged)."""
        with self._lock:
            for seq in self._seqs():
                meta, img = self._paths(seq)
                try:
                    doc = json.loads(meta.read_text())
                    corr = doc.get("correlation_data")
                    return SpoolEntry(
                        seq,
                        meta,
                        img,
                        doc["result"],
                        doc.get("response_topic"),
                        bytes.fromhex(corr) if corr else None,
                    )
                except (OSError, ValueError, KeyError, TypeError) as e:
                    logger.error("spool entry %d is damaged (%s); dropping it", seq, e)
                    self._remove(seq)
                    self.dropped += 1
            return None

    def wake(self) -> None:
        """Wake whoever is in :meth:`wait` (used to stop)."""
        with self._changed:
            self._changed.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until something is put (or ``timeout``)."""
        with self._changed:
            self._changed.wait(timeout)
