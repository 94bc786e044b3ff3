"""Home Assistant MQTT discovery: what the daemon announces, checked against Home Assistant's own rules.

Two checks, one per kind of Home Assistant:

- Installed Home Assistant validates every message itself: tests/ha_discovery_check.py runs in
  a separate venv that has it, never in the project's own. Two versions:
  2024.3.3, the newest that runs on Python 3.11 (no device messages), in EDGEPORTRAIT_HA_VENV
  (default .cache/havenv-2024.3.3, made by scripts/ha-venv.sh from the pins in
  tests/ha-2024.3.3-requirements.txt; scripts/test.sh runs it), and 2025.4.4, the newest that
  installs on Python 3.13 (device messages, no default_entity_id yet), only when
  EDGEPORTRAIT_HA2025_VENV names a venv that has it (made by hand: python3.13 -m venv DIR;
  DIR/bin/pip install homeassistant==2025.4.4 hass-nabucasa==0.94.0, less the Bluetooth pins
  pip backtracks over). Without them those tests are skipped, saying why.
- Current Home Assistant (2026.x) needs a newer Python than this machine has, so `check_device`
  and `check_entity` below encode the rules read from its source; each rule names where it comes
  from. docs/mqtt.md ("Home Assistant discovery") lists the sources and their versions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgeportrait.commands import apply_settings, parse_capture
from edgeportrait.config import AppConfig
from edgeportrait.config.portrait import PortraitConfig
from edgeportrait.publish.discovery import (
    ALWAYS_USABLE,
    LEGACY_ENTITIES,
    MODES,
    discovery_messages,
    usable_modes,
)

REPO = Path(__file__).resolve().parents[1]
PREFIX = "homeassistant"
BASE = "edgeportrait/booth-1"
# the entity ids Home Assistant gave the entities from daemons up to 0.1 (object_id
# "edgeportrait_booth-1_<key>", slugified): automations and dashboards name these
OLD_ENTITY_IDS = {f"{p}.edgeportrait_booth_1_{k}" for p, k in LEGACY_ENTITIES}
ALL_MODES = list(MODES)


def _messages(style: str = "device", modes: list[str] | None = None) -> list[tuple[str, str]]:
    return discovery_messages(PREFIX, BASE, "booth-1", modes=modes or ALL_MODES, style=style)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Current Home Assistant's rules, from home-assistant/core (2026.10 and later: the versions that
# import probatio directly in components/mqtt), homeassistant/components/mqtt/:
#   discovery.py  TOPIC_MATCHER; async_discovery_message_received (component "device" → device
#                 message; the device topic's object_id becomes each component's node_id and the
#                 component key its object_id); _replace_all_abbreviations (root, availability,
#                 origin, device, each component); _async_process_discovery_migration
#   schemas.py    DEVICE_DISCOVERY_SCHEMA (device, components, origin required; no other root keys
#                 but the availability ones and SHARED_OPTIONS), _COMPONENT_CONFIG_SCHEMA (platform
#                 in SUPPORTED_COMPONENTS), check_unique_id (unique_id required for entity
#                 platforms), MQTT_ENTITY_DEVICE_INFO_SCHEMA (identifiers or connections),
#                 MQTT_ORIGIN_INFO_SCHEMA (name required), MQTT_ENTITY_COMMON_SCHEMA (default_entity_id
#                 a string; object_id no longer listed, so REMOVE_EXTRA drops it)
#   entity.py     _init_entity_registry: the entity id is the platform plus the part of
#                 default_entity_id after the first "."
#   camera/button/sensor/number/select.py: the keys each platform requires (unchanged since 2024.3,
#                 where the HA test below validates them with Home Assistant itself)

TOPIC_MATCHER = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")
# the part of const.SUPPORTED_COMPONENTS this project could use; all are entity platforms
SUPPORTED_COMPONENTS = {"binary_sensor", "button", "camera", "image", "number", "select", "sensor", "switch", "text"}
# abbreviations.py: the ones that can appear in a message of ours, plus the device-discovery ones
ABBREVIATIONS = {
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "avty": "availability",
    "avty_mode": "availability_mode",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "stat_t": "state_topic",
    "val_tpl": "value_template",
    "uniq_id": "unique_id",
    "def_ent_id": "default_entity_id",
    "obj_id": "object_id",
    "ic": "icon",
    "unit_of_meas": "unit_of_measurement",
    "stat_cla": "state_class",
    "ops": "options",
    "pl_prs": "payload_press",
    "dev": "device",
    "o": "origin",
    "cmps": "components",
    "p": "platform",
    "t": "topic",
    "e": "encoding",
    "migr_discvry": "migrate_discovery",
}
DEVICE_ABBREVIATIONS = {
    "ids": "identifiers",
    "cns": "connections",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "hw": "hw_version",
    "sw": "sw_version",
    "sn": "serial_number",
    "sa": "suggested_area",
    "cu": "configuration_url",
    "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}
AVAILABILITY_KEYS = {
    "availability_topic",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "availability_mode",
    "availability",
}
SHARED_OPTIONS = AVAILABILITY_KEYS | {"command_topic", "encoding", "message_expiry_interval", "state_topic", "qos"}
DEVICE_ROOT_KEYS = SHARED_OPTIONS | {"device", "components", "origin"}
DEVICE_INFO_KEYS = {
    "identifiers",
    "connections",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "hw_version",
    "serial_number",
    "sw_version",
    "via_device",
    "suggested_area",
    "configuration_url",
}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
PLATFORM_REQUIRED = {
    "camera": {"topic"},
    "button": {"command_topic"},
    "sensor": {"state_topic"},
    "number": {"command_topic"},
    "select": {"command_topic", "options"},
}


class Rejected(Exception):
    """Current Home Assistant would refuse (or ignore) this discovery message."""


def _expand(d: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    return {table.get(k, k): v for k, v in d.items()}


def _check_origin(origin: Any) -> None:
    if not isinstance(origin, dict) or not isinstance(origin.get("name"), str):
        raise Rejected("origin needs a name")
    if set(origin) - ORIGIN_KEYS:
        raise Rejected(f"origin: unknown keys {sorted(set(origin) - ORIGIN_KEYS)}")
    if "support_url" in origin and not re.match(r"https?://", str(origin["support_url"])):
        raise Rejected("origin.support_url must be an http(s) URL")


def _check_device_info(device: Any) -> None:
    if not isinstance(device, dict) or not (device.get("identifiers") or device.get("connections")):
        raise Rejected("device must have identifiers or connections")
    if set(device) - DEVICE_INFO_KEYS:
        raise Rejected(f"device: unknown keys {sorted(set(device) - DEVICE_INFO_KEYS)}")


def _check_platform_config(platform: str, cfg: dict[str, Any]) -> None:
    if "availability_topic" in cfg and "availability" in cfg:
        raise Rejected("availability_topic and availability exclude each other")
    if missing := PLATFORM_REQUIRED.get(platform, set()) - set(cfg):
        raise Rejected(f"{platform}: missing {sorted(missing)}")
    if platform == "select" and not (isinstance(cfg["options"], list) and cfg["options"]):
        raise Rejected("select: options must be a non-empty list")
    if platform == "number" and not cfg.get("min", 1) < cfg.get("max", 100):
        raise Rejected("number: max must be > min")
    if "unique_id" in cfg and not isinstance(cfg["unique_id"], str):
        raise Rejected("unique_id must be a string")
    entity_id = cfg.get("default_entity_id")
    if entity_id is not None:
        if not isinstance(entity_id, str):
            raise Rejected("default_entity_id must be a string")
        # ours, stricter than Home Assistant (which keeps only the part after the "."): its docs
        # call it a full entity id, and a wrong domain is a bug in the publisher
        if entity_id.partition(".")[0] != platform:
            raise Rejected(f"default_entity_id {entity_id!r} is not a {platform} entity id")


def entity_id(platform: str, cfg: dict[str, Any]) -> str | None:
    """The entity id current Home Assistant gives a new entity (entity.py _init_entity_registry)."""
    if not cfg.get("default_entity_id"):
        return None  # named from the device and entity names instead
    return f"{platform}.{cfg['default_entity_id'].partition('.')[2]}"


def check_device(prefix: str, topic: str, payload: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """{discovery id: (platform, config)} of a device message as current Home Assistant reads it."""
    match = TOPIC_MATCHER.match(topic.removeprefix(f"{prefix}/"))
    if not topic.startswith(f"{prefix}/") or not match or match["component"] != "device":
        raise Rejected(f"not a device discovery topic: {topic}")
    if payload == "":
        return {}  # removal of every component
    root = json.loads(payload)
    if not isinstance(root, dict):
        raise Rejected("payload must be a JSON object")
    root = _expand(root, ABBREVIATIONS)
    if "migrate_discovery" in root:
        raise Rejected("a migration request, not a config")
    if unknown := set(root) - DEVICE_ROOT_KEYS:
        raise Rejected(f"unknown root keys {sorted(unknown)}")  # the schema has no extra=ALLOW
    for key in ("device", "origin", "components"):
        if key not in root:
            raise Rejected(f"{key} is required")
    device = _expand(root["device"], DEVICE_ABBREVIATIONS) if isinstance(root["device"], dict) else root["device"]
    _check_device_info(device)
    origin = _expand(root["origin"], ORIGIN_ABBREVIATIONS) if isinstance(root["origin"], dict) else root["origin"]
    _check_origin(origin)
    if not isinstance(root["components"], dict):
        raise Rejected("components must be a mapping")
    node, obj = match["node_id"], match["object_id"]
    found = {}
    for key, comp in root["components"].items():
        comp = _expand(comp, ABBREVIATIONS)
        platform = comp.pop("platform", None)
        if platform not in SUPPORTED_COMPONENTS:
            raise Rejected(f"component {key}: platform {platform!r} missing or not supported")
        if comp and not isinstance(comp.get("unique_id"), str):
            raise Rejected(f"component {key}: unique_id is required")
        if comp:  # a component with nothing but its platform is a removal
            comp |= {"device": device, "origin": origin}
            comp |= {o: root[o] for o in SHARED_OPTIONS if o in root and o not in comp}
            _check_platform_config(platform, comp)
        discovery_id = f"{obj} {node} {key}" if node else f"{obj} {key}"
        found[discovery_id] = (platform, comp)
    return found


def check_entity(prefix: str, topic: str, payload: str) -> tuple[str, str, dict[str, Any]]:
    """(discovery id, platform, config) of a per-entity message as current Home Assistant reads it."""
    match = TOPIC_MATCHER.match(topic.removeprefix(f"{prefix}/"))
    if not topic.startswith(f"{prefix}/") or not match or match["component"] not in SUPPORTED_COMPONENTS:
        raise Rejected(f"not an entity discovery topic: {topic}")
    discovery_id = f"{match['node_id']} {match['object_id']}" if match["node_id"] else match["object_id"]
    if payload == "":
        return discovery_id, match["component"], {}
    cfg = _expand(json.loads(payload), ABBREVIATIONS)
    if "origin" in cfg:
        cfg["origin"] = _expand(cfg["origin"], ORIGIN_ABBREVIATIONS)
        _check_origin(cfg["origin"])
    if "device" in cfg:
        cfg["device"] = _expand(cfg["device"], DEVICE_ABBREVIATIONS)
        _check_device_info(cfg["device"])
    _check_platform_config(match["component"], cfg)
    return discovery_id, match["component"], cfg


# --------------------------------------------------------------------------------------------
# the checker itself can fail


def _device_payload() -> dict[str, Any]:
    topic, payload = _messages()[-1]
    assert topic == f"{PREFIX}/device/booth-1/config"
    return json.loads(payload)


def _drop(path: str) -> Any:
    def change(d: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        del d[last]

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_drop("components.fps.platform"), "platform"),
        (_drop("origin"), "origin is required"),
        (_drop("origin.name"), "origin needs a name"),
        (_drop("device"), "device is required"),
        (_drop("device.identifiers"), "identifiers or connections"),
        (_drop("components.blur.unique_id"), "unique_id is required"),
        (_drop("components.portrait.topic"), "missing ['topic']"),
        (_drop("components.mode.options"), "missing ['options']"),
        (lambda d: d["components"]["fps"].update(platform="thermostat"), "not supported"),
        (lambda d: d.update(name="stray root key"), "unknown root keys"),
        (lambda d: d["components"]["mode"].update(options=[]), "non-empty"),
        (
            lambda d: d["components"]["fps"].update(default_entity_id="button.edgeportrait_booth_1_fps"),
            "not a sensor entity id",
        ),
    ],
)
def test_current_ha_checker_rejects_a_broken_device_message(change: Any, reason: str) -> None:
    """The checker of current HA's rules refuses a message missing `p`, `o`, a unique_id, … (it can fail)."""
    payload = _device_payload()
    check_device(PREFIX, f"{PREFIX}/device/booth-1/config", json.dumps(payload))  # intact: accepted
    change(payload)
    with pytest.raises(Rejected, match=re.escape(reason)):
        check_device(PREFIX, f"{PREFIX}/device/booth-1/config", json.dumps(payload))


def test_current_ha_checker_reads_abbreviations_like_home_assistant() -> None:
    """`p`, `o`, `dev`, `cmps`, `uniq_id`, `def_ent_id` are HA's abbreviations: an abbreviated message passes."""
    msg = {
        "dev": {"ids": ["x1"], "name": "X"},
        "o": {"name": "x2mqtt", "sw": "1.0"},
        "cmps": {"t": {"p": "sensor", "uniq_id": "x1_t", "stat_t": "x/state", "def_ent_id": "sensor.x_t"}},
    }
    found = check_device(PREFIX, f"{PREFIX}/device/x1/config", json.dumps(msg))
    platform, cfg = found["x1 t"]
    assert platform == "sensor" and entity_id(platform, cfg) == "sensor.x_t"


# --------------------------------------------------------------------------------------------
# what the daemon publishes


def test_device_style_is_one_device_message_that_current_ha_accepts() -> None:
    """Default style: one device message (dev, o, cmps with p and unique_id) that current HA's rules accept."""
    msgs = _messages()
    configs = [(t, p) for t, p in msgs if p]
    assert len(configs) == 1
    found = check_device(PREFIX, *configs[0])
    assert len(found) == 7
    assert {entity_id(p, c) for p, c in found.values()} == OLD_ENTITY_IDS
    assert len({c["unique_id"] for _, c in found.values()}) == 7
    origin = json.loads(configs[0][1])["origin"]
    assert origin["name"] == "edgeportrait" and origin["sw_version"]


def test_device_style_clears_the_old_per_entity_topics_first() -> None:
    """The topics daemons up to 0.1 published get an empty (retained) payload, before the device message.

    Each cleared topic has the discovery id of one component of the device message, so HA queues the
    new component behind the removal of the old entity instead of refusing a second unique_id.
    """
    msgs = _messages()
    old = {f"{PREFIX}/{p}/booth-1/{k}/config" for p, k in LEGACY_ENTITIES}
    clears = [t for t, p in msgs if p == ""]
    assert set(clears) == old and len(clears) == len(old)
    assert msgs[-1][0] == f"{PREFIX}/device/booth-1/config"  # after every clear
    cleared_ids = {check_entity(PREFIX, t, "")[0] for t in clears}
    assert cleared_ids == set(check_device(PREFIX, *msgs[-1]))


def test_clears_can_be_left_out() -> None:
    """clear_legacy=False: the device message alone (for republishing when Home Assistant restarts)."""
    msgs = discovery_messages(PREFIX, BASE, "booth-1", modes=ALL_MODES, clear_legacy=False)
    assert msgs == _messages()[-1:]


def test_entities_style_is_one_message_per_entity_that_current_ha_accepts() -> None:
    """Style `entities`: the seven per-entity topics of before, with default_entity_id and object_id."""
    msgs = _messages("entities")
    assert {t for t, _ in msgs} == {f"{PREFIX}/{p}/booth-1/{k}/config" for p, k in LEGACY_ENTITIES}
    checked = [check_entity(PREFIX, t, p) for t, p in msgs]
    assert {entity_id(platform, cfg) for _, platform, cfg in checked} == OLD_ENTITY_IDS
    for _, platform, cfg in checked:
        # object_id for HA before 2025.10: the same entity id as default_entity_id
        assert f"{platform}.{cfg['object_id']}" == cfg["default_entity_id"]
        assert cfg["origin"]["name"] == "edgeportrait" and cfg["device"]["identifiers"]
    assert all(p for _, p in msgs)  # nothing cleared: these are the topics it publishes


@pytest.mark.parametrize("style", ["device", "entities"])
def test_entities_point_at_the_device_topics(style: str) -> None:
    """Camera on B/result/image, capture button on B/capture, blur/mode via settings/set, in both shapes."""
    if style == "device":
        comps = json.loads(_messages()[-1][1])["components"]
    else:
        comps = {t.split("/")[-2]: json.loads(p) for t, p in _messages("entities")}
    assert comps["portrait"]["topic"] == f"{BASE}/result/image"
    assert comps["capture"]["command_topic"] == f"{BASE}/capture"
    parse_capture(comps["capture"]["payload_press"].encode())  # what the button sends is a valid capture
    sent = comps["blur"]["command_template"].replace("{{ value }}", "30")
    assert apply_settings(AppConfig(), json.loads(sent)).portrait.blur == 30
    sent = comps["mode"]["command_template"].replace("{{ value }}", "grayscale")
    assert apply_settings(AppConfig(), json.loads(sent)).portrait.mode == "grayscale"
    assert "availability_topic" not in comps["status"]  # it shows "offline" itself
    assert comps["fps"]["availability_topic"] == f"{BASE}/status"


def test_mode_select_offers_image_only_with_a_background_picture(tmp_path: Path) -> None:
    """No portrait.image: the select offers blur/grayscale/color; with one configured, image too."""
    assert usable_modes(PortraitConfig()) == ["blur", "grayscale", "color"]
    picture = tmp_path / "beach.jpg"
    picture.write_bytes(b"\xff\xd8 not decoded by the config check")
    with_picture = PortraitConfig(image=picture)
    assert usable_modes(with_picture) == ["blur", "grayscale", "color", "image"]
    for cfg, offered in ((PortraitConfig(), False), (with_picture, True)):
        for style in ("device", "entities"):
            msgs = discovery_messages(PREFIX, BASE, "booth-1", modes=usable_modes(cfg), style=style)  # type: ignore[arg-type]
            if style == "device":
                options = json.loads(msgs[-1][1])["components"]["mode"]["options"]
            else:
                options = json.loads(dict(msgs)[f"{PREFIX}/select/booth-1/mode/config"])["options"]
            assert ("image" in options) is offered and "blur" in options


def test_every_offered_mode_is_accepted_by_settings_set(tmp_path: Path) -> None:
    """Picking any offered option sends a settings/set the daemon accepts (the bug: `image` was refused)."""
    picture = tmp_path / "beach.jpg"
    picture.write_bytes(b"x")
    for cfg in (AppConfig(), AppConfig(portrait=PortraitConfig(image=picture))):
        comp = json.loads(discovery_messages(PREFIX, BASE, "b", modes=usable_modes(cfg.portrait))[-1][1])
        mode = comp["components"]["mode"]
        for option in mode["options"]:
            sent = json.loads(mode["command_template"].replace("{{ value }}", option))
            assert apply_settings(cfg, sent).portrait.mode == option


def test_default_modes_never_offer_image() -> None:
    """Without modes= the select offers only the modes that work with any config."""
    comp = json.loads(discovery_messages(PREFIX, BASE, "b")[-1][1])
    assert comp["components"]["mode"]["options"] == list(ALWAYS_USABLE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modes": []}, "non-empty"),
        ({"modes": ["blur", "sepia"]}, "sepia"),
        ({"style": "yaml"}, "style"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        discovery_messages(PREFIX, BASE, "b", **kwargs)


def test_a_device_id_outside_ha_topic_characters_gives_legal_topics() -> None:
    """`[a-zA-Z0-9_-]` only in topics (HA's TOPIC_MATCHER); the clears still name what was published."""
    msgs = discovery_messages(PREFIX, "edgeportrait/booth é.1", "booth é.1", modes=ALL_MODES)
    assert msgs[-1][0] == f"{PREFIX}/device/booth___1/config"
    check_device(PREFIX, *msgs[-1])
    assert f"{PREFIX}/camera/booth_é_1/portrait/config" in {t for t, _ in msgs[:-1]}


# --------------------------------------------------------------------------------------------
# Home Assistant itself: 2024.3.3 (entities only) and 2025.4.4 (device messages, before default_entity_id)

HA_VENVS = {
    "2024.3.3": Path(os.environ.get("EDGEPORTRAIT_HA_VENV", REPO / ".cache" / "havenv-2024.3.3")),
    "2025.4.4": Path(os.environ.get("EDGEPORTRAIT_HA2025_VENV", REPO / ".cache" / "havenv-2025.4.4")),
}


def _ha(version: str, messages: list[tuple[str, str]]) -> list[dict[str, Any]]:
    python = HA_VENVS[version] / "bin" / "python"
    if not python.exists():
        pytest.skip(
            f"no Home Assistant {version} venv at {python.parent.parent} "
            "(scripts/ha-venv.sh makes the 2024.3.3 one; recipes in this module's docstring)"
        )
    request = json.dumps({"prefix": PREFIX, "messages": messages})
    done = subprocess.run(
        [str(python), str(Path(__file__).with_name("ha_discovery_check.py"))],
        input=request,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["version"] == version
    return answer["verdicts"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", list(HA_VENVS))
def test_ha_accepts_every_entities_style_message(version: str) -> None:
    """HA's own schemas take all seven per-entity configs; object_id names them as before."""
    verdicts = _ha(version, _messages("entities"))
    assert [v["verdict"] for v in verdicts] == ["ok"] * 7, verdicts
    assert {v["entity_id"] for v in verdicts} == OLD_ENTITY_IDS
    assert all(v["dropped"] == ["default_entity_id"] for v in verdicts)  # unknown before 2025.10, ignored
    (select,) = [v for v in verdicts if v["component"] == "select"]
    assert select["options"] == ALL_MODES


def test_ha_2024_3_does_not_read_device_messages() -> None:
    """HA 2024.3 has no device discovery: it would only remove the old entities. Hence style="entities"."""
    verdicts = _ha("2024.3.3", _messages("device"))
    assert [v["verdict"] for v in verdicts] == ["removal"] * 7 + ["unsupported_component"]


def test_ha_2025_4_takes_the_device_message_in_place_of_the_cleared_topics() -> None:
    """HA 2025.4's own device discovery accepts the message; its components have the cleared topics' ids."""
    *clears, device = _ha("2025.4.4", _messages("device"))
    assert [v["verdict"] for v in clears] == ["removal"] * 7
    assert device["verdict"] == "ok", device
    components = device["components"]
    assert [c["verdict"] for c in components.values()] == ["ok"] * 7, components
    assert set(components) == {v["discovery_id"] for v in clears}
    # no default_entity_id yet in 2025.4: object_id keeps the entity ids
    assert {c["entity_id"] for c in components.values()} == OLD_ENTITY_IDS


@pytest.mark.parametrize("version", list(HA_VENVS))
def test_ha_check_can_fail(version: str) -> None:
    """HA itself refuses a camera config without `topic` and does not read an unknown platform."""
    topic, payload = next(m for m in _messages("entities") if "/camera/" in m[0])
    broken = {k: v for k, v in json.loads(payload).items() if k != "topic"}
    verdicts = _ha(version, [(topic, json.dumps(broken)), (f"{PREFIX}/thermostat/booth-1/x/config", "{}")])
    assert verdicts[0]["verdict"] == "invalid" and "topic" in verdicts[0]["error"]
    assert verdicts[1]["verdict"] == "unsupported_component"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_drop("origin"), "origin"),
        (_drop("components.fps.platform"), "platform"),
        (_drop("components.blur.unique_id"), "unique_id"),
    ],
)
def test_ha_2025_4_refuses_a_broken_device_message(change: Any, reason: str) -> None:
    """HA 2025.4's DEVICE_DISCOVERY_SCHEMA refuses a device message without `o`, a `p` or a unique_id."""
    payload = _device_payload()
    change(payload)
    (verdict,) = _ha("2025.4.4", [(f"{PREFIX}/device/booth-1/config", json.dumps(payload))])
    assert verdict["verdict"] == "invalid" and reason in verdict["error"], verdict
