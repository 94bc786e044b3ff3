"""The YAML configuration: one typed model per section, errors mapped to YAML lines.

``load_config(path)`` returns a validated :class:`AppConfig` or raises
:class:`~edgeportrait.errors.ConfigError` whose lines read
``FILE:LINE: key.path: message`` — the CLI prints them and exits 78.
"""

from __future__ import annotations

import copy
import functools
import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError

from edgeportrait.config.base import Section
from edgeportrait.config.camera import CameraConfig
from edgeportrait.config.capture import CaptureConfig
from edgeportrait.config.health import HealthConfig
from edgeportrait.config.http import HttpConfig, PreviewConfig
from edgeportrait.config.model import ModelConfig
from edgeportrait.config.mqtt import MqttConfig
from edgeportrait.config.pipeline import PipelineConfig
from edgeportrait.config.portrait import PortraitConfig
from edgeportrait.errors import ConfigError
from edgeportrait.logsafe import redact

if TYPE_CHECKING:
    import reprlib

    import yaml

__all__ = [
    "AppConfig",
    "CameraConfig",
    "CaptureConfig",
    "HealthConfig",
    "HttpConfig",
    "ModelConfig",
    "MqttConfig",
    "PipelineConfig",
    "PortraitConfig",
    "PreviewConfig",
    "RUNTIME_SETTINGS",
    "load_config",
    "merge_settings",
    "validation_messages",
]

# A config is a few kB; this bound keeps parsing (pure-Python PyYAML without
# libyaml: ~10 s per MB on a small board) well under a second.
MAX_CONFIG_BYTES = 64 * 1024
# A config has ~100 values; aliases may repeat a few sections, never a million.
MAX_EXPANDED_NODES = 10_000
# PyYAML, difflib and reprlib are imported when a file is read or an error shown: `process` without
# a config file has no use for them (yaml is ~14 ms of its start-up after pydantic, measured in-process)


def _loader_class() -> type[yaml.SafeLoader]:
    """libyaml where it is there (10× faster, and it refuses deep nesting itself)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _default_device_id() -> str:
    return socket.gethostname().split(".")[0] or "edgeportrait"


class AppConfig(Section):
    device_id: str = Field(
        default_factory=_default_device_id,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="This device's name in MQTT topics (default: host name).",
    )
    state_dir: Path | None = Field(
        None, description="Persistent state (result sequence, spool); default $STATE_DIRECTORY or ~/.local/state."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    camera: CameraConfig = Field(default_factory=CameraConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    portrait: PortraitConfig = Field(default_factory=PortraitConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    preview: PreviewConfig = Field(default_factory=PreviewConfig)


# Settings that may change while the daemon runs (B/settings/set, per-capture
# overrides): section -> keys. Everything else needs a restart.
RUNTIME_SETTINGS: dict[str, frozenset[str]] = {
    # not portrait.image: a file path from the broker would let any client make
    # the daemon read (and publish, as a background) any picture it can open
    "portrait": frozenset(PortraitConfig.model_fields) - {"image"},
    "pipeline": frozenset({"max_fps", "segment_every"}),
    "model": frozenset({"name", "precision", "device"}),
    "capture": frozenset({"interval_s", "countdown_s", "jpeg_quality"}),
    "health": frozenset({"interval_s"}),
    "preview": frozenset(PreviewConfig.model_fields),
}

# Values never shown in an error message (the "(got …)" hint): they are secrets.
SECRET_KEYS = frozenset({"token"})


class _LineIndex:
    """Maps key paths of a YAML document to the line (1-based) they are on.

    An alias is the same node as its anchor: it is walked once, so the index
    costs one step per node in the file, however far aliases would expand.
    """

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self.duplicates: list[tuple[tuple[Any, ...], int]] = []

    def walk(self, root: yaml.Node, path: tuple[Any, ...]) -> None:
        import yaml

        seen: set[int] = set()
        todo: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, path)]
        while todo:  # iterative: nesting depth costs no stack
            node, path = todo.pop()
            self.lines.setdefault(path, node.start_mark.line + 1)
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.MappingNode):
                keys: set[Any] = set()
                for key_node, value_node in node.value:
                    key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                    if key in keys:
                        self.duplicates.append((path + (key,), key_node.start_mark.line + 1))
                    keys.add(key)
                    self.lines[path + (key,)] = key_node.start_mark.line + 1
                    todo.append((value_node, path + (key,)))
            elif isinstance(node, yaml.SequenceNode):
                todo.extend((item, path + (i,)) for i, item in enumerate(node.value))
        self.duplicates.sort(key=lambda d: d[1])

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many nodes the document has once aliases (and merge keys) are expanded, counted up to ``limit``.

    Memoised per node, so a billion-laughs document of nine nested aliases is
    counted in a few steps instead of being expanded.
    """
    import yaml

    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    todo = [root]
    while todo:  # post-order without recursion
        node = todo.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = -1
        order.append(node)
        if isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    for node in reversed(order):
        size = 1
        if isinstance(node, yaml.MappingNode):
            size += sum(sizes[id(n)] for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            size += sum(sizes[id(n)] for n in node.value)
        sizes[id(node)] = min(size, limit + 1)
    return sizes[id(root)]


@functools.cache
def _short_repr() -> reprlib.Repr:
    # a value shown in an error is a hint: a few items of a short prefix, however big the
    # value (an alias repeated thousands of times must not be turned into 200 MB of text)
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = 80
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 6
    r.maxlevel = 3
    return r


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """`` (did you mean 'softness'?)`` for a misspelt key, from the keys of its section."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    model: Any = AppConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
    known = list(getattr(model, "model_fields", {}))
    if not known:
        return ""
    import difflib

    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def validation_messages(err: ValidationError, where: str = "", index: _LineIndex | None = None) -> list[str]:
    """One readable line per pydantic error: ``where:LINE: key.path: message``."""
    out: list[tuple[int, str]] = []
    for e in err.errors(include_url=False):
        # pydantic puts the union/literal branch or a function name into loc; keep the key path
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        msg = e["msg"]
        if e["type"] == "value_error":
            # our own validators' words, without pydantic's "Value error, " in front
            msg = msg.removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(loc)
        elif e["type"] == "missing":
            msg = "required key missing"
        secret = bool(loc) and loc[-1] in SECRET_KEYS
        if (
            "input" in e
            and not secret
            and e["type"] not in ("extra_forbidden", "missing")
            and not isinstance(e["input"], dict)
        ):
            # a URL's user:password never reaches the terminal or the journal
            shown = redact(_short_repr().repr(e["input"]))
            msg = f"{msg} (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
        line = index.line_of(loc) if index else None
        prefix = f"{where}:{line}: " if where and line else (f"{where}: " if where else "")
        out.append((line or 0, f"{prefix}{_dotted(loc)}: {msg}"))
    return [text for _, text in sorted(out, key=lambda item: item[0])]


def parse_yaml(text: str, where: str) -> tuple[Any, _LineIndex]:
    """Parse YAML text, refusing duplicate keys and alias bombs; errors carry the file and line.

    The cost is bounded by the text's size: the document is composed once
    (libyaml when present), its size with aliases expanded is counted without
    expanding them and refused beyond ``MAX_EXPANDED_NODES``, and only then
    turned into Python objects.
    """
    import yaml

    index = _LineIndex()
    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            if _expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                raise ConfigError(
                    [f"{where}: its aliases (*name) expand to more than {MAX_EXPANDED_NODES} values; "
                     "not a config file"]
                )
            index.walk(node, ())
            if index.duplicates:
                raise ConfigError([f"{where}:{line}: {_dotted(p)}: duplicate key" for p, line in index.duplicates])
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError([f"{where}{line}: not valid YAML: {e.problem or e}"]) from None
    except (yaml.YAMLError, RecursionError, ValueError) as e:
        raise ConfigError([f"{where}: not valid YAML: {type(e).__name__}: {str(e)[:200]}"]) from None
    finally:
        loader.dispose()
    return data, index


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> AppConfig:
    """Read, parse and validate a config file (``None``: all defaults)."""
    data: Any = {}
    index = _LineIndex()
    where = str(path) if path is not None else ""
    if path is not None:
        raw = _read_config_bytes(Path(path), where)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError([f"{where}: not UTF-8 text (byte {e.start})"]) from None
        data, index = parse_yaml(text, where)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError([f"{where}:1: the top level must be a mapping of sections, not {type(data).__name__}"])
    if overrides:
        data = merge_settings(data, overrides)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(validation_messages(e, where, index)) from None


def _read_config_bytes(p: Path, where: str) -> bytes:
    """At most ``MAX_CONFIG_BYTES`` of a regular file; anything else is a ConfigError at once.

    A FIFO would block the open (or the read) forever and ``/dev/zero`` would
    never end: the type is checked before reading, the open does not wait for
    a writer, and no more than the limit + 1 bytes are ever read.
    """
    try:
        st = os.stat(p)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError([f"{where}: is a directory, not a config file"])
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError([f"{where}: not a regular file ({_file_kind(st.st_mode)}); a config is a YAML file"])
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced since the stat
                raise ConfigError([f"{where}: not a regular file; a config is a YAML file"])
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{where}: no such file"]) from None
    except PermissionError:
        raise ConfigError([f"{where}: permission denied"]) from None
    except OSError as e:
        raise ConfigError([f"{where}: cannot read: {e.strerror or e}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{where}: larger than {MAX_CONFIG_BYTES // 1024} KiB; not a config file"])
    return raw


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"


def merge_settings(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``changes`` into a copy of ``base`` (nested dicts merge, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
