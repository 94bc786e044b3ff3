"""`http:` and `preview:`: the kiosk's config sections, the token rules and what may change at run time."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edgeportrait.config import RUNTIME_SETTINGS, AppConfig, load_config, merge_settings
from edgeportrait.errors import ConfigError, FatalError
from edgeportrait.web import read_token

TOKEN = "Zq8-secret_token.value~0123456789"


def _load(tmp_path: Path, text: str) -> AppConfig:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return load_config(p)


def test_defaults_serve_nothing_and_preview_is_720p30() -> None:
    cfg = AppConfig()
    assert not cfg.http.enabled and cfg.http.host == "127.0.0.1" and cfg.http.port == 8080
    assert cfg.http.max_viewers == 5 and cfg.http.token is None
    p = cfg.preview
    assert (p.width, p.height, p.max_fps, p.jpeg_quality, p.review_s) == (1280, 720, 30, 80, 5)


def test_a_network_address_without_a_token_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, "device_id: b\nhttp:\n  enabled: true\n  host: 0.0.0.0\n")
    assert e.value.lines == [
        f"{tmp_path / 'c.yaml'}:2: http: http.host 0.0.0.0 is reachable from the network: set http.token_file "
        "(or http.token) so that only those who know the token see the camera and trigger captures, "
        "or listen on 127.0.0.1"
    ]
    assert _load(tmp_path, f"http: {{host: 0.0.0.0, token: {TOKEN}}}\n").http.host == "0.0.0.0"
    assert _load(tmp_path, "http: {host: '::', token_file: kiosk-token}\n").http.token_file == Path("kiosk-token")


@pytest.mark.parametrize("bad", ["short", "has space in it 0123456789", "quote'quote'quote'quote", "x" * 300])
def test_a_bad_token_is_refused_without_being_shown(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, f"http:\n  token: \"{bad}\"\n")
    assert "http.token" in str(e.value) and bad not in str(e.value)


def test_token_and_token_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        _load(tmp_path, f"http: {{token: {TOKEN}, token_file: /etc/t}}\n")


def test_the_token_never_appears_in_dumps_or_repr(tmp_path: Path) -> None:
    cfg = _load(tmp_path, f"http: {{token: {TOKEN}}}\n")
    assert TOKEN not in repr(cfg) and TOKEN not in cfg.model_dump_json()
    assert read_token(cfg.http) == TOKEN


def test_token_file_is_read_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kiosk-token").write_text(TOKEN + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = _load(tmp_path, "http: {host: 0.0.0.0, token_file: kiosk-token}\n")
    assert read_token(cfg.http) == TOKEN
    (tmp_path / "kiosk-token").write_text("weak\n")
    with pytest.raises(FatalError, match="token_file"):
        read_token(cfg.http)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "nowhere"))
    with pytest.raises(FatalError, match="cannot read"):
        read_token(cfg.http)


def _changed(changes: dict[str, object]) -> AppConfig:
    """A settings change validated as settings/set does it: merged into the config, the whole re-validated."""
    return AppConfig.model_validate(merge_settings(AppConfig().model_dump(), changes))


def test_preview_changes_at_run_time_http_does_not() -> None:
    """settings/set may change every preview key (checked like at start); http: needs a restart."""
    assert RUNTIME_SETTINGS["preview"] == {"width", "height", "max_fps", "jpeg_quality", "review_s"}
    assert "http" not in RUNTIME_SETTINGS
    new = _changed({"preview": {"max_fps": 12, "review_s": 0}})
    assert new.preview.max_fps == 12 and new.preview.review_s == 0
    with pytest.raises(ValidationError):
        _changed({"preview": {"max_fps": 0}})


def test_the_kiosk_screen_user_unit_verifies(tmp_path: Path) -> None:
    """systemd/edgeportrait-kiosk.service passes `systemd-analyze verify --user`; it opens the page in kiosk mode."""
    import shutil
    import subprocess

    unit = Path(__file__).resolve().parent.parent / "systemd" / "edgeportrait-kiosk.service"
    text = unit.read_text()
    assert "--kiosk" in text and "Environment=KIOSK_URL=http://127.0.0.1:8080/" in text
    assert "WantedBy=graphical-session.target" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None or not Path("/usr/bin/chromium").exists():
        pytest.skip("systemd-analyze or /usr/bin/chromium (ExecStart) is not installed")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run(
        [analyze, "verify", "--user", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)},
    )
    complaints = [ln for ln in (proc.stdout + proc.stderr).splitlines() if unit.name in ln]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr
