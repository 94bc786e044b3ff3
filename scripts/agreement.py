"""How far our models' masks agree with reference masks, per image and per scene class.

For each model (general, landscape) and precision (fp32, int8) it runs
``edgeportrait.segment.Segmenter`` on the CPU over an image set and compares
the person areas (mask > 0.5) with the reference's: IoU per image, then mean
and worst per class and overall. On a "nobody" image (the reference calls
fewer than 0.5% of the pixels person) IoU says nothing, so it gives instead the
fraction of pixels our mask calls person (0 is right).

    python scripts/agreement.py --data golden              # tests/data/golden (MediaPipe's masks)
    python scripts/agreement.py --data tests/data/heldout --json out.json

A data directory other than ``golden`` has ``manifest.json`` =
``{"images": [{"file": "images/x.jpg", "class": "group", ...}, ...]}`` and
reference masks ``masks/<model>/<stem of file>.png`` (8- or 16-bit, full scale =
person, the image's size). Images without a mask for a model are skipped for it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODELS = ("general", "landscape")
PRECISIONS = ("fp32", "int8")
NOBODY = 0.005  # reference person fraction below which an image counts as "nobody"


@dataclass
class Item:
    name: str
    cls: str
    image: Callable[[], np.ndarray]  # BGR uint8
    reference: Callable[[str], np.ndarray | None]  # model -> float mask in [0, 1], None if absent


def golden_items() -> list[Item]:
    path = REPO / "tests" / "data" / "golden" / "make_golden.py"
    spec = importlib.util.spec_from_file_location("make_golden", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return [Item(n, "-", partial(mod.load_case, n), partial(mod.read_golden, name=n)) for n in mod.CASES]


def read_mask(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        return None
    if m.ndim == 3:
        m = m[:, :, 0]
    return m.astype(np.float32) / (65535.0 if m.dtype == np.uint16 else 255.0)


def manifest_items(root: Path) -> list[Item]:
    entries = json.loads((root / "manifest.json").read_text())["images"]
    items = []
    for e in entries:
        file = root / e["file"]

        def image(file: Path = file) -> np.ndarray:
            img = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(file)
            return img

        stem = Path(e["file"]).stem

        def reference(model: str, stem: str = stem) -> np.ndarray | None:
            return read_mask(root / "masks" / model / f"{stem}.png")

        items.append(Item(stem, str(e.get("class", "-")), image, reference))
    stems = [i.name for i in items]
    if len(set(stems)) != len(stems):
        raise ValueError(f"{root}/manifest.json: two images with the same file stem (their masks would be one file)")
    return items


def compare(mask: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ours, theirs = mask > 0.5, ref > 0.5
    if theirs.mean() < NOBODY:
        return {"person_fraction": float(ours.mean())}
    union = np.logical_or(ours, theirs).sum()
    return {"iou": float(np.logical_and(ours, theirs).sum() / union)}


def run(items: list[Item], models: list[str], precisions: list[str]) -> Iterator[tuple[Item, str, str, dict]]:
    from edgeportrait.config import ModelConfig
    from edgeportrait.segment import Segmenter

    with tempfile.TemporaryDirectory(prefix="agreement-ov-") as cache:
        segs = {
            (m, p): Segmenter(ModelConfig(name=m, precision=p, device="CPU", fallback=[], cache_dir=Path(cache)))
            for m in models
            for p in precisions
        }
        for item in items:
            img = item.image()
            for m in models:
                ref = item.reference(m)
                if ref is None:
                    print(f"{item.name}: no reference mask for {m}, skipped", file=sys.stderr)
                    continue
                if ref.shape != img.shape[:2]:
                    raise ValueError(f"{item.name}: reference {ref.shape} is not the image's size {img.shape[:2]}")
                for p in precisions:
                    yield item, m, p, compare(segs[m, p].segment(img), ref)


def summarize(rows: list[tuple[Item, str, str, dict]]) -> list[dict]:
    groups: dict[tuple[str, str, str], list[tuple[str, dict]]] = {}
    for item, m, p, r in rows:
        for cls in dict.fromkeys([item.cls, "all"] if item.cls != "-" else ["all"]):
            groups.setdefault((m, p, cls), []).append((item.name, r))
    out = []
    for (m, p, cls), results in groups.items():
        ious = [(r["iou"], n) for n, r in results if "iou" in r]
        fps = [(r["person_fraction"], n) for n, r in results if "person_fraction" in r]
        s: dict = {"model": m, "precision": p, "class": cls, "n": len(ious), "nobody_n": len(fps)}
        if ious:
            s |= {"iou_mean": float(np.mean([v for v, _ in ious])), "iou_worst": min(ious)[0], "worst": min(ious)[1]}
        if fps:
            s |= {"nobody_person_mean": float(np.mean([v for v, _ in fps])), "nobody_person_worst": max(fps)[0]}
        out.append(s)
    # "all" last within each model/precision, classes in name order
    return sorted(out, key=lambda s: (s["model"], s["precision"], s["class"] == "all", s["class"]))


def fmt(r: dict | None) -> str:
    if r is None:
        return "-"
    return f"{r['iou']:.4f}" if "iou" in r else f"p={r['person_fraction']:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="golden", help="'golden' (tests/data/golden) or a manifest directory")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated (default: %(default)s)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--label", default="", help="where it ran, e.g. 'arm64 under QEMU (cortex-a72)'")
    args = ap.parse_args(argv)
    models, precisions = args.models.split(","), args.precisions.split(",")
    items = golden_items() if args.data == "golden" else manifest_items(Path(args.data))

    import openvino as ov

    label = args.label or f"{platform.machine()} native"
    print(f"# {label}; OpenVINO {ov.__version__}; data {args.data} ({len(items)} images)")
    rows = list(run(items, models, precisions))
    cols = [(m, p) for m in models for p in precisions]
    per_image: dict[str, dict] = {}
    for item, m, p, r in rows:
        per_image.setdefault(item.name, {"class": item.cls})[f"{m} {p}"] = r
    width = max([len(n) for n in per_image] + [5])
    print(f"\n{'image':<{width}}  {'class':<10} " + " ".join(f"{m + ' ' + p:>15}" for m, p in cols))
    for name, res in per_image.items():
        print(f"{name:<{width}}  {res['class']:<10} " + " ".join(f"{fmt(res.get(f'{m} {p}')):>15}" for m, p in cols))
    print("(IoU of mask>0.5 vs reference>0.5; p= on a nobody image: fraction of pixels we call person)")

    summary = summarize(rows)
    head = ["model", "prec", "class", "n", "IoU mean", "IoU worst", "worst image", "nobody", "p mean", "p worst"]
    table = [head] + [
        [s["model"], s["precision"], s["class"], str(s["n"])]
        + ([f"{s['iou_mean']:.4f}", f"{s['iou_worst']:.4f}", s["worst"]] if s["n"] else ["-", "-", ""])
        + [str(s["nobody_n"])]
        + ([f"{s['nobody_person_mean']:.4f}", f"{s['nobody_person_worst']:.4f}"] if s["nobody_n"] else ["-", "-"])
        for s in summary
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    print()
    for r in table:
        print(
            "  ".join(
                c.ljust(w) if i in (0, 1, 2, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )

    if args.json:
        doc = {
            "label": label,
            "machine": platform.machine(),
            "openvino": ov.__version__,
            "data": args.data,
            "nobody_threshold": NOBODY,
            "images": {n: r for n, r in per_image.items()},
            "summary": summary,
        }
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
