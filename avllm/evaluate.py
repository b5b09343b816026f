"""Evaluation: ``python -m avllm.evaluate --checkpoint PATH --data DIR --out metrics.json``

Reads ``DIR/manifest.jsonl`` (the synthetic world's CLI writes one; any manifest of ``avllm.data`` works), encodes
every clip once, asks the language model every text sample of the clip, and computes the metrics of
``avllm.metrics`` under flat keys (documented in docs/RESULTS.md):

  ssl.ciou50 ssl.auc ssl.ciou_mean ssl.ciou50_fixed ssl.pointing     (JSA map; ssl.ceiling.* = the GT as the map)
  ssl.<map>.ciou50/auc/pointing for the other maps: slot_offtarget, avace, dense0, dense1, and classmap (the class
      maps' attention weighted by each class's sounding probability, avllm.heads.classmap.sounding_map)
  seg.sound.miou seg.sound.fscore seg.sound.ap seg.sound.iou          (DenseAV sound head vs the SSL target mask)
  seg.speech.miou/fscore/ap/iou (speech head over a spoken phrase vs the object it names; clips with a phrase),
  seg.<sound|speech>.head<k>.* (every head on both), seg.speech_head, seg.specialised (see dense_head_metrics)
  retrieval.a2i.r1/r5/r10 retrieval.i2a.r1/r5/r10                     (DenseAV clip scores, first N candidates)
  retrieval.ceiling.a2i.r1/r5/r10        (best expected R@K of a retriever that sees each image's class set alone)
  ground.acc50 temporal.miou temporal.r1_50 factcheck.acc factcheck.acc.<kind> avqa.acc avqa.acc.<kind>
  caption.fact_recall
  caption.bleu4, plus the proposal heads' own figures (ground.proposal.acc50, temporal.proposal.miou) and the CAD
  answer chain (avqa.chain.acc); ground.parsed / temporal.parsed: the fraction of answers with a box / segment
  tags.seen.acc tags.heard.acc tags.seen.label_acc tags.heard.label_acc  (class-tag head: exact sets, per label)
  tags.where.pointing tags.when.iou tags.sounding.label_acc   (class maps: each seen class's centre inside one of its
                                                               boxes; token IoU of each heard class's activity;
                                                               sounding-and-visible decisions of the seen classes)
  speech.ground.acc50 speech.words.acc (clips with a spoken phrase: the named object's box; the phrase, word for word)
  baseline.center.* baseline.random.* baseline.question_only.* baseline.audio_only.* baseline.image_only.*
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from avllm import metrics as M
from avllm.checkpoint import CheckpointError, load
from avllm.data import DataError, class_tags, make_item, read_manifest
from avllm.heads.classmap import activity_targets, sounding_map
from avllm.media import MediaError, load_clip
from avllm.model import AVLLM, AVFeatures
from avllm.predictor import map_to_box
from avllm.record import ObjectAnn, Record, TextSample
from avllm.synth import ANSWERS, CLASS_NAMES, POSITIONS, SynthWorld
from avllm.textformat import parse_display, truth_of

__all__ = ["evaluate", "main", "select_features", "question_key"]

EVAL_TASKS = ("ground", "temporal", "factcheck", "avqa", "caption", "speech")


def select_features(f: AVFeatures, idx: list[int]) -> AVFeatures:
    """The features of clips ``idx`` (batch-dim tensors indexed, also inside nested dataclasses such as the class
    maps; shared ones kept)."""
    ix = torch.as_tensor(idx, device=f.aud.device)
    out = {}
    for fld in fields(f):
        v = getattr(f, fld.name)
        if fld.name == "retrieval":
            out[fld.name] = v[ix][:, ix]
        elif isinstance(v, torch.Tensor) and fld.name != "aud_times" and v.dim() > 0:
            out[fld.name] = v[ix]
        elif is_dataclass(v):
            out[fld.name] = type(v)(**{g.name: getattr(v, g.name)[ix] for g in fields(v)})
        else:
            out[fld.name] = v
    return AVFeatures(**out)


def _class_map_rows(rows: dict[str, list[float]], f: AVFeatures, i: int, rec: Record, truth: dict) -> None:
    """Append clip ``i``'s class-map figures: per seen class, whether its centre lies in one of its boxes and
    whether its sounding decision is right; per heard class, the token IoU of its activity (prob > 0.5)."""
    cm = f.class_maps
    for c, name in enumerate(CLASS_NAMES):
        if truth["seen_tags"][c] > 0:
            x, y = cm.centre[i, c].tolist()
            boxes = [o.box for o in rec.objects if o.category == name]
            rows["where.pointing"].append(float(any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)))
            rows["sounding.label_acc"].append(float((float(cm.sounding[i, c]) > 0) == (truth["sound_tags"][c] > 0)))
        if truth["heard_tags"][c] > 0:
            want = activity_targets(truth["class_segments"][None, c : c + 1], f.aud_times.cpu())[0, 0] > 0
            real = f.aud_mask[i].cpu()
            got = (cm.when[i, c].float().cpu() > 0) & real
            want = want & real
            union = int((got | want).sum())
            rows["when.iou"].append(int((got & want).sum()) / union if union else 1.0)


_CLASS_RE = re.compile(r"\b(" + "|".join(sorted(CLASS_NAMES, key=len, reverse=True)) + r")s?\b")
_NUM_RE = re.compile(r"\d+(\.\d+)?")


def question_key(prompt: str) -> str:
    """A question with class names and numbers abstracted: what a question-only model can condition on."""
    return _NUM_RE.sub("<n>", _CLASS_RE.sub("<c>", prompt.lower())).strip()


def caption_facts(rec: Record) -> list[list[str] | str]:
    """What a caption should state: each visible object's class and position word, each heard sound's class."""
    facts: list[list[str] | str] = []
    for o in rec.objects:
        facts.append(o.category)
        pos = o.attrs.get("position")
        if isinstance(pos, str) and pos in POSITIONS:
            facts.append(pos)
    for s in rec.sounds:
        if s.category in CLASS_NAMES:
            facts.append(s.category)
    return facts


def _load_item(rec: Record, root: Path, cfg) -> dict[str, Any]:
    if rec.video:
        clip = load_clip(root / rec.video, fps=8.0, sample_rate=cfg.audio.sample_rate)
    else:
        clip = load_clip(image=root / rec.image if rec.image else None, audio=root / rec.audio if rec.audio else None,
                         sample_rate=cfg.audio.sample_rate)
    return make_item(
        clip.frames, clip.times, clip.audio, clip.sample_rate, rec, None, num_frames=cfg.num_frames,
        image_size=cfg.image.image_size, target_rate=cfg.audio.sample_rate, audio_seconds=cfg.audio.window_seconds,
        root=root,
    )


def encode_records(model: AVLLM, recs: list[Record], root: Path) -> AVFeatures:
    """The model's features of a batch of clips (media under ``root``), read as evaluation reads them."""
    dev = next(model.parameters()).device
    items = [_load_item(r, root, model.cfg) for r in recs]
    frames = torch.stack([it["frames"] for it in items]).to(dev)  # (B, T, 3, S, S)
    times = torch.stack([it["frame_times"] for it in items]).to(dev)  # (B, T)
    audio = torch.stack([it["audio"] for it in items]).to(dev)  # (B, N)
    alen = torch.tensor([it["audio_len"] for it in items], device=dev)
    key = torch.tensor([it["key_index"] for it in items], device=dev)
    return model.encode(frames, times, audio, alen, key_index=key)


def _gt_boxes_map(rec: Record, size: int = M.SSL_SIZE) -> np.ndarray:
    """The SSL ground truth as VGG-SS / Flickr build it: from boxes (Flickr's annotator rule when recorded)."""
    mode = "flickr" if rec.meta.get("gt_rule") == "flickr" else "vggss"
    return M.gt_map_from_boxes(rec.ssl_boxes, size=size, mode=mode, annotators=rec.meta.get("annotators"))


def _gt_mask(rec: Record, root: Path, size: int = M.SSL_SIZE) -> np.ndarray:
    """The pixel mask of the sounding objects (segmentation ground truth), else the boxes' map."""
    return _mask_or_boxes(rec.ssl_mask, rec.ssl_boxes, root, size)


def _mask_or_boxes(mask: str | None, boxes: list[list[float]], root: Path, size: int) -> np.ndarray:
    """(size, size) {0, 1}: the PNG mask ``root / mask`` when it exists, else the map of ``boxes``."""
    if mask and (root / mask).is_file():
        m = Image.open(root / mask).convert("L").resize((size, size), Image.NEAREST)
        return (np.asarray(m) > 127).astype(np.float64)
    return M.gt_map_from_boxes(boxes, size=size, mode="vggss")


def _object_mask(obj: ObjectAnn, root: Path, size: int = M.SSL_SIZE) -> np.ndarray:
    """One object's pixel mask, else its box's map."""
    return _mask_or_boxes(obj.mask, [obj.box], root, size)


def speech_target(rec: Record) -> tuple[list[float], ObjectAnn] | None:
    """(the spoken phrase's segment, the visible object it names), or None when the clip has no phrase that names
    a visible object (DenseAV's speech head is scored on those clips: its map while the phrase is spoken)."""
    for s in rec.sounds:
        if s.category != "speech" or not s.text or not s.segments:
            continue
        words = s.text.lower().split()
        named = [o for o in rec.objects if o.category in words]
        if named:
            return list(s.segments[0]), named[0]
    return None


def question_only_prior(num_clips: int = 300, seed: int = 777, difficulty: str = "standard") -> dict[str, str]:
    """Most frequent training answer of each abstracted question (fact-check claims included): the question-only
    baseline. Train split, a seed of its own."""
    counts: dict[str, Counter] = defaultdict(Counter)
    world = SynthWorld("train", seed=seed, difficulty=difficulty, image_size=32, frames="key")
    for i in range(num_clips):
        for t in world[i].record.texts:
            if t.task == "avqa":
                counts[question_key(t.prompt)][t.answer.strip().lower()] += 1
            elif t.task == "factcheck":  # the verdict: the evidence before it names the clip's own classes
                verdict = truth_of(t.answer)
                if verdict is not None:
                    counts[question_key(t.prompt)]["true" if verdict else "false"] += 1
    overall = Counter()
    for c in counts.values():
        overall.update(c)
    prior = {k: c.most_common(1)[0][0] for k, c in counts.items()}
    prior["__default__"] = overall.most_common(1)[0][0] if overall else "yes"
    return prior


@torch.no_grad()
def evaluate(
    model: AVLLM,
    records: list[Record],
    root: Path,
    *,
    batch_size: int = 16,
    candidates: int = 100,
    baselines: bool = True,
    progress: bool = True,
    seed: int = 0,
    answer_log: list[dict] | None = None,
) -> dict[str, float]:
    """The metrics of the module docstring for ``model`` on ``records`` (media under ``root``). ``answer_log``: a list
    that receives one dict per generated answer (clip id, task, claim or question kind, prompt, answer, reference)."""
    from tqdm.auto import tqdm

    dev = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    g = model.image_encoder.grid
    ssl_maps, ssl_gts, seg_maps, seg_gts, seg_cls = [], [], [], [], []  # seg_maps: (K, g, g) every head
    speech_maps, speech_gts, speech_cls, speech_contrast = [], [], [], []  # the spoken phrase's window
    other_maps: dict[str, list[np.ndarray]] = defaultdict(list)  # the other heads' maps, scored the same way
    keys_v, keys_a, keys_m = [], [], []
    tag_rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)  # seen/heard -> (pred, truth)
    class_rows: dict[str, list[float]] = defaultdict(list)  # class-map figure -> one value per (clip, class)
    gen: dict[str, list] = defaultdict(list)  # task -> [(record, text, answer, extras)]
    blind: dict[str, list] = defaultdict(list)  # "audio_only:avqa" -> [(text, answer)]
    bar = tqdm(total=len(records), disable=not progress, desc="evaluate", dynamic_ncols=True)
    for start in range(0, len(records), batch_size):
        recs = records[start : start + batch_size]
        f = encode_records(model, recs, root)
        seg = model.proposed_segments(f).cpu().numpy()
        sounding = sounding_map(f.class_maps) if f.class_maps is not None else None  # (B, P)
        for i, r in enumerate(recs):
            if r.ssl_boxes:
                ssl_maps.append(f.ssl_map[i].view(g, g).float().cpu().numpy())
                ssl_gts.append(_gt_boxes_map(r))
                for name, mp in (("slot_offtarget", f.slot_img_attn[i, 1]), ("avace", f.avace_attn[i]),
                                 ("dense0", f.dense_heatmaps[i, 0]), ("dense1", f.dense_heatmaps[i, 1])):
                    other_maps[name].append(mp.reshape(g, g).float().cpu().numpy())
                if sounding is not None:
                    other_maps["classmap"].append(sounding[i].reshape(g, g).float().cpu().numpy())
                seg_maps.append(f.dense_heatmaps[i].float().cpu().numpy())
                seg_gts.append(_gt_mask(r, root) > 0)
                seg_cls.append(next((o.category for o in r.objects if o.sounding), "none"))
        _speech_rows(model, f, recs, root, speech_maps, speech_gts, speech_cls, speech_contrast)
        if f.seen_tags is not None:
            c = len(CLASS_NAMES)
            for i, r in enumerate(recs):
                truth = class_tags(r, CLASS_NAMES)
                if truth["tags_valid"]:
                    for name, logits in (("seen", f.seen_tags), ("heard", f.heard_tags)):
                        tag_rows[name].append(((logits[i, :c] > 0).cpu().numpy(), truth[f"{name}_tags"].numpy() > 0))
                    if f.class_maps is not None:
                        _class_map_rows(class_rows, f, i, r, truth)
        keys_v.append(model.key_frame(f).cpu())
        keys_a.append(f.aud.cpu())
        keys_m.append(f.aud_mask.cpu())
        # Every text sample of every clip, asked in batches.
        pairs = [(i, t) for i, r in enumerate(recs) for t in r.texts if t.task in EVAL_TASKS]
        for c in range(0, len(pairs), batch_size):
            chunk = pairs[c : c + batch_size]
            sub = select_features(f, [i for i, _ in chunk])
            answers = model.generate(sub, [t.prompt for _, t in chunk], max_new_tokens=60)
            chain = None
            if any(t.task == "avqa" for _, t in chunk):
                chain = model.answer_classes(sub, [t.prompt for _, t in chunk])[:, : len(ANSWERS)].argmax(-1)
            for j, ((i, t), a) in enumerate(zip(chunk, answers)):
                extras = {"box": f.box[i].tolist(), "segment": seg[i].tolist(),
                          "ssl_box": map_to_box(f.ssl_map[i].view(g, g).float().cpu().numpy())}
                if chain is not None:
                    extras["chain"] = ANSWERS[int(chain[j])]
                gen[t.task].append((recs[i], t, a, extras))
        if baselines:  # the same model with one modality blanked, on the questions that need both
            for name, fr, au in (("audio_only", torch.zeros_like(frames), audio), ("image_only", frames,
                                                                                    torch.zeros_like(audio))):
                fb = model.encode(fr, times, au, alen, key_index=key)
                qs = [(i, t) for i, r in enumerate(recs) for t in r.texts if t.task in ("avqa", "factcheck")]
                for c in range(0, len(qs), batch_size):
                    chunk = qs[c : c + batch_size]
                    ans = model.generate(select_features(fb, [i for i, _ in chunk]), [t.prompt for _, t in chunk])
                    for (i, t), a in zip(chunk, ans):
                        blind[f"{name}:{t.task}"].append((t, a))
        bar.update(len(recs))
    bar.close()

    out: dict[str, float] = {"n.clips": float(len(records))}
    if answer_log is not None:
        for task, rows_a in gen.items():
            for r, t, a, _ in rows_a:
                answer_log.append({"id": r.id, "task": task, "kind": t.meta.get("kind"), "label": t.meta.get("label"),
                                "prompt": t.prompt, "answer": a, "reference": t.answer})
    # --- SSL and segmentation
    for k, v in M.ssl_metrics(ssl_maps, ssl_gts).items():
        out[f"ssl.{k}"] = v
    for k, v in M.ssl_ceiling(ssl_gts).items():
        out[f"ssl.ceiling.{k}"] = v
    for name, maps in other_maps.items():  # diagnostics: ssl.* itself is the JSA map
        for k in ("ciou50", "auc", "pointing"):
            out[f"ssl.{name}.{k}"] = M.ssl_metrics(maps, ssl_gts)[k]
    centre = M.center_prior_map(g, g)
    for k, v in M.ssl_metrics([centre] * len(ssl_gts), ssl_gts).items():
        out[f"baseline.center.ssl.{k}"] = v
    out.update(dense_head_metrics(seg_maps, seg_gts, seg_cls, speech_maps, speech_gts, speech_cls, speech_contrast))
    for name, vals in class_rows.items():  # the class maps, one value per (clip, class)
        out[f"tags.{name}"] = float(np.mean(vals))
    for name, rows_t in tag_rows.items():  # the class-tag head: exact set, and each (clip, class) decision
        pred, truth = np.stack([r[0] for r in rows_t]), np.stack([r[1] for r in rows_t])
        out[f"tags.{name}.acc"] = float((pred == truth).all(1).mean())
        out[f"tags.{name}.label_acc"] = float((pred == truth).mean())
    # --- retrieval over the first `candidates` clips
    v, a, m = torch.cat(keys_v), torch.cat(keys_a), torch.cat(keys_m)
    n = min(candidates, v.shape[0])
    if n >= 2:
        scores = model.dense(v[:n].to(dev), a[:n].to(dev), m[:n].to(dev), grid=g).scores.float().cpu().numpy()
        for k2, v2 in M.retrieval_metrics(scores).items():
            out[f"retrieval.{k2}"] = v2
        out["retrieval.candidates"] = float(n)
        # what reading the image's classes alone allows: clips that show the same set of classes are ties
        shown = [frozenset(o.category for o in r.objects) for r in records[:n]]
        for k2, v2 in M.class_set_ceiling(shown).items():
            out[f"retrieval.ceiling.a2i.{k2}"] = v2
    # --- grounding
    rows = gen["ground"]
    if rows:
        gts_b = [t.meta.get("boxes") or parse_display(t.answer).boxes for _, t, _, _ in rows]
        out["ground.acc50"] = M.grounding_accuracy([parse_display(a).boxes for _, _, a, _ in rows], gts_b)
        out["ground.parsed"] = float(np.mean([bool(parse_display(a).boxes) for _, _, a, _ in rows]))
        out["ground.proposal.acc50"] = M.grounding_accuracy([[e["box"]] for *_, e in rows], gts_b)
        out["ground.ssl_box.acc50"] = M.grounding_accuracy([[e["ssl_box"]] if e["ssl_box"] else [] for *_, e in rows],
                                                           gts_b)
        out["baseline.center.ground.acc50"] = M.grounding_accuracy([[M.center_box()]] * len(rows), gts_b)
        rand = []
        for _ in rows:
            c, s = rng.uniform(0.2, 0.8, 2), rng.uniform(0.3, 0.7, 2)
            rand.append([[*(np.clip(c - s / 2, 0, 1)), *(np.clip(c + s / 2, 0, 1))]])
        out["baseline.random.ground.acc50"] = M.grounding_accuracy(rand, gts_b)
    # --- temporal
    rows = gen["temporal"]
    if rows:
        gts_s = [t.meta.get("segments") or parse_display(t.answer).segments for _, t, _, _ in rows]
        for k2, v2 in M.temporal_metrics([parse_display(a).segments for _, _, a, _ in rows], gts_s).items():
            out[f"temporal.{k2}"] = v2
        out["temporal.parsed"] = float(np.mean([bool(parse_display(a).segments) for _, _, a, _ in rows]))
        prop = [[e["segment"]] if e["segment"][1] > e["segment"][0] else [] for *_, e in rows]
        out["temporal.proposal.miou"] = M.temporal_metrics(prop, gts_s)["miou"]
        rand_s = M.random_segments([r.duration for r, *_ in rows], rng)
        for k2, v2 in M.temporal_metrics(rand_s, gts_s).items():
            out[f"baseline.random.temporal.{k2}"] = v2
        whole = [[[0.0, r.duration]] for r, *_ in rows]
        out["baseline.whole_clip.temporal.miou"] = M.temporal_metrics(whole, gts_s)["miou"]
    # --- fact-checking and AVQA
    prior = question_only_prior() if baselines else {}
    rows = gen["factcheck"]
    if rows:
        labels = [bool(t.meta["label"]) if "label" in t.meta else truth_of(t.answer) for _, t, _, _ in rows]
        said = [truth_of(a) for _, _, a, _ in rows]
        claim_kinds = [t.meta.get("kind", "other") for _, t, _, _ in rows]
        out["factcheck.acc"] = M.accuracy(said, labels)
        for k2, v2 in M.per_kind_accuracy(said, labels, claim_kinds).items():
            out[f"factcheck.acc.{k2}"] = v2
        if baselines:
            qo = [truth_of(prior.get(question_key(t.prompt), prior["__default__"])) for _, t, _, _ in rows]
            out["baseline.question_only.factcheck.acc"] = M.accuracy(qo, labels)
            for k2, v2 in M.per_kind_accuracy(qo, labels, claim_kinds).items():
                out[f"baseline.question_only.factcheck.acc.{k2}"] = v2
            out["baseline.random.factcheck.acc"] = M.accuracy(list(rng.random(len(rows)) < 0.5), labels)
    rows = gen["avqa"]
    if rows:
        gts_q = [t.answer for _, t, _, _ in rows]
        kinds = [t.meta.get("kind", "other") for _, t, _, _ in rows]
        preds = [a for _, _, a, _ in rows]
        out["avqa.acc"] = M.accuracy(preds, gts_q)
        for k2, v2 in M.per_kind_accuracy(preds, gts_q, kinds).items():
            out[f"avqa.acc.{k2}"] = v2
        out["avqa.chain.acc"] = M.accuracy([e.get("chain") for *_, e in rows], gts_q)
        if baselines:
            qo = [prior.get(question_key(t.prompt), prior["__default__"]) for _, t, _, _ in rows]
            out["baseline.question_only.avqa.acc"] = M.accuracy(qo, gts_q)
            for k2, v2 in M.per_kind_accuracy(qo, gts_q, kinds).items():
                out[f"baseline.question_only.avqa.acc.{k2}"] = v2
            out["baseline.random.avqa.acc"] = M.accuracy(list(rng.choice(ANSWERS, len(rows))), gts_q)
    for key, rows_b in blind.items():
        name, task = key.split(":")
        if task == "avqa":
            out[f"baseline.{name}.avqa.acc"] = M.accuracy([a for _, a in rows_b], [t.answer for t, _ in rows_b])
        else:
            out[f"baseline.{name}.factcheck.acc"] = M.accuracy(
                [truth_of(a) for _, a in rows_b],
                [bool(t.meta["label"]) if "label" in t.meta else truth_of(t.answer) for t, _ in rows_b],
            )
    # --- speech prompts (clips with a spoken phrase): the named object's box, and the phrase itself
    boxed, said_rows = [], []
    for _, t, a, _ in gen["speech"]:
        want = parse_display(t.answer).boxes
        if want:
            boxed.append((want, parse_display(a).boxes))
        else:
            said_rows.append((t, a))
    if boxed:
        out["speech.ground.acc50"] = M.grounding_accuracy([got for _, got in boxed], [want for want, _ in boxed])
    if said_rows:
        out["speech.words.acc"] = M.accuracy([_words(a) for _, a in said_rows],
                                             [_words(t.answer) for t, _ in said_rows])
    # --- captions
    rows = gen["caption"]
    if rows:
        out["caption.fact_recall"] = M.mean_fact_recall([a for _, _, a, _ in rows], [caption_facts(r) for r, *_ in rows])
        out["caption.bleu4"] = M.bleu4([a for _, _, a, _ in rows], [t.answer for _, t, _, _ in rows])
    return {k: float(v) for k, v in out.items()}


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


_SILENT = "|silent"  # class suffix of a speech row whose named object makes no sound


def _speech_rows(model: AVLLM, f: AVFeatures, recs: list[Record], root: Path, maps: list, gts: list, cls: list,
                 contrast: list) -> None:
    """For each clip whose phrase names a visible object: every DenseAV head's map averaged over the audio tokens
    of the phrase (K, g, g), the named object's mask, its class, and each head's time contrast (K,) (mean peak
    similarity inside the phrase minus outside it)."""
    rows = [(i, st) for i, r in enumerate(recs) if (st := speech_target(r)) is not None]
    if not rows:
        return
    g = f.grid
    own = model.dense.own_volume(model.key_frame(f), f.aud).float()  # (B, K, P, Ta)
    peak = own.amax(dim=2)  # (B, K, Ta)
    for i, ((s0, s1), obj) in rows:
        valid = f.aud_mask[i]
        inside = (f.aud_times >= s0) & (f.aud_times < s1) & valid  # (Ta,)
        outside = valid & ~inside
        if not inside.any() or not outside.any():
            continue
        maps.append(own[i][..., inside].mean(-1).view(-1, g, g).cpu().numpy())
        gts.append(_object_mask(obj, root) > 0)
        cls.append(obj.category if obj.sounding else f"{obj.category}{_SILENT}")
        contrast.append((peak[i][:, inside].mean(-1) - peak[i][:, outside].mean(-1)).cpu().numpy())


def _seg_scores(maps: list[np.ndarray], gts: list[np.ndarray], classes: list[str]) -> dict[str, float]:
    probs = np.stack([M.normalize_map(M.upsample_map(m, M.SSL_SIZE)) for m in maps])
    gt = np.stack(gts)
    d = M.dense_seg_metrics(probs, gt, classes)
    return {"miou": M.avsbench_miou(probs, gt, is_logits=False),
            "fscore": M.avsbench_fscore(probs, gt, is_logits=False),
            "ap": d.get("ap", float("nan")), "iou": d.get("iou", float("nan"))}  # fmt: skip


def dense_head_metrics(sound_maps: list[np.ndarray], sound_gts: list[np.ndarray], sound_cls: list[str],
                       speech_maps: list[np.ndarray], speech_gts: list[np.ndarray], speech_cls: list[str],
                       speech_contrast: list[np.ndarray]) -> dict[str, float]:
    """DenseAV's heads as segmenters. ``sound_maps`` / ``speech_maps``: (K, g, g) per clip, every head.

    Sound: each head's whole-clip map against the sounding objects' mask; speech: each head's map over the spoken
    phrase against the named object's mask (``seg.<target>.head<k>.*``). Which head is the speech head is not fixed
    by training (DenseAV's heads specialise on their own), so it is read off the clips' timing, never off the
    masks: the head whose peak similarity rises most while the phrase is spoken (``seg.speech_head``); the sound
    head is another one (head 0 unless that is the speech head, and head 0 when no clip has a phrase).
    ``seg.sound.*`` and ``seg.speech.*`` are those heads' figures; ``seg.specialised`` is 1 when each of the two
    heads segments its own target better (mIoU) than the other head does. A speech class ending in "|silent" marks
    a named object that makes no sound: ``seg.speech.silent.head<k>.miou`` scores those clips alone, where finding
    the object cannot come from hearing it (``n.speech.silent`` of them)."""
    out: dict[str, float] = {}
    if not sound_maps and not speech_maps:
        return out
    k_heads = (sound_maps or speech_maps)[0].shape[0]
    silent = [i for i, c in enumerate(speech_cls) if c.endswith(_SILENT)]
    if silent:
        out["n.speech.silent"] = float(len(silent))
        for k in range(k_heads):
            out[f"seg.speech.silent.head{k}.miou"] = _seg_scores(
                [speech_maps[i][k] for i in silent], [speech_gts[i] for i in silent], ["x"] * len(silent))["miou"]
    speech_cls = [c.removesuffix(_SILENT) for c in speech_cls]
    per: dict[str, list[dict[str, float]]] = {}
    for target, maps, gts, cls in (("sound", sound_maps, sound_gts, sound_cls),
                                   ("speech", speech_maps, speech_gts, speech_cls)):  # fmt: skip
        if maps:
            per[target] = [_seg_scores([m[k] for m in maps], gts, cls) for k in range(k_heads)]
            for k, sc in enumerate(per[target]):
                for name, v in sc.items():
                    out[f"seg.{target}.head{k}.{name}"] = v
    speech_head = None
    if speech_contrast and k_heads >= 2:
        contrast = np.mean(np.stack(speech_contrast), axis=0)  # (K,)
        speech_head = int(np.argmax(contrast))
        out["seg.speech_head"] = float(speech_head)
        for k, v in enumerate(contrast):
            out[f"seg.speech.contrast.head{k}"] = float(v)
    sound_head = 1 if speech_head == 0 else 0
    if "sound" in per:
        for name, v in per["sound"][sound_head].items():
            out[f"seg.sound.{name}"] = v
    if "speech" in per and speech_head is not None:
        for name, v in per["speech"][speech_head].items():
            out[f"seg.speech.{name}"] = v
        if "sound" in per:
            own_s, other_s = per["sound"][sound_head]["miou"], per["sound"][speech_head]["miou"]
            own_p, other_p = per["speech"][speech_head]["miou"], per["speech"][sound_head]["miou"]
            out["seg.specialised"] = float(own_s > other_s and own_p > other_p)
    return out


SUMMARY = (
    ("ssl.ciou50", "ssl.ceiling.ciou50", "baseline.center.ssl.ciou50"), ("ssl.auc", "ssl.ceiling.auc", None),
    ("ssl.pointing", "baseline.center.ssl.pointing", None), ("ssl.avace.ciou50", None, None),
    ("ssl.classmap.ciou50", None, None), ("ssl.slot_offtarget.ciou50", None, None),
    ("seg.sound.miou", "seg.sound.head1.miou", None),
    ("seg.speech.miou", "seg.speech.head0.miou", "seg.speech.head1.miou"),
    ("retrieval.a2i.r1", None, None), ("retrieval.i2a.r1", None, None),
    ("ground.acc50", "baseline.center.ground.acc50", "baseline.random.ground.acc50"),
    ("temporal.miou", "baseline.whole_clip.temporal.miou", "baseline.random.temporal.miou"),
    ("factcheck.acc", "baseline.question_only.factcheck.acc", "baseline.random.factcheck.acc"),
    ("avqa.acc", "baseline.question_only.avqa.acc", "baseline.random.avqa.acc"),
    ("caption.fact_recall", None, None), ("tags.seen.acc", None, None), ("tags.heard.acc", None, None),
    ("tags.where.pointing", None, None), ("tags.when.iou", None, None), ("tags.sounding.label_acc", None, None),
)


def summary_table(m: dict[str, float]) -> str:
    lines = [f"{'metric':<22}{'model':>8}   {'beside it':<44}", "-" * 78]
    for key, b1, b2 in SUMMARY:
        if key not in m:
            continue
        side = "  ".join(f"{b.replace('baseline.', '')}={m[b]:.3f}" for b in (b1, b2) if b and b in m)
        lines.append(f"{key:<22}{m[key]:>8.3f}   {side}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m avllm.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="a folder with manifest.jsonl, or a manifest file")
    p.add_argument("--out", default="metrics.json")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N clips only (0 = all)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--candidates", type=int, default=100, help="retrieval candidates")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--answers", default="", help="also write every generated answer to this JSONL file")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    data = Path(a.data)
    manifest = data / "manifest.jsonl" if data.is_dir() else data
    try:
        model = load(a.checkpoint, device=a.device)
        records = read_manifest(manifest)
        if a.limit:
            records = records[: a.limit]
        t0 = time.time()
        written: list[dict] | None = [] if a.answers else None
        m = evaluate(model, records, manifest.parent, batch_size=a.batch_size, candidates=a.candidates,
                     baselines=not a.no_baselines, answer_log=written)
    except (CheckpointError, DataError, MediaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    m["eval.seconds"] = round(time.time() - t0, 1)
    meta = {"checkpoint": str(a.checkpoint), "data": str(manifest), "command": "python -m avllm.evaluate "
            + " ".join(argv if argv is not None else sys.argv[1:])}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({**m, "_meta": meta}, indent=2, sort_keys=True) + "\n")
    if written is not None:
        Path(a.answers).parent.mkdir(parents=True, exist_ok=True)
        Path(a.answers).write_text("".join(json.dumps(row) + "\n" for row in written))
    print(summary_table(m))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
