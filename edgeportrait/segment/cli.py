"""``edgeportrait segment``: person masks of image files as 8-bit PNGs.

Each input gives ``OUT_DIR/<stem>.png``: grayscale, the input's width × height,
255 = person (the float mask × 255, rounded). An input that cannot be read is
reported in one line and skipped; the others are still written; the exit code
is then 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from edgeportrait.config import ModelConfig
from edgeportrait.errors import EX_OK, EX_USAGE, InputError, UserError
from edgeportrait.imageio import atomic_write, encode_png, prepare_batch, read_image, unique_stems
from edgeportrait.logsafe import escape, shown

logger = logging.getLogger(__name__)

DEVICES = ("AUTO", "CPU", "GPU", "NPU")


def mask_to_png(mask: np.ndarray) -> bytes:
    """Float mask in [0, 1] -> 8-bit grayscale PNG bytes, 255 = person."""
    u8 = np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)
    return encode_png(u8)


def main(args: argparse.Namespace) -> int:
    device = str(args.device).upper()
    if device not in DEVICES:
        raise UserError(f"--device: unknown device {args.device!r} (choose from {', '.join(DEVICES)})")
    inputs, out_dir = prepare_batch(args.inputs, args.output)

    from edgeportrait.segment.segmenter import Segmenter

    cfg = ModelConfig.model_validate(
        {"name": args.model, "precision": args.precision, "device": device, "dir": args.models_dir}
    )
    seg = Segmenter(cfg)
    failed = 0
    stems = unique_stems(inputs)
    for path in inputs:
        try:
            frame = read_image(path)
        except InputError as e:
            sys.stderr.write(f"edgeportrait: {escape(str(e))}\n")
            failed += 1
            continue
        mask = seg.segment(frame)
        target = out_dir / f"{stems[path]}.png"
        try:
            atomic_write(target, mask_to_png(mask), durable=False)
        except OSError as e:
            raise UserError(f"{target}: cannot write: {e.strerror or e}") from None
        logger.debug("%s -> %s", shown(path), shown(target))
    written = len(inputs) - failed
    logger.info("%d mask(s) written to %s (%s %s on %s)", written, out_dir, seg.name, seg.precision, seg.device)
    return EX_USAGE if failed else EX_OK
