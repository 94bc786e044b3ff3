"""A folder of images played like a camera (demos, kiosks without a camera, tests).

Every image is made ``camera.width``×``camera.height`` per ``camera.fit``
(default ``contain``: scaled to fit with black bars, so no part of a photo is
lost), then oriented like any camera frame. The folder is re-listed at the start
of every pass, so pictures added or removed while running are picked up. A file
that cannot be used (0 bytes, truncated, not an image, a decompression bomb —
everything :func:`edgeportrait.imageio.read_image` refuses) is skipped with one
warning; it is retried only once it changes. Decoded pictures are cached up to
:data:`CACHE_BYTES`, so a small folder costs no decoding after the first pass and
a large one costs bounded memory.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from edgeportrait.capture.base import CameraError, Pacer, SourceBase, SourceEnded, fit
from edgeportrait.config.camera import CameraConfig
from edgeportrait.errors import InputError
from edgeportrait.imageio import IMAGE_SUFFIXES, list_images, read_image
from edgeportrait.logsafe import shown

logger = logging.getLogger(__name__)

#: decoded, fitted pictures kept in memory (a 1080p frame is ~6 MB, so ~20 of them)
CACHE_BYTES = 128 * 1024 * 1024

_FileKey = tuple[Path, int, int]  # path, mtime_ns, size: a changed file is a new key


class ImageFolderSource(SourceBase):
    file_backed = True

    def __init__(self, cfg: CameraConfig, folder: str | Path) -> None:
        super().__init__(cfg, str(folder))
        self.folder = Path(folder)
        self._pacer = Pacer(cfg.fps)
        self._queue: list[Path] = []
        self._cache: OrderedDict[_FileKey, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self._bad: set[_FileKey] = set()

    def _list(self) -> list[Path]:
        try:
            return list_images(self.folder)
        except FileNotFoundError:
            raise CameraError(f"{self.name}: folder does not exist") from None
        except NotADirectoryError:
            raise CameraError(f"{self.name}: not a folder") from None
        except PermissionError:
            raise CameraError(f"{self.name}: permission denied") from None
        except OSError as e:
            raise CameraError(f"{self.name}: cannot list: {e.strerror or e}") from None

    def _open(self) -> None:
        files = self._list()
        if not files:
            raise CameraError(f"{self.name}: no images in folder (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        # open fails (camera "offline") unless at least one picture is usable, so a folder
        # of broken files is reported at once instead of after the first read
        for i, path in enumerate(files):
            if self._load(path) is not None:
                self._queue = files[i:]
                return
        raise CameraError(f"{self.name}: no readable images in folder ({len(files)} skipped)")

    def _grab(self) -> np.ndarray:
        if not self._pacer.wait(self._cancel):
            raise CameraError(f"{self.name}: read interrupted")
        image = self._next_image()
        # a copy: consumers may draw on their frame; the cached one must stay clean
        return image.copy()

    def _next_image(self) -> np.ndarray:
        tried_fresh_pass = False
        while True:
            if not self._queue:
                if not self.cfg.loop:
                    raise SourceEnded(f"{self.name}: end of folder (camera.loop is off)")
                if tried_fresh_pass:
                    raise CameraError(f"{self.name}: no readable images in folder")
                self._queue = self._list()
                tried_fresh_pass = True
                if not self._queue:
                    raise CameraError(f"{self.name}: no images in folder")
            path = self._queue.pop(0)
            image = self._load(path)
            if image is not None:
                return image

    def _load(self, path: Path) -> np.ndarray | None:
        try:
            st = path.stat()
        except OSError:
            return None  # removed since the listing; not worth a warning
        key: _FileKey = (path, st.st_mtime_ns, st.st_size)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if key in self._bad:
            return None
        try:
            image = read_image(path)
        except InputError as e:
            if len(self._bad) > 10_000:  # bounded even when files keep changing
                self._bad.clear()
            self._bad.add(key)
            logger.warning("camera %s: skipping %s", shown(self.name), shown(e, 500))
            return None
        image = fit(image, self.cfg.width, self.cfg.height, self.cfg.fit)
        self._remember(key, image)
        return image

    def _remember(self, key: _FileKey, image: np.ndarray) -> None:
        if image.nbytes > CACHE_BYTES:
            return
        self._cache[key] = image
        self._cache_bytes += image.nbytes
        while self._cache_bytes > CACHE_BYTES:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.nbytes

    def _close(self) -> None:
        self._queue = []
        self._cache.clear()
        self._cache_bytes = 0
