"""Rendering: every function gives a non-blank RGB image, and what it draws lands where the data says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm import viz

SR = 16000


def _frames(t=6, h=90, w=120):
    """(T, H, W, 3) uint8: a grey gradient with a moving green square."""
    f = np.zeros((t, h, w, 3), np.uint8)
    f[..., :] = np.linspace(40, 200, w, dtype=np.uint8)[None, None, :, None]
    for i in range(t):
        f[i, 10 + 5 * i : 40 + 5 * i, 20:50] = (0, 200, 60)
    return f


def _tone(seconds=3.0, hz=1000.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _check_image(img, min_h=50, min_w=50):
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] >= min_h and img.shape[1] >= min_w and img.shape[0] <= 4000 and img.shape[1] <= 6000
    assert img.std() > 8.0, "image is blank"


HEAT = np.outer(np.hanning(8), np.hanning(8))


@pytest.mark.parametrize(
    "render",
    [
        lambda: viz.frame_strip(_frames(), np.arange(6) / 2.0, n=4, title="Frames"),
        lambda: viz.waveform_plot(_tone(), SR, segments=[[0.5, 1.5]], gt_segments=[[0.6, 1.4]], labels=["bell"]),
        lambda: viz.waveform_plot(_tone(), SR),
        lambda: viz.spectrogram_plot(_tone(), SR, segments=[[0.5, 1.5]], gt_segments=[[0.6, 1.4]]),
        lambda: viz.spectrogram_plot(np.zeros(SR, np.float32), SR),
        lambda: viz.overlay_heatmap(_frames()[0], HEAT),
        lambda: viz.draw_boxes(_frames()[0], [[0.1, 0.1, 0.5, 0.5]], ["dog"], gt_boxes=[[0.2, 0.2, 0.6, 0.6]]),
        lambda: viz.map_panel(_frames()[0], {"target": HEAT, "off-target": 1 - HEAT}, "slots"),
        lambda: viz.activation_plot({"head 0 (sound)": np.linspace(0, 1, 20), "head 1 (speech)": np.ones(20)},
                                    np.linspace(0, 3, 20), segments=[[1, 2]]),
        lambda: viz.placeholder("no audio"),
        lambda: viz.frame_strip(np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)),
    ],
    ids=["strip", "wave-seg", "wave", "spec-seg", "spec-silent", "heat", "boxes", "panel", "acts", "placeholder",
         "strip-empty"],
)
def test_renders_nonblank_rgb(render):
    _check_image(render())


def test_frame_strip_samples_evenly_across_the_clip():
    colors = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)], np.uint8)
    frames = np.repeat(colors[:, None, None, :], 40, axis=1).repeat(40, axis=2)  # (5, 40, 40, 3) solid colours
    img = viz.frame_strip(frames, np.arange(5) / 4.0, n=3)  # picks frames 0, 2, 4

    def present(c):
        return np.any(np.all(np.abs(img.astype(int) - c.astype(int)) < 10, axis=-1))

    assert present(colors[0]) and present(colors[2]) and present(colors[4])
    assert not present(colors[1]) and not present(colors[3])


def _hole(full: np.ndarray, part: np.ndarray) -> tuple[int, int, int, int]:
    """Columns where `full` (segment over the whole clip) and `part` differ: (first, last, hole start, hole end),
    the hole being the run of unchanged columns inside, where `part`'s segment is shaded as in `full`."""
    cols = np.flatnonzero(np.abs(full.astype(int) - part.astype(int)).max(axis=(0, 2)) > 25)
    assert cols.size > 0
    gaps = np.flatnonzero(np.diff(cols) > 3)
    assert gaps.size == 1, f"expected one unchanged run inside the axes, got {gaps.size}"
    g = gaps[0]
    return int(cols[0]), int(cols[-1]), int(cols[g]) + 1, int(cols[g + 1]) - 1


@pytest.mark.parametrize("plot", ["wave", "spec"])
@pytest.mark.parametrize("which", ["segments", "gt_segments"])
def test_segment_is_drawn_at_its_time(plot, which):
    dur, seg = 10.0, (3.0, 5.0)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(dur * SR))).astype(np.float32)
    fn = viz.waveform_plot if plot == "wave" else viz.spectrogram_plot
    full = fn(audio, SR, **{which: [[0.0, dur]]})
    part = fn(audio, SR, **{which: [list(seg)]})
    left, right, h0, h1 = _hole(full, part)
    px_per_s = (right - left) / dur
    assert px_per_s > 40
    assert abs(left + seg[0] * px_per_s - h0) <= 5, (left, right, h0, h1)
    assert abs(left + seg[1] * px_per_s - h1) <= 5, (left, right, h0, h1)


def test_waveform_predicted_shading_uses_the_label_colour():
    audio = np.zeros(4 * SR, np.float32)
    a = viz.waveform_plot(audio, SR, segments=[[1.0, 2.0]], labels=["x"])
    b = viz.waveform_plot(audio, SR, segments=[[2.5, 3.5]], labels=["x"])
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 25  # (H, W)
    # where only `a` shades, `a` is red-tinted (first palette colour) and `b` is not
    ys, xs = np.nonzero(changed)
    first = xs < np.median(xs)
    pa = a[ys[first], xs[first]].astype(int)
    assert np.mean(pa[:, 0] > pa[:, 1] + 30) > 0.9


def test_log_mel_finds_the_tone_and_silence_is_the_floor():
    db, times, centres = viz.log_mel_spectrogram(_tone(2.0, 3000.0), SR)
    assert db.shape[0] == centres.shape[0] and db.shape[1] == times.shape[0]
    assert db.max() == 0.0 and db.min() >= -80.0
    peak = centres[np.argmax(db.mean(axis=1))]
    assert abs(np.log2(peak / 3000.0)) < 0.15
    assert times[-1] == pytest.approx(2.0, abs=0.05)
    silent, _, _ = viz.log_mel_spectrogram(np.zeros(SR, np.float32), SR)
    assert np.all(silent == -80.0)


def test_overlay_changes_hot_pixels_more_than_cold():
    frame = np.full((64, 96, 3), 128, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[:2, :3] = 1.0  # hot top-left quadrant
    out = viz.overlay_heatmap(frame, heat, alpha=0.6)
    assert out.shape == frame.shape and out.dtype == np.uint8
    change = np.abs(out.astype(int) - frame.astype(int)).sum(-1)  # (H, W)
    hot, cold = change[:24, :36].mean(), change[40:, 60:].mean()
    assert hot > cold + 60
    assert cold < 5  # cold pixels keep the frame
    assert np.all(np.isfinite(viz.overlay_heatmap(frame, np.full((4, 6), np.nan))))


def test_overlay_video_frames_keeps_size_and_follows_each_map():
    frames = _frames(t=3)
    maps = np.zeros((3, 4, 4), np.float32)
    for i in range(3):
        maps[i, i, :] = 1.0  # hot row moves down
    out = viz.overlay_video_frames(frames, maps, boxes_per_frame=[[[0.0, 0.0, 0.5, 0.5]], [], []])
    assert out.shape == frames.shape and out.dtype == np.uint8
    for i in range(3):
        change = np.abs(out[i].astype(int) - frames[i].astype(int)).sum(-1).mean(axis=1)  # (H,) per row
        band = np.argmax(change[30:]) + 30 if i > 0 else None
        if band is not None:
            assert abs(band / frames.shape[1] * 4 - (i + 0.5)) < 1.0
    assert not np.array_equal(out[0], viz.overlay_heatmap(frames[0], maps[0]))  # the box is on frame 0


RED = (255, 0, 0)


def test_boxes_at_the_right_place_on_a_small_frame():
    frame = np.zeros((100, 100, 3), np.uint8)
    out = viz.draw_boxes(frame, [[0.25, 0.25, 0.75, 0.75]], ["cat"], colors=[RED], gt_boxes=[[0.1, 0.8, 0.9, 0.95]])
    assert out.shape == (384, 384, 3)  # upscaled so labels are legible
    n = out.shape[0] - 1
    x0, x1 = round(0.25 * n), round(0.75 * n)
    assert tuple(out[192, x0]) == RED and tuple(out[192, x1]) == RED  # left and right edges
    assert tuple(out[x1, 192]) == RED  # bottom edge
    assert out[192, 192].max() == 0 and out[192, 20].max() == 0  # inside and outside stay black
    # the label sits on a red background just above the box
    above = out[x0 - 25 : x0, x0 : x0 + 40]
    assert np.mean(np.all(above == RED, axis=-1)) > 0.3
    # the ground truth is dashed: its top edge is drawn in parts only
    row = out[round(0.8 * n) - 1 : round(0.8 * n) + 2, round(0.2 * n) : round(0.8 * n)].max(axis=(0, 2))
    lit = np.mean(row > 0)
    assert 0.3 < lit < 0.85


def test_boxes_keep_size_when_asked_and_scale_line_width():
    big = viz.draw_boxes(np.zeros((800, 800, 3), np.uint8), [[0.2, 0.2, 0.8, 0.8]], colors=[RED])
    small = viz.draw_boxes(np.zeros((400, 400, 3), np.uint8), [[0.2, 0.2, 0.8, 0.8]], colors=[RED])
    assert big.shape == (800, 800, 3) and small.shape == (400, 400, 3)
    width = [np.sum(np.all(im[im.shape[0] // 2] == RED, axis=-1)) for im in (big, small)]
    assert width[0] > width[1]
    same = viz.draw_boxes(np.zeros((30, 40, 3), np.uint8), [[0.2, 0.2, 0.8, 0.8]], min_side=0)
    assert same.shape == (30, 40, 3)


@settings(max_examples=25, deadline=None)
@given(
    x0=st.floats(0.0, 0.6), y0=st.floats(0.0, 0.6), w=st.floats(0.15, 0.4), h=st.floats(0.15, 0.4),
)
def test_box_pixels_match_the_box(x0, y0, w, h):
    box = [x0, y0, x0 + w, y0 + h]
    out = viz.draw_boxes(np.zeros((200, 300, 3), np.uint8), [box], colors=[RED])
    ys, xs = np.nonzero(np.all(out == RED, axis=-1))
    H, W = out.shape[:2]
    tol = 4
    assert abs(xs.min() - box[0] * (W - 1)) <= tol and abs(xs.max() - box[2] * (W - 1)) <= tol
    assert abs(ys.min() - box[1] * (H - 1)) <= tol and abs(ys.max() - box[3] * (H - 1)) <= tol


def test_points_are_marked_where_they_are_and_bad_ones_skipped():
    frame = np.zeros((100, 200, 3), np.uint8)
    out = viz.mark_points(frame, [[0.25, 0.5], [float("nan"), 0.5]], ["bell", "lost"], colors=[RED, "#00ff00"])
    assert out.shape == (384, 768, 3)  # upscaled like draw_boxes
    h, w = out.shape[:2]
    assert tuple(out[round(0.5 * (h - 1)), round(0.25 * (w - 1))]) == RED  # the dot's centre
    assert not np.any(np.all(out == (0, 255, 0), axis=-1))  # the NaN point drew nothing
    assert out[:, w // 2 :].max() == 0  # nothing on the right half: the label sits beside its dot
    assert frame.max() == 0  # the caller's frame is untouched


def test_map_panel_grows_with_the_number_of_maps_and_shows_the_hot_spot():
    frame = np.full((60, 80, 3), 100, np.uint8)
    hot = np.zeros((6, 8), np.float32)
    hot[0, 0] = 1.0
    one = viz.map_panel(frame, {"head 0 (sound)": hot}, "DenseAV")
    two = viz.map_panel(frame, {"head 0 (sound)": hot, "head 1 (speech)": hot.T[::-1].T}, "DenseAV")
    assert two.shape[1] > one.shape[1] * 1.4
    # a jointly normalised map of values >> 1 is still drawn (not saturated everywhere)
    scaled = viz.map_panel(frame, {"a": hot * 50.0, "b": hot * 10.0}, "x", normalize=True)
    _check_image(scaled)


def test_activation_plot_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        viz.activation_plot({"a": np.zeros(5)}, np.arange(6))


def test_normalize_map():
    m = viz.normalize_map(np.array([[2.0, 4.0], [np.nan, 3.0]]))
    assert m.min() == 0.0 and m.max() == 1.0 and np.isfinite(m).all()
    assert np.all(viz.normalize_map(np.ones((3, 3))) == 0.0)
    j = viz.normalize_map(np.array([1.0, 2.0]), joint_with=[np.array([0.0, 4.0])])
    assert np.allclose(j, [0.25, 0.5])
