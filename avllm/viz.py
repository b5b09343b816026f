"""Rendering: frames, waveforms, spectrograms, heatmaps and boxes as RGB images. No Gradio here.

    strip = frame_strip(clip.frames, clip.times, n=8)                       # (H, W, 3) uint8
    wave = waveform_plot(clip.audio, clip.sample_rate, segments=[(1.0, 2.5)], gt_segments=[(1.2, 2.4)])
    spec = spectrogram_plot(clip.audio, clip.sample_rate, segments=[(1.0, 2.5)])
    over = overlay_heatmap(frame, heat)                                     # heat (h, w) in [0, 1]
    boxed = draw_boxes(frame, [[0.1, 0.2, 0.5, 0.6]], ["dog"], gt_boxes=[[0.1, 0.2, 0.45, 0.6]])

Every function returns an RGB uint8 image (H, W, 3) (``overlay_video_frames`` a stack (T, H, W, 3)). Plots are drawn
with matplotlib's Agg canvas on a figure that is not registered with pyplot, and cleared after rendering; matplotlib
and OpenCV are imported inside the functions, so importing this module is cheap. Boxes are normalised
``[x0, y0, x1, y1]`` in [0, 1]; segments are ``[start, end]`` in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "frame_strip",
    "waveform_plot",
    "spectrogram_plot",
    "overlay_heatmap",
    "draw_boxes",
    "mark_points",
    "map_panel",
    "activation_plot",
    "overlay_video_frames",
    "normalize_map",
    "placeholder",
    "log_mel_spectrogram",
    "image_row",
]

DPI = 100
PRED_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
GT_COLOR = "#222222"  # ground truth: dark and hatched / dashed, apart from the prediction palette
MIN_BOX_SIDE = 384  # draw_boxes upscales smaller frames so that labels stay legible


# ----------------------------------------------------------------------------------------------------------------
# Small helpers


def _figure(width_px: int, height_px: int):
    """A matplotlib Figure on an Agg canvas, not tracked by pyplot (safe from several server threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _render(fig) -> np.ndarray:
    """Draw ``fig`` and return it as (H, W, 3) uint8 RGB; the figure is cleared (closed) afterwards."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8
    fig.clear()
    return img


def _rgb(color) -> tuple[int, int, int]:
    """A matplotlib colour spec ("red", "#ff0000") or an (r, g, b) tuple in 0..255 or 0..1 -> (r, g, b) ints."""
    if isinstance(color, str):
        from matplotlib.colors import to_rgb

        return tuple(int(round(c * 255)) for c in to_rgb(color))
    c = [float(v) for v in color][:3]
    if max(c) <= 1.0 and not all(float(v).is_integer() for v in c):
        c = [v * 255 for v in c]
    return tuple(int(round(min(max(v, 0), 255))) for v in c)


def _as_segments(segments, duration: float | None = None) -> np.ndarray:
    """Segments (N, 2) seconds, or None -> (N, 2) float64 with start <= end, NaN rows dropped, clipped to duration."""
    if segments is None:
        return np.zeros((0, 2))
    seg = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    seg = seg[np.all(np.isfinite(seg), axis=1)]
    seg = np.sort(seg, axis=1)
    if duration is not None:
        seg = np.clip(seg, 0.0, duration)
    return seg


def _as_rgb_frame(frame) -> np.ndarray:
    """(H, W, 3|4) or (H, W) uint8 or float in [0, 1] -> (H, W, 3) uint8."""
    f = np.asarray(frame)
    if f.ndim == 2:
        f = np.repeat(f[..., None], 3, axis=-1)
    if f.ndim != 3 or f.shape[-1] not in (3, 4):
        raise ValueError(f"frame must be (H, W, 3), got shape {f.shape}")
    f = f[..., :3]
    if f.dtype != np.uint8:
        f = (np.clip(np.nan_to_num(f.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(f)


def normalize_map(m, *, joint_with: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Min-max normalise a map to [0, 1] (float32, same shape); NaN -> 0; a constant map gives zeros.

    joint_with: other maps whose values share the scale (for one colour bar over several maps).
    """
    m = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    pool = [m] + [np.nan_to_num(np.asarray(o, dtype=np.float32)) for o in joint_with]
    lo = min(float(p.min()) for p in pool if p.size)
    hi = max(float(p.max()) for p in pool if p.size)
    if hi - lo < 1e-12:
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


def placeholder(text: str, width: int = 640, height: int = 120) -> np.ndarray:
    """A light grey (height, width, 3) uint8 image with ``text`` centred: stands in for a plot that has no data."""
    fig = _figure(width, height)
    fig.patch.set_facecolor("#eeeeee")
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="#444444")
    return _render(fig)


# ----------------------------------------------------------------------------------------------------------------
# Frames


def frame_strip(
    frames, times, n: int = 8, *, columns: int = 4, height: int = 170, title: str = ""
) -> np.ndarray:
    """Up to ``n`` evenly spaced frames in a grid of ``columns`` columns, each titled with its time in seconds.

    frames: (T, H, W, 3) uint8 RGB; times: (T,) seconds. T = 0 gives a placeholder image saying so.
    height: height in pixels of each frame cell (plus ~30 px for its time). title: an optional line on top.
    Returns (H', W', 3) uint8 RGB.
    """
    frames = np.asarray(frames)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if frames.ndim != 4 or frames.shape[0] == 0:
        return placeholder("no video frames (audio only)")
    t_count = frames.shape[0]
    if times.shape[0] != t_count:
        raise ValueError(f"times has {times.shape[0]} entries for {t_count} frames")
    idx = np.unique(np.linspace(0, t_count - 1, num=max(1, min(n, t_count))).round().astype(int))  # (n',)
    cols = max(1, min(columns, len(idx)))
    rows = int(np.ceil(len(idx) / cols))
    h, w = frames.shape[1:3]
    cell_w = max(80, int(round(height * w / max(h, 1))))
    title_px, pad, head = 30, 8, (30 if title else 0)
    fig_w, fig_h = cols * (cell_w + pad) + pad, rows * (height + title_px + pad) + pad + head
    fig = _figure(fig_w, fig_h)
    if title:
        fig.text(pad / fig_w, 1 - 6 / fig_h, title, ha="left", va="top", fontsize=11)
    for k, i in enumerate(idx):
        r, c = divmod(k, cols)
        left = (pad + c * (cell_w + pad)) / fig_w
        bottom = 1 - (head + pad + r * (height + title_px + pad) + title_px + height) / fig_h
        ax = fig.add_axes((left, bottom, cell_w / fig_w, height / fig_h))
        ax.imshow(_as_rgb_frame(frames[i]), interpolation="bilinear" if h > height else "nearest", aspect="auto")
        ax.set_title(f"t = {times[i]:.2f} s", fontsize=12)
        ax.set_xticks([])
        ax.set_yticks([])
    return _render(fig)


# ----------------------------------------------------------------------------------------------------------------
# Time plots: waveform, spectrogram, activations


def _label_colors(labels: Sequence[str]) -> dict[str, str]:
    """One palette colour per distinct label, in order of first appearance."""
    out: dict[str, str] = {}
    for lab in labels:
        if lab not in out:
            out[lab] = PRED_COLORS[len(out) % len(PRED_COLORS)]
    return out


def _shade_segments(ax, segments: np.ndarray, labels: Sequence[str], colors: dict[str, str], alpha: float) -> None:
    """Shade each predicted segment as a translucent vertical span, coloured by its label."""
    for (s, e), lab in zip(segments, labels):
        ax.axvspan(s, max(e, s + 1e-6), color=colors[lab], alpha=alpha, lw=0, zorder=0)


def _segment_band(ax, segments, gt_segments, labels, colors, duration: float) -> None:
    """A timeline band under a plot: row "pred" with solid coloured bars, row "GT" with hatched bars."""
    rows = []
    if gt_segments is not None:
        rows.append("GT")
    if segments is not None:
        rows.append("pred")
    for y, row in enumerate(rows):
        if row == "pred":
            for (s, e), lab in zip(segments, labels):
                ax.broken_barh([(s, max(e - s, duration * 2e-3))], (y + 0.15, 0.7), color=colors[lab])
        else:
            for s, e in gt_segments:
                ax.broken_barh(
                    [(s, max(e - s, duration * 2e-3))], (y + 0.15, 0.7),
                    facecolor="white", edgecolor=GT_COLOR, hatch="///", lw=1.2,
                )
    ax.set_ylim(0, max(len(rows), 1))
    ax.set_yticks([y + 0.5 for y in range(len(rows))], rows, fontsize=9)
    ax.set_xlim(0, duration)
    ax.tick_params(axis="y", length=0)


def _segment_legend(fig, colors: dict[str, str], has_pred: bool, has_gt: bool) -> None:
    """A legend above the axes: one patch per predicted label, one hatched patch for the ground truth."""
    from matplotlib.patches import Patch

    handles = [Patch(color=c, alpha=0.6, label=lab) for lab, c in colors.items()] if has_pred else []
    if has_gt:
        handles.append(Patch(facecolor="white", edgecolor=GT_COLOR, hatch="///", label="ground truth"))
    if handles:
        fig.legend(handles=handles, loc="upper right", ncol=min(len(handles), 5), fontsize=9, frameon=False)


def _time_axes(fig, with_band: bool, right_px: int = 12):
    """Main axes (and a 40 px segment band under it when ``with_band``) sharing x, at fixed pixel margins:
    70 px left, ``right_px`` right, 40 px top (title and legend), 45 px bottom (time axis)."""
    w, h = fig.get_size_inches() * fig.dpi
    left, right, top, bottom, band_h, gap = 70, right_px, 40, 45, (40 if with_band else 0), (6 if with_band else 0)
    x0, x1 = left / w, 1 - right / w
    band = None
    if with_band:
        band = fig.add_axes((x0, bottom / h, x1 - x0, band_h / h))
    ax_bottom = (bottom + band_h + gap) / h
    ax = fig.add_axes((x0, ax_bottom, x1 - x0, 1 - top / h - ax_bottom), sharex=band)
    if band is not None:
        ax.tick_params(labelbottom=False)
    return ax, band


def _prepare_segments(segments, gt_segments, labels, duration):
    seg = _as_segments(segments, duration) if segments is not None else None
    gt = _as_segments(gt_segments, duration) if gt_segments is not None else None
    n = 0 if seg is None else len(seg)
    if labels is None:
        labels = ["predicted"] * n
    labels = [str(lab) for lab in labels][:n] + ["predicted"] * max(0, n - len(labels))
    return seg, gt, labels, _label_colors(labels)


def waveform_plot(
    audio, sr: int, segments=None, gt_segments=None, labels: Sequence[str] | None = None,
    *, width: int = 1000, height: int = 300, title: str = "Waveform",
) -> np.ndarray:
    """The waveform over time (seconds), predicted segments shaded, ground-truth segments hatched in a band below.

    audio: (S,) float mono in [-1, 1] at ``sr`` Hz (NaN/inf are drawn as 0). segments / gt_segments: (N, 2) seconds
    or None. labels: one name per predicted segment (colours and legend); default "predicted".
    Returns (height, width, 3) uint8 RGB.
    """
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    duration = max(audio.shape[0] / float(sr), 1e-3)
    seg, gt, labels, colors = _prepare_segments(segments, gt_segments, labels, duration)
    fig = _figure(width, height)
    ax, band = _time_axes(fig, with_band=seg is not None or gt is not None)

    # Min/max envelope per display column: exact extremes, and fast for an hour of audio.
    cols = max(1, min(width * 2, audio.shape[0]))
    edges = np.linspace(0, audio.shape[0], cols + 1).astype(int)  # (cols + 1,)
    if audio.size:
        idx = np.minimum(edges[:-1], audio.shape[0] - 1)
        lo = np.minimum.reduceat(audio, idx)  # (cols,)
        hi = np.maximum.reduceat(audio, idx)  # (cols,)
        t = (edges[:-1] + edges[1:]) / 2 / sr  # (cols,) seconds
        ax.fill_between(t, lo, hi, color="#1f4e79", lw=0.6, step="mid")
        ax.plot(t, (lo + hi) / 2, color="#1f4e79", lw=0.5)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    lim = max(peak * 1.1, 0.05)
    ax.set_ylim(-lim, lim)
    ax.set_xlim(0, duration)
    ax.axhline(0, color="#999999", lw=0.5)
    ax.set_ylabel("amplitude")
    ax.set_title(title + ("  (silent)" if peak == 0.0 else ""), loc="left", fontsize=11)
    if seg is not None:
        _shade_segments(ax, seg, labels, colors, alpha=0.3)
    if gt is not None:
        for s, e in gt:
            ax.axvline(s, color=GT_COLOR, ls="--", lw=1.0)
            ax.axvline(e, color=GT_COLOR, ls="--", lw=1.0)
    target = band if band is not None else ax
    if band is not None:
        _segment_band(band, seg, gt, labels, colors, duration)
    target.set_xlabel("time (s)")
    _segment_legend(fig, colors, seg is not None and len(seg) > 0, gt is not None and len(gt) > 0)
    return _render(fig)


def _mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangular mel filterbank (HTK mel scale), area-normalised: (n_mels, n_fft // 2 + 1), and centre freqs (Hz)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)  # (F,)
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,)
    lo, ctr, hi = pts[:-2, None], pts[1:-1, None], pts[2:, None]  # (n_mels, 1) each
    up = (freqs[None] - lo) / np.maximum(ctr - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - ctr, 1e-9)
    fb = np.maximum(0.0, np.minimum(up, down))  # (n_mels, F)
    fb *= 2.0 / np.maximum(hi - lo, 1e-9)
    return fb.astype(np.float32), pts[1:-1]


def log_mel_spectrogram(
    audio, sr: int, *, n_mels: int = 96, max_frames: int = 1200, top_db: float = 80.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-mel power spectrogram in dB relative to its maximum, floored at -top_db.

    audio: (S,) float mono at ``sr`` Hz. Window ~23 ms (Hann), hop 10 ms or longer so that at most ``max_frames``
    columns come out. Returns (spec_db (n_mels, F) float32 in [-top_db, 0], frame times (F,) seconds,
    mel centre frequencies (n_mels,) Hz).
    """
    x = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    n_fft = int(2 ** np.ceil(np.log2(max(0.023 * sr, 16))))
    hop = max(int(sr * 0.010), int(np.ceil(x.shape[0] / max_frames)), 1)
    if x.shape[0] < n_fft:
        x = np.pad(x, (0, n_fft - x.shape[0]))
    x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect" if x.shape[0] > n_fft // 2 else "constant")
    n_frames = 1 + (x.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, n_fft), strides=(x.strides[0] * hop, x.strides[0]), writeable=False
    )  # (F, n_fft)
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)) ** 2  # (F, n_fft//2+1)
    fb, centres = _mel_filters(sr, n_fft, n_mels, fmin=0.0, fmax=sr / 2)
    mel = fb @ power.T.astype(np.float32)  # (n_mels, F)
    if float(mel.max()) <= 1e-10:  # silence: everything at the floor, not at a meaningless maximum
        db = np.full(mel.shape, -top_db, np.float32)
    else:
        db = 10.0 * np.log10(np.maximum(mel, 1e-10))
        db = np.maximum(db - db.max(), -top_db).astype(np.float32)  # (n_mels, F) dB re max
    times = np.arange(n_frames) * hop / float(sr)  # (F,)
    return db, times, centres


def spectrogram_plot(
    audio, sr: int, segments=None, gt_segments=None, labels: Sequence[str] | None = None,
    *, width: int = 1000, height: int = 340, title: str = "Log-mel spectrogram",
) -> np.ndarray:
    """Log-mel spectrogram in dB (colour bar), seconds on x, Hz on y; segments outlined on it and in a band below.

    audio: (S,) float mono at ``sr`` Hz. segments / gt_segments: (N, 2) seconds or None; labels as in
    ``waveform_plot``. Returns (height, width, 3) uint8 RGB.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = max(audio.shape[0] / float(sr), 1e-3)
    db, _, centres = log_mel_spectrogram(audio, sr)
    seg, gt, labels, colors = _prepare_segments(segments, gt_segments, labels, duration)
    fig = _figure(width, height)
    ax, band = _time_axes(fig, with_band=seg is not None or gt is not None, right_px=95)
    n_mels = db.shape[0]
    im = ax.imshow(
        db, origin="lower", aspect="auto", cmap="magma", vmin=-80.0, vmax=0.0,
        extent=(0.0, duration, 0.0, float(n_mels)), interpolation="nearest",
    )
    # y ticks in Hz at round frequencies, placed at their mel-bin position.
    cand = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000, 16000) if centres[0] <= f <= centres[-1]]
    ticks_hz, pos = [], []
    for f in cand:  # keep ticks at least n_mels / 10 bins apart so that labels do not collide
        p = float(np.interp(f, centres, np.arange(n_mels) + 0.5))
        if not pos or p - pos[-1] >= n_mels / 10:
            ticks_hz.append(f)
            pos.append(p)
    ax.set_yticks(pos, [f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks_hz])
    ax.set_ylabel("frequency (Hz)")
    ax.set_xlim(0, duration)
    ax.set_title(title, loc="left", fontsize=11)
    if seg is not None:
        for (s, e), lab in zip(seg, labels):
            ax.axvspan(s, max(e, s + 1e-6), facecolor=colors[lab], alpha=0.18, edgecolor=colors[lab], lw=2.0)
    if gt is not None:
        for s, e in gt:
            ax.axvline(s, color="white", ls="--", lw=1.2)
            ax.axvline(e, color="white", ls="--", lw=1.2)
    if band is not None:
        _segment_band(band, seg, gt, labels, colors, duration)
    (band if band is not None else ax).set_xlabel("time (s)")
    pos_ax = ax.get_position()
    cax = fig.add_axes((pos_ax.x1 + 12 / width, pos_ax.y0, 14 / width, pos_ax.height))
    cbar = fig.colorbar(im, cax=cax)
    cbar.set_label("dB (re max)")
    _segment_legend(fig, colors, seg is not None and len(seg) > 0, gt is not None and len(gt) > 0)
    return _render(fig)


def activation_plot(
    acts: Mapping[str, np.ndarray], times, segments=None, *, width: int = 1000, height: int = 280,
    title: str = "Activation over time",
) -> np.ndarray:
    """Each head's / slot's activation over time as a line, with a legend; segments (seconds) shaded grey.

    acts: name -> (Ta,) float; times: (Ta,) seconds. Returns (height, width, 3) uint8 RGB.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    t_end = float(times.max()) if times.size else 1.0
    for k, (name, a) in enumerate(acts.items()):
        a = np.asarray(a, dtype=np.float64).reshape(-1)
        if a.shape != times.shape:
            raise ValueError(f"activation {name!r} has shape {a.shape}, times {times.shape}")
        ax.plot(times, a, lw=1.8, color=PRED_COLORS[k % len(PRED_COLORS)], label=str(name))
    for s, e in _as_segments(segments):
        ax.axvspan(s, max(e, s + 1e-6), color="#888888", alpha=0.25, lw=0)
    ax.set_xlim(float(times.min()) if times.size else 0.0, max(t_end, 1e-3))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("activation")
    ax.set_title(title, loc="left", fontsize=11)
    ax.grid(alpha=0.3)
    right = 0.99
    if 0 < len(acts) <= 3:  # one row above the axes, beside the title
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=9, ncol=len(acts), frameon=False)
    elif acts:  # more: a column right of the axes, where no title can collide with it
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        right = 0.78
    fig.subplots_adjust(left=0.07, right=right, top=0.88, bottom=0.17)
    return _render(fig)


# ----------------------------------------------------------------------------------------------------------------
# Maps and boxes on frames


def overlay_heatmap(frame, heat, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped heatmap over a frame; each pixel's blend weight is ``alpha * heat``.

    frame: (H, W, 3) uint8 RGB. heat: (h, w) float in [0, 1] (clipped; NaN -> 0), upsampled to (H, W) bilinearly.
    Cold pixels keep the frame, hot pixels take up to ``alpha`` of the colour. Returns (H, W, 3) uint8 RGB.
    """
    import cv2
    from matplotlib import colormaps

    frame = _as_rgb_frame(frame)
    h, w = frame.shape[:2]
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if heat.ndim != 2:
        raise ValueError(f"heat must be (h, w), got shape {heat.shape}")
    heat = np.clip(cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)  # (H, W)
    color = colormaps[cmap](heat)[..., :3] * 255.0  # (H, W, 3)
    a = (alpha * heat)[..., None]  # (H, W, 1)
    out = (1.0 - a) * frame.astype(np.float32) + a * color
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _dashed_rect(img, p0, p1, color, thickness: int, dash: int) -> None:
    """Draw a dashed rectangle on img (in place), corners p0 = (x0, y0), p1 = (x1, y1) in pixels.

    Dashes of ``dash`` pixels every ``2 * dash``, shortened by the line's round caps so that the gaps stay open.
    """
    import cv2

    (x0, y0), (x1, y1) = p0, p1
    on = max(1.0, dash - thickness)
    for a, b in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = float(np.hypot(b[0] - a[0], b[1] - a[1]))
        if length < 1:
            continue
        ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
        for start in np.arange(0.0, length, 2 * dash):
            stop = min(start + on, length)
            q0 = (int(round(a[0] + ux * start)), int(round(a[1] + uy * start)))
            q1 = (int(round(a[0] + ux * stop)), int(round(a[1] + uy * stop)))
            cv2.line(img, q0, q1, color, thickness, cv2.LINE_AA)


def _label(img, text: str, x: int, y: int, color, scale: float, thickness: int) -> None:
    """Text on a filled box of ``color`` with its bottom-left at (x, y), kept inside the image (in place)."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, max(1, thickness))
    pad = max(2, thickness)
    x = int(min(max(x, 0), max(img.shape[1] - tw - 2 * pad, 0)))
    y = int(min(max(y, th + base + 2 * pad), img.shape[0]))
    cv2.rectangle(img, (x, y - th - base - 2 * pad), (x + tw + 2 * pad, y), color, -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
    cv2.putText(img, text, (x + pad, y - base - pad), font, scale, ink, max(1, thickness), cv2.LINE_AA)


def _drawable(frame, min_side: int) -> np.ndarray:
    """An RGB copy of ``frame`` to draw on, upscaled so that its short side is at least ``min_side`` (0: as is).
    A copy: never draw into the caller's frame (a still image's frames are a read-only view)."""
    import cv2

    img = _as_rgb_frame(frame)
    h, w = img.shape[:2]
    if min_side and min(h, w) < min_side:
        s = min_side / min(h, w)
        img = cv2.resize(img, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_CUBIC)
    return np.array(img)


def draw_boxes(
    frame, boxes, labels: Sequence[str] | None = None, colors: Sequence | None = None, gt_boxes=None,
    gt_labels: Sequence[str] | None = None, *, min_side: int = MIN_BOX_SIDE,
) -> np.ndarray:
    """Draw predicted boxes (solid, labelled) and ground-truth boxes (dashed, dark) on a frame.

    frame: (H, W, 3) uint8 RGB; it is first upscaled so that its short side is at least ``min_side`` pixels
    (0 keeps the size), so labels stay legible on small frames. boxes / gt_boxes: (N, 4) normalised
    [x0, y0, x1, y1] (NaN rows skipped). labels: one text per box (or None); colors: one colour per box
    (names, hex, or RGB tuples; default a fixed palette). Line width scales with the frame size.
    Returns (H', W', 3) uint8 RGB with H' / H = W' / W.
    """
    import cv2

    img = _drawable(frame, min_side)
    h, w = img.shape[:2]
    short = min(h, w)
    thick = max(2, int(round(short / 160)))
    scale = max(0.45, short / 700)
    text_thick = max(1, int(round(short / 400)))

    def to_px(b):
        x0, y0, x1, y1 = (float(v) for v in b)
        x0, x1 = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
        y0, y1 = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
        return (int(round(x0 * (w - 1))), int(round(y0 * (h - 1)))), (int(round(x1 * (w - 1))), int(round(y1 * (h - 1))))

    gt = np.asarray(gt_boxes if gt_boxes is not None else np.zeros((0, 4)), dtype=np.float64).reshape(-1, 4)
    gt_col = _rgb(GT_COLOR)
    for i, b in enumerate(gt):
        if not np.all(np.isfinite(b)):
            continue
        p0, p1 = to_px(b)
        _dashed_rect(img, p0, p1, (255, 255, 255), thick + 2, dash=max(8, short // 25))  # halo, visible on dark
        _dashed_rect(img, p0, p1, gt_col, thick, dash=max(8, short // 25))
        text = gt_labels[i] if gt_labels is not None and i < len(gt_labels) else "GT"
        _label(img, str(text), p0[0], p1[1] + int(scale * 30), gt_col, scale * 0.9, text_thick)

    pred = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), dtype=np.float64).reshape(-1, 4)
    for i, b in enumerate(pred):
        if not np.all(np.isfinite(b)):
            continue
        col = _rgb(colors[i]) if colors is not None and i < len(colors) else _rgb(PRED_COLORS[i % len(PRED_COLORS)])
        p0, p1 = to_px(b)
        cv2.rectangle(img, p0, p1, col, thick, cv2.LINE_AA)
        if labels is not None and i < len(labels) and labels[i]:
            _label(img, str(labels[i]), p0[0] - thick // 2, p0[1] - thick // 2, col, scale, text_thick)
    return img


def mark_points(frame, points, labels: Sequence[str], colors: Sequence | None = None, *,
                min_side: int = MIN_BOX_SIDE) -> np.ndarray:
    """Mark normalised (x, y) ``points`` on a frame with a ringed dot and a label each (upscaled like
    ``draw_boxes``): (H', W', 3) uint8 RGB. Non-finite points are skipped."""
    import cv2

    img = _drawable(frame, min_side)
    h, w = img.shape[:2]
    short = min(h, w)
    r = max(4, short // 45)
    scale = max(0.45, short / 700)
    text_thick = max(1, int(round(short / 400)))
    for i, (pt, text) in enumerate(zip(np.asarray(points, dtype=np.float64).reshape(-1, 2), labels)):
        if not np.all(np.isfinite(pt)):
            continue
        col = _rgb(colors[i]) if colors is not None and i < len(colors) else _rgb(PRED_COLORS[i % len(PRED_COLORS)])
        x = int(round(min(max(pt[0], 0.0), 1.0) * (w - 1)))
        y = int(round(min(max(pt[1], 0.0), 1.0) * (h - 1)))
        cv2.circle(img, (x, y), r + 2, (255, 255, 255), -1, cv2.LINE_AA)  # halo, visible on any background
        cv2.circle(img, (x, y), r, col, -1, cv2.LINE_AA)
        _label(img, str(text), x + r + 2, y - r, col, scale, text_thick)
    return img


def map_panel(
    frame, maps: Mapping[str, np.ndarray], title: str = "", *, normalize: bool = False, alpha: float = 0.55,
    cmap: str = "jet", cell: int = 260, colorbar_label: str | None = None,
) -> np.ndarray:
    """A row of labelled heatmap overlays on the same frame, with one shared colour bar.

    frame: (H, W, 3) uint8 RGB. maps: name -> (h, w) float in [0, 1] (e.g. {"target": ..., "off-target": ...} or
    {"head 0 (sound)": ..., "head 1 (speech)": ...}). normalize: min-max normalise all maps jointly first (one scale
    for all, so the colour bar stays true). cell: pixel height of each panel. colorbar_label: the colour bar's label
    (default "normalised" or "map value"). Returns (H', W', 3) uint8 RGB.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    frame = _as_rgb_frame(frame)
    names = list(maps)
    if not names:
        return placeholder(f"{title}: no maps" if title else "no maps")
    arrays = [np.asarray(maps[k], dtype=np.float32) for k in names]
    if normalize:
        arrays = [normalize_map(a, joint_with=arrays) for a in arrays]
    h, w = frame.shape[:2]
    cell_w = int(round(cell * w / max(h, 1)))
    # fixed pixel margins: 8 left, 10 between panels, 120 right (colour bar, its ticks and label), 58 top for the
    # title and the panel names, 10 bottom
    n, gap, left, right, top, bottom = len(names), 10, 8, 120, 58, 10
    fig_w, fig_h = left + n * cell_w + (n - 1) * gap + right, cell + top + bottom
    fig = _figure(fig_w, fig_h)
    for k, (name, a) in enumerate(zip(names, arrays)):
        ax = fig.add_axes(((left + k * (cell_w + gap)) / fig_w, bottom / fig_h, cell_w / fig_w, cell / fig_h))
        ax.imshow(overlay_heatmap(frame, a, alpha=alpha, cmap=cmap), aspect="auto")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    x_bar = left + n * cell_w + (n - 1) * gap + 14
    cax = fig.add_axes((x_bar / fig_w, (bottom + 0.05 * cell) / fig_h, 14 / fig_w, 0.9 * cell / fig_h))
    cbar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps[cmap]), cax=cax)
    cbar.set_label(colorbar_label or ("normalised" if normalize else "map value"), fontsize=9)
    if title:
        fig.text(left / fig_w, 1 - 6 / fig_h, title, ha="left", va="top", fontsize=12)
    return _render(fig)


def overlay_video_frames(frames, maps_per_frame=None, boxes_per_frame=None, *, alpha: float = 0.5,
                         cmap: str = "jet", labels_per_frame=None) -> np.ndarray:
    """Heatmap overlays (and boxes) on every frame, at the frames' own size, for an overlay video.

    frames: (T, H, W, 3) uint8 RGB. maps_per_frame: (T, h, w) float in [0, 1], or one (h, w) map for all frames, or
    None. boxes_per_frame: a sequence of T arrays (N_t, 4) normalised, or None; labels_per_frame: T lists of texts.
    Returns (T, H, W, 3) uint8 RGB.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    t_count = frames.shape[0]
    maps = None if maps_per_frame is None else np.asarray(maps_per_frame, dtype=np.float32)
    if maps is not None and maps.ndim == 2:
        maps = np.broadcast_to(maps, (t_count, *maps.shape))
    if maps is not None and maps.shape[0] != t_count:
        raise ValueError(f"{maps.shape[0]} maps for {t_count} frames")
    if boxes_per_frame is not None and len(boxes_per_frame) != t_count:
        raise ValueError(f"{len(boxes_per_frame)} box lists for {t_count} frames")
    out = np.empty(frames.shape[:3] + (3,), dtype=np.uint8)  # (T, H, W, 3)
    for i in range(t_count):
        f = _as_rgb_frame(frames[i])
        if maps is not None:
            f = overlay_heatmap(f, maps[i], alpha=alpha, cmap=cmap)
        if boxes_per_frame is not None and len(boxes_per_frame[i]):
            labs = labels_per_frame[i] if labels_per_frame is not None else None
            f = draw_boxes(f, boxes_per_frame[i], labs, min_side=0)
        out[i] = f
    return out


def image_row(
    images: Mapping[str, np.ndarray], title: str = "", *, legend: Sequence[tuple[str, str, bool]] = (),
    cell: int = 360,
) -> np.ndarray:
    """Images side by side, each titled, under an optional title, with an optional legend of line styles below.

    images: name -> (H, W, 3) uint8 RGB. legend: (label, colour, dashed) per entry (e.g. the box kinds drawn).
    cell: pixel height of each image. Returns (H', W', 3) uint8 RGB.
    """
    from matplotlib.lines import Line2D

    names = list(images)
    if not names:
        return placeholder(f"{title}: nothing to show" if title else "nothing to show")
    arrays = [_as_rgb_frame(images[k]) for k in names]
    widths = [int(round(cell * a.shape[1] / max(a.shape[0], 1))) for a in arrays]
    pad, head, foot = 12, (34 if title else 8) + 22, (34 if legend else 8)
    fig_w, fig_h = sum(widths) + pad * (len(names) + 1), cell + head + foot
    fig = _figure(fig_w, fig_h)
    x = pad
    for name, a, w in zip(names, arrays, widths):
        ax = fig.add_axes((x / fig_w, foot / fig_h, w / fig_w, cell / fig_h))
        ax.imshow(a, interpolation="bilinear" if a.shape[0] > cell else "nearest", aspect="auto")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        x += w + pad
    if title:
        fig.text(pad / fig_w, 1 - 8 / fig_h, title, ha="left", va="top", fontsize=12)
    if legend:
        handles = [Line2D([0], [0], color=c, lw=2.5, ls="--" if dashed else "-", label=lab)
                   for lab, c, dashed in legend]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
    return _render(fig)
