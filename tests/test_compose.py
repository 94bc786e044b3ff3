"""The compositor: exact at α = 0 and 1, each mode on a real photo, no halo, settings checked.

The real photo is the NASA astronaut portrait (public domain) with the mask
MediaPipe's own runtime gives for it (tests/data/golden), reduced to the
model's 256×256 as the Segmenter would return it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_in_threads

from edgeportrait.compose import (
    Compositor,
    alpha_matte,
    blur_sigma,
    compose,
    fast_blur,
    foreground_fraction,
    make_background,
    naive_compose,
    prepare,
    resolve_settings,
)
from edgeportrait.compose.background import cover
from edgeportrait.compose.matte import TemporalSmoother
from edgeportrait.config import PortraitConfig
from edgeportrait.config.portrait import MODES
from edgeportrait.errors import ConfigError, InputError

DATA = Path(__file__).parent / "data"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(DATA / "astronaut.png"))


@pytest.fixture(scope="module")
def golden() -> np.ndarray:
    """The reference mask at the photo's size, float in [0, 1]."""
    return cv2.imread(str(DATA / "golden/general/astronaut.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535


@pytest.fixture(scope="module")
def model_mask(golden: np.ndarray) -> np.ndarray:
    return cv2.resize(golden, (256, 256), interpolation=cv2.INTER_AREA)


def _settings(mode: str, **kw: object) -> dict[str, object]:
    s: dict[str, object] = {"mode": mode, **kw}
    if mode == "image":
        s["image"] = str(DATA / "camera.png")
    return s


@pytest.mark.parametrize("mode", MODES)
def test_alpha_one_gives_the_frame_exactly(photo: np.ndarray, mode: str) -> None:
    """A mask that is all person returns the frame bit for bit, in every mode."""
    out = compose(photo, np.ones((256, 256), np.float32), _settings(mode))
    assert np.array_equal(out, photo)


def test_alpha_zero_gives_the_blurred_background_exactly(photo: np.ndarray) -> None:
    """A mask with no person returns the background B exactly (and B is the Gaussian blur of the frame)."""
    zeros = np.zeros((256, 256), np.float32)
    s = PortraitConfig()
    out = compose(photo, zeros, s)
    assert np.array_equal(out, make_background(photo, prepare(photo, zeros, s), s))
    # with nothing to exclude, the mask-normalised blur is the plain blur
    sigma = blur_sigma(s.blur, *photo.shape[:2])
    reference = cv2.GaussianBlur(photo, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    assert _psnr(out, reference) > 40


def test_alpha_zero_gives_the_solid_colour_and_the_gray_scene_exactly(photo: np.ndarray) -> None:
    """Colour and grayscale backgrounds are exactly the colour (RGB in config, BGR out) and the gray frame."""
    zeros = np.zeros((256, 256), np.uint8)
    out = compose(photo, zeros, {"mode": "color", "color": [10, 20, 30]})
    assert (out == np.array([30, 20, 10], np.uint8)).all()
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    out = compose(photo, zeros, {"mode": "grayscale"})
    assert np.array_equal(out, np.dstack([gray, gray, gray]))


def test_image_mode_scales_the_picture_to_cover_the_frame(photo: np.ndarray) -> None:
    """mode=image with no person shows the background picture scaled to cover (centre crop), any aspect."""
    frame = cv2.resize(photo, (640, 360))
    out = compose(frame, np.zeros((256, 256), np.float32), _settings("image"))
    picture = cv2.imread(str(DATA / "camera.png"))  # 512×512: scaled to 640×640, rows 140…500 kept
    expected = cv2.resize(picture, (640, 640), interpolation=cv2.INTER_LINEAR)[140:500]
    assert out.shape == frame.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert cover(picture, 360, 640).shape == (360, 640, 3)


def test_blur_zero_leaves_the_frame_unchanged(photo: np.ndarray, model_mask: np.ndarray) -> None:
    """blur 0 in mode blur: the output is the input, whatever the mask."""
    assert np.array_equal(compose(photo, model_mask, {"blur": 0}), photo)
    c = Compositor(PortraitConfig(blur=0))
    assert np.array_equal(c.compose(photo, model_mask), photo)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_keeps_the_person_and_changes_the_background(
    photo: np.ndarray, golden: np.ndarray, model_mask: np.ndarray, mode: str
) -> None:
    """On a real photo: identical inside the (eroded) person, clearly changed outside the (dilated) mask."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))
    inner = cv2.erode((golden > 0.9).astype(np.uint8), k).astype(bool)
    outer = ~cv2.dilate((golden > 0.1).astype(np.uint8), k).astype(bool)
    assert inner.mean() > 0.3 and outer.mean() > 0.3  # the regions compared are a real part of the photo
    out = compose(photo, model_mask, _settings(mode))
    diff = np.abs(out.astype(int) - photo.astype(int)).max(axis=2)
    assert diff[inner].max() == 0
    assert (diff[outer] > 2).mean() > 0.7
    assert diff[outer].mean() > 5


def test_band_rendering_equals_blending_with_the_full_alpha(photo: np.ndarray, model_mask: np.ndarray) -> None:
    """The packed band-only blend gives what blending every pixel with the full-resolution α gives.

    At 1080p (exact working scale) and at an odd size (padded), so block seams
    and the padding cannot go unnoticed.
    """
    for w, h in ((1920, 1080), (1001, 777)):
        frame = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
        s = PortraitConfig(mode="color", color=(0, 255, 0))
        out = compose(frame, model_mask, s)
        alpha = alpha_matte(frame, model_mask, s)[:, :, None]
        green = np.zeros_like(frame)
        green[:] = (0, 255, 0)
        reference = np.clip(alpha * frame + (1 - alpha) * green + 0.5, 0, 255).astype(np.uint8)
        assert out.shape == frame.shape
        assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1, (w, h)
        assert 0.02 < float(((alpha > 0.01) & (alpha < 0.99)).mean()) < 0.5  # the band is really exercised


def _red_disc_scene(h: int = 720, w: int = 1280) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A saturated red 'person' disc on a textured green-gray background; its mask at 256×256."""
    rng = np.random.default_rng(3)
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = (60, 140, 60)
    noise = rng.integers(-20, 21, (h, w, 1))
    frame = np.clip(frame.astype(int) + noise, 0, 255).astype(np.uint8)
    person = np.zeros((h, w), np.uint8)
    cv2.circle(person, (w // 2, h // 2), h // 4, 255, -1)
    frame[person > 0] = (20, 20, 250)
    mask = cv2.resize(person, (256, 256), interpolation=cv2.INTER_AREA)
    return frame, mask, person


def test_no_halo_the_person_colour_does_not_bleed_into_the_blurred_background() -> None:
    """Just outside the silhouette the composite keeps the background's colour (mask-normalised blur).

    The naive full-frame blur on the same scene does show a red rim there,
    which shows the check can see a halo.
    """
    frame, mask, person = _red_disc_scene()
    s = PortraitConfig(blur=100)
    far = cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (161, 161))) == 0
    # the pixels 2…16 px outside the silhouette
    ring = (cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (33, 33))) > 0) & ~(
        cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    )
    background_red = float(frame[far][:, 2].mean())
    ours = compose(frame, mask, s)
    naive = naive_compose(frame, mask, s)
    assert float(naive[ring][:, 2].mean()) > background_red + 40  # the classic halo exists in the naive way
    assert abs(float(ours[ring][:, 2].mean()) - background_red) < 3
    assert float(ours[ring][:, 2].max()) < background_red + 10


def test_no_background_bleeds_into_the_person() -> None:
    """Inside the silhouette, 20 px (3% of the frame) from the edge, the person's colour is untouched."""
    frame, mask, person = _red_disc_scene()
    inner = cv2.erode(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41))) > 0
    ours = compose(frame, mask, PortraitConfig(blur=100))
    assert np.array_equal(ours[inner], frame[inner])


def test_reduced_resolution_blur_matches_the_full_resolution_gaussian(photo: np.ndarray) -> None:
    """Blurring at 1/8 or 1/16 resolution is visually the full-resolution GaussianBlur (PSNR > 45 dB)."""
    frame = cv2.resize(photo, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    for blur in (25, 50, 100):
        sigma = blur_sigma(blur, 1080, 1920)
        full = cv2.GaussianBlur(frame, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        assert _psnr(fast_blur(frame, sigma), full) > 45, blur


def test_blur_strength_looks_the_same_at_every_resolution(photo: np.ndarray) -> None:
    """The same setting on the same scene at 720p and 1440p gives the same picture, scaled."""
    big = cv2.resize(photo, (2560, 1440), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(big, (1280, 720), interpolation=cv2.INTER_AREA)
    zeros = np.zeros((256, 256), np.float32)
    out_big = compose(big, zeros, {"blur": 60})
    out_small = compose(small, zeros, {"blur": 60})
    assert _psnr(cv2.resize(out_big, (1280, 720), interpolation=cv2.INTER_AREA), out_small) > 40
    # and a different strength is clearly different, so the check above can fail
    assert _psnr(compose(small, zeros, {"blur": 30}), out_small) < 35


def test_mask_formats_give_the_same_portrait(photo: np.ndarray, model_mask: np.ndarray) -> None:
    """float [0,1], uint8 (255) and uint16 (65535) masks are understood alike."""
    as_u8 = np.round(model_mask * 255).astype(np.uint8)
    ref = compose(photo, as_u8.astype(np.float32) / 255)
    assert np.array_equal(compose(photo, as_u8), ref)
    assert np.abs(compose(photo, (as_u8.astype(np.uint16) * 257)).astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"blur": 200}, "portrait.blur"),
        ({"blur": -1}, "portrait.blur"),
        ({"mode": "sepia"}, "portrait.mode"),
        ({"threshold": 1.5}, "portrait.threshold"),
        ({"softness": "soft"}, "portrait.softness"),
        ({"color": [0, 0, 256]}, "portrait.color"),
        ({"refine_eps": 0}, "portrait.refine_eps"),
        ({"smoothing": 1}, "portrait.smoothing"),
        ({"colour": [1, 2, 3]}, "portrait.colour"),
        ({"mode": "image"}, "portrait.image"),
    ],
)
def test_bad_settings_are_rejected_with_the_setting_name(
    photo: np.ndarray, model_mask: np.ndarray, override: dict[str, object], name: str
) -> None:
    """A bad per-call override raises ConfigError naming the setting; the compositor's settings stay."""
    c = Compositor(PortraitConfig(blur=30))
    with pytest.raises(ConfigError) as e:
        c.compose(photo, model_mask, override)
    assert name in str(e.value)
    assert c.settings.blur == 30
    with pytest.raises(ConfigError):
        resolve_settings(None, override)


def test_missing_background_picture_is_rejected_naming_it(photo: np.ndarray, tmp_path: Path) -> None:
    """mode=image with a picture that does not exist is a settings error; one that vanished later an InputError."""
    missing = tmp_path / "gone.jpg"
    with pytest.raises(ConfigError, match="portrait.image.*gone.jpg"):
        compose(photo, np.zeros((256, 256), np.float32), {"mode": "image", "image": str(missing)})
    later = tmp_path / "later.png"
    cv2.imwrite(str(later), photo)
    settings = resolve_settings(None, {"mode": "image", "image": str(later)})
    later.unlink()
    with pytest.raises(InputError, match="later.png"):
        compose(photo, np.zeros((256, 256), np.float32), settings)


def test_bad_frame_or_mask_is_a_value_error(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frame"):
        compose(photo.astype(np.float32), np.zeros((256, 256), np.float32))
    with pytest.raises(ValueError, match="mask"):
        compose(photo, np.zeros((4, 4, 3), np.float32))


def test_temporal_smoothing_damps_flicker_but_follows_motion() -> None:
    """Small frame-to-frame changes are damped; a large change (the person moved) passes at once."""
    sm = TemporalSmoother()
    base = np.full((16, 16), 0.5, np.float32)
    sm(base, 0.8)
    flicker = sm(base + 0.1, 0.8)
    assert 0.5 < float(flicker.mean()) < 0.56  # most of the 0.1 jump held back
    moved = sm(np.ones((16, 16), np.float32), 0.8)
    assert float(moved.mean()) > 0.97  # a jump of about 0.5 is motion: no ghost
    sm.reset()
    assert np.array_equal(sm(base, 0.8), base)


def test_compositor_smooths_over_frames_and_reset_forgets(photo: np.ndarray, model_mask: np.ndarray) -> None:
    """A stream compositor blends the mask with the previous frames'; the stateless call never does."""
    c = Compositor(PortraitConfig(smoothing=0.9))
    c.compose(photo, model_mask)
    shifted = np.clip(model_mask - 0.15, 0, 1)
    smoothed = c.compose(photo, shifted)
    assert not np.array_equal(smoothed, compose(photo, shifted, {"smoothing": 0.9}))
    c.reset()
    assert np.array_equal(c.compose(photo, shifted), compose(photo, shifted, {"smoothing": 0.9}))


def test_compositor_from_two_threads_gives_the_serial_result(photo: np.ndarray, model_mask: np.ndarray) -> None:
    """Calls from several threads share no scratch state: each output equals the serial one."""
    c = Compositor(PortraitConfig(), temporal=False)
    frames = [np.ascontiguousarray(np.roll(photo, 40 * i, axis=1)) for i in range(4)]
    expected = [compose(f, model_mask) for f in frames]
    results: dict[int, list[np.ndarray]] = {}

    def work(i: int) -> None:
        results[i] = [c.compose(frames[i], model_mask) for _ in range(3)]

    run_in_threads(work, 4)
    for i in range(4):
        assert all(np.array_equal(r, expected[i]) for r in results[i])


def test_foreground_fraction_is_the_share_of_person(model_mask: np.ndarray) -> None:
    assert foreground_fraction(np.ones((8, 8), np.float32)) == 1.0
    assert foreground_fraction(np.zeros((8, 8), np.uint8)) == 0.0
    assert 0.3 < foreground_fraction(model_mask) < 0.8


def test_every_portrait_setting_is_documented_with_its_default() -> None:
    """docs/configuration.md has a row per portrait key, showing the default the code has."""
    text = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    section = text.split("## portrait:", 1)[1].split("\n## ", 1)[0]
    rows = {
        ln.split("|")[1].strip(" `"): ln.split("|")[2].strip() for ln in section.splitlines() if ln.startswith("| `")
    }
    for name, field in PortraitConfig.model_fields.items():
        assert name in rows, name
        default = field.default
        shown = (
            "null"
            if default is None
            else (
                str(list(default))
                if isinstance(default, tuple)
                else f"{default:g}"
                if isinstance(default, float)
                else str(default)
            )
        )
        assert rows[name].strip("`") == shown, (name, rows[name], shown)


def test_landscape_model_mask_is_upsampled_to_the_frame(photo: np.ndarray) -> None:
    """A 144×256 mask (the landscape model's) maps onto a 16:9 frame: its left half person, right half not."""
    frame = cv2.resize(photo, (1280, 720))
    mask = np.zeros((144, 256), np.uint8)
    mask[:, :128] = 255
    out = compose(frame, mask, {"mode": "color", "color": [0, 0, 0]})
    assert np.array_equal(out[:, :560], frame[:, :560])  # well inside the person half
    assert out[:, 720:].max() == 0  # well inside the background half: the colour exactly


def test_a_mask_with_nan_and_infinities_reads_as_no_person_and_full_person(photo: np.ndarray) -> None:
    """A broken model output (NaN, ±inf) composes as if those values were 0 (NaN, -inf) and 1 (+inf)."""
    rng = np.random.default_rng(7)
    mask = rng.random((256, 256), dtype=np.float32)
    broken, clean = mask.copy(), mask.copy()
    where = rng.random(mask.shape) < 0.05
    values = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), size=int(where.sum()))
    broken[where] = values
    clean[where] = np.where(values == np.inf, 1.0, 0.0)
    assert np.array_equal(compose(photo, broken), compose(photo, clean))
    assert int(np.isnan(broken).sum()) == int(np.isnan(values).sum()) > 0  # the caller's array is left as it was
