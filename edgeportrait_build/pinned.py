"""What the model build starts from: the mediapipe wheel and the two .tflite files in it, pinned.

Its own module because both the build (which checks the files against these
pins) and the report (which prints them in ``models/README.md``) need them, and
neither should import the other for that.
"""

from __future__ import annotations

from dataclasses import dataclass

MEDIAPIPE_VERSION = "0.10.14"
# Any platform's wheel holds the same .tflite bytes; pinning one wheel makes the
# download independent of the machine that builds.
PIP_WHEEL_ARGS = ["--only-binary=:all:", "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64"]
WHEEL_DIR = "mediapipe/modules/selfie_segmentation"


@dataclass(frozen=True)
class Source:
    name: str  # our model name (config model.name)
    member: str  # file name inside the wheel's WHEEL_DIR
    sha256: str
    input_hw: tuple[int, int]


SOURCES = (
    Source(
        "general",
        "selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        (256, 256),
    ),
    Source(
        "landscape",
        "selfie_segmentation_landscape.tflite",
        "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        (144, 256),
    ),
)
