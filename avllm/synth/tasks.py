"""Text data for every task, written from a clip's ground truth (a ``Record``) alone.

Each task has several phrasings; yes/no and true/false answers are balanced by construction (the wanted answer
is drawn first, then a question that has it), so the text alone cannot answer. Boxes and segments in answers are
written by ``avllm.textformat``. Every TextSample's ``meta`` holds what is needed to recompute its answer from the
record (the tests do so). AVQA questions and the answer set are in ``avllm.synth.avqa``.
"""

from __future__ import annotations

import numpy as np

from avllm.record import ObjectAnn, Record, TextSample
from avllm.synth.avqa import ANSWERS, make_avqa
from avllm.synth.classes import CLASS_NAMES, get_class
from avllm.synth.facts import POSITIONS, A_, Source, a_, heard_sources, pick, position_word, side_of
from avllm.textformat import format_box, format_boxes, format_segment, format_segments

__all__ = ["ANSWERS", "POSITIONS", "factcheck_answer", "position_word", "side_of", "make_texts"]

_SIDE_MARGIN = 0.08  # "on the left side" claims only when the centre is this far from the midline


def _secs(segs: list[list[float]]) -> str:
    parts = [f"from {s:.2f} to {e:.2f} seconds" for s, e in segs]
    return " and again ".join(parts)


def _where(word: str) -> str:
    return {"center": "in the center", "left": "on the left", "right": "on the right", "top": "at the top",
            "bottom": "at the bottom"}.get(word, "at the " + word.replace("-", " "))  # fmt: skip



def make_texts(rec: Record, rng: np.random.Generator, evidence: bool = False) -> list[TextSample]:
    """All TextSamples of one clip: grounding, temporal, fact-checking (one true + one false claim), AVQA (up to
    three kinds), a caption, and speech prompts when the clip has a spoken phrase. ``evidence``: position, time and
    order claims are answered with their evidence before the verdict (``factcheck_answer``); the prompts, labels and
    every other text are the same either way."""
    srcs = heard_sources(rec)
    out = (_grounding(rec, srcs, rng) + _temporal(rec, rng) + _factcheck(rec, srcs, rng, evidence)
           + make_avqa(rec, srcs, rng))
    out.append(_caption(rec, rng))
    out += _speech(rec, rng)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Grounding and temporal localization


def _grounding(rec: Record, srcs: list[Source], rng: np.random.Generator) -> list[TextSample]:
    vis = [s.obj for s in srcs if s.obj is not None]
    if not vis:
        return []
    boxes = [o.box for o in vis]
    if len(vis) == 1:
        prompt = pick(rng, ("Where is the object making the sound?", "Which part of the image is making the sound?",
                             "Locate the source of the sound.", "Where does the sound come from in the image?",
                             "Find the thing you can hear in the picture."))  # fmt: skip
    else:
        prompt = pick(rng, ("Where are the objects making sounds?", "Locate every visible source of sound.",
                             "Which parts of the image make the sounds you hear?"))  # fmt: skip
    meta = {"boxes": boxes, "categories": [o.category for o in vis]}
    out = [TextSample("ground", prompt, format_boxes(boxes), meta)]
    verbs = [get_class(s.category).sound.verb for s in srcs]
    unique = [o for o in vis if verbs.count(get_class(o.category).sound.verb) == 1]
    if unique:  # referred to by its sound only
        o = pick(rng, unique)
        verb = get_class(o.category).sound.verb
        prompt = pick(rng, (f"Where is the thing that {verb}?", f"Point to what {verb} in the image.",
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
        out.append(TextSample("temporal", pick(rng, choices), format_segments(o.segments), meta))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Fact-checking


def _claim(kind: str, want: bool, rec: Record, srcs: list[Source], rng: np.random.Generator):
    """(claim text, meta, evidence) about ``kind`` whose truth is ``want``, or None when the clip cannot give one.
    ``evidence``: what the clip shows that decides a position, time or order claim (the object's true side, the
    class's segments, both classes' first segments), written before the verdict; None for the other kinds."""
    heard = [s.category for s in srcs]
    visible = [o.category for o in rec.objects]
    if kind == "heard":
        pool = heard if want else [c for c in CLASS_NAMES if c not in heard]
        if not want and rng.random() < 0.5:
            pool = [c for c in visible if c not in heard] or pool
        c = pick(rng, pool)
        t = pick(rng, (f"You can hear {a_(c)}.", f"{A_(c)} makes a sound in this clip.",
                        f"The audio has {a_(c)} in it."))  # fmt: skip
        return t, {"category": c}, None
    if kind == "visible":
        pool = visible if want else [c for c in CLASS_NAMES if c not in visible]
        if not want and rng.random() < 0.5:
            pool = [c for c in heard if c not in visible] or pool
        c = pick(rng, pool)
        t = pick(rng, (f"There is {a_(c)} in the picture.", f"{A_(c)} can be seen in the video.",
                        f"The image shows {a_(c)}."))  # fmt: skip
        return t, {"category": c}, None
    if kind == "sounding":
        o = pick(rng, rec.objects)
        says = o.sounding if want else not o.sounding
        if says:
            t = pick(rng, (f"The {o.category} in the image is making a sound.", f"The {o.category} you can see "
                            "makes a sound."))  # fmt: skip
        else:
            t = pick(rng, (f"The {o.category} in the image is silent.", f"The {o.category} you can see never "
                            "makes a sound."))  # fmt: skip
        return t, {"category": o.category, "sounding": says}, None
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
        o, (true_side, false_side) = pick(rng, cands)
        side = true_side if want else false_side
        t = pick(rng, (f"The {o.category} is on the {side} side of the frame.",
                        f"The {o.category} appears in the {side} half of the image."))  # fmt: skip
        return t, {"category": o.category, "side": side}, f"The {o.category} is on the {true_side} side"
    if kind == "time":
        s = pick(rng, srcs)
        grid = np.arange(0.25, rec.duration - 0.125, 0.25)
        inside = [any(a + 0.125 <= t <= b - 0.125 for a, b in s.segments) for t in grid]
        outside = [all(t <= a - 0.25 or t >= b + 0.25 for a, b in s.segments) for t in grid]
        pool = [float(t) for t, ok in zip(grid, inside if want else outside) if ok]
        if not pool:
            return None
        tm = pick(rng, pool)
        c = s.category
        t = pick(rng, (f"The {c} is making sound at {tm:.2f} seconds.", f"At {tm:.2f} seconds the {c} can be heard.",
                        f"You can hear the {c} {tm:.2f} seconds into the clip."))  # fmt: skip
        return t, {"category": c, "time": tm}, f"The {c} sounds {format_segments(s.segments)}"
    if kind == "order":
        if len(srcs) < 2:
            return None
        i, j = sorted(int(v) for v in rng.choice(len(srcs), 2, replace=False))  # srcs sorted by onset: i first
        a, b = (srcs[i], srcs[j]) if want else (srcs[j], srcs[i])
        t = pick(rng, (f"The {a.category} starts sounding before the {b.category}.",
                        f"The {a.category} is heard before the {b.category}."))  # fmt: skip
        why = (f"The {a.category} starts {format_segment(a.segments[0])} and the {b.category} "
               f"{format_segment(b.segments[0])}")
        return t, {"category": a.category, "other": b.category}, why
    raise ValueError(kind)


_CLAIM_KINDS = ("heard", "visible", "sounding", "position", "time", "order")


def factcheck_answer(label: bool, evidence: str | None = None) -> str:
    """A fact-check answer: the verdict alone ("true" / "false"), or the evidence and then the verdict ("The bell is
    on the left side, so false."). The verdict is always the last word (``avllm.evaluate.truth_of`` reads it)."""
    verdict = "true" if label else "false"
    return f"{evidence}, so {verdict}." if evidence else verdict


def _factcheck(rec: Record, srcs: list[Source], rng: np.random.Generator, evidence: bool) -> list[TextSample]:
    out = []
    for want in [bool(v) for v in rng.permutation([True, False])]:
        for k in rng.permutation(len(_CLAIM_KINDS)):
            got = _claim(_CLAIM_KINDS[k], want, rec, srcs, rng)
            if got is not None:
                claim, meta, why = got
                prompt = pick(rng, ("Is this claim true or false? {claim}", "True or false: {claim}",
                                     "Check this statement against the clip: {claim}",
                                     "Claim: {claim} Is it true or false?")).format(claim=claim)  # fmt: skip
                meta = {"label": want, "kind": _CLAIM_KINDS[k], "claim": claim, **meta}
                out.append(TextSample("factcheck", prompt, factcheck_answer(want, why if evidence else None), meta))
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
            what = f"{verb} {_secs(o.segments)}" if o.sounding else pick(rng, ("stays silent", "makes no sound"))
            parts.append(f"{A_(colour)} {o.category} {_where(pos)} {what}.")
        elif style == 1:
            what = f"it {verb} {_secs(o.segments)}" if o.sounding else "it is silent"
            parts.append(f"There is {a_(colour)} {o.category} {_where(pos)}; {what}.")
        elif o.sounding:
            parts.append(f"Something {verb} {_secs(o.segments)}: it is the {colour} {o.category} {_where(pos)}.")
        else:
            parts.append(f"{A_(colour)} {o.category} {_where(pos)} is in view but silent.")
    for s in rec.sounds:
        facts.append({"category": s.category, "visible": False, "sounding": True, "position": None,
                      "segments": s.segments})  # fmt: skip
        phrases += [f"{t:.2f}" for seg in s.segments for t in seg]
        if s.category == "speech":
            parts.append(f'A voice says "{s.text}" {_secs(s.segments)}.')
            phrases.append(s.text or "")
        else:
            verb = get_class(s.category).sound.verb
            lead = pick(rng, ("An unseen", "An off-screen", "Out of view, a"))
            parts.append(f"{lead} {s.category} {verb} {_secs(s.segments)}.")
            phrases += [s.category, verb]
    prompt = pick(rng, ("Describe what you see and hear.", "Describe the clip.", "Write a caption for this clip.",
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
        p = pick(rng, ("Where is the object named by the voice?", "The speaker names an object. Where is it?",
                        "Find the object the voice asks for."))  # fmt: skip
        out.append(TextSample("speech", p, format_box(o.box), meta))
        p = pick(rng, ("What does the voice say?", "Write down the spoken words."))
        out.append(TextSample("speech", p, s.text, meta))
    return out
