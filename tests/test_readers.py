"""Readers: fixtures written here in each real format read back to the expected Records."""

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avllm.readers import (
    DataError,
    read_any,
    read_avsbench,
    read_flickr,
    read_instruct,
    read_manifest,
    read_musicavqa,
    read_vggss,
    write_manifest,
)
from avllm.record import ObjectAnn, Record, TextSample


def write_image(path: Path, size=(32, 24), colour=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_mask(path: Path, size=(32, 24), box=(8, 6, 24, 18)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8)
    m[box[1]:box[3], box[0]:box[2]] = 255
    Image.fromarray(m).save(path)
    return path


def write_wav(path: Path, seconds=0.5, rate=16000, freq=440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def approx_boxes(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# VGG-SS


def make_vggss(root: Path, boxes_a, boxes_b) -> Path:
    for fid in ("a", "b"):
        write_image(root / "frames" / f"{fid}.jpg")
        write_wav(root / "audio" / f"{fid}.wav")
    ann = [{"file": "a", "class": "dog barking", "bbox": boxes_a}, {"file": "b", "bbox": boxes_b}]
    path = root / "vggss.json"
    path.write_text(json.dumps(ann))
    return path


def test_vggss_normalised_boxes(tmp_path):
    path = make_vggss(tmp_path, [[0.1, 0.2, 0.5, 0.6]], [[0.2, 0.2, 0.4, 0.4], [0.9, 0.5, 0.5, 1.2]])
    a, b = read_vggss(path, check_files=True)
    assert (a.id, a.source, b.id) == ("a", "vggss", "b")
    assert Path(a.image) == (tmp_path / "frames" / "a.jpg").resolve() and Path(a.audio).name == "a.wav"
    approx_boxes(a.ssl_boxes, [[0.1, 0.2, 0.5, 0.6]])
    approx_boxes(b.ssl_boxes, [[0.2, 0.2, 0.4, 0.4], [0.5, 0.5, 0.9, 1.0]])  # sorted and clipped
    assert a.meta["gt_rule"] == "union" and a.meta["box_units"] == "normalised"
    assert [o.category for o in a.objects] == ["dog barking"] and a.objects[0].sounding
    assert b.objects == [] and b.meta["annotators"] == [0, 0]


def test_vggss_pixel_boxes(tmp_path):
    path = make_vggss(tmp_path, [[22.4, 44.8, 112.0, 134.4]], [[0, 0, 224, 112], [230, 230, 240, 240]])
    a, b = read_vggss(path)
    assert a.meta["box_units"] == "pixels"
    approx_boxes(a.ssl_boxes, [[0.1, 0.2, 0.5, 0.6]])
    approx_boxes(b.ssl_boxes, [[0.0, 0.0, 1.0, 0.5]])  # the box outside the image is empty: dropped, counted
    assert b.meta["dropped_boxes"] == 1
    a2, _ = read_vggss(path, box_units="pixels", image_size=448)
    approx_boxes(a2.ssl_boxes, [[0.05, 0.1, 0.25, 0.3]])


def test_vggss_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        read_vggss(bad)
    bad.write_text(json.dumps([{"file": "a", "bbox": [[0.1, 0.2, 0.3]]}]))
    with pytest.raises(DataError, match="3 numbers"):
        read_vggss(bad)
    bad.write_text(json.dumps([{"file": "zzz", "bbox": [[0.1, 0.2, 0.3, 0.4]]}]))
    with pytest.raises(DataError, match="zzz.jpg"):
        read_vggss(bad, check_files=True)


# ----------------------------------------------------------------------------------------------------------------
# Flickr-SoundNet

FLICKR_BNDBOX = """<annotation><filename>{id}.jpg</filename>{size}
{objects}
</annotation>"""
OBJ = "<object><name>source</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"
# the public release: <bbox> whose first child is not a coordinate
OBJ_RELEASE = "<object><bbox><label>1</label><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bbox></object>"


def make_flickr(root: Path) -> Path:
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    objs = "".join(OBJ.format(*b) for b in ([64, 32, 192, 160], [60, 40, 200, 170], [0, 0, 128, 128]))
    (ann / "111.xml").write_text(FLICKR_BNDBOX.format(id="111", size="", objects=objs))
    size = "<size><width>512</width><height>256</height><depth>3</depth></size>"
    (ann / "222.xml").write_text(FLICKR_BNDBOX.format(id="222", size=size, objects=OBJ_RELEASE.format(0, 0, 256, 128)))
    for fid in ("111", "222"):
        write_image(root / "frames" / f"{fid}.jpg")
        write_wav(root / "audio" / f"{fid}.wav")
    return root


def test_flickr_xml(tmp_path):
    root = make_flickr(tmp_path / "Flickr")
    a, b = read_flickr(root, check_files=True)
    assert (a.id, b.id, a.source) == ("111", "222", "flickr")
    approx_boxes(a.ssl_boxes, [[0.25, 0.125, 0.75, 0.625], [60 / 256, 40 / 256, 200 / 256, 170 / 256], [0, 0, 0.5, 0.5]])
    assert a.meta["annotators"] == [0, 1, 2] and a.meta["gt_rule"] == "flickr"
    approx_boxes(b.ssl_boxes, [[0.0, 0.0, 0.5, 0.5]])  # normalised by the XML's own size, 512 x 256
    assert (b.width, b.height) == (512, 256)
    (c, _) = read_flickr(root, image_size=128)
    approx_boxes(c.ssl_boxes[2:], [[0, 0, 1, 1]])
    assert Path(a.image).parent.name == "frames" and Path(a.audio).parent.name == "audio"


def test_flickr_errors(tmp_path):
    with pytest.raises(DataError, match="no Flickr"):
        read_flickr(tmp_path)
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "9.xml").write_text("<annotation><object><bndbox><xmin>3</xmin></bndbox>")
    with pytest.raises(DataError, match="9.xml"):
        read_flickr(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# AVSBench S4


def make_avsbench(root: Path) -> Path:
    rows = [("vidA_1", "dog", "train", 1), ("vidB_2", "piano", "test", 5)]
    lines = ["vid,uid,s_min,s_sec,a_obj,split,name,category"]  # extra columns, as in the release
    for name, cat, split, n_masks in rows:
        lines.append(f"x,y,0,0,{cat},{split},{name},{cat}")
        for k in range(1, 6):
            write_image(root / "visual_frames" / split / cat / name / f"{name}_{k}.png", colour=(40 * k, 0, 0))
        for k in range(1, n_masks + 1):
            write_mask(root / "gt_masks" / split / cat / name / f"{name}_{k}.png")
        write_wav(root / "audio_wav" / split / cat / f"{name}.wav", seconds=5.0)
    (root / "s4_meta_data.csv").write_text("\n".join(lines) + "\n")
    return root


def test_avsbench(tmp_path):
    root = make_avsbench(tmp_path / "s4")
    a, b = read_avsbench(root, check_files=True)
    assert (a.id, a.split, b.id, b.split, a.source) == ("vidA_1", "train", "vidB_2", "test", "avsbench")
    assert [Path(p).name for p in b.meta["frames"]] == [f"vidB_2_{k}.png" for k in range(1, 6)]
    assert b.meta["frame_times"] == [0.5, 1.5, 2.5, 3.5, 4.5] and b.key_time == 0.5 and b.duration == 5.0
    assert len(a.frame_masks) == 1 and len(b.frame_masks) == 5
    assert b.ssl_mask == b.frame_masks[0] and Path(b.frame_masks[4]).name == "vidB_2_5.png"
    assert b.objects[0].category == "piano" and b.objects[0].mask == b.ssl_mask
    assert Path(a.audio) == (root / "audio_wav" / "train" / "dog" / "vidA_1.wav").resolve()
    (only,) = read_avsbench(root, split="test")
    assert only.id == "vidB_2"


def test_avsbench_errors(tmp_path):
    with pytest.raises(DataError, match="s4_meta_data.csv"):
        read_avsbench(tmp_path)
    (tmp_path / "s4_meta_data.csv").write_text("name,category\nv,dog\n")
    with pytest.raises(DataError, match="columns"):
        read_avsbench(tmp_path)
    (tmp_path / "s4_meta_data.csv").write_text("name,category,split\nv,dog,train\n")
    with pytest.raises(DataError, match=r"s4_meta_data.csv:2: no frames"):
        read_avsbench(tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# MUSIC-AVQA

AVQA = [
    {"video_id": "00000272", "question_id": 5, "type": "[\"Audio-Visual\", \"Counting\"]",
     "question_content": "How many <Object> are in the video?", "templ_values": "[\"guitar\"]", "anser": "two"},
    {"video_id": "00000272", "question_id": 6, "type": "[\"Audio-Visual\", \"Temporal\"]",
     "question_content": "Where is the <FL> sounding <Object>?", "templ_values": "[\"first\", \"violin\"]",
     "anser": "left"},
    {"video_id": "00000999", "question_id": 7, "type": ["Audio-Visual", "Existential"],
     "question_content": "Is the <Object> in the video always playing?", "templ_values": ["piano"], "answer": "yes"},
    {"video_id": "00000999", "question_id": 8, "type": "[\"Audio\", \"Comparative\"]",
     "question_content": "Is the piano louder than the violin?", "templ_values": "[]", "anser": "no"},
    {"video_id": "00000999", "question_id": 9, "type": "[\"Visual\", \"Location\"]",
     "question_content": "Where is the performance?", "templ_values": "[]", "anser": "indoor"},
]


def test_musicavqa(tmp_path):
    path = tmp_path / "avqa-test.json"
    path.write_text(json.dumps(AVQA))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "00000272.mp4").write_bytes(b"")
    v1, v2 = read_musicavqa(path)
    assert (v1.id, v2.id, v1.source, v1.split) == ("00000272", "00000999", "musicavqa", "test")
    assert Path(v1.video) == (tmp_path / "videos" / "00000272.mp4").resolve()
    assert [t.prompt for t in v1.texts] == ["How many guitar are in the video?", "Where is the first sounding violin?"]
    assert [t.answer for t in v1.texts + v2.texts] == ["two", "left", "yes", "no", "indoor"]
    kinds = [t.meta["kind"] for t in v1.texts + v2.texts]
    assert kinds == ["counting", "temporal", "existential", "comparative", "location"]
    assert v1.texts[0].meta["type"] == ["Audio-Visual", "Counting"] and v1.texts[0].meta["question_id"] == 5
    assert all(t.task == "avqa" for t in v1.texts + v2.texts)


def test_musicavqa_errors(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([dict(AVQA[1], templ_values="[\"first\"]")]))
    with pytest.raises(DataError, match="2 placeholders but 1"):
        read_musicavqa(path)
    path.write_text(json.dumps([{k: v for k, v in AVQA[0].items() if k != "anser"}]))
    with pytest.raises(DataError, match="q.json.*anser"):
        read_musicavqa(path)


# ----------------------------------------------------------------------------------------------------------------
# Instruction JSON

INSTRUCT = [
    {"id": "c1", "video": "clips/c1.mp4", "task": "Audio-Referred Image Grounding", "conversations": [
        {"from": "human", "value": "<video>\n<audio>\nWhere is the dog that barks?"},
        {"from": "gpt", "value": "[0.12, 0.34, 0.56, 0.78]"},
        {"from": "human", "value": "And is it loud?"},
        {"from": "gpt", "value": "Yes."}]},
    {"id": "c2", "image": "img/c2.jpg", "audio": "aud/c2.wav", "task": "AV Fact-checking", "conversations": [
        {"from": "human", "value": "<image>\n<audio>\nThe bell rings. True or false?"},
        {"from": "gpt", "value": "True"}]},
    {"id": "c3", "image": "img/c3.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe it."}, {"from": "gpt", "value": "A cat."}]},
]


def test_instruct(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps(INSTRUCT))
    c1, c2, c3 = read_instruct(path)
    assert c1.video == str((tmp_path / "clips" / "c1.mp4").resolve()) and c1.image is None
    assert Path(c2.image).name == "c2.jpg" and Path(c2.audio).name == "c2.wav" and c2.video is None
    assert [(t.task, t.prompt, t.answer) for t in c1.texts] == [
        ("ground", "Where is the dog that barks?", "[0.12, 0.34, 0.56, 0.78]"), ("ground", "And is it loud?", "Yes.")]
    assert c1.texts[0].meta == {"turn": 0, "task": "Audio-Referred Image Grounding"}
    assert c2.texts[0].task == "factcheck" and c3.texts[0].task == "chat"
    assert all("<" not in t.prompt for r in (c1, c2, c3) for t in r.texts)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x"}]))
    with pytest.raises(DataError, match="bad.json.*conversations"):
        read_instruct(bad)


# ----------------------------------------------------------------------------------------------------------------
# Manifest and dispatch


def sample_records(media: Path) -> list[Record]:
    write_image(media / "a.png")
    write_wav(media / "a.wav")
    return [
        Record(id="a", source="synth", image="media/a.png", audio="media/a.wav", duration=0.5,
               objects=[ObjectAnn(category="bell", box=[0.1, 0.1, 0.4, 0.4], sounding=True, segments=[[0, 0.5]])],
               ssl_boxes=[[0.1, 0.1, 0.4, 0.4]],
               texts=[TextSample(task="ground", prompt="Where?", answer="[0.10, 0.10, 0.40, 0.40]")]),
        Record(id="b", source="synth", image="media/a.png", audio="media/a.wav", split="val", meta={"seed": 3}),
    ]


def test_manifest_round_trip(tmp_path):
    recs = sample_records(tmp_path / "media")
    path = write_manifest(recs, tmp_path / "m.jsonl")
    assert read_manifest(path, check_files=True) == recs
    resolved = read_manifest(path, resolve_paths=True)
    assert resolved[0].image == str((tmp_path / "media" / "a.png").resolve())
    assert read_any(path)[1].audio == str((tmp_path / "media" / "a.wav").resolve())


def test_manifest_errors_name_file_and_line(tmp_path):
    recs = sample_records(tmp_path / "media")
    path = tmp_path / "m.jsonl"
    lines = [r.to_json() for r in recs]
    path.write_text(lines[0] + "\n\n" + '{"id": "c", "source": "synth", "colour": 3}\n' + lines[1] + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl:3: .*colour"):
        read_manifest(path)
    path.write_text(lines[0] + "\n" + "{truncated\n")
    with pytest.raises(DataError, match=r"m\.jsonl:2"):
        read_manifest(path)
    missing = Record(id="z", source="synth", video="media/nothere.mp4")
    path.write_text(lines[0] + "\n" + missing.to_json() + "\n")
    assert len(read_manifest(path)) == 2  # lazily: not checked here
    with pytest.raises(DataError, match=r"nothere\.mp4.*m\.jsonl:2"):
        read_manifest(path, check_files=True)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")


def test_read_any_dispatch(tmp_path):
    vgg = make_vggss(tmp_path / "vgg", [[0.1, 0.2, 0.5, 0.6]], [])
    assert {r.source for r in read_any(vgg)} == {"vggss"}
    assert {r.source for r in read_any(tmp_path / "vgg")} == {"vggss"}  # the folder's one known JSON
    assert {r.source for r in read_any(make_flickr(tmp_path / "fl"))} == {"flickr"}
    assert {r.source for r in read_any(make_avsbench(tmp_path / "s4"))} == {"avsbench"}
    (tmp_path / "q.json").write_text(json.dumps(AVQA))
    assert {r.source for r in read_any(tmp_path / "q.json")} == {"musicavqa"}
    (tmp_path / "i.json").write_text(json.dumps(INSTRUCT))
    assert {r.source for r in read_any(tmp_path / "i.json")} == {"instruct"}
    write_manifest(sample_records(tmp_path / "man" / "media"), tmp_path / "man" / "manifest.jsonl")
    got = read_any(tmp_path / "man")
    assert [r.id for r in got] == ["a", "b"] and Path(got[0].image).is_absolute()
    (tmp_path / "x.json").write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(DataError, match="x.json"):
        read_any(tmp_path / "x.json")
    with pytest.raises(DataError, match="not found"):
        read_any(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell"):
        read_any(tmp_path / "empty")
