"""DenseAV's heads as sound and speech segmenters (avllm.evaluate.dense_head_metrics, speech_target): which head is
the speech head comes from timing alone, each head is scored on both targets, and `seg.specialised` says whether
each segments its own target better than the other."""

from __future__ import annotations

import numpy as np
import pytest

from avllm.evaluate import dense_head_metrics, speech_target
from avllm.record import ObjectAnn, Record, SoundAnn

G = 8


def _square(x0: int, y0: int, side: int = 3) -> np.ndarray:
    m = np.zeros((G, G))
    m[y0 : y0 + side, x0 : x0 + side] = 1.0
    return m


def _mask(m: np.ndarray) -> np.ndarray:
    # the ground truth at the evaluation size (224), nearest-neighbour from the 8 x 8 grid
    return np.kron(m, np.ones((28, 28))) > 0


def _clips(n: int, seed: int = 0):
    """n clips: a sounding object at one place and a named object at another, each head given a map."""
    rng = np.random.default_rng(seed)
    sound_maps, sound_gts, speech_maps, speech_gts = [], [], [], []
    for _ in range(n):
        snd, spk = _square(0, int(rng.integers(0, 5))), _square(5, int(rng.integers(0, 5)))
        noise = rng.uniform(0, 0.05, (2, G, G))
        # head 0 lights the sounding object in both windows, head 1 the named object
        sound_maps.append(np.stack([snd, spk]) + noise)
        speech_maps.append(np.stack([snd, spk]) + noise[::-1])
        sound_gts.append(_mask(snd))
        speech_gts.append(_mask(spk))
    return sound_maps, sound_gts, speech_maps, speech_gts


def test_the_speech_head_is_read_from_timing_and_each_head_is_scored_on_both_targets():
    sm, sg, pm, pg = _clips(6)
    cls = ["bell"] * 6
    up = [np.array([0.1, 0.6])] * 6  # head 1 rises while the phrase is spoken
    m = dense_head_metrics(sm, sg, cls, pm, pg, cls, up)
    assert m["seg.speech_head"] == 1 and m["seg.speech.contrast.head1"] == pytest.approx(0.6)
    assert m["seg.sound.miou"] == m["seg.sound.head0.miou"] and m["seg.speech.miou"] == m["seg.speech.head1.miou"]
    assert m["seg.sound.head0.miou"] > 0.8 and m["seg.speech.head1.miou"] > 0.8  # own target (edges blur)
    assert m["seg.sound.head1.miou"] < 0.1 and m["seg.speech.head0.miou"] < 0.1  # the other's target: disjoint
    assert m["seg.specialised"] == 1.0
    assert "n.speech.silent" not in m
    # two named objects that make no sound: scored again on their own
    cls_silent = ["bell|silent", "bell|silent"] + cls[2:]
    m3 = dense_head_metrics(sm, sg, cls, pm, pg, cls_silent, up)
    assert m3["n.speech.silent"] == 2
    assert m3["seg.speech.silent.head1.miou"] > 0.8 and m3["seg.speech.silent.head0.miou"] < 0.1
    assert m3["seg.speech.ap"] == m["seg.speech.ap"]  # the suffix is not a class of its own (AP is per class)

    # the same maps, but timing names head 0 the speech head: the assignment follows, and the heads now segment
    # the other head's target, so they are not specialised the way the timing says
    m2 = dense_head_metrics(sm, sg, cls, pm, pg, cls, [np.array([0.6, 0.1])] * 6)
    assert m2["seg.speech_head"] == 0 and m2["seg.sound.miou"] == m2["seg.sound.head1.miou"]
    assert m2["seg.speech.miou"] == m2["seg.speech.head0.miou"] < 0.1
    assert m2["seg.specialised"] == 0.0


def test_without_speech_clips_head_zero_is_the_sound_head():
    sm, sg, _, _ = _clips(4)
    m = dense_head_metrics(sm, sg, ["bell"] * 4, [], [], [], [])
    assert m["seg.sound.miou"] == m["seg.sound.head0.miou"]
    assert not any(k.startswith("seg.speech") for k in m) and "seg.specialised" not in m
    assert dense_head_metrics([], [], [], [], [], [], []) == {}


def _rec(sounds, objects):
    return Record(id="c", source="synth", duration=4.0, width=224, height=224, objects=objects, sounds=sounds)


def test_speech_target_is_the_named_visible_object():
    bell = ObjectAnn(category="bell", box=[0.1, 0.1, 0.4, 0.4], sounding=True)
    drum = ObjectAnn(category="drum", box=[0.5, 0.5, 0.9, 0.9], sounding=False)
    got = speech_target(_rec([SoundAnn("speech", segments=[[1.0, 1.8]], text="show me the drum")], [bell, drum]))
    assert got == ([1.0, 1.8], drum)
    # no phrase, a phrase naming nothing visible, a phrase without a segment: not scored
    assert speech_target(_rec([SoundAnn("bird", segments=[[0.0, 1.0]])], [bell])) is None
    assert speech_target(_rec([SoundAnn("speech", segments=[[1.0, 1.8]], text="where is the clock")], [bell])) is None
    assert speech_target(_rec([SoundAnn("speech", segments=[], text="where is the bell")], [bell])) is None


@pytest.mark.slow
def test_evaluation_of_a_speech_split_reports_both_heads(tmp_path):
    from pathlib import Path

    from avllm.checkpoint import load
    from avllm.data import read_manifest
    from avllm.evaluate import evaluate
    from avllm.synth.speech import espeak_available
    from avllm.synth.writer import write_dataset

    asset = Path(__file__).resolve().parents[1] / "assets" / "avllm-tiny"
    if not espeak_available() or not (asset / "model.safetensors").is_file():
        pytest.skip("needs espeak-ng and the shipped checkpoint")
    write_dataset(tmp_path, split="test", num=3, seed=5, speech=True, progress=False)
    recs = read_manifest(tmp_path / "manifest.jsonl")
    assert all(speech_target(r) is not None for r in recs)
    m = evaluate(load(asset), recs, tmp_path, batch_size=4, candidates=3, baselines=False, progress=False)
    heads = {int(m["seg.speech_head"])}
    assert heads <= {0, 1}
    sound_head = 1 - heads.pop()
    for target in ("sound", "speech"):
        for k in (0, 1):
            assert 0.0 <= m[f"seg.{target}.head{k}.miou"] <= 1.0
    assert m["seg.sound.miou"] == m[f"seg.sound.head{sound_head}.miou"]
    assert m["seg.speech.miou"] == m[f"seg.speech.head{1 - sound_head}.miou"]
    assert m["seg.specialised"] in (0.0, 1.0)
    # the speech prompts are asked too: the named object's box, and the phrase word for word
    assert 0.0 <= m["speech.ground.acc50"] <= 1.0 and 0.0 <= m["speech.words.acc"] <= 1.0
