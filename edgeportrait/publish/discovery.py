"""Home Assistant MQTT discovery: the entities that describe this device.

Published (retained) after every connect and again whenever Home Assistant
announces ``online`` on ``<discovery.prefix>/status``, so a restarted Home
Assistant finds the device without the daemon restarting.
"""

from __future__ import annotations

import json
from typing import Any

from edgeportrait import __version__

MODES = ["blur", "grayscale", "color", "image"]


def discovery_messages(discovery_prefix: str, base: str, device_id: str) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity: camera, capture button, sensors, blur number, mode select."""
    node = "".join(c if c.isalnum() or c in "_-" else "_" for c in device_id)
    uid = f"edgeportrait_{node}"
    device = {
        "identifiers": [uid],
        "name": f"edgeportrait {device_id}",
        "manufacturer": "edgeportrait",
        "model": "portrait camera",
        "sw_version": __version__,
    }
    # B/status also says "stopped" after a clean stop: map it to unavailable
    availability = {
        "availability_topic": f"{base}/status",
        "availability_template": "{{ 'online' if value == 'online' else 'offline' }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
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
                "options": MODES,
            },
        ),
    ]
    out = []
    for component, object_id, cfg in entities:
        payload = {"unique_id": f"{uid}_{object_id}", "object_id": f"{uid}_{object_id}", "device": device, **cfg}
        if object_id != "status":  # the status sensor must show "offline" itself
            payload.update(availability)
        out.append((f"{discovery_prefix}/{component}/{node}/{object_id}/config", json.dumps(payload)))
    return out
