"""The synthetic world: ground truth agrees with the media it describes, texts agree with the ground truth,
determinism, splits, difficulty presets, and the CLI's files."""

from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.record import Record
from avllm.synth import (
    ANSWERS,
    CLASS_NAMES,
    CLASSES,
    DIFFICULTIES,
    HELD_OUT_PAIRS,
    LOOK_ALIKE,
    SOUND_ALIKE,
    SpeechUnavailable,
    SynthWorld,
    espeak_available,
    generate,
    get_class,
    position_word,
    sample_scene,
)
from avllm.synth.render import render_background
from avllm.synth.tasks import make_texts
from avllm.synth.facts import side_of
from avllm.evaluate import truth_of
from avllm.textformat import parse_boxes, parse_segments

SR = 48000


@lru_cache(maxsize=64)
def _clip(index: int, difficulty: str = "standard", split: str = "train", frames: str = "key"):
    return generate(index, split=split, difficulty=difficulty, frames=frames)


def _band_power(audio: np.ndarray, band: tuple[float, float], sr: int = SR, n_fft: int = 1024, hop: int = 512):
    """(frame centre times (F,), mean power in ``band`` per STFT frame (F,))."""
    n = 1 + (len(audio) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(audio[idx] * np.hanning(n_fft), axis=1)) ** 2  # (F, n_fft/2+1)
    f = np.fft.rfftfreq(n_fft, 1 / sr)
    sel = (f >= band[0]) & (f <= band[1])
    return (np.arange(n) * hop + n_fft / 2) / sr, spec[:, sel].mean(1)


def _all_segments(rec: Record) -> list[list[float]]:
    return [s for o in rec.objects for s in o.segments] + [s for snd in rec.sounds for s in snd.segments]


def _inside(t: np.ndarray, segs, pad: float) -> np.ndarray:
    return np.any([(t >= a + pad) & (t <= b - pad) for a, b in segs], axis=0) if segs else np.zeros(len(t), bool)


def _overlaps(t: np.ndarray, segs, pad: float) -> np.ndarray:
    return np.any([(t >= a - pad) & (t <= b + pad) for a, b in segs], axis=0) if segs else np.zeros(len(t), bool)


def _check_band_energy(rec: Record, audio: np.ndarray, sr: int = SR, min_ratio: float = 3.0) -> int:
    """For every heard source: power in its class band inside its segments > min_ratio x the power in that band
    where nothing sounds. Returns the number of sources checked."""
    pad = 0.03  # STFT frames are 21 ms long: keep clear of the edges
    checked = 0
    for cat, segs in [(o.category, o.segments) for o in rec.objects if o.sounding] + [
        (s.category, s.segments) for s in rec.sounds if s.category != "speech"
    ]:
        t, p = _band_power(audio, get_class(cat).sound.band, sr)
        quiet = ~_overlaps(t, _all_segments(rec), pad)
        on = _inside(t, segs, pad)
        if quiet.sum() < 5 or on.sum() < 5:
            continue
        assert p[on].mean() > min_ratio * p[quiet].mean(), (rec.id, cat, segs, p[on].mean(), p[quiet].mean())
        checked += 1
    return checked


# ----------------------------------------------------------------------------------------------------------------
# Catalogue and presets


def test_catalogue_is_data_with_deliberate_pairs():
    assert len(CLASSES) >= 8 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert all(n.isalpha() and n.islower() for n in CLASS_NAMES)
    looks = {}
    for c in CLASSES:
        looks.setdefault((c.visual.shape, c.visual.colour), []).append(c.name)
    # the only classes sharing shape + colour are the labelled look-alike pairs, and they differ in texture/sound
    shared = [tuple(v) for v in looks.values() if len(v) > 1]
    assert sorted(shared) == sorted(LOOK_ALIKE)
    for a, b in LOOK_ALIKE:
        ca, cb = get_class(a), get_class(b)
        assert ca.visual.texture != cb.visual.texture and ca.sound.envelope != cb.sound.envelope
    for a, b in SOUND_ALIKE:
        ca, cb = get_class(a), get_class(b)
        assert ca.sound.envelope == cb.sound.envelope
        assert (ca.visual.shape, ca.visual.colour) != (cb.visual.shape, cb.visual.colour)
    # no two classes outside the sound-alike pairs share a sound family
    envs = [c.sound.envelope for c in CLASSES]
    dup = {e for e in envs if envs.count(e) > 1}
    assert {tuple(sorted(c.name for c in CLASSES if c.sound.envelope == e)) for e in dup} == set(SOUND_ALIKE)
    # saturated colour families are far apart in hue, except within look-alike pairs
    hues = {(c.visual.colour, c.visual.hue) for c in CLASSES if c.visual.saturation > 0}
    for c1, h1 in hues:
        for c2, h2 in hues:
            if c1 != c2:
                assert min(abs(h1 - h2), 360 - abs(h1 - h2)) >= 30, (c1, c2)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_each_sound_family_lives_in_its_documented_band(cls):
    from avllm.synth.sound import pattern

    for f0 in (cls.sound.f_lo, cls.sound.f_hi):
        x = pattern(cls.sound.envelope, f0, SR, SR, np.random.default_rng(3)).astype(np.float64)  # 1 s
        power = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        lo, hi = cls.sound.band
        assert power[(f >= lo) & (f <= hi)].sum() > 0.9 * power.sum()
        assert x[: SR // 100].std() > 0.05 * x.std()  # an event at the onset: the segment's start is audible


def test_answer_set():
    assert len(ANSWERS) <= 64 and len(set(ANSWERS)) == len(ANSWERS)
    assert {"yes", "no", "0", "5", "left", "center", "first", "second"} <= set(ANSWERS)
    assert set(CLASS_NAMES) <= set(ANSWERS)


# ----------------------------------------------------------------------------------------------------------------
# Determinism, splits, hold-out


def test_determinism_and_frame_subsets():
    a = generate(5, split="val", seed=3)
    b = generate(5, split="val", seed=3)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.ssl_mask, b.ssl_mask)
    assert a.record.to_json() == b.record.to_json()
    assert a.frames.shape == (32, 224, 224, 3) and a.frames.dtype == np.uint8
    assert a.audio.shape == (4 * SR,) and a.audio.dtype == np.float32 and np.abs(a.audio).max() <= 1.0
    # asking for fewer frames renders exactly those frames and leaves the record unchanged
    c = generate(5, split="val", seed=3, num_frames=4)
    assert np.array_equal(c.frames, a.frames[c.frame_index]) and c.record.to_json() == a.record.to_json()
    k = generate(5, split="val", seed=3, frames="key")
    assert np.array_equal(k.frames[0], a.frames[16]) and k.times[0] == a.record.key_time == 2.0
    # another seed, index or split gives another clip
    assert not np.array_equal(generate(5, split="val", seed=4, frames="key").frames, k.frames)
    assert not np.array_equal(generate(6, split="val", seed=3, frames="key").frames, k.frames)


def _fingerprint(scene) -> str:
    d = scene.to_dict()
    for key in ("id", "split", "held_out_pair"):
        d.pop(key)
    return json.dumps(d, sort_keys=True)


def test_splits_are_disjoint():
    seen: dict[str, str] = {}
    d = DIFFICULTIES["standard"]
    for split in ("train", "val", "test", "unheard"):
        for i in range(150):
            fp = _fingerprint(sample_scene(split, 0, i, d))
            assert fp not in seen, f"{split} clip {i} repeats {seen.get(fp)}"
            seen[fp] = f"{split} {i}"


def test_unheard_holds_out_class_pairs():
    held = [set(p) for p in HELD_OUT_PAIRS]
    covered = set().union(*held)
    assert covered == set(CLASS_NAMES)  # every class is still seen in training, in other company
    for diff in ("easy", "standard", "hard"):
        d = DIFFICULTIES[diff]
        for split in ("train", "val", "test"):
            for i in range(120):
                s = sample_scene(split, 1, i, d)
                cats = {o.category for o in s.objects} | {x.category for x in s.sources}
                assert not any(p <= cats for p in held), (split, i, cats)
        for i in range(60):
            s = sample_scene("unheard", 1, i, d)
            visible = {o.category for o in s.objects}
            assert set(s.held_out_pair) in held and set(s.held_out_pair) <= visible


# ----------------------------------------------------------------------------------------------------------------
# Geometry: boxes, masks, sizes


@settings(max_examples=12, deadline=None)
@given(index=st.integers(0, 10_000), difficulty=st.sampled_from(["easy", "standard", "hard"]))
def test_boxes_are_tight_around_drawn_pixels(index, difficulty):
    clip = generate(index, difficulty=difficulty, num_frames=5)
    rec, S = clip.record, clip.frames.shape[1]
    bg = render_background(clip.scene)
    for obj, m in zip(rec.objects, clip.masks):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        tight = [cols[0] / S, rows[0] / S, (cols[-1] + 1) / S, (rows[-1] + 1) / S]
        assert np.allclose(obj.box, tight, atol=1.5 / S), (obj.box, tight)
        assert obj.frame_boxes[rec.meta["key_index"]] == obj.box
        assert len(obj.frame_boxes) == rec.meta["num_frames"]
    # masks never overlap; the SSL mask is the union of the sounding objects' masks
    assert clip.masks.sum(0).max() <= 1
    sounding = np.array([o.sounding for o in rec.objects])
    assert np.array_equal(clip.ssl_mask, clip.masks[sounding].any(0))
    assert rec.ssl_boxes == [o.box for o in rec.objects if o.sounding]
    # in every rendered frame, each box holds pixels that differ from the background on all four edges, and
    # pixels that differ from the background lie inside a box or are clutter (clutter is painted on the background)
    for frame, t in zip(clip.frames, clip.frame_index):
        changed = np.any(frame != bg, axis=-1)
        inside = np.zeros((S, S), bool)
        for obj in rec.objects:
            x0, y0, x1, y1 = (int(round(v * S)) for v in obj.frame_boxes[t])
            inside[y0:y1, x0:x1] = True
            box = changed[y0:y1, x0:x1]
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any(), (obj.category, t)
        assert not (changed & ~inside).any()


@pytest.mark.parametrize("difficulty", ["easy", "standard", "hard"])
def test_object_sizes_and_counts_follow_the_preset(difficulty):
    d = DIFFICULTIES[difficulty]
    grow = (1 + d.pulse_depth) ** 2 if d.pulse == "size" else 1.0
    for i in range(40):
        rec = _clip(i, difficulty).record
        assert d.num_objects[0] <= len(rec.objects) <= d.num_objects[1]
        assert sum(o.sounding for o in rec.objects) >= 1
        for o in rec.objects:
            area = (o.box[2] - o.box[0]) * (o.box[3] - o.box[1])
            assert d.object_area[0] * 0.95 <= area <= d.object_area[1] * grow * 1.05, (i, o.category, area)
            assert 0 <= o.box[0] < o.box[2] <= 1 and 0 <= o.box[1] < o.box[3] <= 1
    if difficulty != "hard":  # SSL (median-threshold cIoU) can reach 0.5 only for >= 25 % of the frame
        for i in range(40):
            assert all(_area(b) >= 0.95 * 0.25 for b in _clip(i, difficulty).record.ssl_boxes)


def _area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


# ----------------------------------------------------------------------------------------------------------------
# Audio agrees with segments, loudness, SNR


def test_silent_objects_have_no_segments_and_sources_start_apart():
    for i in range(30):
        rec = _clip(i, "hard").record
        for o in rec.objects:
            assert (o.segments == []) == (not o.sounding) and (o.loudness_db is None) == (not o.sounding)
        segs = [o.segments for o in rec.objects if o.sounding] + [x.segments for x in rec.sounds]
        onsets = sorted(s[0][0] for s in segs)
        assert all(b - a >= 0.5 for a, b in zip(onsets, onsets[1:]))
        for segs in [o.segments for o in rec.objects] + [x.segments for x in rec.sounds]:
            for a, b in segs:
                assert 0 <= a < b <= rec.duration


@pytest.mark.parametrize("difficulty", ["easy", "standard", "hard"])
def test_class_band_energy_is_inside_the_segments(difficulty):
    ratio = 1.5 if difficulty == "hard" else 3.0  # hard: SNR down to 0 dB of bass-heavy (pink) noise
    checked = sum(_check_band_energy(_clip(i, difficulty).record, _clip(i, difficulty).audio, min_ratio=ratio)
                  for i in range(12))  # fmt: skip
    assert checked >= 8


def test_loudness_and_snr_match_the_audio():
    n = 0
    for i in range(40):
        clip = _clip(i, "easy")
        rec = clip.record
        srcs = [o for o in rec.objects if o.sounding]
        if len(srcs) != 1 or rec.sounds:
            continue
        t = np.arange(len(clip.audio)) / SR
        on = _inside(t, srcs[0].segments, 0.0)
        quiet = ~_overlaps(t, srcs[0].segments, 0.0)
        p_noise = np.mean(clip.audio[quiet] ** 2)
        p_on = np.mean(clip.audio[on] ** 2)
        assert abs(10 * math.log10(max(p_on - p_noise, 1e-12)) - srcs[0].loudness_db) < 0.5
        p_sig = (p_on - p_noise) * on.mean()  # source power averaged over the whole clip
        assert abs(10 * math.log10(p_sig / p_noise) - rec.meta["snr_db"]) < 1.5
        n += 1
    assert n >= 10


# ----------------------------------------------------------------------------------------------------------------
# Texts agree with the ground truth


def _heard(rec):
    seen = {o.category for o in rec.objects if o.sounding}
    return seen | {s.category for s in rec.sounds if s.category != "speech"}


def _sources(rec):
    return sorted([(o.segments, o.category, o.loudness_db, o) for o in rec.objects if o.sounding]
                  + [(s.segments, s.category, s.loudness_db, None) for s in rec.sounds if s.category != "speech"],
                  key=lambda x: x[0][0][0])  # fmt: skip


def _claim_label(rec, m) -> bool:
    k, c = m["kind"], m.get("category")
    objs = {o.category: o for o in rec.objects}
    segs = {cat: sg for sg, cat, _, _ in _sources(rec)}
    if k == "heard":
        return c in _heard(rec)
    if k == "visible":
        return c in objs
    if k == "sounding":
        return objs[c].sounding == m["sounding"]
    if k == "position":
        return side_of(objs[c].box, m["side"])
    if k == "time":
        return any(a <= m["time"] <= b for a, b in segs[c])
    if k == "order":
        return segs[c][0][0] < segs[m["other"]][0][0]
    raise AssertionError(k)


def test_factcheck_labels_agree_with_ground_truth_and_are_balanced():
    labels = []
    for diff in ("standard", "hard"):
        for i in range(50):
            rec = _clip(i, diff).record
            fc = rec.texts_for("factcheck")
            assert sorted(t.meta["label"] for t in fc) == [False, True]
            for t in fc:
                assert t.answer == ("true" if t.meta["label"] else "false") and t.meta["claim"] in t.prompt
                assert _claim_label(rec, t.meta) == t.meta["label"], (rec.id, t.meta)
                labels.append(t.meta["label"])
    assert sum(labels) * 2 == len(labels)


@given(st.integers(0, 10_000), st.sampled_from(["easy", "standard", "hard"]))
@settings(max_examples=40, deadline=None)
def test_factcheck_evidence_is_the_truth_and_decides_the_verdict(seed, diff):
    rec = _clip(seed % 500, diff).record
    plain = make_texts(rec, np.random.default_rng(seed))
    told = make_texts(rec, np.random.default_rng(seed), evidence=True)
    # the same draws: every prompt and label is the same, only position / time / order answers grow evidence
    assert [(t.task, t.prompt, t.meta) for t in plain] == [(t.task, t.prompt, t.meta) for t in told]
    assert [t.answer for t in plain if t.task != "factcheck"] == [t.answer for t in told if t.task != "factcheck"]
    for t in told:
        if t.task == "factcheck":
            assert truth_of(t.answer) == t.meta["label"], t.answer
            assert _evidence_decides(rec, t), (rec.id, t.answer, t.meta)


def _evidence_decides(rec, t) -> bool:
    """The evidence before a fact-check verdict is the clip's truth, and the verdict follows from it alone."""
    m, verdict = t.meta, "true" if t.meta["label"] else "false"
    k, c = m["kind"], m["category"]
    if k in ("heard", "visible", "sounding"):
        return t.answer == verdict
    if not t.answer.endswith(f", so {verdict}."):
        return False
    objs = {o.category: o for o in rec.objects}
    segs = {cat: sg for sg, cat, _, _ in _sources(rec)}
    said = parse_segments(t.answer)
    if k == "position":
        side = re.fullmatch(rf"The {c} is on the (left|right|top|bottom) side, so {verdict}\.", t.answer)
        return bool(side) and side_of(objs[c].box, side.group(1)) and (side.group(1) == m["side"]) == m["label"]
    if k == "time":
        return np.allclose(said, segs[c]) and any(a <= m["time"] <= b for a, b in said) == m["label"]
    if k == "order":
        first, other = segs[c][0], segs[m["other"]][0]
        return np.allclose(said, [first, other]) and (said[0][0] < said[1][0]) == m["label"]
    raise AssertionError(k)


def test_avqa_answers_agree_with_the_scene():
    kinds, yes = set(), []
    for diff in ("standard", "hard"):
        for i in range(60):
            rec = _clip(i, diff).record
            srcs = _sources(rec)
            for t in rec.texts_for("avqa"):
                m, a = t.meta, t.answer
                assert a in ANSWERS
                kinds.add(m["kind"])
                q = m["q"]
                if m["kind"] == "counting":
                    want = {"visible": len(rec.objects), "visible_sounding": sum(o.sounding for o in rec.objects),
                            "sources": len(srcs), "silent": sum(not o.sounding for o in rec.objects)}[q]
                    assert a == str(want)
                elif m["kind"] == "existential":
                    if q == "offscreen":
                        want = any(s.category != "speech" for s in rec.sounds)
                    elif q == "heard":
                        want = m["category"] in _heard(rec)
                    else:
                        want = m["category"] in {o.category for o in rec.objects}
                    assert a == ("yes" if want else "no")
                    yes.append(want)
                elif m["kind"] == "location":
                    if q == "category":
                        obj = next(o for o in rec.objects if o.category == m["category"])
                    else:  # the (first) sounding visible object
                        obj = next(o for _, _, _, o in srcs if o is not None)
                    assert a == position_word(obj.box)
                elif m["kind"] == "temporal" and q in ("which", "any"):
                    cands = m.get("categories") or [c for _, c, _, _ in srcs]
                    assert a == next(c for _, c, _, _ in srcs if c in cands)
                elif m["kind"] == "comparative" and q == "louder":
                    loud = {c: db for _, c, db, _ in srcs}
                    x, y = m["categories"]
                    assert a == ("yes" if loud[x] > loud[y] else "no") and abs(loud[x] - loud[y]) >= 3
    assert kinds == {"existential", "counting", "location", "temporal", "comparative"}
    assert 0.3 < np.mean(yes) < 0.7


def test_grounding_temporal_and_caption_texts():
    for i in range(20):
        rec = _clip(i, "standard").record
        sounding = [o for o in rec.objects if o.sounding]
        g = rec.texts_for("ground")
        assert g and parse_boxes(g[0].answer) == [[round(v, 2) for v in o.box] for o in sorted(
            sounding, key=lambda o: o.segments[0][0])]  # fmt: skip
        temporal = rec.texts_for("temporal")
        assert len(temporal) == len(sounding)
        for t in temporal:
            obj = next(o for o in rec.objects if o.category == t.meta["category"])
            assert parse_segments(t.answer) == obj.segments  # segments lie on a 0.25 s grid: exact in text
        (cap,) = rec.texts_for("caption")
        for o in rec.objects:
            assert o.category in cap.answer
            assert (get_class(o.category).sound.verb in cap.answer) or not o.sounding
        # every fact phrase (or one of its alternatives) is stated, as whole words
        for fact in cap.meta["fact_phrases"]:
            alts = [fact] if isinstance(fact, str) else fact
            assert any(re.search(rf"(?<!\w){re.escape(a)}(?!\w)", cap.answer) for a in alts), (fact, cap.answer)


# ----------------------------------------------------------------------------------------------------------------
# Speech, in-memory world, CLI + decoded mp4


def test_speech_needs_espeak(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SpeechUnavailable, match="espeak-ng"):
        generate(0, speech=True, frames="key")
    with pytest.raises(SpeechUnavailable, match="espeak-ng"):
        SynthWorld(speech=True)
    from avllm.synth.__main__ import main

    assert main(["--out", str(tmp_path / "s"), "--num", "1", "--speech", "--quiet"]) == 2
    assert not (tmp_path / "s").exists()  # nothing written


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_speech_phrase_names_an_object_and_sits_in_its_segment():
    clip = generate(2, speech=True, frames="key")
    rec = clip.record
    (sp,) = [s for s in rec.sounds if s.category == "speech"]
    named = [o for o in rec.objects if o.category in sp.text.split()]
    assert named and sp.loudness_db is not None
    t, p = _band_power(clip.audio, (300.0, 3400.0))
    on = _inside(t, sp.segments, 0.03)
    quiet = ~_overlaps(t, _all_segments(rec), 0.03)
    assert p[on].mean() > 3 * p[quiet].mean()
    sp_texts = rec.texts_for("speech")
    assert sp_texts and parse_boxes(sp_texts[0].answer) == [[round(v, 2) for v in named[0].box]]


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_speech_share_picks_clips_and_leaves_the_others_as_without_speech():
    from avllm.synth.world import speech_drawn

    drawn = [speech_drawn("train", 0, i, 0.5) for i in range(400)]
    assert 160 < sum(drawn) < 240  # about half
    assert all(speech_drawn("train", 0, i, 1.0) for i in range(20))
    assert not any(speech_drawn("train", 0, i, 0.0) for i in range(20))
    w = SynthWorld("train", speech=True, speech_share=0.5, frames="key", image_size=32)
    plain = SynthWorld("train", frames="key", image_size=32)
    for i in range(6):
        has = any(s.category == "speech" for s in w[i].record.sounds)
        assert has == drawn[i]
        if not has:  # a clip without a phrase is the clip of the world without speech
            assert w[i].record == plain[i].record and np.array_equal(w[i].audio, plain[i].audio)
    with pytest.raises(ValueError, match="speech_share"):
        SynthWorld(speech=True, speech_share=1.5)


def test_synthworld_in_memory():
    w = SynthWorld("test", seed=2, difficulty="easy", num_frames=2, length=3)
    assert len(w) == 3
    clips = list(w)
    assert len(clips) == 3 and clips[1].frames.shape == (2, 224, 224, 3)
    again = generate(1, split="test", seed=2, difficulty="easy", frames="key")
    assert clips[1].record.to_json() == again.record.to_json()
    with pytest.raises(IndexError):
        w[3]
    with pytest.raises(ValueError):
        SynthWorld("nope")


def test_cli_writes_manifest_masks_and_playable_mp4(tmp_path):
    from PIL import Image

    from avllm.media import load_clip
    from avllm.synth.__main__ import main

    out = tmp_path / "synth"
    assert main(["--out", str(out), "--split", "test", "--num", "2", "--seed", "1", "--image-size", "128",
                 "--quiet"]) == 0  # fmt: skip
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        rec = Record.from_json(line)
        assert rec.source == "synth" and rec.split == "test" and rec.width == 128
        for k, o in enumerate(rec.objects):
            assert o.mask == f"masks/{rec.id}_{k}.png"
            m = np.asarray(Image.open(out / o.mask)) > 0
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            tight = [cols[0] / 128, rows[0] / 128, (cols[-1] + 1) / 128, (rows[-1] + 1) / 128]
            assert np.allclose(o.box, tight, atol=1e-4)
        assert os.path.isfile(out / rec.ssl_mask)
        clip = load_clip(out / rec.video, fps=8.0)
        assert clip.frames.shape[1:] == (128, 128, 3) and abs(len(clip.frames) - 32) <= 1
        assert abs(clip.duration - 4.0) < 0.15
        # the decoded (AAC) audio still has each source's band energy inside its segments
        assert _check_band_energy(rec, clip.audio, clip.sample_rate, min_ratio=2.0) >= 1
