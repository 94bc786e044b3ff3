"""The Segmenter: a BGR frame in, a person mask out, on an OpenVINO device.

Pre- and postprocessing reproduce MediaPipe's own CPU graph for selfie
segmentation (``selfie_segmentation_cpu.pbtxt``), so our masks match the
reference runtime's:

* ``ImageToTensorCalculator`` (keep_aspect_ratio false, range [0, 1], border
  zero): the whole frame is mapped corner to corner onto the model input by
  ``cv::warpPerspective`` with ``INTER_LINEAR`` on the 8-bit image — plain
  bilinear sampling at ``x_src = x_dst * w / W`` with no half-pixel offset and
  no area averaging. ``cv2.resize`` samples differently and costs about one
  point of IoU against the reference masks (measured, see models/README.md),
  so :func:`to_model_input` does the same warp. Only the small output is
  computed, so this is cheap even for a 4K frame.
* RGB order, uint8 -> float32 and the /255 scale are done inside the model by
  OpenVINO's ``PrePostProcessor``; the frame goes in as BGR uint8.
  ``benchmarks/bench_segment.py --preprocessing`` (1920×1080 frame, general
  FP32, CPU time, one thread): warp + PrePostProcessor 4.57 ms, warp + numpy
  conversion 4.54 ms (the same, within noise), whole frame into the model with
  PrePostProcessor's linear resize 8.92 ms and mean IoU against the reference
  0.990 instead of 0.9999 — so the resize stays out of the model, and the
  conversion sits in it because it costs nothing and the request takes 8-bit
  input (a quarter of the bytes).
* ``TensorsToSegmentationCalculator`` (activation NONE — the model ends in a
  sigmoid): the model-sized mask is upscaled to the frame with ``cv::resize``
  ``INTER_LINEAR``; :func:`upscale_mask` does the same.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

from edgeportrait.config import ModelConfig
from edgeportrait.errors import FatalError
from edgeportrait.segment.precision import choose

logger = logging.getLogger(__name__)

MaskCallback = Callable[[np.ndarray | None, Any, BaseException | None], None]


def models_dir(configured: str | Path | None = None) -> Path:
    """Where the IR files are: ``configured`` if given, else the copy inside an
    installed wheel (``edgeportrait/_models``), else ``models/`` of the source tree."""
    if configured is not None:
        return Path(configured)
    package = Path(__file__).resolve().parent.parent
    shipped = package / "_models"
    if shipped.is_dir():
        return shipped
    return package.parent / "models"


def model_path(name: str, precision: str, directory: str | Path | None = None) -> Path:
    """The IR (.xml) of one model variant, e.g. ``models/selfie_general_int8.xml``."""
    return models_dir(directory) / f"selfie_{name}_{precision}.xml"


def default_cache_dir() -> Path:
    """Compiled-model cache: systemd's $CACHE_DIRECTORY (CacheDirectory=) or ~/.cache/edgeportrait."""
    base = os.environ.get("CACHE_DIRECTORY")
    if base:
        # CacheDirectory= may list several directories separated by ':'; the first is ours
        return Path(base.split(":")[0]) / "ov"
    return Path.home() / ".cache" / "edgeportrait" / "ov"


def ov_reason(err: BaseException, limit: int = 200) -> str:
    """The line of an OpenVINO exception that says what went wrong: its messages start with
    'Exception from <source file>' and 'Check ... failed at ...' lines that do not."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    text = (useful or lines or [type(err).__name__])[-1]
    return text[:limit]


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("frame must be a uint8 numpy array (BGR)")
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must be H×W×3 BGR, got shape {frame.shape}")
    return frame


def to_model_input(frame_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame as the model sees it: ``size`` = (H, W), BGR uint8, shape (1, H, W, 3).

    MediaPipe's ImageToTensorCalculator maps the frame's corners (0,0)…(w,h)
    onto (0,0)…(W,H) and samples with cv::warpPerspective, INTER_LINEAR,
    BORDER_CONSTANT 0; for an unrotated full-frame ROI that matrix is a pure
    scale, which warpAffine applies identically (checked against warpPerspective).
    """
    frame = _check_frame(frame_bgr)
    h, w = frame.shape[:2]
    H, W = size
    m = np.array([[W / w, 0.0, 0.0], [0.0, H / h, 0.0]], dtype=np.float64)
    out = cv2.warpAffine(frame, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out[np.newaxis]


def upscale_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Model-sized mask -> frame-sized, as TensorsToSegmentationCalculator does (cv::resize, bilinear)."""
    if mask.shape == (height, width):
        return mask.astype(np.float32, copy=True)
    out = cv2.resize(mask.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def _with_preprocessing(model: ov.Model) -> ov.Model:
    """BGR uint8 NHWC in; RGB float32 [0, 1] to the model — done by the compiled graph."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    ppp.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type(ov.Type.f32).scale(255.0)
    ppp.output().tensor().set_element_type(ov.Type.f32)
    return ppp.build()


def is_quantized(model: ov.Model) -> bool:
    """Whether an IR runs any layer in 8 bits (NNCF marks them with FakeQuantize)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


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
    compile. Compiled models are cached in ``cfg.cache_dir`` (default
    :func:`default_cache_dir`) so a restart skips the compile. A missing or
    corrupt model, or no device that compiles, is a :class:`FatalError`.

    Attributes: ``device`` (where it actually runs, e.g. ``CPU``; for AUTO the
    device AUTO chose), ``name``, ``precision`` (what runs: ``cfg.precision``,
    or for ``auto`` what :func:`~edgeportrait.segment.precision.choose` picked
    for the device) with ``precision_reason``, ``input_size`` (H, W) of the
    model, ``path`` of the IR, ``latencies_ms`` (the last 512 inference times in ms, as
    OpenVINO measures them per request: inference only, no pre/postprocessing).

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

    def __init__(self, cfg: ModelConfig, core: ov.Core | None = None, *, cpu_threads: int | None = None) -> None:
        self.cfg = cfg
        # threads of one inference on the CPU (None: OpenVINO's choice, all cores); see _device_config
        self._cpu_threads = cpu_threads
        self.name: str = cfg.name
        self.core = core or ov.Core()
        # the IR of each precision, read and given its preprocessing once, on first use:
        # with model.precision auto, a fallback to another device may change the precision
        self._models: dict[str, ov.Model] = {}
        self._cache_dir = self._prepare_cache(cfg.cache_dir)
        # why devices before the one in use were passed over (absent, failed to
        # compile, failed at run time): shown in the daemon's health
        self.fallbacks: list[str] = []
        self.precision: str = ""
        self.precision_reason: str = ""
        self.path: Path = model_path(cfg.name, "fp32" if cfg.precision == "auto" else cfg.precision, cfg.dir)
        self.input_size: tuple[int, int] = (0, 0)
        self.compiled, self.device, self._chain_index = self._compile(0)
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

    # --- loading -------------------------------------------------------------------------

    def _model(self, precision: str) -> ov.Model:
        """The IR of ``precision`` with its preprocessing; sets ``input_size`` and checks the shape."""
        if precision not in self._models:
            path = model_path(self.name, precision, self.cfg.dir)
            model = self._read_model(path)
            shape = model.input(0).get_partial_shape()
            if not (shape.is_static and len(shape) == 4 and shape[3].get_length() == 3):
                raise FatalError(f"{path}: not a segmentation model (input shape {shape}, want 1×H×W×3)")
            size = (shape[1].get_length(), shape[2].get_length())
            if self.input_size not in ((0, 0), size):
                raise FatalError(f"{path}: input {size} differs from the other precision's {self.input_size}")
            self.input_size = size
            self._models[precision] = _with_preprocessing(model)
        return self._models[precision]

    def _read_model(self, xml: Path) -> ov.Model:
        bin_path = xml.with_suffix(".bin")
        for p in (xml, bin_path):
            if not p.is_file():
                raise FatalError(
                    f"model file not found: {p} (the shipped models are in models/; "
                    "`edgeportrait model build` rebuilds them)"
                )
        try:
            return self.core.read_model(str(xml), str(bin_path))
        except RuntimeError as e:
            raise FatalError(f"{xml}: cannot load the model (corrupt or not an OpenVINO IR): {ov_reason(e)}") from None

    def _prepare_cache(self, configured: Path | None) -> Path | None:
        cache = Path(configured) if configured is not None else default_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            # the cache only saves start-up time; run without it rather than not at all
            logger.warning("compiled-model cache %s unusable (%s); compiling without cache", cache, e.strerror or e)
            return None
        return cache

    def _candidates(self) -> list[str]:
        chain = [self.cfg.device, *self.cfg.fallback]
        return list(dict.fromkeys(chain))  # keep order, drop repeats

    def _device_config(self, dev: str) -> dict[str, Any]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self._cache_dir is not None:
            config["CACHE_DIR"] = str(self._cache_dir)
        # On CPUs with bf16 support OpenVINO runs FP32 models in bf16 by default;
        # that moves the mask off the reference (IoU 0.9999 -> 0.998 on the golden
        # photos) for no measurable speed-up on a model this small, so stay in f32.
        # GPU/NPU keep their own default (f16).
        if dev == "CPU":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        elif dev == "AUTO":
            config["DEVICE_PROPERTIES"] = {"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
        if self._cpu_threads is not None:
            # a caller that works on several frames side by side (process) keeps each inference on one
            # core: spread over all of them it costs more CPU time in synchronisation than it saves
            cpu = config if dev == "CPU" else config.get("DEVICE_PROPERTIES", {}).get("CPU")
            if cpu is not None:
                cpu["INFERENCE_NUM_THREADS"] = self._cpu_threads
        return config

    def _compile(self, start: int) -> tuple[ov.CompiledModel, str, int]:
        """Compile on the first device of the chain from index ``start`` that works, at the
        precision chosen for that device (:func:`~edgeportrait.segment.precision.choose`)."""
        available = self.core.available_devices
        failures: list[str] = []
        chain = self._candidates()
        for i in range(start, len(chain)):
            dev = chain[i]
            if dev != "AUTO" and not any(a == dev or a.startswith(dev + ".") for a in available):
                failures.append(f"{dev}: not present")
                logger.info("device %s not present (available: %s)", dev, ", ".join(available) or "none")
                continue
            precision, why = choose(self.cfg.precision, dev, available)
            if self.cfg.precision == "auto" and precision == "int8" and not is_quantized(self._model("int8")):
                precision, why = "fp32", f"{why}, but the INT8 model has no quantized layer (see models/README.md)"
            model = self._model(precision)
            try:
                compiled = self.core.compile_model(model, dev, self._device_config(dev))
            except RuntimeError as e:
                reason = ov_reason(e, 160)
                failures.append(f"{dev}: failed to compile: {reason}")
                logger.warning("compiling for %s failed: %s; trying the next device", dev, reason)
                continue
            actual = dev
            if dev == "AUTO":
                try:
                    actual = ",".join(compiled.get_property("EXECUTION_DEVICES")) or dev
                except RuntimeError:
                    actual = dev
            self.fallbacks.extend(failures)
            self.precision, self.precision_reason = precision, why
            self.path = model_path(self.name, precision, self.cfg.dir)
            return compiled, actual, i
        detail = "; ".join(failures) or "no further device in model.fallback"
        raise FatalError(f"{self.path.name}: no device could run the model ({detail})")

    def _new_queue(self) -> ov.AsyncInferQueue:
        queue = ov.AsyncInferQueue(self.compiled, self.cfg.infer_requests)
        queue.set_callback(self._on_done)
        return queue

    def _fail_over(self, reason: str) -> None:
        """The device failed at run time: move to the next device of the chain (lock held).

        Raises FatalError when no device is left, so the caller's error says why.
        """
        failed = self.device
        logger.error("inference on %s failed: %s; falling back to the next device", failed, reason)
        self.fallbacks.append(f"{failed}: failed at run time: {reason}")
        old_queue = self._queue
        old_queue.wait_all()  # the failed device's in-flight requests end (with errors) before it is dropped
        try:
            self.compiled, self.device, self._chain_index = self._compile(self._chain_index + 1)
        except FatalError as e:
            raise FatalError(f"{failed} failed at run time ({reason}) and {e}") from None
        self._request = self.compiled.create_infer_request()
        self._queue = self._new_queue()
        self._failed = None
        logger.warning("inference moved from %s to %s", failed, self.device)

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
            out = self._request.get_output_tensor(0).data
            return np.array(out[0, :, :, 0], dtype=np.float32, copy=True)

    def segment(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Float32 mask in [0, 1] at the frame's size: :meth:`infer` + the reference's bilinear upscale."""
        frame = _check_frame(frame_bgr)
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
            mask = np.array(request.get_output_tensor(0).data[0, :, :, 0], dtype=np.float32, copy=True)
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
            del self._queue, self._request, self.compiled
            self._models.clear()
