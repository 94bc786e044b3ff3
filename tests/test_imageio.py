"""Image input is refused cleanly when bad, and files we write appear whole or not at all."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeportrait import imageio
from edgeportrait.errors import InputError

DATA_DIR = Path(__file__).parent / "data"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height but carries almost no data: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_with_orientation(img: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose EXIF says how a viewer must rotate it (APP1 with one IFD0 entry)."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    jpeg = buf.tobytes()
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x0112, 3, 1, orientation) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    return jpeg[:2] + segment + jpeg[2:]


def test_reads_a_photo_as_bgr_uint8() -> None:
    img = imageio.read_image(DATA_DIR / "astronaut.png")
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8


def test_grayscale_photo_comes_back_as_three_channels() -> None:
    img = imageio.read_image(DATA_DIR / "camera.png")
    assert img.shape == (512, 512, 3)
    assert np.array_equal(img[..., 0], img[..., 2])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """A portrait photo stored sideways with EXIF orientation 6 is read upright (rotated 90° clockwise)."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (0, 0, 255)  # left half red in storage
    path = tmp_path / "sideways.jpg"
    path.write_bytes(_jpeg_with_orientation(stored, 6))
    img = imageio.read_image(path)
    assert img.shape == (80, 40, 3)
    # rotated clockwise, the stored left half becomes the top half
    assert img[:40, :, 2].mean() > 200 and img[40:, :, 2].mean() < 50


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"this is not an image at all" * 10, "not a readable image"),
        (None, "not a readable image"),  # truncated JPEG, filled below
    ],
)
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, content: bytes | None, reason: str) -> None:
    if content is None:
        ok, buf = cv2.imencode(".jpg", np.full((200, 200, 3), 128, np.uint8))
        content = buf.tobytes()[:100]
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError, match=reason) as info:
        imageio.read_image(path)
    assert str(path) in str(info.value)


def test_decompression_bomb_is_refused_before_allocation(tmp_path: Path) -> None:
    """A PNG declaring 60000×60000 pixels (10 GB decoded) is refused by its header."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(60000, 60000))
    with pytest.raises(InputError, match="too large"):
        imageio.read_image(path)


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        imageio.read_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="is a directory"):
        imageio.read_image(tmp_path)


def test_folders_expand_to_sorted_images_and_missing_paths_pass_through(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    missing = tmp_path / "missing.jpg"
    got = list(imageio.iter_image_files([tmp_path, missing]))
    assert got == [tmp_path / "a.PNG", tmp_path / "b.jpg", missing]


def test_inputs_sharing_a_stem_get_distinct_outputs() -> None:
    paths = [Path("x/a.jpg"), Path("y/a.png"), Path("b.jpg")]
    assert imageio.unique_stems(paths) == {paths[0]: "a", paths[1]: "a-2", paths[2]: "b"}


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jpg"
    target.write_bytes(b"old")
    imageio.atomic_write(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["out.jpg"]


def test_atomic_write_gives_the_usual_file_mode(tmp_path: Path) -> None:
    """A portrait is readable as a plain create would make it (0666 less the umask), not private 0600."""
    old = os.umask(0o022)
    try:
        imageio.atomic_write(tmp_path / "a.jpg", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.jpg").stat().st_mode & 0o777 == 0o644


def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure before the rename (disk full, power cut) never leaves a half-written target."""
    target = tmp_path / "out.jpg"
    target.write_bytes(b"old")

    def boom(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        imageio.atomic_write(target, b"x" * 1000)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.jpg"]
