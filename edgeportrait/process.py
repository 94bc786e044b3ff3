"""``edgeportrait process``: portrait mode for image files and folders.

Each readable input gives ``OUT_DIR/<stem>.jpg`` at the input's size, upright
(EXIF orientation applied on reading; the output carries no orientation tag),
written beside and renamed so a reader never sees half a file. An input that
cannot be read is reported in one line and skipped; the others are still
written, and the exit code is then 2.

Throughput: a photo is decoded, segmented, composed and encoded by one of
``--jobs`` worker threads, so the stages of different photos overlap on the
cores (OpenCV and OpenVINO release the GIL in each call, and so does the
compositor's C library, a ctypes call for each of its passes). Where the
GIL is held is the Python between calls: decode and encode are one call each,
the compositor a dozen or so, so it is the stage that waits for the GIL and
whose CPU time grows most when photos overlap (``benchmarks/bench_process.py
--stages``, 1080p, 2-core AMD EPYC, AVX2 without VNNI/AMX, the calling thread's
CPU per compose: 4.5 ms alone (its C passes then share the rows with a second
thread), 6.4 at --jobs 2, 6.6 at 3; 5.3, 8.6 and 7.6 before the downscale,
upsample and the rest of the blur were C too; with only the band pass in C it
was 8.6, 9.8 and 10.9, and 10.0, 12.6 and 15.2 before any C).
Serialising the compositor (a lock, so that two never contend) made it worse:
43-45 photos/s instead of 48-50 (measured before any C). Inference itself is serialised
in the Segmenter (one request); at most ``jobs`` photos are held in memory at
once (default: one more than the CPU count). OpenCV's own threading is turned
down to one thread per call, and each inference to one core, while several
workers run: the parallelism is across photos, and oversubscribing two cores
only adds switching (and OpenVINO's thread synchronisation).

Start-up is most of a short run: importing OpenVINO and loading the model
(from the compiled-model cache) takes about as long as everything else before
the first photo. So a thread of its own imports OpenVINO and loads the model,
while the main thread imports the config, OpenCV and the compositor and the
workers decode the first photos; a worker waits for the model only when it has
a decoded photo to segment. Without ``-c`` the model is the default one, so its
compile starts right after OpenVINO's import and pydantic is imported during
the compile (imports hold the GIL; a compile does not); with ``-c`` the config
is read while OpenVINO is imported, and the compile follows. Measured with
``benchmarks/bench_startup.py``. No module imported here at the top pulls in
OpenCV, numpy, OpenVINO or pydantic.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edgeportrait.errors import EX_OK, EX_USAGE, InputError, UserError
from edgeportrait.logsafe import escape, shown

if TYPE_CHECKING:
    from edgeportrait.config import AppConfig
    from edgeportrait.segment.adapter import ModelSettings
    from edgeportrait.segment.segmenter import Segmenter

logger = logging.getLogger(__name__)

PROG = "edgeportrait"
MAX_JOBS = 64
PLAIN_PROGRESS_EVERY_S = 10.0  # not a terminal (a log, a pipe): one line this often
TTY_REFRESH_S = 0.2


class Progress:
    """Progress of a batch on stderr: a live line on a terminal, a periodic plain line otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = total
        self.stream = stream
        self.tty = enabled and stream.isatty()
        self.plain = enabled and not self.tty
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._last = self.start
        self._lock = threading.Lock()

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        pct = 100 * self.done // max(self.total, 1)
        failed = f", {self.failed} failed" if self.failed else ""
        return f"[{self.done}/{self.total}] {pct}% {rate:.1f} photos/s, {left:.0f} s left{failed}"

    def step(self, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.failed += int(failed)
            now = time.monotonic()
            if self.tty and (now - self._last >= TTY_REFRESH_S or self.done == self.total):
                self.stream.write("\r\x1b[K" + self._line())
                self.stream.flush()
                self._last = now
            elif self.plain and now - self._last >= PLAIN_PROGRESS_EVERY_S and self.done < self.total:
                self.stream.write(f"{PROG}: {self._line()}\n")
                self.stream.flush()
                self._last = now

    def message(self, text: str) -> None:
        """A line (an error) that must not be glued to the live progress line."""
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K")
            self.stream.write(escape(text) + "\n")
            if self.tty and self.done:
                self.stream.write(self._line())
            self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    portrait: dict[str, Any] = {}
    if args.blur is not None:
        if not 0 <= args.blur <= 100:
            raise UserError(f"--blur: must be between 0 and 100 (got {args.blur:g})")
        portrait["blur"] = args.blur
    if args.mode is not None:
        portrait["mode"] = args.mode
    return {"portrait": portrait} if portrait else {}


def _jobs(args: argparse.Namespace) -> int:
    if args.jobs is None:
        # one more worker than cores: while one holds the GIL (Python glue) or waits for the
        # segmenter, the others keep the cores busy. 50 1080p photos on a 2-core AVX2 EPYC, one interleaved
        # run: 38.2 photos/s with 2 workers, 40.8 with 3, 42.5 with 4 (benchmarks/bench_process.py)
        return (os.cpu_count() or 1) + 1
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UserError(f"--jobs: must be between 1 and {MAX_JOBS} (got {args.jobs})")
    return int(args.jobs)


def _load_segmenter(cfg: ModelSettings | None, jobs: int, imported: threading.Event | None = None) -> Segmenter:
    """The Segmenter for ``cfg`` (None: the default model); ``imported`` is set once OpenVINO is imported."""
    try:
        from edgeportrait.segment.adapter import DEFAULT_MODEL
        from edgeportrait.segment.segmenter import Segmenter
    finally:
        if imported is not None:
            imported.set()
    # like OpenCV (see _run), inference on one core when photos are worked on side by side: 60 1080p
    # photos, 3 jobs, 2 cores, 4 alternating runs: 2.25 s of CPU time instead of 2.59 s, 3.42 s wall
    # instead of 3.73 s (medians)
    return Segmenter(cfg if cfg is not None else DEFAULT_MODEL, cpu_threads=1 if jobs > 1 else None)


def main(args: argparse.Namespace) -> int:
    overrides = _overrides(args)
    jobs = _jobs(args)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-load") as loader:
        if args.config is None and args.mode != "image":
            # No config file: the model is the default one, known without pydantic, so its compile
            # starts as soon as OpenVINO is imported. The config (pydantic and every section's model,
            # the other half of the imports) is imported only then, while the compile runs: imports
            # hold the GIL, so importing both at once would only delay the compile. (--mode image
            # without a config is an error to report before anything is loaded.)
            imported = threading.Event()
            loading = loader.submit(_load_segmenter, None, jobs, imported)
            imported.wait()
            from edgeportrait.config import load_config

            cfg = load_config(None, overrides)
        else:
            # OpenVINO (and numpy) are imported while the config is: the compile that follows is the
            # longest step of a short run and can start as soon as the config says which model
            loader.submit(_import_runtime)
            from edgeportrait.config import load_config

            # a bad config (or a --mode image without portrait.image) is exit 78 with the YAML lines
            cfg = load_config(args.config, overrides)
            # the compile releases the GIL: OpenCV's import and the first decodes go on meanwhile
            loading = loader.submit(_load_segmenter, cfg.model, jobs)
        return _process(args, cfg, jobs, loading)


def _import_runtime() -> None:
    from edgeportrait.segment import segmenter  # noqa: F401


def _process(args: argparse.Namespace, cfg: AppConfig, jobs: int, loading: Future[Segmenter]) -> int:
    from edgeportrait.compose import Compositor
    from edgeportrait.imageio import atomic_write, encode_jpeg, fsync_dir, prepare_batch, read_image, unique_stems

    inputs, out_dir = prepare_batch(args.inputs, args.output)

    if cfg.portrait.mode == "image" and cfg.portrait.image is not None:
        try:  # the same picture for every photo: an unreadable one is a setup error, not a per-photo one
            read_image(cfg.portrait.image)
        except InputError as e:
            raise UserError(f"portrait.image: {e}") from None

    quality = cfg.capture.jpeg_quality
    stems = unique_stems(inputs)
    input_files = {_same_file_key(p) for p in inputs}
    local = threading.local()

    def compositor() -> Compositor:
        # one per worker thread: no state is shared between photos (and no temporal smoothing)
        c = getattr(local, "compositor", None)
        if c is None:
            c = local.compositor = Compositor(cfg.portrait, temporal=False)
        return c

    def one(path: Path) -> Path:
        target = out_dir / f"{stems[path]}.jpg"
        if _same_file_key(target) in input_files:
            raise InputError(f"{path}: output {target} would overwrite an input; choose another OUT_DIR")
        frame = read_image(path)
        segmenter = loading.result()  # at once after the first photos: the model is loaded by then
        try:
            mask = segmenter.infer(frame)
            image = compositor().compose(frame, mask)
        except ValueError as e:  # e.g. a 1-pixel image: nothing to segment
            raise InputError(f"{path}: cannot make a portrait of it: {e}") from None
        data = encode_jpeg(image, quality)
        try:
            # renamed into place: atomic for readers; one directory fsync at the end instead of per file
            atomic_write(target, data, durable=False)
        except OSError as e:
            raise UserError(f"{target}: cannot write: {e.strerror or e}") from None
        return target

    progress = Progress(len(inputs), sys.stderr, enabled=not args.no_progress)
    failed = _run(inputs, one, jobs, progress)
    progress.finish()
    loading.result()  # a model that could not be loaded is the error even when no photo got that far
    fsync_dir(out_dir)
    elapsed = time.monotonic() - progress.start
    written = len(inputs) - failed
    logger.info(
        "%d portrait(s) written to %s in %.1f s (%.1f photos/s)%s",
        written,
        out_dir,
        elapsed,
        written / max(elapsed, 1e-9),
        f"; {failed} input(s) could not be read" if failed else "",
    )
    return EX_USAGE if failed else EX_OK


def _same_file_key(p: Path) -> str:
    try:
        return str(p.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13); reported when read
        return str(p.absolute())


def _run(inputs: list[Path], one: Callable[[Path], Path], jobs: int, progress: Progress) -> int:
    """Run ``one`` over the inputs on ``jobs`` threads, at most 2×jobs queued; returns the failure count."""
    import cv2

    failed = 0
    previous_threads = cv2.getNumThreads()
    if jobs > 1:
        cv2.setNumThreads(1)
    pending: set[Future[Path]] = set()
    names: dict[Future[Path], Path] = {}
    todo = iter(inputs)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="process")
    try:
        while True:
            while len(pending) < 2 * jobs:
                path = next(todo, None)
                if path is None:
                    break
                fut = pool.submit(one, path)
                pending.add(fut)
                names[fut] = path
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                path = names.pop(fut)
                try:
                    target = fut.result()
                except InputError as e:
                    failed += 1
                    progress.message(f"{PROG}: {e}")
                    progress.step(failed=True)
                    continue
                logger.debug("%s -> %s", shown(path), shown(target))
                progress.step()
    except BaseException:
        # Ctrl-C or a fatal error: do not start the photos still queued
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        cv2.setNumThreads(previous_threads)
    return failed
