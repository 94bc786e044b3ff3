"""Runs inside a venv with an installed Home Assistant (tests/test_discovery.py starts it).

Reads {"prefix": str, "messages": [[topic, payload], ...]} on stdin and prints one verdict per
message as JSON, taking each message through the steps of that Home Assistant's own
components/mqtt/discovery.py (async_discovery_message_received): the topic matcher, the list of
supported components, the abbreviations, the origin schema, for a device message (2024.11 and
later) _parse_device_payload with DEVICE_DISCOVERY_SCHEMA and the split into components, then
each platform's DISCOVERY_SCHEMA (what entity setup validates).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import tempfile
from typing import Any

import voluptuous as vol
from homeassistant.components.mqtt import discovery
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS, ORIGIN_ABBREVIATIONS
from homeassistant.const import __version__
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
from homeassistant.util import slugify


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


WARNINGS = _Warnings()
logging.getLogger("homeassistant.components.mqtt").addHandler(WARNINGS)


def _expand(d: dict[str, Any], table: dict[str, str]) -> None:
    for key in list(d):
        d[table.get(key, key)] = d.pop(key)


def _expand_all(config: dict[str, Any]) -> None:
    if hasattr(discovery, "_replace_all_abbreviations"):  # 2024.11 and later
        discovery._replace_all_abbreviations(config)
        return
    _expand(config, ABBREVIATIONS)  # 2024.3: inline in async_discovery_message_received
    if isinstance(config.get("device"), dict):
        _expand(config["device"], DEVICE_ABBREVIATIONS)
    if isinstance(config.get("origin"), dict):
        _expand(config["origin"], ORIGIN_ABBREVIATIONS)


def _platform(component: str, config: dict[str, Any]) -> dict[str, Any]:
    """The verdict of the platform's DISCOVERY_SCHEMA on one entity config."""
    if "origin" in config:
        try:
            discovery.MQTT_ORIGIN_INFO_SCHEMA(config["origin"])
        except vol.Invalid as e:
            return {"verdict": "invalid", "error": f"origin: {e}"}
    config["platform"] = "mqtt"
    schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
    try:
        valid = schema(config)
    except vol.Invalid as e:
        return {"verdict": "invalid", "error": str(e)}
    out: dict[str, Any] = {
        "verdict": "ok",
        "component": component,
        "unique_id": valid.get("unique_id"),
        "dropped": sorted(set(config) - set(valid) - {"platform"}),
    }
    if valid.get("default_entity_id"):  # 2025.10 and later: entity.py _init_entity_registry
        out["entity_id"] = f"{component}.{slugify(valid['default_entity_id'].partition('.')[2])}"
    elif "object_id" in valid:  # before: init_entity_id_from_config
        out["entity_id"] = f"{component}.{slugify(valid['object_id'])}"
    if "options" in valid:
        out["options"] = list(valid["options"])
    return out


def _device(payload: str, node_id: str | None, object_id: str) -> dict[str, Any]:
    if not payload:
        return {"verdict": "removal"}
    WARNINGS.lines.clear()
    parsed = discovery._parse_device_payload(None, payload, object_id, node_id)  # type: ignore[arg-type]
    if not parsed:
        return {"verdict": "invalid", "error": " | ".join(WARNINGS.lines)}
    components = {}
    for key, config in parsed["components"].items():  # as async_discovery_message_received does
        component = config.pop("platform")
        entity = discovery.MQTTDiscoveryPayload(config)
        if entity:
            entity["device"] = parsed["device"]
            entity["origin"] = parsed.get("origin")
            discovery._merge_common_device_options(entity, parsed)
        discovery_id = f"{object_id} {node_id} {key}" if node_id else f"{object_id} {key}"
        components[discovery_id] = _platform(component, dict(entity)) if entity else {"verdict": "removal"}
    return {"verdict": "ok", "components": components}


def verdict(prefix: str, topic: str, payload: str) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": topic}
    match = discovery.TOPIC_MATCHER.match(topic.replace(f"{prefix}/", "", 1))
    if not match:
        return out | {"verdict": "illegal_topic"}
    component, node_id, object_id = match.groups()
    out["discovery_id"] = f"{node_id} {object_id}" if node_id else object_id
    if component == "device" and hasattr(discovery, "_parse_device_payload"):
        return out | _device(payload, node_id, object_id)
    if component not in discovery.SUPPORTED_COMPONENTS:
        return out | {"verdict": "unsupported_component", "component": component}
    if not payload:
        return out | {"verdict": "removal"}
    config = json.loads(payload)
    _expand_all(config)
    return out | _platform(component, config)


async def _run(request: dict[str, Any]) -> list[dict[str, Any]]:
    # a bare instance, only so that templates in the schemas are made as HA makes them (with a
    # hass at hand; 2025.x refuses a template without one unless its frame helper is set up)
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        if hasattr(frame, "async_setup"):
            frame.async_setup(hass)
        return [verdict(request["prefix"], t, p) for t, p in request["messages"]]


def main() -> None:
    request = json.load(sys.stdin)
    verdicts = asyncio.run(_run(request))
    json.dump({"version": __version__, "verdicts": verdicts}, sys.stdout)


if __name__ == "__main__":
    main()
