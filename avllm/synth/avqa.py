"""AVQA questions of the MUSIC-AVQA kinds (existential, counting, location, temporal order, comparative), with
answers from the one fixed answer set ``ANSWERS``. Yes/no answers are balanced by construction."""

from __future__ import annotations

import numpy as np

from avllm.record import Record, TextSample
from avllm.synth.classes import CLASS_NAMES
from avllm.synth.facts import POSITIONS, Source, a_, box_area, pick, position_word

__all__ = ["ANSWERS", "make_avqa"]

ANSWERS: tuple[str, ...] = ("yes", "no", "0", "1", "2", "3", "4", "5", *POSITIONS, "first", "second", *CLASS_NAMES)

_MIN_DB_GAP = 3.0  # "louder" is asked only when levels differ by at least this (dB)
_MIN_LEN_GAP = 0.5  # "longer" only when durations differ by at least this (s)
_MIN_AREA_RATIO = 1.3  # "bigger" only when box areas differ by at least this factor


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _q_existential(rec: Record, srcs: list[Source], rng: np.random.Generator):
    heard = [s.category for s in srcs]
    visible = [o.category for o in rec.objects]
    q = pick(rng, ("heard", "heard", "visible", "offscreen"))
    want = bool(rng.random() < 0.5)
    if q == "offscreen":
        has = any(s.obj is None for s in srcs)
        p = pick(rng, ("Is there a sound whose source you cannot see?", "Is anything heard that is not in the "
                        "picture?", "Does any sound come from outside the frame?"))  # fmt: skip
        return p, _yn(has), {"q": q}
    pool_in = heard if q == "heard" else visible
    pool = pool_in if want else [c for c in CLASS_NAMES if c not in pool_in]
    c = pick(rng, pool)
    if q == "heard":
        p = pick(rng, (f"Is there {a_(c)} making sound?", f"Can you hear {a_(c)}?",
                        f"Is {a_(c)} sounding in this clip?"))  # fmt: skip
    else:
        p = pick(rng, (f"Is there {a_(c)} in the picture?", f"Can you see {a_(c)}?"))
    return p, _yn(c in pool_in), {"q": q, "category": c}


def _q_counting(rec: Record, srcs: list[Source], rng: np.random.Generator):
    q = pick(rng, ("visible", "visible_sounding", "sources", "silent"))
    if q == "visible":
        p, n = pick(rng, ("How many objects can you see?", "How many objects are in the picture?")), len(rec.objects)
    elif q == "visible_sounding":
        p = pick(rng, ("How many objects in the picture make a sound?", "How many of the visible objects are "
                        "sounding?"))  # fmt: skip
        n = sum(o.sounding for o in rec.objects)
    elif q == "sources":
        p = pick(rng, ("How many different sounds can you hear?", "How many sound sources are there, seen or "
                        "unseen?"))  # fmt: skip
        n = len(srcs)
    else:
        p, n = pick(rng, ("How many visible objects stay silent?", "How many objects in the picture make no "
                           "sound?")), sum(not o.sounding for o in rec.objects)  # fmt: skip
    return p, str(min(n, 5)), {"q": q}


def _q_location(rec: Record, srcs: list[Source], rng: np.random.Generator):
    vis_snd = [s.obj for s in srcs if s.obj is not None]
    opts = ["category"] + (["sounding"] if len(vis_snd) == 1 else []) + (["first"] if len(vis_snd) >= 2 else [])
    q = pick(rng, opts)
    if q == "sounding":
        p = pick(rng, ("Where is the sounding object?",
                        "In which part of the image is the object making the sound?"))  # fmt: skip
        return p, position_word(vis_snd[0].box), {"q": q}
    if q == "first":
        p = pick(rng, ("Where is the visible object that sounds first?", "Where is the object you hear first?"))
        return p, position_word(vis_snd[0].box), {"q": q}
    o = pick(rng, rec.objects)
    p = pick(rng, (f"Where is the {o.category}?", f"In which part of the frame is the {o.category}?"))
    return p, position_word(o.box), {"q": q, "category": o.category}


def _q_temporal(rec: Record, srcs: list[Source], rng: np.random.Generator):
    if len(srcs) < 2:
        return None
    i, j = sorted(int(v) for v in rng.choice(len(srcs), 2, replace=False))
    first, second = srcs[i], srcs[j]
    opts = ["which", "before", "any"] + (["rank"] if len(srcs) == 2 else [])
    q = pick(rng, opts)
    if q == "which":
        a, b = (first, second) if rng.random() < 0.5 else (second, first)
        p = pick(rng, (f"Which sounds first, the {a.category} or the {b.category}?",
                        f"What do you hear first: the {a.category} or the {b.category}?"))  # fmt: skip
        return p, first.category, {"q": q, "categories": [a.category, b.category]}
    if q == "before":
        want = bool(rng.random() < 0.5)
        a, b = (first, second) if want else (second, first)
        p = pick(rng, (f"Does the {a.category} start sounding before the {b.category}?",
                        f"Is the {a.category} heard before the {b.category}?"))  # fmt: skip
        return p, _yn(want), {"q": q, "categories": [a.category, b.category]}
    if q == "rank":
        s = pick(rng, srcs)
        p = pick(rng, (f"Is the {s.category} the first or the second to sound?",
                        f"Does the {s.category} sound first or second?"))  # fmt: skip
        return p, "first" if s is srcs[0] else "second", {"q": q, "category": s.category}
    p = pick(rng, ("Which sound starts first?", "What is the first thing you hear?"))
    return p, srcs[0].category, {"q": q}


def _q_comparative(rec: Record, srcs: list[Source], rng: np.random.Generator):
    pairs = [(a, b) for a in srcs for b in srcs if a is not b]
    opts = []
    loud = [(a, b) for a, b in pairs if a.loudness is not None and b.loudness is not None
            and abs(a.loudness - b.loudness) >= _MIN_DB_GAP]  # fmt: skip
    long_ = [(a, b) for a, b in pairs if abs(a.length - b.length) >= _MIN_LEN_GAP]
    areas = {id(o): box_area(o.box) for o in rec.objects}
    objs = [(a, b) for a in rec.objects for b in rec.objects
            if a is not b and max(areas[id(a)], areas[id(b)]) >= _MIN_AREA_RATIO * min(areas[id(a)], areas[id(b)])]
    opts += ["louder", "louder_which"] if loud else []
    opts += ["longer"] if long_ else []
    opts += ["bigger", "bigger_which"] if objs else []
    if not opts:
        return None
    q = pick(rng, opts)
    if q in ("louder", "louder_which"):
        a, b = pick(rng, loud)
        yes = a.loudness > b.loudness
        if q == "louder":
            p = pick(rng, (f"Is the {a.category} louder than the {b.category}?",
                            f"Does the {a.category} sound louder than the {b.category}?"))  # fmt: skip
            return p, _yn(yes), {"q": q, "categories": [a.category, b.category]}
        p = f"Which is louder, the {a.category} or the {b.category}?"
        return p, a.category if yes else b.category, {"q": q, "categories": [a.category, b.category]}
    if q == "longer":
        a, b = pick(rng, long_)
        p = pick(rng, (f"Does the {a.category} sound for longer than the {b.category}?",
                        f"Is the {a.category} heard longer than the {b.category}?"))  # fmt: skip
        return p, _yn(a.length > b.length), {"q": q, "categories": [a.category, b.category]}
    a, b = pick(rng, objs)
    yes = box_area(a.box) > box_area(b.box)
    if q == "bigger":
        p = pick(rng, (f"Is the {a.category} bigger than the {b.category}?",
                        f"Does the {a.category} look larger than the {b.category}?"))  # fmt: skip
        return p, _yn(yes), {"q": q, "categories": [a.category, b.category]}
    p = f"Which looks bigger, the {a.category} or the {b.category}?"
    return p, a.category if yes else b.category, {"q": q, "categories": [a.category, b.category]}


_AVQA = {
    "existential": _q_existential,
    "counting": _q_counting,
    "location": _q_location,
    "temporal": _q_temporal,
    "comparative": _q_comparative,
}


def make_avqa(rec: Record, srcs: list[Source], rng: np.random.Generator, per_clip: int = 3) -> list[TextSample]:
    out = []
    rare, common = ["temporal", "comparative"], ["existential", "counting", "location"]  # rare: need 2 sources
    kinds = [rare[i] for i in rng.permutation(2)] + [common[i] for i in rng.permutation(3)]
    for kind in kinds:
        got = _AVQA[kind](rec, srcs, rng)
        if got is None:
            continue
        prompt, answer, meta = got
        assert answer in ANSWERS, answer
        out.append(TextSample("avqa", prompt, answer, {"kind": kind, **meta}))
        if len(out) == per_clip:
            break
    return out


