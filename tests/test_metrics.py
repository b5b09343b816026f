"""Evaluation metrics: hand-computed cases (the arithmetic is in the comments) and property tests."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.metrics import (
    accuracy,
    avsbench_fscore,
    avsbench_miou,
    best_iou,
    bleu4,
    box_iou,
    center_box,
    center_prior_map,
    cider_d,
    ciou,
    dense_seg_metrics,
    fact_recall,
    grounding_accuracy,
    gt_map_from_boxes,
    linspace_f32,
    match_ranks,
    mean_fact_recall,
    median_threshold,
    normalize_map,
    per_kind_accuracy,
    perfect_map,
    pixel_ap,
    random_segments,
    recall_at_k,
    retrieval_metrics,
    segment_iou,
    ssl_auc,
    ssl_ceiling,
    ssl_metrics,
    temporal_metrics,
    union_iou,
    upsample_map,
)

# ----------------------------------------------------------------------------------------------- SSL: maps


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("shape,size", [((7, 7), 224), ((8, 5), (224, 100)), ((14, 14), 16), ((3, 4), 3)])
def test_upsample_matches_torch_bilinear(shape, size, align_corners):
    m = np.random.default_rng(0).normal(size=shape)
    out_hw = (size, size) if isinstance(size, int) else size
    ref = F.interpolate(torch.from_numpy(m)[None, None], size=out_hw, mode="bilinear", align_corners=align_corners)
    got = upsample_map(m, size, align_corners=align_corners)
    assert got.shape == out_hw
    np.testing.assert_allclose(got, ref[0, 0].numpy(), atol=1e-10)


def test_upsample_by_hand_and_identity():
    # align_corners=True, 2 -> 3: the middle sample sits half way: [[0, 1], [2, 3]] -> rows 0, 1.5-mid, 2
    got = upsample_map(np.array([[0.0, 1.0], [2.0, 3.0]]), 3)
    np.testing.assert_allclose(got, [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]])
    m = np.random.default_rng(1).random((224, 224))
    np.testing.assert_array_equal(upsample_map(m, 224), m)  # same size: exactly the input


def test_normalize_map_range_and_constant():
    m = np.array([[2.0, 4.0], [6.0, 10.0]])
    np.testing.assert_allclose(normalize_map(m), [[0, 0.25], [0.5, 1.0]])  # (v - 2) / 8
    np.testing.assert_array_equal(normalize_map(np.full((3, 3), 7.0)), np.full((3, 3), 7.0))  # as the reference


def test_gt_map_vggss_union_and_pixel_bounds():
    g = gt_map_from_boxes([[0.0, 0.0, 0.5, 0.5], [0.3, 0.3, 0.8, 0.8]], size=10, mode="vggss")
    # box 1 -> rows/cols 0:5 (25 px); box 2 -> int(3.0):int(8.0) = 3:8 (25 px); overlap 3:5 x 3:5 = 4 px
    assert set(np.unique(g)) == {0.0, 1.0}
    assert g.sum() == 25 + 25 - 4
    assert g[4, 4] == 1 and g[5, 5] == 1 and g[0, 9] == 0
    # pixel bounds truncate: int(224 * 0.1) = int(22.4) = 22, int(224 * 0.2) = int(44.8) = 44
    g = gt_map_from_boxes([[0.1, 0.1, 0.2, 0.2]])
    assert g.shape == (224, 224) and g.sum() == 22 * 22 and g[22, 22] == 1 and g[44, 44] == 0
    g = gt_map_from_boxes([[-0.2, -0.1, 1.3, 1.0]], size=8)  # clipped into the frame
    assert g.sum() == 64


def test_gt_map_flickr_divides_votes_by_two():
    a, b, c = [0.0, 0.0, 0.6, 0.6], [0.4, 0.4, 1.0, 1.0], [0.0, 0.0, 0.2, 0.2]  # pixels 0:6, 4:10, 0:2 of 10
    g = gt_map_from_boxes([a, b, c], size=10, mode="flickr")
    assert g[9, 9] == 0.5  # one vote / 2
    assert g[5, 5] == 1.0  # a and b: 2 / 2
    assert g[1, 1] == 1.0  # a and c: 2 / 2
    assert g[0, 9] == 0.0
    g3 = gt_map_from_boxes([a, a, a], size=10, mode="flickr")
    assert g3.max() == 1.0  # 3 / 2 clipped to 1
    # annotator ids: one annotator's two overlapping boxes are one vote there (0.5), not two (1.0)
    two_boxes_one_person = gt_map_from_boxes([a, b], size=10, mode="flickr", annotators=["p1", "p1"])
    assert two_boxes_one_person[5, 5] == 0.5
    assert gt_map_from_boxes([a, b], size=10, mode="flickr")[5, 5] == 1.0  # reference: every box a vote
    with pytest.raises(ValueError):
        gt_map_from_boxes([a, b], size=10, mode="flickr", annotators=["p1"])


def test_ciou_by_hand_with_half_weights():
    g = np.array([1.0, 0.5, 0.0, 0.0])
    p = np.array([1.0, 1.0, 1.0, 0.0])
    # sum(P*G) = 1 + 0.5 = 1.5; sum(G) = 1.5; sum(P*(G==0)) = 1 -> 1.5 / 2.5
    assert ciou(p, g) == pytest.approx(0.6)
    assert ciou(np.zeros(4), np.zeros(4)) == 0.0  # 0 / 0 scored 0


def test_ssl_metrics_by_hand_4x4():
    m = np.arange(16, dtype=float).reshape(4, 4)  # normalised: v / 15
    g = np.zeros((4, 4))
    g[1:3, :] = 1  # pixels 4..11
    # median: sort(m)[int(16 * 0.5)] = value 8 -> P = pixels 8..15; P*G = 8..11 = 4 px; G = 8 px;
    # P*(G==0) = 12..15 = 4 px -> cIoU = 4 / (8 + 4) = 1/3
    assert median_threshold(normalize_map(m)) == pytest.approx(8 / 15)
    # fixed 0.55: v / 15 >= 0.55 <=> v >= 8.25 -> pixels 9..15: P*G = 9..11 = 3; P*(G==0) = 4 -> 3 / 12
    # peak = pixel 15, outside the GT rows -> pointing 0
    r = ssl_metrics([m], [g], fixed_threshold=0.55)
    assert r["ciou_mean"] == pytest.approx(1 / 3)
    assert r["ciou_mean_fixed"] == pytest.approx(0.25)
    assert r["ciou50"] == 0.0 and r["ciou50_fixed"] == 0.0
    assert r["pointing"] == 0.0 and r["n"] == 1
    g2 = np.zeros((4, 4))
    g2[3, 2:] = 1  # pixels 14, 15: the peak is inside -> pointing 1
    assert ssl_metrics([m], [g2])["pointing"] == 1.0


def test_ssl_auc_by_hand():
    assert ssl_auc([1.0, 1.0, 1.0]) == pytest.approx(1.0)  # y(x) = 1 for every x
    # all zero: y(0) = 1 (cIoU >= 0 always holds), y(x > 0) = 0 -> one trapezoid 0.05 * (1 + 0) / 2. The
    # reference's AUC of an all-zero set is 0.025, not 0.
    assert ssl_auc([0.0, 0.0]) == pytest.approx(0.025)
    # [1, 0.5, 0]: y(0) = 1, y(0.05..0.5) = 2/3 (10 points), y(0.55..1) = 1/3 (10 points):
    # 0.05 * [(1 + 2/3)/2 + 9 * 2/3 + (2/3 + 1/3)/2 + 9 * 1/3] = 0.05 * (5/6 + 6 + 1/2 + 3) = 0.516666...
    assert ssl_auc([1.0, 0.5, 0.0]) == pytest.approx(0.05 * (5 / 6 + 6 + 0.5 + 3))
    r = ssl_metrics([np.ones((2, 2))], [np.ones((4, 4))])
    assert r["auc"] == pytest.approx(1.0) and r["ciou50"] == 1.0


@settings(max_examples=25, deadline=None)
@given(
    x0=st.integers(0, 223),
    y0=st.integers(0, 223),
    w=st.integers(1, 224),
    h=st.integers(1, 224),
    seed=st.integers(0, 9),
)
def test_perfect_map_scores_two_f_under_the_median_threshold(x0, y0, w, h, seed):
    N = 224 * 224
    g = np.zeros((224, 224))
    g[y0 : y0 + h, x0 : x0 + w] = 1
    A = g.sum()
    # object pixels above every background pixel, all values distinct (no ties at the median)
    m = g + 1e-3 * np.random.default_rng(seed).random((224, 224))
    got = ssl_metrics([m], [g])["ciou_mean"]
    # exactly N/2 pixels positive: A <= N/2 -> A / (A + N/2 - A) = 2f; A > N/2 -> (N/2) / A
    expected = 2 * A / N if A <= N / 2 else (N / 2) / A
    assert got == pytest.approx(expected, abs=1e-12)
    # the ceiling (ties kept inside the object) reaches 2f, and 1 once the object covers half the frame
    ceil = ssl_ceiling([g])
    assert ceil["ciou_mean"] == pytest.approx(2 * A / N if A < N / 2 else 1.0, abs=1e-12)
    assert ceil["ciou_mean_fixed"] == 1.0 and ceil["pointing"] == 1.0
    assert ceil["ciou50"] == float(A >= N / 4)  # 2f >= 0.5 needs a quarter of the frame


def test_binary_map_makes_the_whole_frame_positive_as_the_reference():
    g = np.zeros((224, 224))
    g[:56, :112] = 1  # f = 56 * 112 / 224^2 = 1/8
    # the median value is 0, ties at the threshold are positive (>=), so P = whole frame: cIoU = A / N = f
    assert ssl_metrics([g], [g])["ciou_mean"] == pytest.approx(1 / 8)
    assert ssl_ceiling([g])["ciou_mean"] == pytest.approx(2 / 8)  # the best map: exactly half the frame, 2f


def test_ceiling_of_a_full_frame_object_is_one():
    g = gt_map_from_boxes([[0, 0, 1, 1]])
    ceil = ssl_ceiling([g, g])
    for k in ("ciou50", "auc", "ciou_mean", "ciou50_fixed", "auc_fixed", "ciou_mean_fixed", "pointing"):
        assert ceil[k] == pytest.approx(1.0), k


def test_perfect_map_keeps_flickr_levels():
    g = gt_map_from_boxes([[0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], size=16, mode="flickr")
    pm = perfect_map(g)
    np.testing.assert_array_equal(pm[g > 0], g[g > 0])
    assert pm[g == 0].max() < 0 and len(np.unique(pm[g == 0])) == int((g == 0).sum())
    # boxes 0:8 and 4:12 of 16: agreed (G = 1) 4 x 4 = 16 px, single (G = 0.5) 2 * (64 - 16) = 96 px; the fixed
    # threshold 0.6 keeps only the agreed pixels: cIoU = 16 / (16 + 0.5 * 96) = 0.25
    agreed, single = (g == 1).sum(), (g == 0.5).sum()
    assert ssl_ceiling([g])["ciou_mean_fixed"] == pytest.approx(agreed / (agreed + 0.5 * single))


def test_center_prior_map_is_a_centred_symmetric_peak():
    m = center_prior_map(9, 12)
    assert m.shape == (9, 12) and m.max() <= 1.0 and m.min() > 0
    np.testing.assert_allclose(m, m[::-1, :])
    np.testing.assert_allclose(m, m[:, ::-1])
    assert np.unravel_index(np.argmax(m), m.shape) == (4, 5)  # first of the central maxima
    g = gt_map_from_boxes([center_box()])  # the centre box holds the prior's peak
    assert ssl_metrics([center_prior_map(7, 7)], [g])["pointing"] == 1.0
    assert center_box() == [0.25, 0.25, 0.75, 0.75]


# --------------------------------------------------------------------------------------------- segmentation


def _logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


def test_avsbench_miou_by_hand():
    probs = np.array([[[0.9, 0.2], [0.7, 0.4]], [[0.8, 0.1], [0.3, 0.2]]])
    gt = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], dtype=bool)
    # frame 1: P = {(0,0), (1,0)}, G = {(0,0), (0,1)}: |P&G| = 1, |P|G| = 3 -> 1/3
    # frame 2: empty GT -> complements: 3 of 4 pixels predicted background -> 3/4; mean = 13/24
    assert avsbench_miou(probs, gt, is_logits=False) == pytest.approx(13 / 24, rel=1e-6)
    assert avsbench_miou(_logit(probs), gt, is_logits=True) == pytest.approx(13 / 24, rel=1e-6)


def test_avsbench_miou_empty_gt_is_scored_on_the_complement():
    gt = np.zeros((1, 2, 2), dtype=bool)
    assert avsbench_miou(np.zeros((1, 2, 2)), gt, is_logits=False) == pytest.approx(1.0)  # both empty -> 1
    assert avsbench_miou(np.ones((1, 2, 2)), gt, is_logits=False) == pytest.approx(0.0)
    assert avsbench_miou(np.array([[[1.0, 1.0], [0.0, 0.0]]]), gt, is_logits=False) == pytest.approx(0.5)
    full = np.ones((1, 2, 2), dtype=bool)
    assert avsbench_miou(np.zeros((1, 2, 2)), full, is_logits=False) == 0.0  # missed object: 0 / 4


@settings(max_examples=60, deadline=None)
@given(a=st.floats(-100, 100), b=st.floats(-100, 100), n=st.integers(1, 300))
def test_linspace_f32_is_torch_linspace_bit_for_bit(a, b, n):
    # the reference thresholds come from torch.linspace (float32); a score equal to a threshold must land on the
    # same side, so the thresholds must be the same floats
    np.testing.assert_array_equal(linspace_f32(a, b, n), torch.linspace(a, b, n).numpy())


def test_avsbench_fscore_by_hand():
    b2 = 0.3
    f = lambda p, r: (1 + b2) * p * r / (b2 * p + r)  # noqa: E731
    p1 = np.array([[[0.9, 0.6, 0.3, 0.1]]])
    g1 = np.array([[[1, 0, 1, 0]]], dtype=bool)
    # t <= .1: P=1/2, R=1; (.1,.3]: P=2/3, R=1; (.3,.6]: P=1/2, R=1/2; (.6,.9]: P=1, R=1/2 -> F = 0.65/0.8 = 0.8125
    assert avsbench_fscore(p1, g1, is_logits=False) == pytest.approx(f(1, 0.5), rel=1e-6)
    assert f(1, 0.5) == pytest.approx(0.8125)
    # a second frame [0.2, 0.1] with GT [1, 0]: (.1, .2] -> P = R = 1 -> F = 1. Per-threshold means of the F of
    # each frame: (.1,.2] -> (F(2/3, 1) + 1) / 2 = (13/18 + 1) / 2 = 31/36 is the max. Not the mean of per-frame
    # maxima ((0.8125 + 1) / 2 = 0.90625), nor F of averaged P and R (F(5/6, 1) = 0.8667).
    p2 = np.array([[[0.2, 0.1, 0.0, 0.0]]])
    g2 = np.array([[[1, 0, 0, 0]]], dtype=bool)
    probs, gts = np.concatenate([p1, p2]), np.concatenate([g1, g2])
    assert f(2 / 3, 1) == pytest.approx(13 / 18)
    assert avsbench_fscore(probs, gts, is_logits=False) == pytest.approx(31 / 36, rel=1e-6)
    # frames with an empty GT are skipped; logits give the same after the sigmoid
    empty = np.zeros((1, 1, 4), dtype=bool)
    probs3, gts3 = np.concatenate([probs, p1]), np.concatenate([gts, empty])
    assert avsbench_fscore(probs3, gts3, is_logits=False) == pytest.approx(31 / 36, rel=1e-6)
    assert avsbench_fscore(_logit(np.clip(probs, 1e-6, 1 - 1e-6)), gts, is_logits=True) == pytest.approx(
        31 / 36, rel=1e-6
    )
    assert avsbench_fscore(p1, empty, is_logits=False) == 0.0  # no frame with a GT


def test_pixel_ap_by_hand_and_ties():
    # ranks: 0.9 (+) P=1 R=.5; 0.8 (-) P=.5; 0.7 (+) P=2/3 R=1; 0.6 (-): AP = .5 * 1 + .5 * 2/3 = 5/6
    assert pixel_ap(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert pixel_ap(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)  # one tied group: P = 1/2, R = 1
    assert math.isnan(pixel_ap(np.array([0.1, 0.2]), np.array([0, 0])))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 60))
def test_pixel_ap_is_mean_precision_at_each_positive_without_ties(seed, n):
    rng = np.random.default_rng(seed)
    s = rng.permutation(n).astype(float)  # distinct scores
    y = rng.random(n) < 0.4
    if not y.any():
        y[0] = True
    order = np.argsort(-s)
    ranked = y[order]
    # without ties AP = mean over positives of the precision at the positive's rank
    expected = np.mean([ranked[: i + 1].mean() for i in np.nonzero(ranked)[0]])
    assert pixel_ap(s, y) == pytest.approx(expected)
    assert pixel_ap(s[order], ranked) == pytest.approx(expected)  # order of the input does not matter


def test_best_iou_by_hand():
    s, g = np.array([0.0, 1, 2, 3]), np.array([0, 0, 1, 1])
    assert best_iou(s, g, n=4) == pytest.approx(1.0)  # t = 1: {2, 3} = G
    # G = {0, 2}: t=0: P={1,2,3}, I=1, U=4; t=1: P={2,3}, I=1, U=3; t=2: P={3}, I=0; t=3: P={}, I=0 -> 1/3
    assert best_iou(s, np.array([1, 0, 1, 0]), n=4) == pytest.approx(1 / 3)


def test_dense_seg_metrics_averages_over_classes():
    scores = np.array([[[0.9, 0.8, 0.7, 0.6]], [[0.1, 0.9, 0.2, 0.3]]])
    gts = np.array([[[1, 0, 1, 0]], [[0, 1, 0, 0]]])
    r = dense_seg_metrics(scores, gts, ["bell", "drum"], n=4)
    # bell: AP 5/6 (above), best IoU over t in {.6, .7, .8, .9}: t=.6 -> P={.9,.8,.7}, I=2, U=3 -> 2/3
    # drum: perfect ranking -> AP 1; t = linspace(.1, .9, 4)[2] = .6333 -> P = {.9} = G -> IoU 1
    assert r["ap"] == pytest.approx((5 / 6 + 1) / 2)
    assert r["iou"] == pytest.approx((2 / 3 + 1) / 2)
    assert r["n_classes"] == 2


# --------------------------------------------------------------------------------------------------- retrieval


def test_recall_by_hand_with_pessimistic_ties():
    s = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.5], [0.2, 0.9, 0.8]])
    # a2i: q0 ties with candidate 1 -> rank 1; q1 rank 0; q2: 0.9 >= 0.8 -> rank 1
    np.testing.assert_array_equal(match_ranks(s), [1, 0, 1])
    # i2a (transpose): q0: [1, 0, .2] rank 0; q1: [1, 1, .9] tie -> rank 1; q2: [0, .5, .8] rank 0
    r = retrieval_metrics(s, k_list=(1, 2))
    assert r == pytest.approx({"a2i.r1": 1 / 3, "a2i.r2": 1.0, "i2a.r1": 2 / 3, "i2a.r2": 1.0})
    const = recall_at_k(np.ones((6, 6)))
    assert const["r1"] == 0.0 and const["r5"] == 0.0 and const["r10"] == 1.0  # every match ranks 5th (0-based)
    assert recall_at_k(np.eye(12)) == {"r1": 1.0, "r5": 1.0, "r10": 1.0}


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 10_000))
def test_recall_properties(n, seed):
    rng = np.random.default_rng(seed)
    s = np.round(rng.normal(size=(n, n)), 1)  # coarse values: ties happen
    r = recall_at_k(s, k_list=(1, 2, 3, 5, 10))
    vals = [r[k] for k in ("r1", "r2", "r3", "r5", "r10")]
    assert all(0 <= v <= 1 for v in vals) and vals == sorted(vals)  # monotone in k
    perm = rng.permutation(n)
    assert recall_at_k(s[perm][:, perm], k_list=(1, 2, 3, 5, 10)) == r  # relabelling pairs changes nothing
    # brute force: rank = number of other candidates at least as high
    brute = [sum(s[i, j] >= s[i, i] for j in range(n) if j != i) for i in range(n)]
    np.testing.assert_array_equal(match_ranks(s), brute)


# ------------------------------------------------------------------------------------------ grounding, temporal

unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def boxes(draw):
    x0, x1 = sorted((draw(unit), draw(unit)))
    y0, y1 = sorted((draw(unit), draw(unit)))
    return [x0, y0, x1, y1]


def test_box_iou_by_hand():
    # inter 0.25^2 = 0.0625; union 0.25 + 0.25 - 0.0625 = 0.4375 -> 1/7
    assert box_iou([0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]) == 0.0
    assert box_iou([0.2, 0.2, 0.2, 0.4], [0.2, 0.2, 0.2, 0.4]) == 0.0  # degenerate: no area


@given(boxes(), boxes())
def test_box_iou_symmetry_and_bounds(a, b):
    v = box_iou(a, b)
    assert 0.0 <= v <= 1.0 + 1e-12 and v == pytest.approx(box_iou(b, a))
    if (a[2] - a[0]) * (a[3] - a[1]) > 1e-9:
        assert box_iou(a, a) == pytest.approx(1.0)


def test_grounding_accuracy_uses_the_first_box():
    gt = [[0.1, 0.1, 0.5, 0.5]]
    good, bad = [0.1, 0.1, 0.5, 0.45], [0.6, 0.6, 0.9, 0.9]
    preds = [[good], [bad, good], [], [good, bad]]
    # 1: IoU 0.9 -> hit; 2: first box misses; 3: no box -> wrong; 4: hit -> 2/4
    assert grounding_accuracy(preds, [gt, gt, gt, gt]) == pytest.approx(0.5)
    assert grounding_accuracy([[good]], [[[0.6, 0.6, 0.9, 0.9], gt[0]]]) == 1.0  # any GT box counts
    assert grounding_accuracy([[good]], [gt], thr=0.95) == 0.0


def test_temporal_metrics_by_hand():
    assert segment_iou([0, 2], [1, 3]) == pytest.approx(1 / 3)  # inter 1, union 3
    # unions: pred [0,1] u [2,3] (2 s), GT [0.5, 2.5] (2 s), inter 0.5 + 0.5 = 1 -> 1 / (2 + 2 - 1) = 1/3;
    # first predicted segment [0, 1] vs [0.5, 2.5]: 0.5 / 2.5 = 0.2 -> R@1 miss
    r = temporal_metrics([[[0, 1], [2, 3]]], [[[0.5, 2.5]]])
    assert r["miou"] == pytest.approx(1 / 3) and r["r1_50"] == 0.0
    # sample 2: exact -> 1 and hit; sample 3: no prediction -> 0 and miss; sample 4: both empty -> 1, miss
    r = temporal_metrics([[[1, 2]], [], []], [[[1, 2]], [[0, 1]], []])
    assert r["miou"] == pytest.approx((1 + 0 + 1) / 3) and r["r1_50"] == pytest.approx(1 / 3)
    assert union_iou([[0, 1], [0.5, 2]], [[0, 2]]) == pytest.approx(1.0)  # overlapping predictions merge


seg_pts = st.integers(0, 40).map(lambda k: k * 0.25)  # exact binary fractions


@st.composite
def seg_lists(draw):
    return [sorted((draw(seg_pts), draw(seg_pts))) for _ in range(draw(st.integers(0, 4)))]


@settings(max_examples=60, deadline=None)
@given(seg_lists(), seg_lists())
def test_union_iou_matches_a_grid_count(p, g):
    grid = np.arange(40) * 0.25 + 0.125  # centres of the 0.25 s cells

    def cover(segs):
        return np.any([(grid > s) & (grid < e) for s, e in segs], axis=0) if segs else np.zeros(40, bool)

    cp, cg = cover(p), cover(g)
    union = (cp | cg).sum()
    expected = (cp & cg).sum() / union if union else 1.0
    assert union_iou(p, g) == pytest.approx(expected)
    assert union_iou(p, g) == pytest.approx(union_iou(g, p))
    for a in p:
        for b in g:
            assert 0 <= segment_iou(a, b) <= 1 and segment_iou(a, b) == pytest.approx(segment_iou(b, a))


# ------------------------------------------------------------------------------------------------ classification


def test_accuracy_and_per_kind():
    assert accuracy(["Yes.", "no", "two"], ["yes", "No", "three"]) == pytest.approx(2 / 3)
    assert accuracy([True, False], [True, True]) == 0.5
    assert math.isnan(accuracy([], []))
    r = per_kind_accuracy(["a", "b", "c", "d"], ["a", "x", "c", "d"], ["count", "count", "loc", "loc"])
    assert r == {"count": 0.5, "loc": 1.0}
    with pytest.raises(ValueError):
        accuracy(["a"], [])


# ------------------------------------------------------------------------------------------------------ captions


def test_fact_recall_word_boundaries_case_and_alternatives():
    cap = "A Red  bell rings on the left; two drums are silent."
    facts = ["bell", "left", ("2", "two"), "red bell", "bel", "right"]
    # bell yes; left yes; two yes; "red  bell" yes (any whitespace); "bel" no (inside a word); right no -> 4/6
    assert fact_recall(cap, facts) == pytest.approx(4 / 6)
    assert math.isnan(fact_recall(cap, []))
    assert mean_fact_recall([cap, "nothing", "x"], [["bell"], ["bell"], []]) == pytest.approx(0.5)  # (1 + 0) / 2


def test_bleu4_by_hand():
    assert bleu4(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(1.0)
    # "a b c d e" vs "a b c d f": p1 = 4/5, p2 = 3/4, p3 = 2/3, p4 = 1/2; c = r = 5 -> BP 1; (0.2)^(1/4)
    assert bleu4(["a b c d e"], ["a b c d f"]) == pytest.approx(0.2**0.25)
    # all precisions 1, c = 4, r = 6 -> BP = exp(1 - 6/4) = exp(-0.5)
    assert bleu4(["the cat sat on"], ["the cat sat on the mat"]) == pytest.approx(math.exp(-0.5))
    # the closest reference length sets BP: refs of 4 and 9 words for a 4-word candidate -> r = 4, BP = 1
    assert bleu4(["the cat sat on"], [["the cat sat on", "a b c d e f g h i"]]) == pytest.approx(1.0)
    # clipping: "the" counts at most once; no matching bigram -> 0 (no smoothing)
    assert bleu4(["the the the the"], ["the cat"]) == 0.0
    # corpus-level sums: two sentences pooled, not averaged: p_n sums over both
    two = bleu4(["a b c d e", "a b c d e"], ["a b c d f", "a b c d e"])
    # p1 = 9/10, p2 = 7/8, p3 = 5/6, p4 = 3/4, BP 1
    assert two == pytest.approx((0.9 * 7 / 8 * 5 / 6 * 0.75) ** 0.25)


def test_cider_d_by_hand():
    cands = ["red bell rings", "blue drum beats"]
    refs = [["red bell rings"], ["blue drum beats"]]
    # 2 clips, every n-gram in one clip: weight tf * (log 2 - log 1); identical vectors -> cosine 1 for n = 1, 2, 3,
    # no 4-gram (3 words) -> 0; same length -> no penalty; (1 + 1 + 1 + 0) / 4 * 10 = 7.5
    assert cider_d(cands, refs) == pytest.approx(7.5)
    assert cider_d(["red bell rings"], ["red bell rings"]) == 0.0  # one clip: log 1 = 0, no IDF
    assert cider_d(["green horn", "green horn"], refs) == 0.0  # no shared n-gram


def test_cider_d_length_penalty():
    refs = [["red bell rings"], ["blue drum beats"]]
    # candidate 1 adds "loud" (df 0 -> weight log 2): unigram cosine = 3 log2^2 / (sqrt(4) log2 * sqrt(3) log2),
    # bigram = 2 / (sqrt(3) sqrt(2)), trigram = 1 / (sqrt(2) * 1); all x exp(-(3 - 2)^2 / 72)
    c1 = (3 / (2 * math.sqrt(3)) + 2 / math.sqrt(6) + 1 / math.sqrt(2) + 0) / 4 * 10 * math.exp(-1 / 72)
    got = cider_d(["red bell rings loud", "blue drum beats"], refs)
    assert got == pytest.approx((c1 + 7.5) / 2)


# ----------------------------------------------------------------------------------------------------- baselines


def test_random_segments_are_valid_and_reproducible():
    d = [2.0, 5.0, 0.5]
    a = random_segments(d, np.random.default_rng(7))
    b = random_segments(d, np.random.default_rng(7))
    assert a == b and len(a) == 3
    for (seg,), dur in zip(a, d):
        assert 0 <= seg[0] <= seg[1] <= dur


def test_truth_of_reads_the_last_verdict_word():
    from avllm.evaluate import truth_of

    assert truth_of("true") is True and truth_of("False.") is False and truth_of("Yes") is True
    # evidence before the verdict may hold verdict words of its own
    assert truth_of("The bell is on the left side, so false.") is False
    assert truth_of("No bell is silent here, so true.") is True
    assert truth_of("The bell sounds [1.00, 2.50], so true.") is True
    assert truth_of("nothing to say") is None and truth_of("") is None
    assert truth_of("notably untrue") is None  # whole words only


def test_question_only_prior_answers_claims_with_a_verdict():
    from avllm.evaluate import question_only_prior

    prior = question_only_prior(num_clips=24)
    claims = {k: v for k, v in prior.items() if "true or false" in k or "check this statement" in k}
    # evidence names the clip's own classes and times: the prior keeps the verdict, the one part a question fixes
    assert len(claims) >= 10 and set(claims.values()) <= {"true", "false"}


def test_class_set_ceiling_by_hand():
    from avllm.metrics import class_set_ceiling

    # groups of sizes 1, 2 and 3: R@1 = (1 + 2 * 1/2 + 3 * 1/3) / 6 = 0.5; R@2 = (1 + 2 + 3 * 2/3) / 6 = 5/6
    keys = ["a", "b", "b", "c", "c", "c"]
    got = class_set_ceiling(keys, k_list=(1, 2, 5))
    assert got["r1"] == pytest.approx(0.5) and got["r2"] == pytest.approx(5 / 6) and got["r5"] == 1.0
    assert class_set_ceiling(list("abcd"))["r1"] == 1.0  # all distinct: nothing to confuse
    assert class_set_ceiling(["x"] * 10)["r1"] == pytest.approx(0.1)  # all alike: chance
