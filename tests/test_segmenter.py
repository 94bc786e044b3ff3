"""The Segmenter: masks that match MediaPipe's runtime, sizes, devices, async path and errors."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest
from segment_helpers import MODELS, golden, iou

from edgeportrait.config import ModelConfig
from edgeportrait.errors import FatalError
from edgeportrait.segment import CallbackErrors, Segmenter, models_dir, to_model_input, upscale_mask

# The agreement targets against the reference runtime's masks.
TARGETS = {"fp32": (0.99, 0.95), "int8": (0.98, 0.93)}

_cache: dict[tuple[str, str], Segmenter] = {}


def segmenter(name: str = "general", precision: str = "fp32", tmp: Path | None = None) -> Segmenter:
    key = (name, precision)
    if key not in _cache:
        _cache[key] = Segmenter(ModelConfig(name=name, precision=precision, device="CPU", cache_dir=tmp))
    return _cache[key]


@pytest.fixture(scope="module", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep compiled-model caches of the tests out of the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("ovcache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CACHE_DIRECTORY", str(cache))
        yield
    _cache.clear()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("name", ["general", "landscape"])
def test_masks_agree_with_the_reference_runtime(name: str, precision: str) -> None:
    """Our masks match mediapipe 0.10.14's on the golden photos (IoU@0.5, mean and worst)."""
    seg = segmenter(name, precision)
    scores = []
    for case in golden.CASES:
        img = golden.load_case(case)
        mask = seg.segment(img)
        scores.append(iou(mask, golden.read_golden(name, case)))
    mean_target, worst_target = TARGETS[precision]
    assert np.mean(scores) >= mean_target, scores
    assert min(scores) >= worst_target, scores


def test_fp32_mask_values_track_the_reference_closely() -> None:
    """Not just the thresholded area: the soft mask values match the reference (same preprocessing)."""
    seg = segmenter("general", "fp32")
    img = golden.load_case("grace_hopper")
    diff = np.abs(seg.segment(img) - golden.read_golden("general", "grace_hopper"))
    assert diff.mean() < 0.002


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 1000), (481, 641), (1080, 1920)])
def test_segment_returns_float_mask_at_frame_size(h: int, w: int) -> None:
    """Any frame size gives a float32 mask of that size with values in [0, 1]."""
    seg = segmenter()
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = seg.segment(frame)
    assert mask.shape == (h, w)
    assert mask.dtype == np.float32
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


def test_infer_returns_mask_at_model_resolution() -> None:
    """infer() leaves the upsampling to the caller: the mask is input_size, landscape 144×256."""
    seg = segmenter("landscape")
    assert seg.input_size == (144, 256)
    mask = seg.infer(golden.load_case("astronaut"))
    assert mask.shape == (144, 256) and mask.dtype == np.float32
    assert seg.device == "CPU" and seg.name == "landscape" and seg.precision == "fp32"


def test_grayscale_frame_is_accepted_and_wrong_frames_refused() -> None:
    seg = segmenter()
    gray = cv2.imread(str(golden.DATA / "camera.png"), cv2.IMREAD_GRAYSCALE)
    assert seg.segment(gray).shape == gray.shape
    with pytest.raises(ValueError):
        seg.segment(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        seg.segment(np.zeros((10, 10, 4), dtype=np.uint8))


def test_preprocessing_is_mediapipes_corner_to_corner_warp() -> None:
    """to_model_input equals cv::warpPerspective of the frame's corners onto the input's corners,
    as MediaPipe's ImageToTensorCalculator does it (not cv2.resize, which samples differently)."""
    img = golden.load_case("grace_hopper")
    h, w = img.shape[:2]
    src = np.float32([[0, h], [0, 0], [w, 0], [w, h]])
    dst = np.float32([[0, 144], [0, 0], [256, 0], [256, 144]])
    want = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (256, 144),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    got = to_model_input(img, (144, 256))
    assert got.shape == (1, 144, 256, 3)
    assert np.abs(got[0].astype(int) - want.astype(int)).max() <= 1
    assert not np.array_equal(got[0], cv2.resize(img, (256, 144), interpolation=cv2.INTER_LINEAR))


def test_upscale_is_bilinear_and_clipped() -> None:
    small = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    big = upscale_mask(small, 4, 4)
    assert big.shape == (4, 4) and big.dtype == np.float32
    assert 0.0 < big[1, 1] < 1.0  # interpolated, not nearest
    assert big.min() >= 0.0 and big.max() <= 1.0


def test_async_results_equal_sync_results() -> None:
    """submit() delivers each frame's low-res mask with its userdata, same as infer()."""
    seg = segmenter()
    frames = {case: golden.load_case(case) for case in golden.CASES}
    got: dict[str, np.ndarray] = {}
    lock = threading.Lock()

    def on_mask(mask: np.ndarray | None, userdata: str, error: BaseException | None) -> None:
        assert error is None and mask is not None
        with lock:
            got[userdata] = mask

    for case, frame in frames.items():
        seg.submit(frame, case, on_mask)
    seg.wait_all()
    assert set(got) == set(frames)
    for case, frame in frames.items():
        np.testing.assert_allclose(got[case], seg.infer(frame), atol=1e-5)


def test_async_callback_errors_are_collected_not_lost() -> None:
    """An exception raised in a callback surfaces from wait_all(); a bad frame reaches the callback as error."""
    seg = segmenter()
    errors_seen: list[BaseException | None] = []

    def boom(mask: np.ndarray | None, userdata: int, error: BaseException | None) -> None:
        raise KeyError(userdata)

    def record(mask: np.ndarray | None, userdata: int, error: BaseException | None) -> None:
        errors_seen.append(error)

    frame = golden.load_case("astronaut")
    seg.submit(frame, 1, boom)
    seg.submit(frame, 2, boom)
    seg.submit(np.zeros((4, 4), dtype=np.float64), 3, record)
    with pytest.raises(CallbackErrors) as exc:
        seg.wait_all()
    assert sorted(e.args[0] for e in exc.value.errors) == [1, 2]
    assert len(errors_seen) == 1 and isinstance(errors_seen[0], ValueError)
    seg.wait_all()  # collected errors are reported once


def test_absent_device_falls_back_along_the_chain(tmp_path: Path) -> None:
    """A device that is not there is skipped; the Segmenter says where it ended up."""
    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    seg = Segmenter(ModelConfig(device="NPU", fallback=["NPU", "CPU"], precision="fp32", cache_dir=tmp_path))
    assert seg.device == "CPU"
    assert seg.segment(golden.load_case("astronaut")).shape == (512, 512)


class _DeadRequest:
    """An infer request of a device that has just failed (a GPU reset, an NPU driver error)."""

    def infer(self, *_args: object, **_kw: object) -> None:
        raise RuntimeError("Exception from src/plugin.cpp:1:\ndevice lost")


def test_a_device_failing_at_run_time_hands_over_to_the_next_and_the_frame_is_kept(tmp_path: Path) -> None:
    """infer() on a failing device moves to the next device of the chain, retries the frame, says why."""
    frame = golden.load_case("astronaut")
    seg = Segmenter(ModelConfig(device="CPU", fallback=["AUTO"], precision="fp32", cache_dir=tmp_path))
    expected = seg.infer(frame)
    seg._request = _DeadRequest()  # type: ignore[assignment]
    got = seg.infer(frame)
    assert np.allclose(got, expected, atol=1e-4)
    assert seg.fallbacks == ["CPU: failed at run time: device lost"]
    # the stream's asynchronous path runs on the new device too
    done = threading.Event()
    seen: list[np.ndarray | None] = []
    seg.submit(frame, None, lambda m, _u, _e: (seen.append(m), done.set()))
    assert done.wait(30) and seen[0] is not None and np.allclose(seen[0], expected, atol=1e-4)


def test_a_run_time_failure_with_no_device_left_is_a_clear_error(tmp_path: Path) -> None:
    seg = Segmenter(ModelConfig(device="CPU", fallback=[], precision="fp32", cache_dir=tmp_path))
    seg._request = _DeadRequest()  # type: ignore[assignment]
    with pytest.raises(FatalError, match="no device could run the model"):
        seg.infer(golden.load_case("astronaut"))


def test_no_usable_device_is_a_fatal_error(tmp_path: Path) -> None:
    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    with pytest.raises(FatalError, match="no device"):
        Segmenter(ModelConfig(device="NPU", fallback=[], precision="fp32", cache_dir=tmp_path))


def test_auto_reports_the_device_it_chose(tmp_path: Path) -> None:
    seg = Segmenter(ModelConfig(device="AUTO", precision="fp32", cache_dir=tmp_path))
    available = ov.Core().available_devices
    # AUTO may report more than one device while it hands over from CPU to an accelerator
    assert seg.device != "AUTO"
    assert all(any(d == a or a.startswith(d + ".") or d.startswith(a) for a in available)
               for d in seg.device.split(","))


def test_compiled_model_cache_is_written(tmp_path: Path) -> None:
    """A cache directory receives the compiled blob, so the next start skips compiling."""
    cache = tmp_path / "cache"
    Segmenter(ModelConfig(device="CPU", precision="fp32", cache_dir=cache))
    assert any(cache.iterdir())


def test_missing_model_is_a_clear_fatal_error(tmp_path: Path) -> None:
    with pytest.raises(FatalError, match="model file not found") as exc:
        Segmenter(ModelConfig(dir=tmp_path, precision="fp32"))
    assert str(tmp_path) in str(exc.value)


def test_corrupt_model_is_a_clear_fatal_error(tmp_path: Path) -> None:
    shutil.copy(MODELS / "selfie_general_fp32.bin", tmp_path / "selfie_general_fp32.bin")
    (tmp_path / "selfie_general_fp32.xml").write_text("<net><layers>")
    with pytest.raises(FatalError, match="cannot load the model"):
        Segmenter(ModelConfig(dir=tmp_path, precision="fp32", cache_dir=tmp_path / "c"))


def test_truncated_weights_are_a_clear_fatal_error(tmp_path: Path) -> None:
    """A .bin cut short (an interrupted copy) names the problem, not OpenVINO's source file."""
    shutil.copy(MODELS / "selfie_general_fp32.xml", tmp_path / "selfie_general_fp32.xml")
    (tmp_path / "selfie_general_fp32.bin").write_bytes((MODELS / "selfie_general_fp32.bin").read_bytes()[:1000])
    with pytest.raises(FatalError, match="cannot load the model") as exc:
        Segmenter(ModelConfig(dir=tmp_path, precision="fp32", cache_dir=tmp_path / "c"))
    assert "Exception from" not in str(exc.value) and "weights" in str(exc.value)


def test_models_dir_prefers_the_configured_one(tmp_path: Path) -> None:
    assert models_dir(tmp_path) == tmp_path
    assert (models_dir() / "selfie_general_fp32.xml").is_file()


def test_latencies_are_recorded_for_sync_and_async_inference() -> None:
    """Health reports inference ms p50/p95 from latencies_ms; both paths feed it."""
    seg = segmenter()
    seg.latencies_ms.clear()
    frame = golden.load_case("camera")
    seg.infer(frame)
    seg.submit(frame, None, lambda mask, userdata, error: None)
    seg.wait_all()
    assert len(seg.latencies_ms) == 2
    assert all(0.0 < ms < 60_000.0 for ms in seg.latencies_ms)
