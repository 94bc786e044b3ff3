"""Results waiting for the broker, on disk, and the JPEG that goes with them.

- ``jpeg_for_mqtt``: the JPEG for ``B/result/image``, scaled down until it fits
  ``mqtt.max_image_bytes`` (the file on disk keeps full size).
- ``Spool``: results waiting for the broker's acknowledgement, on disk, so a
  broker outage or a SIGKILL between capture and delivery loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgeportrait.imageio import atomic_write, encode_jpeg, fsync_dir
from edgeportrait.messages import ResultMessage

logger = logging.getLogger(__name__)


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
    result: ResultMessage
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
        result: ResultMessage,
        image: bytes,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        meta, img = self._paths(seq)
        doc = {
            "result": result.model_dump(mode="json"),
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
            self._changed.notify_all()

    def wait_empty(self, timeout: float, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Wait until no entry is left (True), ``timeout`` passes or ``give_up()`` says so (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._seqs():
                left = deadline - time.monotonic()
                if left <= 0 or give_up():
                    return False
                self._changed.wait(min(left, 0.2))
            return True

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
                        ResultMessage.model_validate(doc["result"]),
                        doc.get("response_topic"),
                        bytes.fromhex(corr) if corr else None,
                    )
                except (OSError, ValueError, KeyError, TypeError) as e:  # (ValidationError is a ValueError)
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
