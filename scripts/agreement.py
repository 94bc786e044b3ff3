"""How far our models' masks agree with the reference runtime's, per scene class, on this CPU.

    python scripts/agreement.py                                   # tests/data/heldout, both models and precisions
    python scripts/agreement.py --data golden                     # tests/data/golden (the three portraits)
    python scripts/agreement.py --json out.json --label "arm64 under QEMU (cortex-a72)"
    ONEDNN_MAX_CPU_ISA=AVX2 OV_CPU_MAX_ISA=AVX2 python scripts/agreement.py   # CPU plugin held to AVX2

A thin command line over :mod:`edgeportrait_build.agreement` (the figures are
the same as the tests' and models/README.md's): per model and precision, the
mean and worst image of ``sure_iou`` and of plain IoU@0.5, overall and per
scene class. ``scripts/arm64-check.sh`` runs it inside an arm64 chroot.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeportrait.config import ModelConfig  # noqa: E402
from edgeportrait.segment import Segmenter  # noqa: E402
from edgeportrait_build import agreement  # noqa: E402
from edgeportrait_build.report import cpu_name, golden_module, isa  # noqa: E402

MODELS = ("general", "landscape")
PRECISIONS = ("fp32", "int8")


def golden_scores(name: str, seg: Segmenter) -> dict[str, dict[str, float]]:
    golden = golden_module()
    return {
        case: agreement.measures(seg.segment(golden.load_case(case)), golden.read_golden(name, case))
        for case in golden.CASES
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO / "tests" / "data" / "heldout"),
                    help="'golden' (tests/data/golden) or a data set part (manifest.json, images/, masks/)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--label", default="", help="where it ran, e.g. 'arm64 under QEMU (cortex-a72)'")
    args = ap.parse_args(argv)
    data = Path(args.data)
    classes = {} if args.data == "golden" else {c.name: c.cls for c in agreement.cases(data)}
    where = args.label or f"{cpu_name()}, ISA {isa()}"
    print(f"agreement with the reference runtime on {args.data}, {where}")
    results: dict[str, object] = {"where": where, "data": args.data}
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            seg = Segmenter(ModelConfig(name=name, precision=precision, device="CPU", infer_requests=1))
            per_image = golden_scores(name, seg) if args.data == "golden" else agreement.scores(data, name, seg.segment)
            summary = {m: agreement.summarize(per_image, classes, m) for m in agreement.METRICS}
            results[f"{name}/{precision}"] = {"summary": summary, "per_image": per_image}
            print(f"\n{name} {precision}")
            for key, s in sorted(summary["sure_iou"].items(), key=lambda kv: kv[0] == "all"):
                p = summary["iou"][key]
                print(f"  {key:<14} n={s['n']:<3} sure_iou {s['mean']:.4f} / {s['worst']:.4f}"
                      f"   iou {p['mean']:.4f} / {p['worst']:.4f} (worst: {p['worst_image']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
