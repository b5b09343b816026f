"""What a sound-source map can score at a given patch grid: the ground truth itself, seen at the grid's resolution.

    PYTHONPATH=. .venv/bin/python benchmarks/ssl_grid_ceiling.py --data data/test-standard --limit 200 --grids 8 14

The JSA map is one value per image patch, a (g, g) grid (g = image_size / patch_size: 8 for ``tiny``, 14 for
``base``), upsampled to the 224 px ground truth before it is scored. Here each clip's GT map (VGG-SS rule, from
its boxes, as ``avllm.evaluate`` builds it) is area-averaged to (g, g), its background ordered without ties as in
:func:`avllm.metrics.ssl.perfect_map`, and scored by :func:`avllm.metrics.ssl.ssl_metrics` like a model's map. The
full-resolution row is ``ssl.ceiling.*`` of the evaluation. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pooled(gt: np.ndarray, g: int) -> np.ndarray:
    """(H, W) -> (g, g): the mean of the GT over each of g x g equal cells (H and W divisible by g, or cropped)."""
    h, w = gt.shape
    ch, cw = h // g, w // g
    return gt[: ch * g, : cw * g].reshape(g, ch, g, cw).mean(axis=(1, 3))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/test-standard")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--grids", type=int, nargs="+", default=[8, 14])
    a = p.parse_args(argv)

    from avllm import metrics as M
    from avllm.data import read_manifest
    from avllm.evaluate import _gt_boxes_map

    gts = [_gt_boxes_map(r) for r in read_manifest(Path(a.data) / "manifest.jsonl")[: a.limit]]
    rows = [("full resolution (224 x 224)", M.ssl_ceiling(gts))]
    for g in a.grids:
        maps = [M.perfect_map(pooled(gt, g)) for gt in gts]
        rows.append((f"{g} x {g} patch grid", M.ssl_metrics(maps, gts)))
    print(f"| GT as the map ({len(gts)} clips, {a.data}) | `ciou50` | `auc` | `ciou_mean` | `pointing` |")
    print("|---|---:|---:|---:|---:|")
    for name, m in rows:
        print(f"| {name} | {m['ciou50']:.3f} | {m['auc']:.3f} | {m['ciou_mean']:.3f} | {m['pointing']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
