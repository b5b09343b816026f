"""Text data for every task, written from a clip's ground truth (a ``Record``) alone.

Each task has several phrasings; yes/no and true/false answers are balanced by construction (the wanted answer
is drawn first, then a question that has it), so the text alone cannot answer. Boxes and segments in answers are
written by ``avllm.textformat``. Every TextSample's ``meta`` holds what is needed to recompute its answer from the
record (the tests do so).

AVQA answers come from the one fixed answer set ``ANSWERS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avllm.record import ObjectAnn, Record, TextSample
from avllm.synth.classes import CLASS_NAMES, get_class
from avllm.textformat import format_box, format_boxes, format_segments

__all__ = ["ANSWERS", "POSITIONS", "position_word", "side_of", "make_texts"]

POSITIONS: tuple[str, ...] = (
    "left", "right", "top", "bottom", "center", "top-left", "top-right", "bottom-left", "bottom-right",
)  # fmt: skip
ANSWERS: tuple[str, ...] = ("yes", "no", "0", "1", "2", "3", "4", "5", *POSITIONS, "first", "second", *CLASS_NAMES)

_MIN_DB_GAP = 3.0  # "louder" is asked only when levels differ by at least this (dB)
_MIN_LEN_GAP = 0.5  # "longer" only when durations differ by at least this (s)
_MIN_AREA_RATIO = 1.3  # "bigger" only when box areas differ by at least this factor
_SIDE_MARGIN = 0.08  # "on the left side" claims only when the centre is this far from the midline


def position_word(box: list[float]) -> str:
    """One of the nine POSITIONS from the box centre: thirds of the frame (x: left/-/right, y: top/-/bottom)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    return f"{row}-{col}" if row and col else row or col or "center"


def side_of(box: list[float], side: str) -> bool:
    """True when the box centre lies in the ``side`` half (left / right / top / bottom) of the frame."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return {"left": cx < 0.5, "right": cx > 0.5, "top": cy < 0.5, "bottom": cy > 0.5}[side]


@dataclass
class _Src:
    """A heard source (visible sounding object or off-screen sound); speech excluded."""

    category: str
    segments: list[list[float]]
    loudness: float | None
    obj: ObjectAnn | None

    @property
    def onset(self) -> float:
        return self.segments[0][0]

    @property
    def length(self) -> float:
        return sum(e - s for s, e in self.segments)


def _sources(rec: Record) -> list[_Src]:
    srcs = [_Src(o.category, o.segments, o.loudness_db, o) for o in rec.objects if o.sounding and o.segments]
    srcs += [_Src(s.category, s.segments, s.loudness_db, None) for s in rec.sounds if s.category != "speech"]
    return sorted(srcs, key=lambda s: s.onset)


def _area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _pick(rng: np.random.Generator, items: list | tuple):
    return items[int(rng.integers(len(items)))]


def _a(word: str) -> str:
    """``word`` with its indefinite article: "a bell", "an engine"."""
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _A(word: str) -> str:
    return _a(word).capitalize()


def _secs(segs: list[list[float]]) -> str:
    parts = [f"from {s:.2f} to {e:.2f} seconds" for s, e in segs]
    return " and again ".join(parts)


def _where(word: str) -> str:
    return {"center": "in the center", "left": "on the left", "right": "on the right", "top": "at the top",
            "bottom": "at the bottom"}.get(word, "at the " + word.replace("-", " "))  # fmt: skip


def make_texts(rec: Record, rng: np.random.Generator) -> list[TextSample]:
    """All TextSamples of one clip: grounding, temporal, fact-checking (one true + one false claim), AVQA (up to
    three kinds), a caption, and speech prompts when the clip has a spoken phrase."""
    srcs = _sources(rec)
    out = _grounding(rec, srcs, rng) + _temporal(rec, rng) + _factcheck(rec, srcs, rng) + _avqa(rec, srcs, rng)
    out.append(_caption(rec, rng))
    out += _speech(rec, rng)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Grounding and temporal localization


def _grounding(rec: Record, srcs: list[_Src], rng: np.random.Generator) -> list[TextSample]:
    vis = [s.obj for s in srcs if s.obj is not None]
    if not vis:
        return []
    boxes = [o.box for o in vis]
    if len(vis) == 1:
        prompt = _pick(rng, ("Where is the object making the sound?", "Which part of the image is making the sound?",
                             "Locate the source of the sound.", "Where does the sound come from in the image?",
                             "Find the thing you can hear in the picture."))  # fmt: skip
    else:
        prompt = _pick(rng, ("Where are the objects making sounds?", "Locate every visible source of sound.",
                             "Which parts of the image make the sounds you hear?"))  # fmt: skip
    meta = {"boxes": boxes, "categories": [o.category for o in vis]}
    out = [TextSample("ground", prompt, format_boxes(boxes), meta)]
    verbs = [get_class(s.category).sound.verb for s in srcs]
    unique = [o for o in vis if verbs.count(get_class(o.category).sound.verb) == 1]
    if unique:  # referred to by its sound only
        o = _pick(rng, unique)
        verb = get_class(o.category).sound.verb
        prompt = _pick(rng, (f"Where is the thing that {verb}?", f"Point to what {verb} in the image.",
                             f"Something {verb}. Where is it?"))  # fmt: skip
        out.append(TextSample("ground", prompt, format_box(o.box), {"boxes": [o.box], "categories": [o.category]}))
    return out


def _look(o: ObjectAnn) -> str:
    return f"{o.attrs.get('colour', '')} {o.attrs.get('shape', '')}".strip()


def _temporal(rec: Record, rng: np.random.Generator) -> list[TextSample]:
    out = []
    sounding = [o for o in rec.objects if o.sounding]
    looks = [_look(o) for o in rec.objects]
    for o in sounding:
        ref = f"the {o.category}"
        if looks.count(_look(o)) == 1 and rng.random() < 0.4:
            ref = f"the {_look(o)}"
        choices = [f"When does {ref} in the image make sound?", f"During which seconds can you hear {ref}?",
                   f"At what times is {ref} in the picture audible?", f"When is {ref} sounding?"]  # fmt: skip
        if len(sounding) == 1:
            choices.append("When does the object in the image make sound?")
        meta = {"segments": o.segments, "category": o.category}
        out.append(TextSample("temporal", _pick(rng, choices), format_segments(o.segments), meta))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Fact-checking


def _claim(kind: str, want: bool, rec: Record, srcs: list[_Src], rng: np.random.Generator):
    """(claim text, meta) about ``kind`` whose truth is ``want``, or None when the clip cannot give one."""
    heard = [s.category for s in srcs]
    visible = [o.category for o in rec.objects]
    if kind == "heard":
        pool = heard if want else [c for c in CLASS_NAMES if c not in heard]
        if not want and rng.random() < 0.5:
            pool = [c for c in visible if c not in heard] or pool
        c = _pick(rng, pool)
        t = _pick(rng, (f"You can hear {_a(c)}.", f"{_A(c)} makes a sound in this clip.",
                        f"The audio has {_a(c)} in it."))  # fmt: skip
        return t, {"category": c}
    if kind == "visible":
        pool = visible if want else [c for c in CLASS_NAMES if c not in visible]
        if not want and rng.random() < 0.5:
            pool = [c for c in heard if c not in visible] or pool
        c = _pick(rng, pool)
        t = _pick(rng, (f"There is {_a(c)} in the picture.", f"{_A(c)} can be seen in the video.",
                        f"The image shows {_a(c)}."))  # fmt: skip
        return t, {"category": c}
    if kind == "sounding":
        o = _pick(rng, rec.objects)
        says = o.sounding if want else not o.sounding
        if says:
            t = _pick(rng, (f"The {o.category} in the image is making a sound.", f"The {o.category} you can see "
                            "makes a sound."))  # fmt: skip
        else:
            t = _pick(rng, (f"The {o.category} in the image is silent.", f"The {o.category} you can see never "
                            "makes a sound."))  # fmt: skip
        return t, {"category": o.category, "sounding": says}
    if kind == "position":
        cands = []
        for o in rec.objects:
            cx, cy = (o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2
            if abs(cx - 0.5) >= _SIDE_MARGIN:
                cands.append((o, ("left", "right") if cx < 0.5 else ("right", "left")))
            if abs(cy - 0.5) >= _SIDE_MARGIN:
                cands.append((o, ("top", "bottom") if cy < 0.5 else ("bottom", "top")))
        if not cands:
            return None
        o, (true_side, false_side) = _pick(rng, cands)
        side = true_side if want else false_side
        t = _pick(rng, (f"The {o.category} is on the {side} side of the frame.",
                        f"The {o.category} appears in the {side} half of the image."))  # fmt: skip
        return t, {"category": o.category, "side": side}
    if kind == "time":
        s = _pick(rng, srcs)
        grid = np.arange(0.25, rec.duration - 0.125, 0.25)
        inside = [any(a + 0.125 <= t <= b - 0.125 for a, b in s.segments) for t in grid]
        outside = [all(t <= a - 0.25 or t >= b + 0.25 for a, b in s.segments) for t in grid]
        pool = [float(t) for t, ok in zip(grid, inside if want else outside) if ok]
        if not pool:
            return None
        tm = _pick(rng, pool)
        c = s.category
        t = _pick(rng, (f"The {c} is making sound at {tm:.2f} seconds.", f"At {tm:.2f} seconds the {c} can be heard.",
                        f"You can hear the {c} {tm:.2f} seconds into the clip."))  # fmt: skip
        return t, {"category": c, "time": tm}
    if kind == "order":
        if len(srcs) < 2:
            return None
        i, j = sorted(int(v) for v in rng.choice(len(srcs), 2, replace=False))  # srcs sorted by onset: i first
        a, b = (srcs[i], srcs[j]) if want else (srcs[j], srcs[i])
        t = _pick(rng, (f"The {a.category} starts sounding before the {b.category}.",
                        f"The {a.category} is heard before the {b.category}."))  # fmt: skip
        return t, {"category": a.category, "other": b.category}
    raise ValueError(kind)


_CLAIM_KINDS = ("heard", "visible", "sounding", "position", "time", "order")


def _factcheck(rec: Record, srcs: list[_Src], rng: np.random.Generator) -> list[TextSample]:
    out = []
    for want in [bool(v) for v in rng.permutation([True, False])]:
        for k in rng.permutation(len(_CLAIM_KINDS)):
            got = _claim(_CLAIM_KINDS[k], want, rec, srcs, rng)
            if got is not None:
                claim, meta = got
                prompt = _pick(rng, ("Is this claim true or false? {claim}", "True or false: {claim}",
                                     "Check this statement against the clip: {claim}",
                                     "Claim: {claim} Is it true or false?")).format(claim=claim)  # fmt: skip
                meta = {"label": want, "kind": _CLAIM_KINDS[k], "claim": claim, **meta}
                out.append(TextSample("factcheck", prompt, "true" if want else "false", meta))
                break
    return out


# ----------------------------------------------------------------------------------------------------------------
# AVQA (MUSIC-AVQA kinds)


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _q_existential(rec: Record, srcs: list[_Src], rng: np.random.Generator):
    heard = [s.category for s in srcs]
    visible = [o.category for o in rec.objects]
    q = _pick(rng, ("heard", "heard", "visible", "offscreen"))
    want = bool(rng.random() < 0.5)
    if q == "offscreen":
        has = any(s.obj is None for s in srcs)
        p = _pick(rng, ("Is there a sound whose source you cannot see?", "Is anything heard that is not in the "
                        "picture?", "Does any sound come from outside the frame?"))  # fmt: skip
        return p, _yn(has), {"q": q}
    pool_in = heard if q == "heard" else visible
    pool = pool_in if want else [c for c in CLASS_NAMES if c not in pool_in]
    c = _pick(rng, pool)
    if q == "heard":
        p = _pick(rng, (f"Is there {_a(c)} making sound?", f"Can you hear {_a(c)}?",
                        f"Is {_a(c)} sounding in this clip?"))  # fmt: skip
    else:
        p = _pick(rng, (f"Is there {_a(c)} in the picture?", f"Can you see {_a(c)}?"))
    return p, _yn(c in pool_in), {"q": q, "category": c}


def _q_counting(rec: Record, srcs: list[_Src], rng: np.random.Generator):
    q = _pick(rng, ("visible", "visible_sounding", "sources", "silent"))
    if q == "visible":
        p, n = _pick(rng, ("How many objects can you see?", "How many objects are in the picture?")), len(rec.objects)
    elif q == "visible_sounding":
        p = _pick(rng, ("How many objects in the picture make a sound?", "How many of the visible objects are "
                        "sounding?"))  # fmt: skip
        n = sum(o.sounding for o in rec.objects)
    elif q == "sources":
        p = _pick(rng, ("How many different sounds can you hear?", "How many sound sources are there, seen or "
                        "unseen?"))  # fmt: skip
        n = len(srcs)
    else:
        p, n = _pick(rng, ("How many visible objects stay silent?", "How many objects in the picture make no "
                           "sound?")), sum(not o.sounding for o in rec.objects)  # fmt: skip
    return p, str(min(n, 5)), {"q": q}


def _q_location(rec: Record, srcs: list[_Src], rng: np.random.Generator):
    vis_snd = [s.obj for s in srcs if s.obj is not None]
    opts = ["category"] + (["sounding"] if len(vis_snd) == 1 else []) + (["first"] if len(vis_snd) >= 2 else [])
    q = _pick(rng, opts)
    if q == "sounding":
        p = _pick(rng, ("Where is the sounding object?",
                        "In which part of the image is the object making the sound?"))  # fmt: skip
        return p, position_word(vis_snd[0].box), {"q": q}
    if q == "first":
        p = _pick(rng, ("Where is the visible object that sounds first?", "Where is the object you hear first?"))
        return p, position_word(vis_snd[0].box), {"q": q}
    o = _pick(rng, rec.objects)
    p = _pick(rng, (f"Where is the {o.category}?", f"In which part of the frame is the {o.category}?"))
    return p, position_word(o.box), {"q": q, "category": o.category}


def _q_temporal(rec: Record, srcs: list[_Src], rng: np.random.Generator):
    if len(srcs) < 2:
        return None
    i, j = sorted(int(v) for v in rng.choice(len(srcs), 2, replace=False))
    first, second = srcs[i], srcs[j]
    opts = ["which", "before", "any"] + (["rank"] if len(srcs) == 2 else [])
    q = _pick(rng, opts)
    if q == "which":
        a, b = (first, second) if rng.random() < 0.5 else (second, first)
        p = _pick(rng, (f"Which sounds first, the {a.category} or the {b.category}?",
                        f"What do you hear first: the {a.category} or the {b.category}?"))  # fmt: skip
        return p, first.category, {"q": q, "categories": [a.category, b.category]}
    if q == "before":
        want = bool(rng.random() < 0.5)
        a, b = (first, second) if want else (second, first)
        p = _pick(rng, (f"Does the {a.category} start sounding before the {b.category}?",
                        f"Is the {a.category} heard before the {b.category}?"))  # fmt: skip
        return p, _yn(want), {"q": q, "categories": [a.category, b.category]}
    if q == "rank":
        s = _pick(rng, srcs)
        p = _pick(rng, (f"Is the {s.category} the first or the second to sound?",
                        f"Does the {s.category} sound first or second?"))  # fmt: skip
        return p, "first" if s is srcs[0] else "second", {"q": q, "category": s.category}
    p = _pick(rng, ("Which sound starts first?", "What is the first thing you hear?"))
    return p, srcs[0].category, {"q": q}


def _q_comparative(rec: Record, srcs: list[_Src], rng: np.random.Generator):
    pairs = [(a, b) for a in srcs for b in srcs if a is not b]
    opts = []
    loud = [(a, b) for a, b in pairs if a.loudness is not None and b.loudness is not None
            and abs(a.loudness - b.loudness) >= _MIN_DB_GAP]  # fmt: skip
    long_ = [(a, b) for a, b in pairs if abs(a.length - b.length) >= _MIN_LEN_GAP]
    objs = [(a, b) for a in rec.objects for b in rec.objects
            if a is not b and max(_area(a.box), _area(b.box)) >= _MIN_AREA_RATIO * min(_area(a.box), _area(b.box))]
    opts += ["louder", "louder_which"] if loud else []
    opts += ["longer"] if long_ else []
    opts += ["bigger", "bigger_which"] if objs else []
    if not opts:
        return None
    q = _pick(rng, opts)
    if q in ("louder", "louder_which"):
        a, b = _pick(rng, loud)
        yes = a.loudness > b.loudness
        if q == "louder":
            p = _pick(rng, (f"Is the {a.category} louder than the {b.category}?",
                            f"Does the {a.category} sound louder than the {b.category}?"))  # fmt: skip
            return p, _yn(yes), {"q": q, "categories": [a.category, b.category]}
        p = f"Which is louder, the {a.category} or the {b.category}?"
        return p, a.category if yes else b.category, {"q": q, "categories": [a.category, b.category]}
    if q == "longer":
        a, b = _pick(rng, long_)
        p = _pick(rng, (f"Does the {a.category} sound for longer than the {b.category}?",
                        f"Is the {a.category} heard longer than the {b.category}?"))  # fmt: skip
        return p, _yn(a.length > b.length), {"q": q, "categories": [a.category, b.category]}
    a, b = _pick(rng, objs)
    yes = _area(a.box) > _area(b.box)
    if q == "bigger":
        p = _pick(rng, (f"Is the {a.category} bigger than the {b.category}?",
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


def _avqa(rec: Record, srcs: list[_Src], rng: np.random.Generator, per_clip: int = 3) -> list[TextSample]:
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


# ----------------------------------------------------------------------------------------------------------------
# Captions and speech


def _caption(rec: Record, rng: np.random.Generator) -> TextSample:
    """A caption stating every object (class, colour, position), whether and when it sounds, and every off-screen
    sound. meta["facts"]: one dict per fact; meta["fact_phrases"]: the words the caption must contain (a list is
    a set of alternatives), for fact-recall scoring."""
    facts, phrases, parts = [], [], []
    style = int(rng.integers(3))
    for o in rec.objects:
        pos = o.attrs.get("position", position_word(o.box))
        colour = o.attrs.get("colour", "")
        verb = get_class(o.category).sound.verb
        facts.append({"category": o.category, "visible": True, "sounding": o.sounding, "position": pos,
                      "segments": o.segments})  # fmt: skip
        phrases += [o.category, colour, pos.replace("-", " ")]
        if o.sounding:
            phrases += [verb, *(f"{t:.2f}" for seg in o.segments for t in seg)]
        else:
            phrases.append(["silent", "no sound"])
        if style == 0:
            what = f"{verb} {_secs(o.segments)}" if o.sounding else _pick(rng, ("stays silent", "makes no sound"))
            parts.append(f"{_A(colour)} {o.category} {_where(pos)} {what}.")
        elif style == 1:
            what = f"it {verb} {_secs(o.segments)}" if o.sounding else "it is silent"
            parts.append(f"There is {_a(colour)} {o.category} {_where(pos)}; {what}.")
        elif o.sounding:
            parts.append(f"Something {verb} {_secs(o.segments)}: it is the {colour} {o.category} {_where(pos)}.")
        else:
            parts.append(f"{_A(colour)} {o.category} {_where(pos)} is in view but silent.")
    for s in rec.sounds:
        facts.append({"category": s.category, "visible": False, "sounding": True, "position": None,
                      "segments": s.segments})  # fmt: skip
        phrases += [f"{t:.2f}" for seg in s.segments for t in seg]
        if s.category == "speech":
            parts.append(f'A voice says "{s.text}" {_secs(s.segments)}.')
            phrases.append(s.text or "")
        else:
            verb = get_class(s.category).sound.verb
            lead = _pick(rng, ("An unseen", "An off-screen", "Out of view, a"))
            parts.append(f"{lead} {s.category} {verb} {_secs(s.segments)}.")
            phrases += [s.category, verb]
    prompt = _pick(rng, ("Describe what you see and hear.", "Describe the clip.", "Write a caption for this clip.",
                         "What happens in this video? Say what makes each sound and when."))  # fmt: skip
    return TextSample("caption", prompt, " ".join(parts), {"facts": facts, "fact_phrases": phrases})


def _speech(rec: Record, rng: np.random.Generator) -> list[TextSample]:
    out = []
    for s in rec.sounds:
        if s.category != "speech" or not s.text:
            continue
        named = [o for o in rec.objects if o.category in s.text.split()]
        if not named:
            continue
        o = named[0]
        meta = {"phrase": s.text, "category": o.category, "box": o.box, "segments": s.segments}
        p = _pick(rng, ("Where is the object named by the voice?", "The speaker names an object. Where is it?",
                        "Find the object the voice asks for."))  # fmt: skip
        out.append(TextSample("speech", p, format_box(o.box), meta))
        p = _pick(rng, ("What does the voice say?", "Write down the spoken words."))
        out.append(TextSample("speech", p, s.text, meta))
    return out
