"""The compositor's C library (edgeportrait/compose/_band.c) against its OpenCV path.

Both write the interior and the band of a portrait into the background; they
must give the same picture to within one level per channel (the downscale and
the background's upsample: exactly OpenCV's), on real photos, at
exact and padded sizes, for every background mode, for frames whose rows are
not packed one after the other, and from several threads at once. Where a C
compiler is on PATH the build must have produced the library (a silent fallback
would make these checks pass for the wrong reason).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_in_threads

from edgeportrait.compose import background, blend, compose, matte, native
from edgeportrait.compose.compositor import pad_to_factor, prepare, resolve_settings
from edgeportrait.compose.matte import LowMatte
from edgeportrait.config import PortraitConfig

DATA = Path(__file__).parent / "data"
HELDOUT = sorted((DATA / "heldout" / "images").glob("*.jpg"))
CC = shutil.which("cc") or shutil.which("gcc")


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test looks for the library afresh and leaves no loaded state behind."""
    monkeypatch.delenv(native.ENV, raising=False)
    native.reset()
    yield
    native.reset()


def _lib() -> object:
    lib = native.library()
    if lib is None:
        pytest.skip(f"no C library here: {native.status()}")
    return lib


def _mask_for(frame: np.ndarray) -> np.ndarray:
    """A soft person-like mask at the model's size: an ellipse with a feathered edge."""
    m = np.zeros((256, 256), np.float32)
    cv2.ellipse(m, (128, 150), (70, 110), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(m, (0, 0), 6)


def _both(frame: np.ndarray, mask: np.ndarray, settings: dict[str, object]) -> tuple[np.ndarray, np.ndarray]:
    """compose() with the C library, then with the OpenCV path."""
    with_c = compose(frame, mask, settings)
    lib, native._loaded = native._loaded, (None, "OpenCV path (test)")
    try:
        with_opencv = compose(frame, mask, settings)
    finally:
        native._loaded = lib
    return with_c, with_opencv


def test_the_build_made_the_library_where_a_compiler_is_at_hand() -> None:
    if CC is None or os.environ.get("EDGEPORTRAIT_BUILD_NATIVE", "").strip() == "0":
        pytest.skip("no C compiler on PATH: the OpenCV path is the expected one")
    assert native.library() is not None, native.status()
    assert native.status().startswith("C library")


@pytest.mark.parametrize(
    "photo", [DATA / "astronaut.png", DATA / "grace_hopper.jpg", *HELDOUT[::9]], ids=lambda p: p.stem
)
def test_same_picture_as_the_opencv_path_on_real_photos(photo: Path) -> None:
    _lib()
    img = cv2.imread(str(photo))
    golden = DATA / "golden" / "general" / f"{photo.stem}.png"
    if golden.exists():
        g = cv2.imread(str(golden), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        mask = cv2.resize(g, (256, 256), interpolation=cv2.INTER_AREA)
    else:
        mask = _mask_for(img)
    for w, h in ((1920, 1080), (1280, 720), (1001, 777)):
        frame = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        with_c, with_opencv = _both(frame, mask, {"mode": "blur", "blur": 60})
        diff = np.abs(with_c.astype(np.int16) - with_opencv)
        assert diff.max() <= 1, (photo.stem, w, h, int(diff.max()))
        assert float(diff.mean()) < 0.05, (photo.stem, w, h)
        # the band was really there: the portrait is neither the frame nor the background alone
        assert np.abs(with_c.astype(np.int16) - frame).max() > 20


@pytest.mark.parametrize("mode", ["blur", "grayscale", "color", "image"])
def test_every_background_mode(mode: str) -> None:
    _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "astronaut.png")), (1280, 720))
    settings: dict[str, object] = {"mode": mode}
    if mode == "image":
        settings["image"] = str(DATA / "camera.png")
    with_c, with_opencv = _both(frame, _mask_for(frame), settings)
    assert np.abs(with_c.astype(np.int16) - with_opencv).max() <= 1


def test_alpha_one_and_zero_are_exact() -> None:
    """Where α is 1 the frame comes through untouched, where it is 0 the background does."""
    _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "astronaut.png")), (1280, 720))
    green = {"mode": "color", "color": (0, 255, 0)}
    everyone = compose(frame, np.ones((256, 256), np.float32), green)
    assert np.array_equal(everyone, frame)
    nobody = compose(frame, np.zeros((256, 256), np.float32), green)
    assert (nobody == np.array([0, 255, 0], np.uint8)).all()


def _low(frame: np.ndarray) -> tuple[np.ndarray, LowMatte, np.ndarray]:
    work, f = pad_to_factor(frame)
    prep = prepare(work, _mask_for(frame), resolve_settings(None, {"mode": "color"}), None, f)
    out = np.zeros_like(work)
    out[:] = (0, 255, 0)
    return work, prep.matte, out


def test_frames_whose_rows_are_not_packed() -> None:
    """A crop of a wider frame (rows apart) and a flipped view (rows backwards) give what a copy gives."""
    _lib()
    wide = cv2.resize(cv2.imread(str(DATA / "astronaut.png")), (1600, 720))
    crop = wide[:, 160:1440]  # 1280 wide, rows 1600 pixels apart
    flipped = np.ascontiguousarray(crop)[::-1]
    for view in (crop, flipped):
        assert not view.flags.c_contiguous
        work, low, out = _low(np.ascontiguousarray(view))
        expected = blend.render(work, low, out.copy())
        got = blend.render(view, low, out.copy())
        assert np.array_equal(got, expected)


def test_sizes_that_do_not_fit_are_refused_not_written() -> None:
    lib = _lib()
    work, low, out = _low(cv2.resize(cv2.imread(str(DATA / "astronaut.png")), (1280, 720)))
    twice = LowMatte(low.coef, low.alpha, low.kind, low.factor * 2)
    before = out.copy()
    with pytest.raises(ValueError, match="does not fit"):
        native.render_band(lib, work, out, twice)
    with pytest.raises(ValueError, match="does not fit"):  # checked in C: rows not a multiple of the cells
        native.render_band(lib, work[:-4], out[:-4], low)
    with pytest.raises(ValueError, match="shapes do not fit"):  # checked before the call
        native.render_band(lib, work, out[:-4], low)
    assert np.array_equal(out, before)
    with pytest.raises(ValueError, match="writable"):
        ro = out.copy()
        ro.setflags(write=False)
        native.render_band(lib, work, ro, low)


def test_threads_composing_at_once_get_what_one_gets() -> None:
    _lib()
    frames = [cv2.resize(cv2.imread(str(p)), (1280, 720)) for p in HELDOUT[:6]]
    masks = [_mask_for(f) for f in frames]
    alone = [compose(f, m) for f, m in zip(frames, masks, strict=True)]
    got: dict[int, list[np.ndarray]] = {}

    def worker(k: int) -> None:
        got[k] = [compose(f, m) for f, m in zip(frames, masks, strict=True) for _ in range(3)][::3]

    run_in_threads(worker, 3)
    for k in range(3):
        assert all(np.array_equal(a, b) for a, b in zip(alone, got[k], strict=True)), k


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.ENV, "0")
    assert native.library() is None
    assert native.status() == f"OpenCV path ({native.ENV}=0)"
    frame = cv2.resize(cv2.imread(str(DATA / "astronaut.png")), (640, 360))
    assert compose(frame, _mask_for(frame)).shape == frame.shape


def test_a_missing_library_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(native, "LIBRARY", tmp_path / "_band.so")
    assert native.library() is None
    assert "not built" in native.status()


@pytest.mark.skipif(CC is None, reason="needs a C compiler")
def test_a_library_of_another_version_or_older_than_its_source_is_not_called(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src = tmp_path / "_band.c"
    src.write_text("int ep_band_abi(void) { return 99; }\n")
    lib = tmp_path / "_band.so"
    subprocess.run([str(CC), "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    os.utime(src, (1, 1))  # the source is older than the library
    monkeypatch.setattr(native, "LIBRARY", lib)
    monkeypatch.setattr(native, "SOURCE", src)
    assert native.library() is None
    assert "ABI 99" in native.status() and "reinstall" in native.status()

    native.reset()
    os.utime(src, None)
    os.utime(lib, (1, 1))  # now the source changed after the build
    assert native.library() is None
    assert "older than _band.c" in native.status()


def test_the_settings_reach_both_paths_alike() -> None:
    """Feather and refinement change the band; the two paths still agree."""
    _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (1280, 720))
    for extra in ({"feather": 0, "refine_radius": 0}, {"feather": 12, "refine_radius": 24}, {"softness": 0}):
        settings = {"mode": "blur", **extra}
        PortraitConfig.model_validate(settings)
        with_c, with_opencv = _both(frame, _mask_for(frame), settings)
        assert np.abs(with_c.astype(np.int16) - with_opencv).max() <= 1, extra


@pytest.mark.parametrize("size", [(2, 2), (17, 9), (64, 48), (320, 180), (361, 719), (720, 1280), (3840, 2160)])
def test_sizes_from_tiny_to_4k_and_portrait_orientation(size: tuple[int, int]) -> None:
    """Working factors 1 to 8, sides that need padding, a tall frame: the two paths still agree."""
    _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "astronaut.png")), size, interpolation=cv2.INTER_AREA)
    with_c, with_opencv = _both(frame, _mask_for(frame), {"mode": "blur"})
    assert with_c.shape == frame.shape
    assert np.abs(with_c.astype(np.int16) - with_opencv).max() <= 1, size


def _small_and_alpha(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    small = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (w, h), interpolation=cv2.INTER_AREA)
    return small, cv2.resize(_mask_for(small), (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize(("w", "h", "radius"), [(480, 270, 2), (320, 180, 1), (240, 427, 6), (9, 5, 7), (1, 1, 1)])
def test_the_guided_filter_in_c_is_the_opencv_one(w: int, h: int, radius: int) -> None:
    """Coefficients to float rounding and the same cells' kinds, windows wider than the image included."""
    lib = _lib()
    small, p = _small_and_alpha(w, h)
    luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    coef, kind = native.low_matte(lib, luma, p, radius, 1e-3, matte.SETTLED)
    guide = luma.astype(np.float32) / np.float32(255)
    mean_a, mean_b = matte.guided_coefficients(guide, p, radius, 1e-3)
    np.testing.assert_allclose(coef[:, :, 0] * 255, mean_a * 255, atol=2e-4)
    np.testing.assert_allclose(coef[:, :, 1], mean_b, atol=2e-4)
    expected = matte.cell_kinds(mean_a, mean_b)
    # The kinds may differ only where it cannot show: cells whose α is within float rounding of the
    # SETTLED limit, i.e. α within 2/1000 of 1 (or of 0) for every luminance, by either's coefficients.
    differ = kind != expected
    assert int(differ.sum()) <= kind.size // 100, (w, h, radius)
    target = ((kind == matte.CELL_INTERIOR) | (expected == matte.CELL_INTERIOR))[differ].astype(np.float32)
    for a, b in ((coef[:, :, 0], coef[:, :, 1]), (mean_a, mean_b)):
        for y in (0.0, 255.0):  # α is linear in the luminance: its ends bound it
            assert np.abs(a[differ] * y + b[differ] - target).max(initial=0.0) <= 2e-3, (w, h, radius)
    if w > 100:  # a real silhouette: all three kinds occur
        assert set(np.unique(kind).tolist()) == {matte.CELL_BACKGROUND, matte.CELL_INTERIOR, matte.CELL_BAND}


@pytest.mark.parametrize(("w", "h", "sigma"), [(240, 135, 1.8), (320, 180, 2.45), (60, 34, 9.0), (3, 2, 1.5)])
def test_the_masked_blur_in_c_is_the_opencv_one(monkeypatch: pytest.MonkeyPatch, w: int, h: int, sigma: float) -> None:
    """The blur at its own resolution, kernels longer than the image included, within one level."""
    _lib()
    small, a = _small_and_alpha(w, h)
    with_c = background.masked_blur_low(small, a, sigma)
    monkeypatch.setenv(native.ENV, "0")
    native.reset()
    with_opencv = background.masked_blur_low(small, a, sigma)
    assert with_c.shape == with_opencv.shape and with_c.shape[2] == 3
    assert np.abs(with_c.astype(np.int16) - with_opencv).max() <= 1, (w, h, sigma)


def test_the_c_calls_refuse_what_does_not_fit() -> None:
    lib = _lib()
    small, p = _small_and_alpha(32, 24)
    luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    with pytest.raises(ValueError, match="one 2-D size"):
        native.low_matte(lib, luma, p[:-1], 2, 1e-3, matte.SETTLED)
    with pytest.raises(ValueError, match="radius"):
        native.low_matte(lib, luma, p, 0, 1e-3, matte.SETTLED)
    with pytest.raises(ValueError, match="odd"):
        native.masked_blur(lib, small, p, np.ones(4, np.float32) / 4, 1e-3)
    with pytest.raises(ValueError, match="must be"):
        native.masked_blur(lib, small, p[:, :-1], np.ones(3, np.float32) / 3, 1e-3)
    # the C entry points check what the wrappers check, so a wrong call cannot write out of bounds
    out = np.zeros((64, 64, 3), np.uint8)
    for f, dstride, dh in ((3, 192, 8), (32, 192, 8), (8, 100, 8), (8, 192, 0)):
        assert lib.ep_upsample(small.ctypes.data, small.strides[0], 8, 8, out.ctypes.data, dstride, dh, f, 1) == -1
    assert not out.any()
    for levels, h, w, sstride in ((0, 24, 32, 96), (5, 24, 32, 96), (3, 20, 32, 96), (2, 24, 30, 90), (2, 24, 32, 60)):
        assert lib.ep_downscale(small.ctypes.data, sstride, h, w, levels, out.ctypes.data, 192, 1) == -1
    assert not out.any()


def _halvings(img: np.ndarray, times: int) -> np.ndarray:
    """What matte.downscale did before the C library: OpenCV's INTER_AREA halving, once per call."""
    for _ in range(times):
        h, w = img.shape[:2]
        img = cv2.resize(img, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    return img


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Every level and no smoothness: a rounding that differs anywhere shows."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


@pytest.mark.parametrize(("w", "h"), [(1920, 1080), (1280, 720), (3840, 2160), (1004, 780), (16, 16), (48, 2)])
def test_the_downscale_in_c_is_opencvs_halvings_exactly(w: int, h: int) -> None:
    """Each level as many halvings as the sides allow, on noise and on a photo, 1 to 3 threads."""
    lib = _lib()
    photo = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (w, h), interpolation=cv2.INTER_AREA)
    for img in (_noise(h, w), photo):
        for levels in range(1, 5):
            if h % (1 << levels) or w % (1 << levels):
                with pytest.raises(ValueError, match="cannot be halved"):
                    native.halve(lib, img, levels)
                continue
            want = _halvings(img, levels)
            for n in (1, 2, 3):
                got = native.halve(lib, img, levels, n)
                assert got.shape == want.shape and np.array_equal(got, want), (w, h, levels, n)


def test_downscale_does_the_halvings_the_sides_allow_in_c_and_the_rest_in_opencv() -> None:
    """Odd and twice-even sides, views whose rows are apart or run backwards: always OpenCV's result."""
    _lib()
    big = _noise(1084, 1930, seed=1)
    for img in (big[:1080, :1918], big[:1078, :1920], big[:777, :1001], big[::-1][:1080, :1920], big[:4, :6]):
        for factor in (2, 4, 8, 16, 32):
            want = _halvings(np.ascontiguousarray(img), factor.bit_length() - 1)
            assert np.array_equal(matte.downscale(img, factor), want), (img.shape, factor)


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_the_upsample_in_c_is_cv2_resize_exactly(factor: int) -> None:
    """Any height (whole factor or not), widths whose rows end mid-vector, one pixel; 1 to 3 threads."""
    lib = _lib()
    for sw, sh, dh, seed in ((240, 135, 1080, 0), (120, 68, 1080, 1), (251, 97, 777, 2), (7, 3, 50, 3), (1, 1, 5, 4)):
        small = _noise(sh, sw, seed)
        want = cv2.resize(small, (sw * factor, dh), interpolation=cv2.INTER_LINEAR)
        for n in (1, 2, 3):
            got = native.upsample(lib, small, dh, sw * factor, n)
            assert got is not None and np.array_equal(got, want), (factor, sw, sh, dh, n)
    # views whose rows are apart (a crop of a wider image) or go backwards (flipped)
    wide = _noise(40, 90, 5)
    for view in (wide[:, 10:50], wide[::-1, 10:50]):
        got = native.upsample(lib, view, 40 * factor, 40 * factor)
        want = cv2.resize(np.ascontiguousarray(view), (40 * factor, 40 * factor), interpolation=cv2.INTER_LINEAR)
        assert got is not None and np.array_equal(got, want)


def test_upscale_leaves_other_factors_to_cv2_resize() -> None:
    lib = _lib()
    small = _noise(30, 40)
    for h, w in ((90, 120), (95, 130), (30 * 32, 40 * 32), (60, 81)):
        assert native.upsample(lib, small, h, w) is None, (h, w)
        want = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(background.upscale(small, h, w), want), (h, w)
    assert background.upscale(small, 30, 40) is small


@pytest.mark.parametrize("size", [(1280, 720), (1001, 777), (17, 9)])
def test_rows_shared_by_threads_give_what_one_thread_gives(size: tuple[int, int]) -> None:
    """The band pass split over 2, 3 or 8 threads (more threads than rows included) writes the same bytes."""
    lib = _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), size, interpolation=cv2.INTER_AREA)
    work, low, out = _low(frame)
    one = out.copy()
    native.render_band(lib, work, one, low, 1)
    assert not np.array_equal(one, out)  # it did write the person
    for n in (2, 3, 8, 64):
        got = out.copy()
        native.render_band(lib, work, got, low, n)
        assert np.array_equal(got, one), (size, n)


@pytest.mark.parametrize(("w", "h"), [(480, 270), (37, 5)])
def test_the_guided_filter_and_the_blur_on_several_threads_give_what_one_gives(w: int, h: int) -> None:
    lib = _lib()
    small, p = _small_and_alpha(w, h)
    luma = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    kernel = cv2.getGaussianKernel(15, 1.8, cv2.CV_32F)
    coef1, kind1 = native.low_matte(lib, luma, p, 2, 1e-3, matte.SETTLED, 1)
    blur1 = native.masked_blur(lib, small, p, kernel, 1e-3, 1)
    backwards = np.ascontiguousarray(small[::-1])[::-1]  # the same pixels, its rows going backwards in memory
    assert np.array_equal(native.masked_blur(lib, backwards, p, kernel, 1e-3, 2), blur1)
    for n in (2, 3, 8, 64):
        coef, kind = native.low_matte(lib, luma, p, 2, 1e-3, matte.SETTLED, n)
        assert np.array_equal(coef, coef1) and np.array_equal(kind, kind1), (w, h, n)
        assert np.array_equal(native.masked_blur(lib, small, p, kernel, 1e-3, n), blur1), (w, h, n)


def test_calls_from_many_threads_share_the_worker_threads_or_run_alone_and_agree() -> None:
    """Several callers asking for two threads at once: one gets the pool's workers, the others run
    their rows on their own threads; every result is what one thread writes."""
    lib = _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (1280, 720), interpolation=cv2.INTER_AREA)
    work, low, out = _low(frame)
    want = out.copy()
    native.render_band(lib, work, want, low, 1)
    bad: list[int] = []

    def caller(k: int) -> None:
        for _ in range(20):
            got = out.copy()
            native.render_band(lib, work, got, low, 2 + k % 3)
            if not np.array_equal(got, want):
                bad.append(k)

    run_in_threads(caller, 4)
    assert not bad


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_worker_threads() -> None:
    """The parent's workers do not exist in a forked child; its calls must not wait for them."""
    lib = _lib()
    frame = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (640, 360), interpolation=cv2.INTER_AREA)
    work, low, out = _low(frame)
    want = out.copy()
    native.render_band(lib, work, want, low, 2)  # the parent's pool is up
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if two-thread calls finish and agree
        code = 1
        try:
            got = out.copy()
            native.render_band(lib, work, got, low, 2)
            code = 0 if np.array_equal(got, want) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung in the band pass")
