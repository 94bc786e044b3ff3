"""Runs inside a venv with an installed Home Assistant (tests/test_discovery.py starts it).

Reads {"prefix": str, "messages": [[topic, payload], ...]} on stdin and prints one verdict per
message as JSON, taking each message through the steps of that Home Assistant's own
components/mqtt/discovery.py (async_discovery_message_received): the topic matcher, the list of
supported components, the abbreviations, the origin schema, then the platform's DISCOVERY_SCHEMA
(what entity setup validates). Written against 2024.3, whose discovery has no device messages.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import voluptuous as vol
from homeassistant.components.mqtt import discovery
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS, ORIGIN_ABBREVIATIONS
from homeassistant.const import __version__
from homeassistant.util import slugify


def _expand(d: dict[str, Any], table: dict[str, str]) -> None:
    for key in list(d):
        d[table.get(key, key)] = d.pop(key)


def verdict(prefix: str, topic: str, payload: str) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": topic}
    match = discovery.TOPIC_MATCHER.match(topic.replace(f"{prefix}/", "", 1))
    if not match:
        return out | {"verdict": "illegal_topic"}
    component, node_id, object_id = match.groups()
    out["discovery_id"] = f"{node_id} {object_id}" if node_id else object_id
    if component not in discovery.SUPPORTED_COMPONENTS:
        return out | {"verdict": "unsupported_component", "component": component}
    if not payload:
        return out | {"verdict": "removal"}
    config = json.loads(payload)
    _expand(config, ABBREVIATIONS)
    if isinstance(config.get("device"), dict):
        _expand(config["device"], DEVICE_ABBREVIATIONS)
    if "origin" in config:
        _expand(config["origin"], ORIGIN_ABBREVIATIONS)
        try:
            discovery.MQTT_ORIGIN_INFO_SCHEMA(config["origin"])
        except vol.Invalid as e:
            return out | {"verdict": "invalid", "error": f"origin: {e}"}
    config["platform"] = "mqtt"
    schema = importlib.import_module(f"homeassistant.components.mqtt.{component}").DISCOVERY_SCHEMA
    try:
        valid = schema(config)
    except vol.Invalid as e:
        return out | {"verdict": "invalid", "error": str(e)}
    out |= {
        "verdict": "ok",
        "component": component,
        "unique_id": valid.get("unique_id"),
        "dropped": sorted(set(config) - set(valid) - {"platform"}),
    }
    if "object_id" in valid:  # mixins.init_entity_id_from_config
        out["entity_id"] = f"{component}.{slugify(valid['object_id'])}"
    if "options" in valid:
        out["options"] = list(valid["options"])
    return out


def main() -> None:
    request = json.load(sys.stdin)
    verdicts = [verdict(request["prefix"], t, p) for t, p in request["messages"]]
    json.dump({"version": __version__, "verdicts": verdicts}, sys.stdout)


if __name__ == "__main__":
    main()
