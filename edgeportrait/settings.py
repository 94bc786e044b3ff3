"""The runtime settings: one owner, validated changes, consistent snapshots, subscribers.

``RuntimeSettings`` holds the running :class:`AppConfig`. Readers never see
half of a change: :meth:`RuntimeSettings.snapshot` returns one immutable
config, and a loop reads it once per turn, at a point where a change is safe
(the stream pipeline per frame, the interval timer per tick, a capture per
capture). Changes go through :meth:`RuntimeSettings.apply`, which merges them
into the current config, validates the whole config with the rules of the
start (``commands.apply_settings``), swaps the snapshot and tells the
subscribers, in the order they subscribed, while holding the lock (so two
changes reach every subscriber in the order they were made; subscribers must
return quickly).

The model is the one exception to "what was asked for runs": compiling one
takes seconds, so ``model`` in the snapshot is the model that *runs*, and
``wanted_model`` the one asked for last. A model subscriber
(``segment.swap.ModelSlot.request``) compiles in the background and calls
:meth:`RuntimeSettings.model_running` when it has switched.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeportrait.commands import apply_settings
from edgeportrait.config import AppConfig, ModelConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SettingsChange:
    old: AppConfig
    new: AppConfig  # what runs now (its model: the running one)
    wanted_model: ModelConfig  # the model asked for last
    command_id: str | None
    model_requested: bool = False  # this change asks for another model than the one asked for before


Subscriber = Callable[[SettingsChange], None]


class RuntimeSettings:
    def __init__(self, cfg: AppConfig) -> None:
        self._lock = threading.RLock()
        self._cfg = cfg
        self._wanted_model = cfg.model
        self._subscribers: list[Subscriber] = []

    def snapshot(self) -> AppConfig:
        """The settings in force now; never changed afterwards (a change makes a new object)."""
        return self._cfg

    @property
    def wanted_model(self) -> ModelConfig:
        return self._wanted_model

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn`` after every change; returns the unsubscribe function."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def validate(self, changes: dict[str, Any], command_id: str | None = None) -> AppConfig:
        """The config ``changes`` would make, validated; nothing changes (``CommandError`` if invalid)."""
        return apply_settings(self._cfg, changes, command_id)

    def apply(self, changes: dict[str, Any], command_id: str | None = None) -> AppConfig:
        """Validate and switch to the merged settings; ``CommandError`` (nothing changed) if invalid.

        A partial model change (``{"model": {"precision": "fp32"}}``) applies to the
        model asked for last, which may still be compiling.
        """
        with self._lock:
            old, before = self._cfg, self._wanted_model
            merged = apply_settings(old.model_copy(update={"model": before}), changes, command_id)
            self._wanted_model = merged.model
            self._cfg = merged.model_copy(update={"model": old.model})
            requested = merged.model.key() != before.key()
            logger.info("settings changed: %s", json.dumps(changes, default=str)[:500])
            self._notify(SettingsChange(old, self._cfg, merged.model, command_id, requested))
            return self._cfg

    def model_running(self, model: ModelConfig) -> None:
        """The model subscriber switched: ``model`` runs now."""
        with self._lock:
            old = self._cfg
            self._cfg = old.model_copy(update={"model": model})
            self._notify(SettingsChange(old, self._cfg, self._wanted_model, None))

    def _notify(self, change: SettingsChange) -> None:
        for fn in list(self._subscribers):
            try:
                fn(change)
            except Exception:  # one subscriber failing must not keep the change from the others
                logger.exception("settings subscriber %r failed", fn)
