"""The model in use, and the switch to another one at run time (``settings/set`` ``model.*``).

``ModelSlot`` holds the running :class:`Segmenter`. A stage borrows it for
one call with ``with slot.use() as seg:``; a model change is compiled by one
worker thread in the background while the old model keeps serving, then
swapped in, and the old model is closed (compiled model, infer requests and
their callback threads released) once the last stage that borrowed it has
given it back and its last request has ended.

Requests do not queue: the last one wins. A request that arrives while
another model is compiling replaces it; the compiled one is then dropped
unused if it is no longer what was asked for. A request for the model that
already runs cancels a pending switch. All models share one OpenVINO
``Core``, so a switch creates no new plugin (and no new plugin threads).
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openvino as ov

from edgeportrait.config import ModelConfig
from edgeportrait.health import percentile
from edgeportrait.segment.segmenter import Segmenter
from edgeportrait.settings import SettingsChange

logger = logging.getLogger(__name__)

OnSwapped = Callable[[ModelConfig], None]
OnFailed = Callable[[str | None, str], None]


def model_key(cfg: ModelConfig) -> tuple[str, str, str]:
    """What a model change changes: name, precision, device."""
    return cfg.key()


def describe(cfg: ModelConfig) -> str:
    return f"{cfg.name}/{cfg.precision} on {cfg.device}"


class ModelSlot:
    def __init__(self, cfg: ModelConfig, on_swapped: OnSwapped, on_failed: OnFailed) -> None:
        self._core = ov.Core()
        self._current = Segmenter(cfg, core=self._core)
        self._running = cfg
        self._on_swapped = on_swapped
        self._on_failed = on_failed
        self._cond = threading.Condition()
        self._users: dict[int, int] = {}  # id(segmenter) -> stages using it now
        self._wanted: tuple[ModelConfig, str | None] | None = None
        self._compiling: ModelConfig | None = None
        self._closed = False
        self.swaps = 0
        # compiled models alive: 1, or 2 from a compile until the model it replaced is released
        self.loaded = 1
        self._worker = threading.Thread(target=self._run, name="model-swap", daemon=True)
        self._worker.start()

    # -- for the stages ----------------------------------------------------------------

    @property
    def current(self) -> Segmenter:
        """The segmenter in use (for its name and figures; borrow it with :meth:`use` to run it)."""
        return self._current

    @contextmanager
    def use(self) -> Iterator[Segmenter]:
        """The segmenter in use, kept open until the ``with`` block ends."""
        with self._cond:
            seg = self._current
            self._users[id(seg)] = self._users.get(id(seg), 0) + 1
        try:
            yield seg
        finally:
            with self._cond:
                left = self._users[id(seg)] - 1
                if left:
                    self._users[id(seg)] = left
                else:
                    del self._users[id(seg)]
                    self._cond.notify_all()

    # -- model changes --------------------------------------------------------------------

    @property
    def running(self) -> ModelConfig:
        return self._running

    @property
    def target(self) -> ModelConfig:
        """The model the last request asked for (the running one when none is pending)."""
        with self._cond:
            if self._wanted is not None:
                return self._wanted[0]
            return self._compiling or self._running

    @property
    def switching_to(self) -> str | None:
        """The model being switched to, or None when what runs is what was asked for last."""
        target = self.target
        return None if model_key(target) == model_key(self._running) else describe(target)

    def request(self, cfg: ModelConfig, command_id: str | None = None) -> None:
        """Switch to ``cfg`` in the background; a later request replaces this one."""
        with self._cond:
            if self._closed:
                return
            self._wanted = (cfg, command_id)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted is not None or self._closed)
                if self._closed:
                    return
                assert self._wanted is not None
                cfg, cid = self._wanted
                self._wanted = None
                if model_key(cfg) == model_key(self._running):
                    continue  # the last request asks for what runs: nothing to switch
                self._compiling = cfg
            try:
                self._switch(cfg, cid)
            except Exception:  # the worker must outlive any one switch
                logger.exception("switching to %s failed", describe(cfg))
            finally:
                with self._cond:
                    self._compiling = None

    def _switch(self, cfg: ModelConfig, cid: str | None) -> None:
        logger.info("compiling %s", describe(cfg))
        try:
            seg = Segmenter(cfg, core=self._core)
        except Exception as e:
            self._on_failed(cid, str(e))
            return
        with self._cond:
            self.loaded += 1
        with self._cond:
            newer = self._wanted
            if self._closed or (newer is not None and model_key(newer[0]) != model_key(cfg)):
                superseded = True
            else:
                superseded = False
                if newer is not None:  # asked for again while compiling: this is it
                    self._wanted = None
                old, self._current, self._running = self._current, seg, cfg
                self.swaps += 1
        if superseded:
            logger.info("%s compiled but no longer wanted; dropped", describe(cfg))
            self._release(seg)
            return
        logger.info("model switched to %s %s on %s", seg.name, seg.precision, seg.device)
        self._on_swapped(cfg)
        self._release(old)

    def _release(self, seg: Segmenter, timeout: float | None = None) -> None:
        """Close ``seg`` once no stage uses it (its in-flight requests end in close)."""
        with self._cond:
            if not self._cond.wait_for(lambda: id(seg) not in self._users, timeout):
                logger.warning("closing model %s %s while still in use", seg.name, seg.precision)
        seg.close()
        gc.collect()
        with self._cond:
            self.loaded -= 1  # the Python wrappers of OpenVINO objects may sit in reference cycles

    def close(self, timeout: float = 10.0) -> None:
        """Stop switching (a compile in progress is awaited up to ``timeout``) and close the model."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout)
        self._release(self._current, timeout)

    def stats(self) -> dict[str, object]:
        """The ``inference`` section of health: the model in use and its figures."""
        seg = self._current
        lat = list(seg.latencies_ms)
        return {
            "device": seg.device,
            "precision": seg.precision,
            "precision_reason": seg.precision_reason,
            "model": seg.name,
            "ms_p50": percentile(lat, 50),
            "ms_p95": percentile(lat, 95),
            # devices passed over and why (absent, failed to compile, failed at run time)
            "fallbacks": list(seg.fallbacks[-5:]),
            # "general/fp32 on CPU" while a model change compiles, else null
            "switching_to": self.switching_to,
            "swaps": self.swaps,
            # compiled models in memory: 2 only while one is compiled or the one it replaced finishes
            "models_loaded": self.loaded,
        }

    def settings_changed(self, change: SettingsChange) -> None:
        """A ``RuntimeSettings`` subscriber: a change that asks for another model switches to it."""
        if change.model_requested:
            # the last request wins, also one for the model that runs (it cancels a pending switch)
            self.request(change.wanted_model, change.command_id)
