"""Random and mutated YAML never produces a traceback: only line-numbered errors (exit 78)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeportrait.config import AppConfig, load_config
from edgeportrait.errors import ConfigError

# A config with every section, the seed that mutations start from.
SEED = """\
device_id: booth-1
camera:
  source: /dev/video0
  width: 1280
  height: 720
  fps: 30
model:
  name: general
  precision: int8
  device: AUTO
portrait:
  mode: blur
  blur: 50
mqtt:
  enabled: true
  host: localhost
  port: 1883
  topic_prefix: edgeportrait
  max_image_bytes: 262144
capture:
  output_dir: /tmp/captures
  interval_s: 0
health:
  interval_s: 10
"""

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=10).map(lambda b: b.decode("latin-1")),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _check(path: Path) -> None:
    """The one property: a valid AppConfig, or ConfigError whose every line names the file."""
    try:
        cfg = load_config(path)
    except ConfigError as e:
        assert e.lines, "an error without a message"
        for line in e.lines:
            assert line.startswith(str(path)), line
    else:
        assert isinstance(cfg, AppConfig)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_random_text_is_config_or_clean_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "random.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _check(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_config_is_config_or_clean_error(tmp_path: Path, data: st.DataObject) -> None:
    doc = yaml.safe_load(SEED)
    section = data.draw(st.sampled_from([None, *doc]))
    target = doc if section is None or not isinstance(doc[section], dict) else doc[section]
    key = data.draw(st.one_of(st.sampled_from(sorted(target)), st.text(max_size=12)))
    target[key] = data.draw(VALUES)
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _check(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(SEED)), junk=st.text(max_size=8))
def test_truncated_and_spliced_config_is_config_or_clean_error(tmp_path: Path, cut: int, junk: str) -> None:
    path = tmp_path / "spliced.yaml"
    path.write_bytes((SEED[:cut] + junk + SEED[cut:]).encode("utf-8", "surrogatepass"))
    _check(path)


def test_seed_is_valid_so_mutations_start_from_a_good_config(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    assert load_config(path).camera.width == 1280


def test_binary_and_huge_files_are_clean_errors(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"a: " + b"x" * (2 * 1024 * 1024))
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 100_000)
    for path in (binary, huge, deep):
        r = subprocess.run(
            [sys.executable, "-m", "edgeportrait", "config", "check", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 78, (path, r.stderr)
        assert "Traceback" not in r.stderr
        assert r.stderr.startswith(f"edgeportrait: {path}"), r.stderr
