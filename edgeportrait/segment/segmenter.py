"""The Segmenter: a BGR frame in, a person mask out, on an OpenVINO device.

Three pieces, as OpenVINO's Open Model Zoo Model API splits them:

* :mod:`edgeportrait.segment.model` — the model's pre- and postprocessing
  (frame -> model input, model output -> mask, frame-sized mask), pure numpy/OpenCV;
* :mod:`edgeportrait.segment.adapter` — the runtime: read, add the preprocessing
  to the graph, choose the precision, compile with the cache, fail over from one
  device to the next, and the record of why;
* this module — :class:`Segmenter`, the facade the stages use: synchronous
  inference, and the asynchronous pipeline (OpenVINO's ``AsyncInferQueue``) that
  collects the exceptions raised in callbacks for the caller.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from edgeportrait.errors import FatalError
from edgeportrait.segment.adapter import (
    DeviceAdapter,
    ModelSettings,
    default_cache_dir,
    is_quantized,
    ov_reason,
    with_preprocessing,
)
from edgeportrait.segment.model import (
    check_frame,
    mask_from_output,
    model_path,
    models_dir,
    to_model_input,
    upscale_mask,
)

# what this module offered before the split, for callers that import it from here
__all__ = [
    "CallbackErrors",
    "MaskCallback",
    "Segmenter",
    "default_cache_dir",
    "is_quantized",
    "model_path",
    "models_dir",
    "ov_reason",
    "to_model_input",
    "upscale_mask",
    "with_preprocessing",
]

logger = logging.getLogger(__name__)

MaskCallback = Callable[[np.ndarray | None, Any, BaseException | None], None]


class CallbackErrors(RuntimeError):
    """Raised by :meth:`Segmenter.wait_all` when callbacks raised; ``errors`` holds them all."""

    def __init__(self, errors: list[BaseException]) -> None:
        super().__init__(f"{len(errors)} mask callback(s) raised; first: {errors[0]!r}")
        self.errors = errors


class Segmenter:
    """Person segmentation with a MediaPipe selfie-segmentation IR on OpenVINO.

    ``Segmenter(cfg)`` loads ``selfie_<cfg.name>_<precision>.xml`` from
    :func:`models_dir` (``cfg.dir`` if set) and compiles it for ``cfg.device``,
    then each of ``cfg.fallback`` in turn if a device is absent or fails to
    compile (:class:`~edgeportrait.segment.adapter.DeviceAdapter`). Compiled
    models are cached in ``cfg.cache_dir`` (default :func:`default_cache_dir`)
    so a restart skips the compile. A missing or corrupt model, or no device
    that compiles, is a :class:`FatalError`.

    Attributes: ``device`` (where it actually runs, e.g. ``CPU``; for AUTO the
    device AUTO chose), ``name``, ``precision`` (what runs: ``cfg.precision``,
    or for ``auto`` what :func:`~edgeportrait.segment.precision.choose` picked
    for the device) with ``precision_reason``, ``input_size`` (H, W) of the
    model, ``path`` of the IR, ``fallbacks`` (devices passed over and why),
    ``latencies_ms`` (the last 512 inference times in ms, as OpenVINO measures
    them per request: inference only, no pre/postprocessing).

    Synchronous use (thread-safe): :meth:`infer` gives the model-sized mask,
    :meth:`segment` the frame-sized one.

    Asynchronous use (the daemon): :meth:`submit` queues a frame on one of
    ``cfg.infer_requests`` OpenVINO infer requests and returns at once if one
    is free (else it blocks until one is; :meth:`is_ready` tells beforehand).
    When the inference is done, ``callback(mask_lowres, userdata, error)`` runs
    on an OpenVINO thread: ``mask_lowres`` is the model-sized float32 mask (a
    copy the callback may keep) and ``error`` None, or ``mask_lowres`` None and
    ``error`` the exception if the frame could not be processed. An exception
    raised *by the callback* is not lost: it is logged and collected, and the
    next :meth:`wait_all` raises :class:`CallbackErrors` with all of them
    (:meth:`pop_errors` takes them without raising).
    """

    def __init__(self, cfg: ModelSettings, core: ov.Core | None = None, *, cpu_threads: int | None = None) -> None:
        self.cfg = cfg
        self.name: str = cfg.name
        self._adapter = DeviceAdapter(cfg, core, cpu_threads=cpu_threads)
        self._lock = threading.Lock()
        self._closed = False
        self._request = self.compiled.create_infer_request()
        self._queue = self._new_queue()
        self._failed: str | None = None  # set by a failed async inference; acted on by the next submit
        self._errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=512)
        logger.info(
            "segmenter: %s %s %dx%d on %s (%s; %s)",
            self.name, self.precision, self.input_size[1], self.input_size[0], self.device, self.path,
            self.precision_reason,
        )

    # --- what runs, and where (the adapter's) ----------------------------------------------

    @property
    def core(self) -> ov.Core:
        return self._adapter.core

    @property
    def compiled(self) -> ov.CompiledModel:
        return self._adapter.compiled

    @property
    def device(self) -> str:
        return self._adapter.device

    @property
    def precision(self) -> str:
        return self._adapter.precision

    @property
    def precision_reason(self) -> str:
        return self._adapter.precision_reason

    @property
    def path(self) -> Path:
        return self._adapter.path

    @property
    def input_size(self) -> tuple[int, int]:
        return self._adapter.input_size

    @property
    def fallbacks(self) -> list[str]:
        """Why devices before the one in use were passed over (shown in the daemon's health)."""
        return self._adapter.fallbacks

    def _new_queue(self) -> ov.AsyncInferQueue:
        queue = ov.AsyncInferQueue(self.compiled, self.cfg.infer_requests)
        queue.set_callback(self._on_done)
        return queue

    def _fail_over(self, reason: str) -> None:
        """The device failed at run time: move to the next device of the chain (lock held).

        Raises FatalError when no device is left, so the caller's error says why.
        """
        self._queue.wait_all()  # the failed device's in-flight requests end (with errors) before it is dropped
        self._adapter.fail_over(reason)
        self._request = self.compiled.create_infer_request()
        self._queue = self._new_queue()
        self._failed = None

    # --- synchronous ---------------------------------------------------------------------

    def infer(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 mask in [0, 1] at the model's resolution (``input_size``), 1 = person."""
        x = to_model_input(frame_bgr, self.input_size)
        with self._lock:
            self._check_open()
            if self._failed is not None:
                self._fail_over(self._failed)
            try:
                self._request.infer({0: x}, share_inputs=True)
            except RuntimeError as e:
                # a device that fails at run time (a GPU reset, an NPU driver error):
                # the next device of the chain takes over and this frame is retried once
                self._fail_over(ov_reason(e, 160))
                self._request.infer({0: x}, share_inputs=True)
            self.latencies_ms.append(float(self._request.latency))
            return mask_from_output(self._request.get_output_tensor(0).data)

    def segment(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 mask in [0, 1] at the frame's size: :meth:`infer` + the reference's bilinear upscale."""
        frame = check_frame(frame_bgr)
        return upscale_mask(self.infer(frame), frame.shape[0], frame.shape[1])

    # --- asynchronous --------------------------------------------------------------------

    def is_ready(self) -> bool:
        """True if :meth:`submit` would not block (an infer request is free)."""
        return not self._closed and bool(self._queue.is_ready())

    def submit(self, frame_bgr: np.ndarray, userdata: Any, callback: MaskCallback) -> None:
        """Start inference on ``frame_bgr``; ``callback(mask_lowres, userdata, error)`` runs when done."""
        try:
            x = to_model_input(frame_bgr, self.input_size)
        except Exception as e:  # a bad frame is reported through the callback like any other failure
            self._call(callback, None, userdata, e)
            return
        # the request copies the input (share_inputs=False), so the caller may reuse its frame.
        # Under the same lock as infer(): a start_async and a synchronous infer entering
        # OpenVINO's input dispatch from two threads at once deadlocked the daemon (stream
        # + capture; seen 1 in ~20 starts, both threads stuck in data_dispatcher).
        with self._lock:
            if self._closed:
                self._call(callback, None, userdata, RuntimeError("segmenter closed"))
                return
            if self._failed is not None:
                try:
                    self._fail_over(self._failed)
                except FatalError as e:
                    self._call(callback, None, userdata, e)
                    return
            self._queue.start_async({0: x}, (callback, userdata))

    def _on_done(self, request: ov.InferRequest, job: tuple[MaskCallback, Any]) -> None:
        callback, userdata = job
        try:
            # the request's own latency: inference only, not the wait for a free request
            self.latencies_ms.append(float(request.latency))
            mask = mask_from_output(request.get_output_tensor(0).data)
        except Exception as e:
            # cannot fail over from OpenVINO's callback thread; the next submit does it
            self._failed = ov_reason(e, 160) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
            self._call(callback, None, userdata, e)
            return
        self._call(callback, mask, userdata, None)

    def _call(
        self, callback: MaskCallback, mask: np.ndarray | None, userdata: Any, error: BaseException | None
    ) -> None:
        try:
            callback(mask, userdata, error)
        except Exception as e:
            logger.exception("mask callback raised")
            with self._errors_lock:
                self._errors.append(e)

    def pop_errors(self) -> list[BaseException]:
        """Exceptions raised by callbacks since the last call; clears them."""
        with self._errors_lock:
            errors, self._errors = self._errors, []
        return errors

    def wait_all(self) -> None:
        """Wait for every submitted frame; raise :class:`CallbackErrors` if any callback raised."""
        if not self._closed:
            self._queue.wait_all()
        errors = self.pop_errors()
        if errors:
            raise CallbackErrors(errors)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"segmenter {self.name} {self.precision} is closed")

    def close(self) -> None:
        """Finish in-flight work, then release the model (errors of callbacks are logged, not raised).

        The infer requests, their callback threads and the compiled model (with its
        executor threads and memory) go now, not when the garbage collector finds
        the cycle queue → callback → self: a daemon that switches models must give
        back what each one held. The name and figures stay readable.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.wait_all()
            self.pop_errors()
            del self._queue, self._request
            self._adapter.release()
