"""The runtime's side of segmentation: OpenVINO reads, prepares and compiles the model, and
fails over from one device to the next.

:class:`DeviceAdapter` compiles the IR for the first device of ``cfg.device`` +
``cfg.fallback`` that works, at the precision chosen for that device
(:func:`~edgeportrait.segment.precision.choose`), with the compiled-model cache,
and keeps a record of every device it passed over and why (shown in the
daemon's health). The inference itself, synchronous and asynchronous, is the
:class:`~edgeportrait.segment.segmenter.Segmenter`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

from edgeportrait import paths
from edgeportrait.errors import FatalError
from edgeportrait.segment.model import input_size, model_path
from edgeportrait.segment.precision import choose

logger = logging.getLogger(__name__)


class ModelSettings(Protocol):
    """What segmentation reads of ``model:``: an :class:`edgeportrait.config.ModelConfig`, or
    :data:`DEFAULT_MODEL` where no config file was given."""

    @property
    def name(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def fallback(self) -> Sequence[str]: ...
    @property
    def dir(self) -> Path | None: ...
    @property
    def cache_dir(self) -> Path | None: ...
    @property
    def infer_requests(self) -> int: ...


@dataclass(frozen=True)
class DefaultModel:
    """``ModelConfig()``'s values without pydantic (tests/test_startup.py checks they are the same).

    ``process`` without ``-c`` compiles the default model: made from this, the compile starts as soon as
    OpenVINO is imported, while pydantic and the config's models are still being imported (about 0.2 s
    of a one-photo run).
    """

    name: str = "general"
    precision: str = "auto"
    device: str = "AUTO"
    fallback: tuple[str, ...] = ("CPU",)
    dir: Path | None = None
    cache_dir: Path | None = None
    infer_requests: int = 2


DEFAULT_MODEL = DefaultModel()


def default_cache_dir() -> Path:
    """Compiled-model cache: systemd's $CACHE_DIRECTORY (CacheDirectory=) or ~/.cache/edgeportrait, + ``ov``."""
    return paths.cache_dir() / "ov"


def ov_reason(err: BaseException, limit: int = 200) -> str:
    """The line of an OpenVINO exception that says what went wrong: its messages start with
    'Exception from <source file>' and 'Check ... failed at ...' lines that do not."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    text = (useful or lines or [type(err).__name__])[-1]
    return text[:limit]


def with_preprocessing(model: ov.Model) -> ov.Model:
    """The IR with the runtime's preprocessing in its graph: BGR uint8 NHWC in (what
    :func:`~edgeportrait.segment.model.to_model_input` makes); RGB float32 [0, 1] to the model."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    ppp.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type(ov.Type.f32).scale(255.0)
    ppp.output().tensor().set_element_type(ov.Type.f32)
    return ppp.build()


def is_quantized(model: ov.Model) -> bool:
    """Whether an IR runs any layer in 8 bits (NNCF marks them with FakeQuantize)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def input_dims(model: ov.Model) -> list[int | None] | None:
    """The shape of the model's first input, None for a dynamic dimension (or rank)."""
    shape = model.input(0).get_partial_shape()
    if shape.rank.is_dynamic:
        return None
    return [d.get_length() if d.is_static else None for d in shape]


def prepare_cache(configured: Path | None) -> Path | None:
    """The compiled-model cache directory, made if missing; None (no cache) if it cannot be."""
    cache = Path(configured) if configured is not None else default_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        # the cache only saves start-up time; run without it rather than not at all
        logger.warning("compiled-model cache %s unusable (%s); compiling without cache", cache, e.strerror or e)
        return None
    return cache


class DeviceAdapter:
    """One model compiled on one device of the chain ``cfg.device`` + ``cfg.fallback``.

    Attributes: ``compiled`` (the ``ov.CompiledModel``), ``device`` (where it
    actually runs; for AUTO the device AUTO chose), ``precision`` and
    ``precision_reason``, ``path`` of the IR that runs, ``input_size`` (H, W),
    ``fallbacks`` (why devices before the one in use were passed over: absent,
    failed to compile, failed at run time). A missing or corrupt model, or no
    device that compiles, is a :class:`FatalError`.
    """

    def __init__(self, cfg: ModelSettings, core: ov.Core | None = None, *, cpu_threads: int | None = None) -> None:
        self.cfg = cfg
        # threads of one inference on the CPU (None: OpenVINO's choice, all cores); see device_config
        self._cpu_threads = cpu_threads
        self.core = core or ov.Core()
        # the IR of each precision, read and given its preprocessing once, on first use:
        # with model.precision auto, a fallback to another device may change the precision
        self._models: dict[str, ov.Model] = {}
        self.cache_dir = prepare_cache(cfg.cache_dir)
        self.fallbacks: list[str] = []
        self.precision: str = ""
        self.precision_reason: str = ""
        self.path: Path = model_path(cfg.name, "fp32" if cfg.precision == "auto" else cfg.precision, cfg.dir)
        self.input_size: tuple[int, int] = (0, 0)
        self.compiled, self.device, self._chain_index = self._compile(0)

    # --- the model -----------------------------------------------------------------------

    def _model(self, precision: str) -> ov.Model:
        """The IR of ``precision`` with its preprocessing; sets ``input_size`` and checks the shape."""
        if precision not in self._models:
            path = model_path(self.cfg.name, precision, self.cfg.dir)
            model = self._read_model(path)
            try:
                size = input_size(input_dims(model))
            except ValueError:
                shape = model.input(0).get_partial_shape()
                raise FatalError(f"{path}: not a segmentation model (input shape {shape}, want 1×H×W×3)") from None
            if self.input_size not in ((0, 0), size):
                raise FatalError(f"{path}: input {size} differs from the other precision's {self.input_size}")
            self.input_size = size
            self._models[precision] = with_preprocessing(model)
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

    # --- the device ----------------------------------------------------------------------

    def _candidates(self) -> list[str]:
        chain = [self.cfg.device, *self.cfg.fallback]
        return list(dict.fromkeys(chain))  # keep order, drop repeats

    def device_config(self, dev: str) -> dict[str, Any]:
        """The properties ``dev`` is compiled with."""
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.cache_dir is not None:
            config["CACHE_DIR"] = str(self.cache_dir)
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
                compiled = self.core.compile_model(model, dev, self.device_config(dev))
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
            self.path = model_path(self.cfg.name, precision, self.cfg.dir)
            return compiled, actual, i
        detail = "; ".join(failures) or "no further device in model.fallback"
        raise FatalError(f"{self.path.name}: no device could run the model ({detail})")

    def fail_over(self, reason: str) -> None:
        """The device in use failed at run time: record why and compile on the next device of the
        chain. The caller lets the failed device's in-flight requests end first.

        Raises FatalError when no device is left, so the caller's error says why.
        """
        failed = self.device
        logger.error("inference on %s failed: %s; falling back to the next device", failed, reason)
        self.fallbacks.append(f"{failed}: failed at run time: {reason}")
        try:
            self.compiled, self.device, self._chain_index = self._compile(self._chain_index + 1)
        except FatalError as e:
            raise FatalError(f"{failed} failed at run time ({reason}) and {e}") from None
        logger.warning("inference moved from %s to %s", failed, self.device)

    def release(self) -> None:
        """Drop the compiled model and the IRs (their memory goes now); the figures stay readable."""
        del self.compiled
        self._models.clear()
