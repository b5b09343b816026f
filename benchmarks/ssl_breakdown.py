"""Where a sound-source map misses: its per-clip cIoU (median threshold, as ``ssl.ciou50`` counts it) by the kind
of clip.

    PYTHONPATH=. .venv/bin/python benchmarks/ssl_breakdown.py --checkpoint assets/avllm-tiny \\
        --data data/test-standard --limit 200 --map jsa        # or --map classmap

``--map jsa`` is the JSA map (``ssl.*``); ``--map classmap`` the class maps weighted by each class's sounding
probability (``ssl.classmap.*``, :func:`avllm.heads.classmap.sounding_map`).

Groups: how many sounding objects are in view (the SSL target's boxes), whether a silent object is in view beside
them, and the share of the frame the target covers. For each group: clips, the share with cIoU >= 0.5, the mean
cIoU, and the share whose map peaks on a silent object's box (and not on the target). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _inside(box: list[float], y: int, x: int, size: int) -> bool:
    """Is pixel (y, x) of a (size, size) frame inside the normalised box [x0, y0, x1, y1]?"""
    cx, cy = (x + 0.5) / size, (y + 0.5) / size
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="assets/avllm-tiny")
    p.add_argument("--data", default="data/test-standard")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--map", choices=("jsa", "classmap"), default="jsa")
    a = p.parse_args(argv)

    import torch

    from avllm import metrics as M
    from avllm.checkpoint import load
    from avllm.data import read_manifest
    from avllm.evaluate import _gt_boxes_map, encode_records
    from avllm.heads.classmap import sounding_map

    root = Path(a.data)
    model = load(a.checkpoint).eval()
    if a.map == "classmap" and model.class_map is None:
        raise SystemExit(f"{a.checkpoint} has no class maps (ModelConfig.tag_locate is off)")
    g = model.image_encoder.grid
    recs = [r for r in read_manifest(root / "manifest.jsonl")[: a.limit] if r.ssl_boxes]
    rows = []  # (record, gt, upsampled map)
    with torch.no_grad():
        for s in range(0, len(recs), a.batch_size):
            chunk = recs[s : s + a.batch_size]
            f = encode_records(model, chunk, root)
            maps = f.ssl_map if a.map == "jsa" else sounding_map(f.class_maps)  # (B, P)
            for i, r in enumerate(chunk):
                gt = _gt_boxes_map(r)
                up = M.normalize_map(M.upsample_map(maps[i].view(g, g).float().numpy(), gt.shape))
                rows.append((r, gt, up))

    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r, gt, up in rows:
        c = M.ciou(up >= M.median_threshold(up), gt)
        y, x = np.unravel_index(int(np.argmax(up)), up.shape)
        on_target = gt[y, x] > 0
        silent = [o.box for o in r.objects if not o.sounding]
        on_silent = (not on_target) and any(_inside(b, y, x, up.shape[0]) for b in silent)
        area = float((gt > 0).mean())
        keys = {
            "sounding objects in view": f"{len(r.ssl_boxes)}" if len(r.ssl_boxes) < 3 else "3+",
            "silent object in view": "yes" if silent else "no",
            "target's share of the frame": "< 0.25" if area < 0.25 else ("0.25-0.5" if area < 0.5 else ">= 0.5"),
        }
        for table, key in [("all", "all"), *keys.items()]:
            groups[table][key].append((c, on_silent))
    for table, by_key in groups.items():
        print(f"\n| {table} ({a.map} map) | clips | cIoU >= 0.5 | mean cIoU | peak on a silent object |")
        print("|---|---:|---:|---:|---:|")
        for key in sorted(by_key):
            v = np.asarray([c for c, _ in by_key[key]])
            s = np.asarray([o for _, o in by_key[key]], dtype=float)
            print(f"| {key} | {len(v)} | {np.mean(v >= 0.5):.3f} | {v.mean():.3f} | {s.mean():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
