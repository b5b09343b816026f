"""The synthetic world in memory: ``generate`` one clip with its exact ground truth, ``SynthWorld`` as a source of
clips for training (no disk).

    clip = generate(12, split="train", seed=0, difficulty="standard")
    clip.frames      # (T, H, W, 3) uint8 RGB, T = round(duration * fps) (or fewer: frames="key" / num_frames=k)
    clip.times       # (T,) float64 seconds of those frames
    clip.audio       # (S,) float32 mono in [-1, 1] at clip.sample_rate (48 kHz)
    clip.masks       # (N, H, W) bool instance masks of the visible objects at the key frame
    clip.ssl_mask    # (H, W) bool union of the masks of the sounding visible objects (SSL target)
    clip.record      # avllm.record.Record with boxes, segments, loudness, texts for every task
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from avllm.record import ObjectAnn, Record, SoundAnn
from avllm.synth.classes import get_class
from avllm.synth.difficulty import Difficulty, get_difficulty
from avllm.synth.render import Placement, key_masks, placements, render_frames
from avllm.synth.scene import SPLITS, Scene, sample_scene, scene_seed
from avllm.synth.sound import AudioResult, frame_envelopes, render_audio
from avllm.synth.speech import require_espeak, speak
from avllm.synth.facts import position_word
from avllm.synth.tasks import make_texts

__all__ = ["SynthClip", "FrameMode", "generate", "frame_indices", "build_record", "speech_drawn", "SynthWorld"]

FrameMode = Literal["all", "key"]
SAMPLE_RATE = 48000


@dataclass
class SynthClip:
    frames: np.ndarray  # (k, H, W, 3) uint8 RGB
    times: np.ndarray  # (k,) float64 seconds of the frames
    frame_index: np.ndarray  # (k,) int index of each frame among the clip's T frames
    audio: np.ndarray  # (S,) float32 mono in [-1, 1]
    sample_rate: int  # Hz
    fps: float
    masks: np.ndarray  # (N, H, W) bool key-frame instance masks, in record.objects order
    ssl_mask: np.ndarray  # (H, W) bool key-frame mask of the sounding visible objects
    record: Record
    scene: Scene


def frame_indices(num_total: int, frames: FrameMode = "all", num_frames: int | None = None) -> np.ndarray:
    """Which of the clip's ``num_total`` frames to render: all, the key (middle) one, or ``num_frames`` spread
    evenly (the middle of each of num_frames equal stretches; num_frames=1 gives the key frame)."""
    if num_frames is not None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        k = min(num_frames, num_total)
        return np.floor((np.arange(k) + 0.5) * num_total / k).astype(np.int64)
    if frames == "all":
        return np.arange(num_total)
    if frames == "key":
        return np.array([num_total // 2])
    raise ValueError(f"frames must be 'all' or 'key', got {frames!r}")


def generate(
    index: int,
    split: str = "train",
    seed: int = 0,
    difficulty: str | Difficulty = "standard",
    speech: bool = False,
    image_size: int = 224,
    fps: float = 8.0,
    duration: float = 4.0,
    frames: FrameMode = "all",
    num_frames: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    evidence: bool = False,
) -> SynthClip:
    """Clip ``index`` of ``split``: a deterministic function of all arguments (same arguments -> identical arrays
    and record). ``frames`` / ``num_frames`` choose which frames are rendered; the record (with boxes for every
    frame) does not depend on them. ``speech=True`` needs espeak-ng (SpeechUnavailable otherwise). ``evidence``: fact-check
    answers with their evidence (``avllm.synth.tasks.make_texts``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    diff = get_difficulty(difficulty)
    if speech:
        require_espeak()
    scene = sample_scene(split, seed, index, diff, speech, image_size, fps, duration)
    phrase = None
    if scene.speech is not None:
        sp = scene.speech
        phrase = speak(sp.text, sp.voice, sp.speed, sp.pitch, sample_rate)
    aud = render_audio(scene, sample_rate, phrase)
    src_env = frame_envelopes(aud.tracks[: len(scene.sources)], sample_rate, fps, scene.num_frames)  # (K, T)
    obj_env = np.zeros((len(scene.objects), scene.num_frames))  # (N, T)
    for n, o in enumerate(scene.objects):
        if o.source >= 0:
            obj_env[n] = src_env[o.source]
    place = placements(scene, obj_env)
    idx = frame_indices(scene.num_frames, frames, num_frames)
    imgs = render_frames(scene, idx, place, obj_env)
    masks = key_masks(scene, place)
    sounding = np.array([o.source >= 0 for o in scene.objects], dtype=bool)
    ssl = masks[sounding].any(0) if sounding.any() else np.zeros(masks.shape[1:], bool)
    rec = build_record(scene, place, aud, sample_rate)
    text_rng = np.random.default_rng(scene_seed(split, seed, index, diff.name).spawn(1)[0])
    rec.texts = make_texts(rec, text_rng, evidence=evidence)
    return SynthClip(
        frames=imgs,
        times=idx / fps,
        frame_index=idx,
        audio=aud.audio,
        sample_rate=sample_rate,
        fps=float(fps),
        masks=masks,
        ssl_mask=ssl,
        record=rec,
        scene=scene,
    )


def _r(v: float, nd: int = 4) -> float:
    return round(float(v), nd)


def build_record(scene: Scene, place: Placement, aud: AudioResult, sample_rate: int) -> Record:
    """The Record of a rendered scene (texts are added by the caller)."""
    t_key = scene.key_index
    objects = []
    for n, o in enumerate(scene.objects):
        box = [_r(v) for v in place.boxes[t_key, n]]
        vis = get_class(o.category).visual
        src = scene.sources[o.source] if o.source >= 0 else None
        objects.append(
            ObjectAnn(
                category=o.category,
                box=box,
                sounding=src is not None,
                segments=[list(s) for s in src.segments] if src else [],
                frame_boxes=[[_r(v) for v in b] for b in place.boxes[:, n]],
                loudness_db=aud.loudness_db[o.source] if src else None,
                attrs={
                    "colour": vis.colour,
                    "shape": vis.shape,
                    "texture": vis.texture,
                    "position": position_word(box),
                    "area": _r((box[2] - box[0]) * (box[3] - box[1])),
                    "moving": bool(o.dx or o.dy),
                    "rgb": list(o.rgb),
                },
            )
        )
    sounds = [
        SoundAnn(category=s.category, segments=[list(g) for g in s.segments], loudness_db=aud.loudness_db[k])
        for k, s in enumerate(scene.sources)
        if s.object < 0
    ]
    if scene.speech is not None and aud.speech_segment is not None:
        sounds.append(
            SoundAnn("speech", segments=[aud.speech_segment], loudness_db=aud.loudness_db[-1], text=scene.speech.text)
        )
    key_time = t_key / scene.fps
    meta = {
        "seed": scene.seed,
        "index": scene.index,
        "difficulty": scene.difficulty,
        "snr_db": scene.snr_db,
        "fps": scene.fps,
        "sample_rate": sample_rate,
        "num_frames": scene.num_frames,
        "key_index": t_key,
        "pulse": scene.pulse,
        "held_out_pair": scene.held_out_pair,
        "sounding_at_key": [
            bool(o.source >= 0 and any(a <= key_time < b for a, b in scene.sources[o.source].segments))
            for o in scene.objects
        ],
        "scene": scene.to_dict(),
    }
    return Record(
        id=scene.id,
        source="synth",
        duration=scene.duration,
        key_time=key_time,
        width=scene.image_size,
        height=scene.image_size,
        objects=objects,
        sounds=sounds,
        ssl_boxes=[ob.box for ob in objects if ob.sounding],
        split=scene.split,
        meta=meta,
    )


def speech_drawn(split: str, seed: int, index: int, share: float) -> bool:
    """Whether clip ``index`` is one of the ``share`` of clips that carry a spoken phrase: a draw of its own
    (seeded by split, seed and index), so the clips without one are exactly the clips of ``speech=False``."""
    if share >= 1.0:
        return True
    u = np.random.default_rng([zlib.crc32(split.encode()), seed, index, 0x5EEC]).random()
    return bool(u < share)


class SynthWorld:
    """Clips of one split as a map-style source: ``world[i]`` is ``generate(i, ...)``; no disk.

    ``length`` (None = unbounded) sets ``len(world)`` and where iteration stops; ``start`` offsets the indices.
    With ``speech``, the clips that ``speech_drawn(..., speech_share)`` picks carry a spoken phrase (DenseAV's
    speech head needs both kinds of clip to tell speech from sound).
    Works as a torch Dataset (with a length) or as a plain iterator."""

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        difficulty: str | Difficulty = "standard",
        speech: bool = False,
        image_size: int = 224,
        fps: float = 8.0,
        duration: float = 4.0,
        frames: FrameMode = "all",
        num_frames: int | None = None,
        length: int | None = None,
        speech_share: float = 1.0,
        start: int = 0,
        sample_rate: int = SAMPLE_RATE,
        evidence: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        if speech:
            require_espeak()  # fail now, not at the first clip
        if not 0.0 <= speech_share <= 1.0:
            raise ValueError(f"speech_share must lie in [0, 1], got {speech_share}")
        frame_indices(max(1, int(round(duration * fps))), frames, num_frames)  # validates the frame options
        self.difficulty = get_difficulty(difficulty)
        self.split, self.seed, self.speech, self.speech_share = split, seed, speech, speech_share
        self.image_size, self.fps, self.duration, self.sample_rate = image_size, fps, duration, sample_rate
        self.frames, self.num_frames, self.length, self.start = frames, num_frames, length, start
        self.evidence = evidence

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("an unbounded SynthWorld has no length; pass length=")
        return self.length

    def __getitem__(self, i: int) -> SynthClip:
        if i < 0 or (self.length is not None and i >= self.length):
            raise IndexError(i)
        return generate(
            self.start + i,
            split=self.split,
            seed=self.seed,
            difficulty=self.difficulty,
            speech=self.speech and speech_drawn(self.split, self.seed, self.start + i, self.speech_share),
            image_size=self.image_size,
            fps=self.fps,
            duration=self.duration,
            frames=self.frames,
            num_frames=self.num_frames,
            sample_rate=self.sample_rate,
            evidence=self.evidence,
        )

    def __iter__(self) -> Iterator[SynthClip]:
        i = 0
        while self.length is None or i < self.length:
            yield self[i]
            i += 1

    def __repr__(self) -> str:
        n = "inf" if self.length is None else self.length
        return f"SynthWorld(split={self.split!r}, seed={self.seed}, difficulty={self.difficulty.name!r}, length={n})"

