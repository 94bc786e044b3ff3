"""Frame sources: orientation, fitting, pacing, image folders, video files, picamera2, source selection."""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import sys
import types
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeportrait.capture import CameraError, SourceEnded, create_source, fit, orient
from edgeportrait.capture import factory as factory_mod
from edgeportrait.capture.base import Pacer
from edgeportrait.capture.folder import ImageFolderSource
from edgeportrait.capture.opencv import StreamSource, V4L2Source, VideoFileSource
from edgeportrait.capture.picam import OPENCV_BGR_FORMAT, Picamera2Source
from edgeportrait.config.camera import CameraConfig
from edgeportrait.logsafe import redact

DATA = Path(__file__).parent / "data"


def cfg(**kw: object) -> CameraConfig:
    base: dict[str, object] = {"width": 80, "height": 64, "fps": 200}
    base.update(kw)
    return CameraConfig.model_validate(base)


def marker_image(w: int = 64, h: int = 48) -> np.ndarray:
    """Black image with a red top-left and a green top-right pixel block (to see where corners go)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:4, :4] = (0, 0, 255)
    img[:4, -4:] = (0, 255, 0)
    return img


def solid(value: int, w: int = 80, h: int = 64) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    path.write_bytes(buf.tobytes())


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG that declares enormous dimensions (30 GB decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- orientation and fitting ----------------------------------------------------------------


def test_rotate_90_is_clockwise_and_swaps_the_size() -> None:
    img = marker_image()
    out = orient(img, 90, "none")
    assert out.shape == (64, 48, 3)
    np.testing.assert_array_equal(out, np.rot90(img, k=-1))
    # clockwise: the red top-left corner ends up top-right
    assert tuple(out[0, -1]) == (0, 0, 255)


@pytest.mark.parametrize(
    ("rotate", "flip", "reference"),
    [
        (0, "none", lambda a: a),
        (180, "none", lambda a: a[::-1, ::-1]),
        (270, "none", lambda a: np.rot90(a, k=1)),
        (0, "horizontal", lambda a: a[:, ::-1]),
        (0, "vertical", lambda a: a[::-1, :]),
        (0, "both", lambda a: a[::-1, ::-1]),
        (90, "horizontal", lambda a: np.rot90(a, k=-1)[:, ::-1]),
    ],
)
def test_orientation_rotates_first_then_mirrors(rotate: int, flip: str, reference) -> None:  # type: ignore[no-untyped-def]
    img = marker_image()
    np.testing.assert_array_equal(orient(img, rotate, flip), reference(img))


def test_fit_contain_keeps_the_whole_picture_with_bars() -> None:
    img = solid(200, 100, 100)
    out = fit(img, 200, 100, "contain")
    assert out.shape == (100, 200, 3)
    assert out[:, :50].max() == 0 and out[:, 150:].max() == 0  # bars left and right
    assert out[:, 50:150].min() == 200


def test_fit_cover_fills_and_crops_the_centre() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:20] = 255  # a white top band that the crop to 2:1 (rows 25..75 kept) must cut away
    out = fit(img, 200, 100, "cover")
    assert out.shape == (100, 200, 3)
    assert out.max() == 0


def test_fit_stretch_changes_the_aspect() -> None:
    out = fit(solid(7, 10, 10), 40, 20, "stretch")
    assert out.shape == (20, 40, 3) and out.min() == out.max() == 7


# --- pacing ------------------------------------------------------------------------------


class _Clock:
    """A fake monotonic clock and a cancel event whose wait() advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wait(self, delay: float) -> bool:
        self.waits.append(delay)
        self.now += delay
        return False

    def is_set(self) -> bool:
        return False


def test_pacer_spaces_frames_one_period_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr("edgeportrait.capture.base.time", clock)
    pacer = Pacer(10)
    for _ in range(5):
        assert pacer.wait(clock)  # type: ignore[arg-type]
    # the first frame at once, then one every 0.1 s
    assert clock.waits == pytest.approx([0.1] * 4)


def test_pacer_does_not_burst_after_a_slow_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr("edgeportrait.capture.base.time", clock)
    pacer = Pacer(10)
    pacer.wait(clock)  # type: ignore[arg-type]
    clock.now += 5.0  # the consumer was busy for 50 frame periods
    pacer.wait(clock)  # type: ignore[arg-type]
    pacer.wait(clock)  # type: ignore[arg-type]
    # no backlog of instant frames: the next one is again a full period later
    assert clock.waits == pytest.approx([0.1])


# --- image folders --------------------------------------------------------------------------


def test_folder_source_plays_images_in_name_order_fitted_and_oriented(tmp_path: Path) -> None:
    for name, value in [("b.png", 20), ("a.png", 10), ("c.png", 30)]:
        write_png(tmp_path / name, solid(value, 32, 32))
    (tmp_path / "notes.txt").write_text("not a picture")
    src = create_source(cfg(source=str(tmp_path), rotate=90))
    assert isinstance(src, ImageFolderSource)
    src.open()
    frames = [src.read() for _ in range(3)]
    src.close()
    # 32x32 contained in 80x64 → a 64x64 picture between bars, then rotated to 64 wide, 80 high
    assert all(f.image.shape == (80, 64, 3) for f in frames)
    assert [int(f.image[40, 32, 0]) for f in frames] == [10, 20, 30]
    assert [int(f.image[2, 32, 0]) for f in frames] == [0, 0, 0]  # the bars, now top and bottom
    assert [f.index for f in frames] == [1, 2, 3]
    assert frames[0].ts < frames[1].ts < frames[2].ts


def test_folder_source_loops_when_loop_is_on(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", solid(10))
    write_png(tmp_path / "b.png", solid(20))
    src = ImageFolderSource(cfg(loop=True), tmp_path)
    src.open()
    values = [int(src.read().image[0, 0, 0]) for _ in range(5)]
    src.close()
    assert values == [10, 20, 10, 20, 10]


def test_folder_source_ends_when_loop_is_off(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", solid(10))
    src = ImageFolderSource(cfg(loop=False), tmp_path)
    src.open()
    src.read()
    with pytest.raises(SourceEnded, match="end of folder"):
        src.read()


def test_folder_source_hands_out_copies_so_consumers_cannot_damage_the_cache(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", solid(10))
    src = ImageFolderSource(cfg(), tmp_path)
    src.open()
    src.read().image[:] = 255  # a consumer drawing on its frame
    assert src.read().image.max() == 10


def _bad_files(folder: Path) -> dict[str, str]:
    good = cv2.imencode(".jpg", solid(90))[1].tobytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "text.png").write_bytes(b"hello, I am not a picture\n" * 10)
    (folder / "bomb.png").write_bytes(png_bomb())
    return {
        "empty.png": "empty file",
        "truncated.jpg": "not a readable image",
        "text.png": "not a readable image",
        "bomb.png": "too large",
    }


def test_folder_source_skips_unusable_files_with_one_warning_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _bad_files(tmp_path)
    write_png(tmp_path / "zz-good.png", solid(90))
    src = ImageFolderSource(cfg(), tmp_path)
    with caplog.at_level(logging.WARNING, logger="edgeportrait.capture.folder"):
        src.open()
        values = [int(src.read().image[0, 0, 0]) for _ in range(4)]
    src.close()
    assert values == [90] * 4  # every frame is the one good picture, through several passes
    warnings = [r.getMessage() for r in caplog.records]
    for name, reason in expected.items():
        hits = [w for w in warnings if name in w]
        assert len(hits) == 1, (name, warnings)  # warned once, not once per pass
        assert reason in hits[0]


def test_folder_with_only_unusable_files_fails_to_open_with_a_clear_error(tmp_path: Path) -> None:
    _bad_files(tmp_path)
    with pytest.raises(CameraError, match=r"no readable images in folder \(4 skipped\)"):
        ImageFolderSource(cfg(), tmp_path).open()


def test_empty_folder_fails_to_open(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no images in folder"):
        ImageFolderSource(cfg(), tmp_path).open()


def test_folder_source_notices_new_pictures_on_the_next_pass(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", solid(10))
    src = ImageFolderSource(cfg(), tmp_path)
    src.open()
    assert int(src.read().image[0, 0, 0]) == 10
    write_png(tmp_path / "b.png", solid(20))
    assert [int(src.read().image[0, 0, 0]) for _ in range(2)] == [10, 20]


def test_a_decompression_bomb_in_a_folder_costs_bounded_memory(tmp_path: Path) -> None:
    """Reading a folder of bombs must not allocate the 30 GB they declare (peak RSS, fresh process)."""
    (tmp_path / "bomb.png").write_bytes(png_bomb())
    write_png(tmp_path / "ok.png", solid(5))
    code = f"""
import json, resource
from edgeportrait.capture.folder import ImageFolderSource
from edgeportrait.config.camera import CameraConfig
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
src = ImageFolderSource(CameraConfig(width=80, height=64, fps=200), {str(tmp_path)!r})
src.open()
for _ in range(6):
    src.read()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"growth_kb": after - before}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    growth_mb = json.loads(out.stdout.strip().splitlines()[-1])["growth_kb"] / 1024
    assert growth_mb < 64, growth_mb


# --- video files -----------------------------------------------------------------------------


def write_video(path: Path, values: list[int], size: tuple[int, int] = (80, 64)) -> None:
    """An MJPG .avi (works in opencv-python-headless without extra codecs), one grey level per frame."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (w, h))
    assert writer.isOpened()
    for v in values:
        writer.write(np.full((h, w, 3), v, np.uint8))
    writer.release()


def grey(frame_image: np.ndarray) -> int:
    return int(round(float(frame_image.mean())))


def test_video_file_source_plays_frames_in_order_and_loops(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, [40, 120, 200])
    src = create_source(cfg(source=str(video), loop=True))
    assert isinstance(src, VideoFileSource)
    src.open()
    values = [grey(src.read().image) for _ in range(7)]
    src.close()
    expected = [40, 120, 200, 40, 120, 200, 40]
    assert all(abs(v - e) <= 3 for v, e in zip(values, expected, strict=True)), values  # JPEG is lossy


def test_video_file_source_ends_when_loop_is_off(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, [40, 120])
    src = VideoFileSource(cfg(loop=False), video)
    src.open()
    src.read()
    src.read()
    with pytest.raises(SourceEnded, match="end of video"):
        src.read()


def test_video_file_frames_are_fitted_to_the_configured_size_and_oriented(tmp_path: Path) -> None:
    video = tmp_path / "big.avi"
    write_video(video, [100], size=(160, 128))
    src = VideoFileSource(cfg(rotate=270, flip="horizontal"), video)
    src.open()
    assert src.read().image.shape == (80, 64, 3)


def test_a_file_that_is_not_a_video_fails_to_open(tmp_path: Path) -> None:
    bogus = tmp_path / "clip.avi"
    bogus.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CameraError, match="clip.avi: (not a video file|no decodable video frames)"):
        VideoFileSource(cfg(), bogus).open()


def test_interrupt_cuts_a_paced_wait_short(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, [40])
    src = VideoFileSource(cfg(fps=0.01), video)  # one frame per 100 s
    src.open()
    src.read()
    src.interrupt()
    with pytest.raises(CameraError, match="interrupted"):
        src.read()


# --- picamera2 (with a stand-in module: the real one exists only on a Pi) ------------------------


class FakePicamera2:
    instances: list[FakePicamera2] = []
    cameras: list[dict[str, object]] = [{"Model": "imx708"}]

    def __init__(self, num: int) -> None:
        self.num = num
        self.calls: list[tuple[str, object]] = []
        self.configured: dict[str, object] | None = None
        FakePicamera2.instances.append(self)

    @classmethod
    def global_camera_info(cls) -> list[dict[str, object]]:
        return cls.cameras

    def create_video_configuration(self, **kw: object) -> dict[str, object]:
        return {"kind": "video", **kw}

    def create_still_configuration(self, **kw: object) -> dict[str, object]:
        return {"kind": "still", **kw}

    def configure(self, config: dict[str, object]) -> None:
        self.configured = config

    def camera_configuration(self) -> dict[str, object]:
        assert self.configured is not None
        return self.configured

    def start(self) -> None:
        self.calls.append(("start", None))

    def capture_array(self, name: str) -> np.ndarray:
        main = self.configured["main"]  # type: ignore[index]
        w, h = main["size"]  # type: ignore[index]
        return marker_image(w, h)

    def switch_mode_and_capture_array(self, config: dict[str, object], name: str) -> np.ndarray:
        self.calls.append(("still", config))
        w, h = config["main"]["size"]  # type: ignore[index]
        return marker_image(w, h)

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def close(self) -> None:
        self.calls.append(("close", None))


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    FakePicamera2.instances = []
    FakePicamera2.cameras = [{"Model": "imx708"}]
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return FakePicamera2


def test_picamera2_streams_bgr_at_the_configured_size_and_rate(fake_picamera2: type[FakePicamera2]) -> None:
    src = create_source(cfg(source="picamera2", width=640, height=480, fps=25, rotate=180))
    assert isinstance(src, Picamera2Source)
    src.open()
    cam = fake_picamera2.instances[0]
    video = cam.configured
    assert video is not None and video["kind"] == "video"
    assert video["main"] == {"size": (640, 480), "format": OPENCV_BGR_FORMAT}
    assert video["controls"] == {"FrameRate": 25.0}
    # "RGB888" is B,G,R in memory (DRM fourcc naming): OpenCV order without a channel swap
    assert OPENCV_BGR_FORMAT == "RGB888"
    frame = src.read()
    assert frame.image.shape == (480, 640, 3)
    assert tuple(frame.image[-1, -1]) == (0, 0, 255)  # rotated 180: red top-left is now bottom-right
    src.close()
    assert ("stop", None) in cam.calls and ("close", None) in cam.calls


def test_picamera2_still_uses_the_still_resolution(fake_picamera2: type[FakePicamera2]) -> None:
    src = Picamera2Source(cfg(width=640, height=480, still_width=2304, still_height=1296))
    src.open()
    still = src.capture_still()
    assert still.image.shape == (1296, 2304, 3)
    kind, config = fake_picamera2.instances[0].calls[-1]
    assert kind == "still" and config["main"] == {"size": (2304, 1296), "format": "RGB888"}  # type: ignore[index]


def test_picamera2_without_a_camera_is_a_clear_error(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.cameras = []
    with pytest.raises(CameraError, match="no camera connected"):
        Picamera2Source(cfg()).open()


def test_picamera2_busy_camera_is_a_clear_error_and_released(
    fake_picamera2: type[FakePicamera2], monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(self: FakePicamera2, config: dict[str, object]) -> None:
        raise RuntimeError("Failed to acquire camera: Device or resource busy")

    monkeypatch.setattr(FakePicamera2, "configure", busy)
    with pytest.raises(CameraError, match="picamera2:0: cannot start camera: Failed to acquire camera"):
        Picamera2Source(cfg()).open()
    assert ("close", None) in fake_picamera2.instances[0].calls


def test_picamera2_warns_when_the_camera_delivers_another_size(
    fake_picamera2: type[FakePicamera2], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(FakePicamera2, "camera_configuration", lambda self: {"main": {"size": (1920, 1088)}})
    with caplog.at_level(logging.WARNING, logger="edgeportrait.capture.picam"):
        Picamera2Source(cfg(width=1920, height=1080)).open()
    assert "asked for 1920x1080, the camera delivers 1920x1088" in caplog.text


def test_picamera2_missing_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as where it is not installed
    with pytest.raises(CameraError, match="picamera2: not available.*python3-picamera2"):
        create_source(cfg(source="picamera2")).open()


# --- choosing a source ----------------------------------------------------------------------


def test_source_strings_pick_the_right_backend(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, [1])
    assert isinstance(create_source(cfg(source="/dev/video3")), V4L2Source)
    by_number = create_source(cfg(source="2"))
    assert isinstance(by_number, V4L2Source) and by_number.name == "/dev/video2"
    assert isinstance(create_source(cfg(source="rtsp://cam.local/stream")), StreamSource)
    assert isinstance(create_source(cfg(source="https://cam.local/mjpg")), StreamSource)
    assert isinstance(create_source(cfg(source=str(tmp_path))), ImageFolderSource)
    assert isinstance(create_source(cfg(source=str(video))), VideoFileSource)


def test_stream_credentials_never_appear_in_names_or_errors() -> None:
    src = create_source(cfg(source="rtsp://admin:s3cret@10.0.0.9:554/h264"))
    assert "s3cret" not in src.name and src.name == "rtsp://***@10.0.0.9:554/h264"
    # config validation refuses other schemes; the factory still must not leak one it is handed
    unchecked = CameraConfig.model_construct(**{**cfg().model_dump(), "source": "ftp://admin:s3cret@host/x"})
    with pytest.raises(CameraError) as err:
        create_source(unchecked)
    assert "s3cret" not in str(err.value) and "unsupported URL scheme" in str(err.value)
    assert redact("/dev/video0") == "/dev/video0"


@pytest.mark.parametrize(
    ("source", "message"),
    [("/nonexistent/clip.mp4", "no such file or folder"), ("/nonexistent/folder/", "folder does not exist")],
)
def test_a_missing_path_is_a_clear_error(source: str, message: str) -> None:
    with pytest.raises(CameraError, match=message):
        create_source(cfg(source=source))


def test_a_missing_v4l2_device_is_a_clear_error() -> None:
    with pytest.raises(CameraError, match="/dev/video99: no such device"):
        create_source(cfg(source="/dev/video99")).open()


def test_auto_prefers_picamera2_when_it_sees_a_camera(fake_picamera2: type[FakePicamera2]) -> None:
    assert isinstance(create_source(cfg(source="auto")), Picamera2Source)


def test_auto_without_any_camera_says_what_it_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory_mod, "picamera2_cameras", lambda: [])
    monkeypatch.setattr(factory_mod, "_scan_video_devices", lambda: ([], []))
    with pytest.raises(CameraError, match=r"auto: no camera found \(picamera2: .*; no /dev/video\* devices\)"):
        create_source(cfg(source="auto"))


def test_auto_falls_through_v4l2_nodes_that_do_not_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory_mod, "picamera2_cameras", lambda: [])
    monkeypatch.setattr(factory_mod, "_scan_video_devices", lambda: (["/dev/video97", "/dev/video98"], []))
    with pytest.raises(CameraError) as err:
        create_source(cfg(source="auto"))
    assert "/dev/video97: no such device" in str(err.value) and "/dev/video98" in str(err.value)


def test_auto_on_a_pi_without_picamera2_points_at_picamera2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory_mod, "picamera2_cameras", lambda: [])
    monkeypatch.setattr(factory_mod, "_scan_video_devices", lambda: ([], ["/dev/video0 (rp1-cfe-csi2_ch0)"]))
    with pytest.raises(CameraError, match=r"rp1-cfe-csi2_ch0\) need libcamera: install python3-picamera2"):
        create_source(cfg(source="auto"))


@pytest.mark.parametrize(
    ("label", "camera"),
    [
        ("HD Pro Webcam C920", True),
        ("bcm2835-codec-decode", False),
        ("bcm2835-isp", False),
        ("rpi-hevc-dec", False),
        ("rp1-cfe-csi2_ch0", False),
        ("unicam-image", False),
        ("", True),
    ],
)
def test_auto_skips_codec_isp_and_csi_receiver_nodes(label: str, camera: bool) -> None:
    assert factory_mod._looks_like_camera("video-none", label) is camera


# --- OpenCV backends: a real HTTP stream, and V4L2 against a stand-in VideoCapture ---------------


@pytest.fixture
def http_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A local HTTP server for tmp_path (a video file served over HTTP is a stream to FFmpeg)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_stream_delivers_frames_then_reports_its_end(tmp_path: Path, http_server: str) -> None:
    write_video(tmp_path / "clip.avi", [40, 120, 200])
    src = create_source(cfg(source=f"{http_server}/clip.avi", open_timeout_s=5))
    assert isinstance(src, StreamSource)
    src.open()
    values = [grey(src.read().image) for _ in range(3)]
    assert all(abs(v - e) <= 3 for v, e in zip(values, [40, 120, 200], strict=True)), values
    with pytest.raises(CameraError, match="stream ended or timed out"):
        src.read()
    src.close()


def test_http_stream_that_does_not_exist_fails_to_open(tmp_path: Path, http_server: str) -> None:
    with pytest.raises(CameraError, match="cannot open stream"):
        create_source(cfg(source=f"{http_server}/missing.avi", open_timeout_s=5)).open()


class FakeCapture:
    """Stands in for cv2.VideoCapture on a V4L2 device (none exists in CI)."""

    frames: list[np.ndarray | None] = []
    opened = True
    instances: list[FakeCapture] = []

    def __init__(self, target: object, api: int) -> None:
        self.target, self.api = target, api
        self.props: dict[int, float] = {}
        self.released = False
        FakeCapture.instances.append(self)

    def isOpened(self) -> bool:  # noqa: N802 (cv2's name)
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        frame = self.frames.pop(0) if self.frames else None
        return frame is not None, frame

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_capture(monkeypatch: pytest.MonkeyPatch) -> type[FakeCapture]:
    FakeCapture.frames, FakeCapture.opened, FakeCapture.instances = [], True, []
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    return FakeCapture


def test_v4l2_asks_for_mjpg_size_rate_and_a_one_frame_buffer(tmp_path: Path, fake_capture: type[FakeCapture]) -> None:
    device = tmp_path / "video0"
    device.touch()
    fake_capture.frames = [solid(1, 640, 480), solid(2, 640, 480), None]
    src = V4L2Source(cfg(width=640, height=480, fps=25, flip="horizontal"), str(device))
    src.open()
    cap = fake_capture.instances[0]
    assert cap.api == cv2.CAP_V4L2
    assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")
    assert (cap.props[cv2.CAP_PROP_FRAME_WIDTH], cap.props[cv2.CAP_PROP_FRAME_HEIGHT]) == (640, 480)
    assert cap.props[cv2.CAP_PROP_FPS] == 25 and cap.props[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert int(src.read().image[0, 0, 0]) == 2  # the frame read while opening was only a probe
    with pytest.raises(CameraError, match="read failed .*unplugged"):
        src.read()
    src.close()
    assert cap.released


def test_v4l2_node_that_opens_but_delivers_nothing_is_refused(tmp_path: Path, fake_capture: type[FakeCapture]) -> None:
    device = tmp_path / "video11"
    device.touch()
    with pytest.raises(CameraError, match="delivers no frames"):
        V4L2Source(cfg(), str(device)).open()
    assert fake_capture.instances[0].released


def test_v4l2_device_that_cannot_be_opened_says_so(tmp_path: Path, fake_capture: type[FakeCapture]) -> None:
    device = tmp_path / "video0"
    device.touch()
    fake_capture.opened = False
    with pytest.raises(CameraError, match="cannot open .*busy, no permission"):
        V4L2Source(cfg(), str(device)).open()


# --- camera config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("ftp://cam/x", "unsupported URL scheme 'ftp'"),
        ("picamera2:front", "picamera2:N"),
        ("   ", "must not be empty"),
    ],
)
def test_camera_source_that_can_never_work_is_a_config_error(source: str, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        CameraConfig(source=source)


def test_a_config_error_does_not_echo_the_password_of_a_camera_url(tmp_path: Path) -> None:
    from edgeportrait.config import load_config
    from edgeportrait.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text('camera:\n  source: "ftp://admin:s3cret@cam.local/live"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "c.yaml:2: camera.source" in str(err.value) and "s3cret" not in str(err.value)


def test_still_size_needs_both_dimensions() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="still_width and still_height go together"):
        CameraConfig(still_width=2304)
    assert CameraConfig(still_width=2304, still_height=1296).still_height == 1296
