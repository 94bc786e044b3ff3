"""Home Assistant MQTT discovery: the entities that describe this device.

Published (retained) after every connect and again whenever Home Assistant
announces ``online`` on ``<discovery.prefix>/status``, so a restarted Home
Assistant finds the device without the daemon restarting.

Two message shapes (docs/mqtt.md, "Home Assistant discovery", has the sources):

- ``device`` (the default): one message on ``<prefix>/device/<node>/config``
  carrying every entity under ``components``: what Home Assistant reads since
  2024.11. The per-entity topics that earlier versions of the daemon published
  are cleared first (an empty retained payload each), so a Home Assistant that
  knew the entities from them hands them over instead of keeping both.
- ``entities``: one message per entity on ``<prefix>/<platform>/<node>/<key>/config``,
  for Home Assistant before 2024.11, which does not read device messages.

The component keys of the device message are the ``<key>`` parts of the old
per-entity topics and its ``<node>`` is theirs, so both shapes give each entity
the same discovery id in Home Assistant (``"<node> <key>"``). That is what makes
the hand-over safe: Home Assistant queues the device message's entity behind
the removal that the clear of its old topic started, instead of racing it for
the same ``unique_id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal, get_args

from edgeportrait import __version__
from edgeportrait.config.portrait import MODES as PORTRAIT_MODES
from edgeportrait.config.portrait import PortraitConfig

Style = Literal["device", "entities"]

# every background mode, in the order the config declares them
MODES: tuple[str, ...] = PORTRAIT_MODES
# the modes that need nothing but the config's own values
ALWAYS_USABLE: tuple[str, ...] = tuple(m for m in MODES if m != "image")

# (platform, key) of every per-entity topic that daemons up to 0.1 published; cleared by the
# device style. A fixed list, not derived from the entities below: a new entity has no old topic.
LEGACY_ENTITIES: tuple[tuple[str, str], ...] = (
    ("camera", "portrait"),
    ("button", "capture"),
    ("sensor", "fps"),
    ("sensor", "inference_ms"),
    ("sensor", "status"),
    ("number", "blur"),
    ("select", "mode"),
)


def usable_modes(portrait_cfg: PortraitConfig) -> list[str]:
    """The background modes that work with this config: ``image`` only when a picture is configured.

    ``portrait.image`` cannot be changed at run time (docs/mqtt.md), so the list holds for the
    whole run; offering ``image`` without a picture made Home Assistant's choice end on ``B/error``.
    """
    return [m for m in MODES if m != "image" or portrait_cfg.image is not None]


def node_id(device_id: str) -> str:
    """The device id as Home Assistant accepts it in a discovery topic (``[a-zA-Z0-9_-]``)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", device_id)


def _legacy_node_id(device_id: str) -> str:
    # what daemons up to 0.1 put in their topics: str.isalnum() also let non-ASCII letters
    # through (topics Home Assistant refused); the clears must name the topics that were published
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in device_id)


def _slug(text: str) -> str:
    # Home Assistant slugifies the object part of an entity id the same way for ASCII text
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _entities(base: str, modes: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(platform, key, platform config) of every entity; keys are those of LEGACY_ENTITIES."""
    return [
        ("camera", "portrait", {"name": "Portrait", "topic": f"{base}/result/image"}),
        (
            "button",
            "capture",
            {"name": "Capture", "command_topic": f"{base}/capture", "payload_press": "{}", "icon": "mdi:camera"},
        ),
        (
            "sensor",
            "fps",
            {
                "name": "Pipeline fps",
                "state_topic": f"{base}/health",
                "value_template": "{{ value_json.pipeline.fps }}",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
            },
        ),
        (
            "sensor",
            "inference_ms",
            {
                "name": "Inference ms",
                "state_topic": f"{base}/health",
                "value_template": "{{ value_json.inference.ms_p50 }}",
                "unit_of_measurement": "ms",
                "state_class": "measurement",
            },
        ),
        (
            "sensor",
            "status",
            {"name": "Status", "state_topic": f"{base}/status", "icon": "mdi:lan-connect"},
        ),
        (
            "number",
            "blur",
            {
                "name": "Background blur",
                "command_topic": f"{base}/settings/set",
                "command_template": '{"portrait": {"blur": {{ value }}}}',
                "state_topic": f"{base}/settings/state",
                "value_template": "{{ value_json.portrait.blur }}",
                "min": 0,
                "max": 100,
                "step": 1,
                "mode": "slider",
            },
        ),
        (
            "select",
            "mode",
            {
                "name": "Background mode",
                "command_topic": f"{base}/settings/set",
                "command_template": '{"portrait": {"mode": "{{ value }}"}}',
                "state_topic": f"{base}/settings/state",
                "value_template": "{{ value_json.portrait.mode }}",
                "options": list(modes),
            },
        ),
    ]


def discovery_messages(
    prefix: str,
    base: str,
    device_id: str,
    *,
    modes: Sequence[str] = ALWAYS_USABLE,
    style: Style = "device",
    clear_legacy: bool = True,
) -> list[tuple[str, str]]:
    """(topic, payload) to publish retained, in this order; an empty payload clears an old topic.

    ``modes``: what the mode select offers, normally ``usable_modes(cfg.portrait)``. The default,
    the modes that work with any config, never offers one that would be refused.
    ``style``: ``"device"`` for Home Assistant 2024.11 and later, ``"entities"`` for older ones.
    ``clear_legacy`` (device style): begin with the clears of the old per-entity topics. Once Home
    Assistant holds the device message, it logs a warning ("conflicting MQTT discovery message")
    for each clear it receives again, so a publisher sends them once per start, not on every
    ``online`` of Home Assistant.
    """
    modes = list(modes)
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise ValueError(f"modes must be a non-empty subset of {list(MODES)}, got {modes}")
    if style not in get_args(Style):
        raise ValueError(f"style must be one of {list(get_args(Style))}, got {style!r}")

    node = node_id(device_id)
    uid = f"edgeportrait_{node}"
    device = {
        "identifiers": [uid],
        "name": f"edgeportrait {device_id}",
        "manufacturer": "edgeportrait",
        "model": "portrait camera",
        "sw_version": __version__,
    }
    # support_url is left out: the project has no public address to give
    origin = {"name": "edgeportrait", "sw_version": __version__}
    # B/status also says "stopped" after a clean stop: map it to unavailable
    availability = {
        "availability_topic": f"{base}/status",
        "availability_template": "{{ 'online' if value == 'online' else 'offline' }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }

    components: dict[str, dict[str, Any]] = {}
    for platform, key, cfg in _entities(base, modes):
        object_id = _slug(f"{uid}_{key}")
        component: dict[str, Any] = {
            "unique_id": f"{uid}_{key}",
            # what Home Assistant 2025.10 and later read to name the entity ...
            "default_entity_id": f"{platform}.{object_id}",
            # ... and what older ones read; 2025.10–2026.3 stay silent when both are there,
            # later ones drop object_id like any key they do not know
            "object_id": object_id,
            **cfg,
        }
        if key != "status":  # the status sensor must show "offline" itself
            component.update(availability)
        components[key] = {"platform": platform, **component}

    if style == "entities":
        return [
            (
                f"{prefix}/{c['platform']}/{node}/{key}/config",
                json.dumps({k: v for k, v in c.items() if k != "platform"} | {"device": device, "origin": origin}),
            )
            for key, c in components.items()
        ]

    legacy = _legacy_node_id(device_id)
    clears = [(f"{prefix}/{p}/{legacy}/{key}/config", "") for p, key in LEGACY_ENTITIES] if clear_legacy else []
    config = {"device": device, "origin": origin, "components": components}
    return [*clears, (f"{prefix}/device/{node}/config", json.dumps(config))]
