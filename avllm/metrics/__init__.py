"""Every evaluation metric, in numpy, computed as the reference code of each benchmark computes it.

Numpy arrays or lists in, floats or ``{name: float}`` dicts out. One module per family:

- :mod:`.ssl` — sound source localization (EZ-VSL / LVS cIoU, AUC, fixed threshold, pointing, ceiling);
- :mod:`.segmentation` — AVSBench mIoU and F-score, DenseAV per-class pixel AP and best IoU;
- :mod:`.retrieval` — Recall@K both directions, pessimistic ties;
- :mod:`.grounding` — box accuracy at IoU 0.5, temporal mIoU and R@1 at tIoU 0.5;
- :mod:`.classification` — accuracy, per question kind;
- :mod:`.captions` — fact recall, BLEU-4, CIDEr-D;
- :mod:`.baselines` — centre prior map and box, random segments.
"""

from .baselines import center_box, center_prior_map, random_segments
from .captions import bleu4, cider_d, fact_recall, mean_fact_recall, tokenize
from .classification import accuracy, normalize_answer, per_kind_accuracy
from .grounding import box_iou, grounding_accuracy, interval_union, segment_iou, temporal_metrics, union_iou
from .retrieval import class_set_ceiling, match_ranks, recall_at_k, retrieval_metrics
from .segmentation import avsbench_fscore, avsbench_miou, best_iou, dense_seg_metrics, linspace_f32, pixel_ap
from .ssl import (
    AUC_XS,
    SSL_SIZE,
    ciou,
    gt_map_from_boxes,
    median_threshold,
    normalize_map,
    perfect_map,
    pointing_hit,
    ssl_auc,
    ssl_ceiling,
    ssl_metrics,
    upsample_map,
)

__all__ = [
    "AUC_XS",
    "SSL_SIZE",
    "accuracy",
    "avsbench_fscore",
    "avsbench_miou",
    "best_iou",
    "bleu4",
    "box_iou",
    "center_box",
    "center_prior_map",
    "cider_d",
    "ciou",
    "dense_seg_metrics",
    "fact_recall",
    "grounding_accuracy",
    "gt_map_from_boxes",
    "interval_union",
    "linspace_f32",
    "match_ranks",
    "mean_fact_recall",
    "median_threshold",
    "normalize_answer",
    "normalize_map",
    "per_kind_accuracy",
    "perfect_map",
    "pixel_ap",
    "pointing_hit",
    "random_segments",
    "recall_at_k",
    "retrieval_metrics",
    "class_set_ceiling",
    "segment_iou",
    "ssl_auc",
    "ssl_ceiling",
    "ssl_metrics",
    "temporal_metrics",
    "tokenize",
    "union_iou",
    "upsample_map",
]
