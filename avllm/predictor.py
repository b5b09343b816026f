"""Inference over plain arrays: set a clip once (features cached), then ask many questions and render many maps.

    p = Predictor.from_checkpoint("assets/avllm-tiny")
    p.set_clip(load_clip("clip.mp4"))
    p.ground()              -> TextAnswer(text="It is at [0.12, 0.30, 0.55, 0.71].", boxes=[[...]], segments=[])
    p.localize()            -> TextAnswer(... segments=[[1.00, 2.25]])
    p.ask("How many objects are in the image?")
    p.maps()                -> dict of numpy maps (g×g in [0, 1]) and curves over audio time
    p.predict(claim=..., question=...) -> Prediction (JSON-serialisable, ``to_dict()``)
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from avllm.data import select_frames
from avllm.heads.classmap import sounding_map
from avllm.media import Clip
from avllm.model import AVLLM, AVFeatures
from avllm.synth import ANSWERS, CLASS_NAMES
from avllm.textformat import parse_display

__all__ = ["PROMPTS", "TextAnswer", "Prediction", "Predictor", "map_to_box", "dense_roles"]

# The canonical prompt of each task (the synthetic world's instruction data uses these among its phrasings).
PROMPTS = {
    "ground": "Where is the object making the sound?",
    "temporal": "When does the object in the image make sound?",
    "caption": "Describe what you see and hear.",
    "factcheck": "Is this claim true or false? {claim}",
}


@dataclass
class TextAnswer:
    prompt: str
    text: str  # display form
    boxes: list[list[float]] = field(default_factory=list)  # normalised [x0, y0, x1, y1]
    segments: list[list[float]] = field(default_factory=list)  # seconds


@dataclass
class Prediction:
    """Everything the model says about one clip; ``to_dict()`` is JSON-serialisable."""

    duration: float
    key_time: float
    frame_times: list[float]
    answers: dict[str, TextAnswer]
    ssl_box: list[float] | None  # box around the SSL map's hot region
    proposal_box: list[float]  # the box head's proposal
    proposal_segment: list[float]  # the activity head's proposal (seconds)
    avqa_choice: str | None  # the CAD answer chain's choice over the fixed answer set
    maps: dict[str, list]  # name -> g×g nested lists in [0, 1]
    curves: dict[str, list]  # name -> values over audio time; "times" holds the seconds
    timings: dict[str, float]  # seconds per stage
    notes: list[str] = field(default_factory=list)
    tags: dict[str, dict[str, float]] = field(default_factory=dict)  # "seen" / "heard" -> class -> probability
    # class maps: class -> {"seen", "heard", "sounding": probabilities, "centre": [x, y], "activity": over
    # curves["times"]}, for the classes seen or heard with probability >= 0.5; {} for a model without them
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # DenseAV's head roles ("sound", "speech"), head by head, where the checkpoint's recorded evaluation on spoken
    # phrases measured them as specialised (see ``dense_roles``); [] when nothing says which head is which
    dense_roles: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def map_to_box(m: np.ndarray, threshold: float = 0.5) -> list[float] | None:
    """Normalised box around the connected region of the min-max normalised map ``m`` (h, w) that holds its peak,
    thresholded at ``threshold``; None for a flat map."""
    m = np.asarray(m, dtype=np.float32)
    lo, hi = float(m.min()), float(m.max())
    if not np.isfinite(hi - lo) or hi - lo < 1e-6:
        return None
    n = (m - lo) / (hi - lo)
    mask = n >= threshold
    h, w = m.shape
    peak = np.unravel_index(int(n.argmax()), n.shape)
    # flood fill from the peak (4-connected) over the mask
    seen = np.zeros_like(mask)
    stack = [peak]
    while stack:
        y, x = stack.pop()
        if y < 0 or x < 0 or y >= h or x >= w or seen[y, x] or not mask[y, x]:
            continue
        seen[y, x] = True
        stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    ys, xs = np.nonzero(seen)
    return [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]


def dense_roles(checkpoint: str | Path, num_heads: int) -> list[str]:
    """DenseAV's head roles as the checkpoint's recorded evaluation measured them: ``recorded_metrics.json`` beside
    the weights, its ``_speech_split`` figures (avllm.evaluate on clips with spoken phrases): ``seg.speech_head``
    (read off the phrases' timing) and ``seg.specialised`` (each of the two heads segments its own target better
    than the other). The speech head is named "speech", the evaluation's sound head "sound", any other ""; [] when
    the heads were not measured as specialised, or the file, a key or a second head is missing, or the file cannot
    be read: the heads are then shown by number only."""
    path = Path(checkpoint) / "recorded_metrics.json"
    try:
        rec = json.loads(path.read_text()).get("_speech_split") or {} if path.is_file() else {}
        speech, specialised = rec.get("seg.speech_head"), rec.get("seg.specialised")
    except (OSError, ValueError, AttributeError):
        return []
    ok = isinstance(speech, (int, float)) and specialised == 1.0 and num_heads >= 2
    if not ok or not 0 <= int(speech) < num_heads:
        return []
    roles = [""] * num_heads
    roles[int(speech)] = "speech"
    roles[1 if int(speech) == 0 else 0] = "sound"
    return roles


class Predictor:
    """A model plus the cached features of one clip. Not thread-safe: use one per request or a lock."""

    def __init__(self, model: AVLLM, device: str | torch.device = "cpu", dense_roles: list[str] | None = None):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.dense_roles = list(dense_roles or [])
        self.clip: Clip | None = None
        self.features: AVFeatures | None = None
        self.timings: dict[str, float] = {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        from avllm.checkpoint import load

        model = load(path, device=device)
        return cls(model, device=device, dense_roles=dense_roles(path, model.cfg.dense.num_heads))

    # ------------------------------------------------------------------------------------------------------------
    def _inputs(self, clip: Clip) -> tuple[torch.Tensor, ...]:
        """Frames sampled over the whole clip (the key frame at its middle), as in training's ``select_frames``."""
        cfg = self.model.cfg
        t = cfg.num_frames
        if clip.num_frames:
            idx, times, key = select_frames(clip.times, t, clip.duration / 2, clip.duration, mode="clip")
            frames = clip.frames[idx]  # (T, H, W, 3) uint8
        else:  # audio only: black frames
            s = cfg.image.image_size
            frames = np.zeros((t, s, s, 3), np.uint8)
            times = ((np.arange(t) + 0.5) * max(clip.duration, 1e-3) / t).astype(np.float32)
            key = t // 2
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0)  # (T, 3, H, W)
        s = cfg.image.image_size
        x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        if clip.sample_rate != cfg.audio.sample_rate:
            raise ValueError(
                f"clip audio is {clip.sample_rate} Hz; the model needs {cfg.audio.sample_rate} Hz "
                "(load it with sample_rate=model.cfg.audio.sample_rate)"
            )
        audio = torch.from_numpy(np.ascontiguousarray(clip.audio, dtype=np.float32))[None]  # (1, N)
        audio_len = torch.tensor([audio.shape[1]])
        return x[None], torch.from_numpy(np.asarray(times)).float()[None], audio, audio_len, torch.tensor([key])

    @torch.no_grad()
    def set_clip(self, clip: Clip) -> AVFeatures:
        """Encode ``clip`` once; every question after this reads the cached features."""
        t0 = time.perf_counter()
        frames, times, audio, audio_len, key = self._inputs(clip)
        dev = self.device
        self.features = self.model.encode(
            frames.to(dev), times.to(dev), audio.to(dev), audio_len.to(dev), key_index=key.to(dev)
        )
        self.clip = clip
        self.timings = {"encode": time.perf_counter() - t0}
        return self.features

    def _need(self) -> AVFeatures:
        if self.features is None:
            raise RuntimeError("no clip set: call set_clip(clip) first")
        return self.features

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def ask(self, prompt: str, max_new_tokens: int = 40) -> TextAnswer:
        f = self._need()
        text = self.model.generate(f, [prompt], max_new_tokens=max_new_tokens)[0]
        parsed = parse_display(text)
        return TextAnswer(prompt=prompt, text=text, boxes=parsed.boxes, segments=parsed.segments)

    @torch.no_grad()
    def ask_many(self, prompts: list[str], max_new_tokens: int = 40) -> list[TextAnswer]:
        """Several questions about the current clip, answered in one batched generation (the clip's features are
        repeated once per prompt, as ``avllm.evaluate.select_features`` does for a batch of clips)."""
        from avllm.evaluate import select_features

        f = self._need()
        if not prompts:
            return []
        rep = select_features(f, [0] * len(prompts))
        texts = self.model.generate(rep, list(prompts), max_new_tokens=max_new_tokens)
        out = []
        for prompt, text in zip(prompts, texts):
            parsed = parse_display(text)
            out.append(TextAnswer(prompt=prompt, text=text, boxes=parsed.boxes, segments=parsed.segments))
        return out

    def ground(self) -> TextAnswer:
        return self.ask(PROMPTS["ground"])

    def localize(self, prompt: str | None = None) -> TextAnswer:
        return self.ask(prompt or PROMPTS["temporal"])

    def caption(self) -> TextAnswer:
        return self.ask(PROMPTS["caption"], max_new_tokens=60)

    def factcheck(self, claim: str) -> TextAnswer:
        return self.ask(PROMPTS["factcheck"].format(claim=claim.strip()))

    @torch.no_grad()
    def choose_answer(self, question: str) -> str:
        """The CAD answer chain's pick over the fixed AVQA answer set."""
        logits = self.model.answer_classes(self._need(), [question])[0]
        return ANSWERS[int(logits[: len(ANSWERS)].argmax())]

    # ------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def maps(self) -> dict[str, np.ndarray]:
        """Maps over the key frame (g×g, min-max normalised to [0, 1]) and curves over audio time (Ta,)."""
        f = self._need()
        g = f.grid

        def norm(x: torch.Tensor) -> np.ndarray:
            x = x.float().cpu().numpy()
            lo, hi = x.min(), x.max()
            return (x - lo) / (hi - lo) if hi - lo > 1e-8 else np.zeros_like(x)

        out: dict[str, np.ndarray] = {
            "ssl": norm(f.ssl_map[0].view(g, g)),
            "slot_target": f.slot_img_attn[0, 0].view(g, g).float().cpu().numpy(),
            "slot_offtarget": f.slot_img_attn[0, 1].view(g, g).float().cpu().numpy(),
            "avace": norm(f.avace_attn[0].view(g, g)),
        }
        if f.class_maps is not None:  # the class maps' attention, weighted by each class's sounding probability
            out["sounding"] = norm(sounding_map(f.class_maps)[0].view(g, g))
        for k in range(f.dense_heatmaps.shape[1]):
            out[f"dense_head{k}"] = norm(f.dense_heatmaps[0, k])
        valid = f.aud_mask[0].cpu().numpy()
        out["times"] = f.aud_times.cpu().numpy()[valid]
        out["audio_slot_target"] = f.slot_aud_attn[0, 0].float().cpu().numpy()[valid]
        out["activity"] = torch.sigmoid(f.activity[0]).float().cpu().numpy()[valid]
        for k in range(f.dense_time.shape[1]):
            out[f"dense_time{k}"] = f.dense_time[0, k].float().cpu().numpy()[valid]
        return out

    @torch.no_grad()
    def frame_maps(self) -> np.ndarray:
        """(T, g, g) SSL map of every sampled frame (each frame taken as the key frame), in [0, 1]."""
        f = self._need()
        g = f.grid
        v = f.frames[0]  # (T, P, D)
        t = v.shape[0]
        aud = f.aud.expand(t, -1, -1)
        mask = f.aud_mask.expand(t, -1)
        so = self.model.slots(v, aud, mask, grid=g)
        m = so.ssl_map.view(t, g, g).float().cpu().numpy()
        lo, hi = m.min(), m.max()
        return (m - lo) / (hi - lo) if hi - lo > 1e-8 else np.zeros_like(m)

    @torch.no_grad()
    def tags(self, min_prob: float = 0.05) -> dict[str, dict[str, float]]:
        """The class-tag head's probabilities: {"seen": {class: p}, "heard": {class: p}}, classes of the synthetic
        world at or above ``min_prob``, most likely first; {} for a model without the head."""
        f = self._need()
        if f.seen_tags is None or f.heard_tags is None:
            return {}
        out = {}
        for name, logits in (("seen", f.seen_tags), ("heard", f.heard_tags)):
            probs = torch.sigmoid(logits[0, : len(CLASS_NAMES)].float()).cpu().tolist()
            ranked = sorted(zip(CLASS_NAMES, probs), key=lambda cp: -cp[1])
            out[name] = {c: round(p, 3) for c, p in ranked if p >= min_prob}
        return out

    @torch.no_grad()
    def class_maps(self, min_prob: float = 0.5) -> dict[str, dict[str, Any]]:
        """Where and when each likely class is (see ``Prediction.classes``), most likely first."""
        f = self._need()
        cm = f.class_maps
        if cm is None or f.seen_tags is None or f.heard_tags is None:
            return {}
        valid = f.aud_mask[0].cpu().numpy()
        out = {}
        for c, name in enumerate(CLASS_NAMES):
            seen, heard = float(torch.sigmoid(f.seen_tags[0, c])), float(torch.sigmoid(f.heard_tags[0, c]))
            if max(seen, heard) < min_prob:
                continue
            out[name] = {
                "seen": round(seen, 3), "heard": round(heard, 3),
                "sounding": round(float(cm.sounding[0, c].sigmoid()), 3),
                "centre": [round(float(v), 4) for v in cm.centre[0, c].cpu()],
                "activity": torch.sigmoid(cm.when[0, c]).float().cpu().numpy()[valid].round(4).tolist(),
            }  # fmt: skip
        return dict(sorted(out.items(), key=lambda kv: -max(kv[1]["seen"], kv[1]["heard"])))

    def predict(self, claim: str | None = None, question: str | None = None, max_new_tokens: int = 60) -> Prediction:
        """Every task on the current clip: grounding, temporal localization, caption, and the fact-check of
        ``claim`` / the AVQA answer to ``question`` when given, plus the head outputs (maps, proposals)."""
        f = self._need()
        assert self.clip is not None
        timings = dict(self.timings)
        t0 = time.perf_counter()
        # the task prompts in one batch: one generation loop instead of one per task
        prompts = {"ground": PROMPTS["ground"], "temporal": PROMPTS["temporal"], "caption": PROMPTS["caption"]}
        if claim:
            prompts["factcheck"] = PROMPTS["factcheck"].format(claim=claim.strip())
        if question:
            prompts["avqa"] = question.strip()
        answers = dict(zip(prompts, self.ask_many(list(prompts.values()), max_new_tokens=max_new_tokens)))
        avqa_choice = self.choose_answer(question) if question else None
        timings["generate"] = time.perf_counter() - t0
        m = self.maps()
        seg = self.model.proposed_segments(f)[0].tolist()
        maps = {k: v.round(4).tolist() for k, v in m.items() if v.ndim == 2}
        curves = {k: v.round(4).tolist() for k, v in m.items() if v.ndim == 1}
        return Prediction(
            duration=float(self.clip.duration),
            key_time=float(f.frame_times[0, int(f.key_index[0])]),
            frame_times=[float(x) for x in f.frame_times[0].cpu()],
            answers=answers,
            ssl_box=map_to_box(m["ssl"]),
            proposal_box=[round(float(x), 4) for x in f.box[0].cpu()],
            proposal_segment=[round(float(x), 3) for x in seg],
            avqa_choice=avqa_choice,
            maps=maps,
            curves=curves,
            timings={k: round(v, 4) for k, v in timings.items()},
            notes=list(self.clip.flags.notes),
            tags=self.tags(),
            classes=self.class_maps(),
            dense_roles=list(self.dense_roles),
        )
