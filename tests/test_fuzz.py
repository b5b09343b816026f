"""Fuzzing the dataset readers: whatever a dataset file holds (arbitrary bytes, arbitrary JSON, mutated valid lines),
reading it either gives Records or raises ``DataError`` naming the file (for a JSONL manifest: the file and the first
bad line); never another exception, never a hang (each test has a hard timeout). Plus one totality property of the
grounding-text parser that tests/test_textformat.py leaves out: codecs of other sizes than the default.

    HF_HUB_OFFLINE=1 .venv/bin/pytest tests/test_fuzz.py
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avllm.data import read_any as data_read_any
from avllm.readers import (
    DataError,
    read_any,
    read_avsbench,
    read_flickr,
    read_instruct,
    read_manifest,
    read_musicavqa,
    read_vggss,
)
from avllm.record import TASKS, ObjectAnn, Record, SoundAnn, TextSample
from avllm.textformat import GroundingCodec

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_RECORDS = settings(FUZZ, max_examples=100)  # whole generated records: ~4x dearer an example
pytestmark = pytest.mark.timeout(120)  # a reader that hangs fails the test

# ----------------------------------------------------------------------------------------------------------------
# Strategies

# Characters that end a line for str.splitlines() but may stand raw inside a JSON string (JSON escapes < 0x20 only).
LINE_BREAKERS = "\x85\u2028\u2029"
text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(LINE_BREAKERS + '\t\r\n\\"/'), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | text
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3),
                          max_leaves=8)  # fmt: skip
unit = st.floats(0.0, 1.0)
box = st.lists(unit, min_size=4, max_size=4)
segment = st.lists(st.floats(0.0, 10.0), min_size=2, max_size=2)

no_nan = json_scalar.filter(lambda v: not (isinstance(v, float) and math.isnan(v)))  # records compare equal
valid_object = st.builds(
    ObjectAnn, category=text, box=box, sounding=st.booleans(), segments=st.lists(segment, max_size=2),
    frame_boxes=st.lists(box, max_size=2), loudness_db=st.none() | finite, mask=st.none() | text,
    attrs=st.dictionaries(text, no_nan, max_size=2),
)  # fmt: skip
valid_sound = st.builds(SoundAnn, category=text, segments=st.lists(segment, max_size=2),
                        loudness_db=st.none() | finite, text=st.none() | text)  # fmt: skip
valid_text = st.builds(TextSample, task=st.sampled_from(TASKS), prompt=text, answer=text,
                       meta=st.dictionaries(text, st.integers() | text, max_size=2))  # fmt: skip
valid_record = st.builds(
    Record, id=text, source=text, video=st.none() | text, image=st.none() | text, audio=st.none() | text,
    duration=st.floats(0.0, 60.0), key_time=st.floats(0.0, 60.0), width=st.integers(0, 4096),
    height=st.integers(0, 4096), objects=st.lists(valid_object, max_size=2), sounds=st.lists(valid_sound, max_size=2),
    ssl_boxes=st.lists(box, max_size=2), ssl_mask=st.none() | text, frame_masks=st.lists(text, max_size=2),
    texts=st.lists(valid_text, max_size=2), split=text,
    meta=st.dictionaries(text, st.integers() | text, max_size=2)
    | st.fixed_dictionaries({"frames": st.lists(text, max_size=2)}),
)  # fmt: skip

FIELDS = {
    "record": list(Record.__dataclass_fields__),
    "objects": list(ObjectAnn.__dataclass_fields__),
    "sounds": list(SoundAnn.__dataclass_fields__),
    "texts": list(TextSample.__dataclass_fields__),
}


@st.composite
def record_like(draw) -> dict:
    """A JSON object shaped like a record: known field names (and now and then an unknown one), each value either
    what the field holds or any JSON value; nested objects / sounds / texts likewise."""

    def fields(kind: str, good: dict) -> dict:
        names = draw(st.lists(st.sampled_from([*FIELDS[kind], "colour"]), unique=True, max_size=len(FIELDS[kind])))
        if kind == "record" and draw(st.booleans()):
            names = list(dict.fromkeys(["id", "source", *names]))
        return {n: draw(st.sampled_from([good.get(n), None])) if n in good and draw(st.booleans())
                else draw(json_value) for n in names}  # fmt: skip

    rec = draw(valid_record).to_dict()
    out = fields("record", rec)
    for kind in ("objects", "sounds", "texts"):
        if kind in out and draw(st.booleans()):
            out[kind] = [fields(kind, item) for item in rec[kind]] + draw(st.lists(json_value, max_size=1))
    return out


@st.composite
def mutated(draw, line: str) -> bytes:
    """``line`` (UTF-8) with a few byte edits: a slice deleted, bytes inserted or one byte replaced."""
    data = bytearray(line.encode("utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        if op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b'"', b",", b"{", b"]", b"\n"]))
        elif i < len(data):
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def json_mutated(draw, rec: Record) -> bytes:
    """A valid record's JSON with one field (maybe nested) set to any JSON value, or deleted."""
    d = rec.to_dict()
    target, name = d, draw(st.sampled_from(FIELDS["record"]))
    for kind in ("objects", "sounds", "texts"):
        if name == kind and d[kind] and draw(st.booleans()):
            target, name = d[kind][0], draw(st.sampled_from(FIELDS[kind]))
    if draw(st.booleans()):
        target.pop(name, None)
    else:
        target[name] = draw(json_value)
    return json.dumps(d, ensure_ascii=draw(st.booleans())).encode("utf-8")


def line_of(rec: Record, ascii_only: bool = True) -> bytes:
    return json.dumps(rec.to_dict(), ensure_ascii=ascii_only).encode("utf-8")


# ----------------------------------------------------------------------------------------------------------------
# Properties of the JSONL manifest

MANIFEST_READERS: dict[str, Callable[[Path], list[Record]]] = {
    "read_manifest": read_manifest,
    "resolved and checked": lambda p: read_manifest(p, resolve_paths=True, check_files=True),
    "read_any": read_any,
}


def _read(reader: Callable[[Path], list[Record]], path: Path) -> list[Record] | DataError:
    try:
        return reader(path)
    except DataError as e:
        return e


def check_manifest(lines: list[bytes]) -> None:
    """Write ``lines`` as a manifest and read it every way: Records, one per non-blank line, that survive a write
    and a read; or DataError naming the file and the first bad line (the lines before it read alone, it does not).
    Every read is of the same path, so that relative media paths (checked by one reader) mean the same each time."""
    data = b"\n".join(lines)
    lines = data.split(b"\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        for name, reader in MANIFEST_READERS.items():
            path.write_bytes(data)
            got = _read(reader, path)
            if isinstance(got, DataError):
                named = re.findall(re.escape(str(path)) + r":(\d+)\b", str(got))
                assert named, f"{name}: {got!r} does not name the file and line"
                n = int(named[-1])  # the last: a media path in the message may look like one too
                assert 1 <= n <= len(lines), (name, n, len(lines))
                for k, line in enumerate(lines[:n], start=1):
                    path.write_bytes(line)
                    ok = not isinstance(_read(reader, path), DataError)
                    assert ok == (k < n), f"{name}: line {k} alone {'reads' if ok else 'fails'}; error named line {n}"
                continue
            assert all(isinstance(r, Record) for r in got)
            assert len(got) == sum(1 for line in lines if line.decode("utf-8").strip()), name
            path.write_text("".join(r.to_json() + "\n" for r in got), encoding="utf-8")
            assert [r.to_json() for r in read_manifest(path)] == [r.to_json() for r in got], name


@FUZZ
@given(st.binary(max_size=400))
def test_manifest_of_arbitrary_bytes(data):
    check_manifest(data.split(b"\n"))


@FUZZ_RECORDS
@given(st.lists(st.binary(max_size=60) | valid_record.map(line_of) | st.just(b""), min_size=1, max_size=5))
def test_manifest_of_valid_and_arbitrary_lines(lines):
    check_manifest(lines)


@FUZZ_RECORDS
@given(st.lists(json_value.map(lambda v: json.dumps(v).encode()) | record_like().map(
    lambda d: json.dumps(d, ensure_ascii=False).encode()), min_size=1, max_size=4))  # fmt: skip
def test_manifest_of_arbitrary_json_lines(lines):
    check_manifest(lines)


@FUZZ_RECORDS
@given(st.data(), st.lists(valid_record, min_size=1, max_size=3))
def test_manifest_of_mutated_valid_lines(data, recs):
    lines = [line_of(r) for r in recs]
    k = data.draw(st.integers(0, len(lines) - 1))
    lines[k] = data.draw(mutated(lines[k].decode()) | json_mutated(recs[k]))
    check_manifest(lines)


@FUZZ_RECORDS
@given(st.lists(valid_record, max_size=4), st.booleans())
def test_manifest_of_valid_records_reads_them_back(recs, ascii_only):
    """Any records written as JSON lines, escaped or raw UTF-8 (where U+0085, U+2028 and U+2029 stand raw inside
    strings), read back equal."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(b"".join(line_of(r, ascii_only) + b"\n" for r in recs))
        assert read_manifest(path) == recs


def test_manifest_line_breaks_inside_strings():
    rec = Record(id="a\u2028b", source="synth", texts=[TextSample("caption", "Describe.", "A bell\x85rings.\u2029")])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(line_of(rec, ascii_only=False) + b"\n" + line_of(rec) + b"\n")
        assert read_manifest(path) == [rec, rec]


@pytest.mark.parametrize(
    "line",
    [b"[" * 100_000, b'{"id": "a", "source": "s", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     b'{"id": "a", "source": "s", "width": ' + b"9" * 5000 + b"}", b'{"id": "a", "source": "s", "width": 1e400}',
     b'{"id": "a", "source": "s", "video": 5}', b'{"id": "a", "source": "s", "meta": {"frames": "x.png"}}',
     b'{"id": "a", "source": "s", "objects": [{"category": "c", "box": [], "sounding": 1, "mask": 2}]}',
     b'\xef\xbb\xbf{"id": "a", "source": "s"}', b"\xff\xfe{}", b"\x00" * 100],
)  # fmt: skip
def test_manifest_pathological_lines(line):
    """Deep nesting, huge numbers, wrong types, a byte-order mark, UTF-16, NULs: each a DataError naming line 2."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(b'{"id": "ok", "source": "s"}\n' + line + b"\n")
        for reader in MANIFEST_READERS.values():
            with pytest.raises(DataError, match=re.escape(f"{path}:2")):
                reader(path)


def test_data_read_any_is_the_readers_one():
    assert data_read_any is read_any  # so the properties above hold for the trainer's reader too


def test_manifest_wrong_types_are_named():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_text('{"id": "a", "source": "s", "video": 5}\n')
        with pytest.raises(DataError, match=r"m\.jsonl:1: bad record: .*'video' must be a string or null, got a num"):
            read_any(path)
        path.write_text('{"id": "a", "source": "s", "objects": [{"category": "c", "box": [], "sounding": "yes"}]}\n')
        with pytest.raises(DataError, match=r"m\.jsonl:1: .*'objects'\[0\].*'sounding' must be true or false"):
            read_manifest(path)
        path.write_bytes(b'{"id": "a", "source": "s"}\n{"id": "b", "source": "\xff"}\n')
        with pytest.raises(DataError, match=r"m\.jsonl:2: not UTF-8"):
            read_manifest(path)
        with pytest.raises(DataError, match="cannot read manifest"):
            read_manifest(Path(tmp))  # a folder


# ----------------------------------------------------------------------------------------------------------------
# Properties of the JSON, XML and CSV dataset readers


def check_dataset(reader: Callable[[], list[Record]], named: Path) -> None:
    """``reader()`` gives Records that are valid manifest lines, or DataError naming ``named`` (a file or folder)."""
    try:
        got = reader()
    except DataError as e:
        assert str(named) in str(e), f"{e!r} does not name {named}"
        return
    for r in got:
        assert isinstance(r, Record)
        assert Record.from_json(r.to_json()).to_json() == r.to_json()  # what a reader gives, a manifest holds


JSON_READERS = (read_vggss, read_musicavqa, read_instruct, read_any)


def check_json_file(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.json"
        path.write_bytes(data)
        for reader in JSON_READERS:
            check_dataset(lambda reader=reader: reader(path), path)
        check_dataset(lambda: read_any(Path(tmp)), Path(tmp))  # the folder's one JSON file


@FUZZ
@given(st.binary(max_size=300))
def test_json_datasets_of_arbitrary_bytes(data):
    check_json_file(data)


@FUZZ
@given(json_value)
def test_json_datasets_of_arbitrary_json(value):
    check_json_file(json.dumps(value).encode())


anything = json_value | st.integers(-(10**400), 10**400)
nums = st.lists(st.one_of(st.floats(), st.integers(-(10**400), 10**400), json_value), min_size=3, max_size=5)
vggss_entry = st.fixed_dictionaries({"file": anything}, optional={"bbox": st.lists(nums, max_size=3) | anything,
                                                                  "class": anything})  # fmt: skip
avqa_entry = st.fixed_dictionaries(
    {"video_id": anything, "question_content": st.text(alphabet="<>ab _O", max_size=20) | anything},
    optional={"question_id": anything, "type": anything, "templ_values": anything, "anser": anything,
              "answer": anything},
)  # fmt: skip
turn = st.fixed_dictionaries({}, optional={"from": st.sampled_from(["human", "gpt", "user"]) | anything,
                                           "value": anything})  # fmt: skip
instruct_entry = st.fixed_dictionaries(
    {"conversations": st.lists(turn | anything, max_size=4) | anything},
    optional={"id": anything, "video": anything, "image": anything, "audio": anything, "task": anything},
)  # fmt: skip


@FUZZ
@given(st.lists(vggss_entry | avqa_entry | instruct_entry | anything, min_size=1, max_size=3))
def test_json_datasets_of_dataset_shaped_json(entries):
    check_json_file(json.dumps(entries).encode())


number_text = st.one_of(
    st.floats().map(repr), st.integers(-(10**30), 10**30).map(str), st.sampled_from(["", " ", "nan", "inf", "-inf",
    "1e999", "0x10", "1_0", "\u0663"]), st.text(max_size=6),
)  # fmt: skip


@st.composite
def flickr_xml(draw) -> bytes:
    def tag(name: str) -> str:
        return f"<{name}>{draw(number_text)}</{name}>" if draw(st.booleans()) else ""

    size = f"<size>{tag('width')}{tag('height')}</size>" if draw(st.booleans()) else ""
    objects = "".join(
        f"<object>{tag('annotator')}<{b}>{tag('xmin')}{tag('ymin')}{tag('xmax')}{tag('ymax')}</{b}></object>"
        for b in draw(st.lists(st.sampled_from(["bndbox", "bbox"]), max_size=3))
    )
    xml = f"<annotation>{size}{objects}</annotation>".replace("&", "&amp;").encode("utf-8", "surrogatepass")
    return xml if draw(st.booleans()) else draw(mutated(xml.decode("utf-8", "replace")))


@FUZZ
@given(st.binary(max_size=300) | flickr_xml())
def test_flickr_of_arbitrary_xml(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Annotations").mkdir()
        (Path(tmp) / "Annotations" / "a.xml").write_bytes(data)
        check_dataset(lambda: read_flickr(tmp), Path(tmp))
        check_dataset(lambda: read_any(tmp), Path(tmp))


csv_field = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(',"\n\r\x00'), max_size=8)


@FUZZ
@given(st.binary(max_size=300) | st.lists(st.lists(csv_field, max_size=4), max_size=4).map(
    lambda rows: ("name,category,split\n" + "\n".join(",".join(r) for r in rows)).encode()))  # fmt: skip
def test_avsbench_of_arbitrary_csv(data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "s4_meta_data.csv").write_bytes(data)
        check_dataset(lambda: read_avsbench(tmp), Path(tmp))
        check_dataset(lambda: read_any(tmp), Path(tmp))


@pytest.mark.parametrize(
    "entries",
    [[{"file": "a", "bbox": [[10**400, 0, 1, 1]]}], [{"file": "a\x00b", "bbox": []}],
     [{"video_id": "v", "question_content": 5, "anser": "x"}],
     [{"video_id": "v\x00", "question_content": "Q?", "anser": "x"}],
     [{"id": "i", "video": "c\x00.mp4", "conversations": []}]],
)  # fmt: skip
def test_json_dataset_pathological_entries(entries):
    """Integers too large for a float, NUL characters in file names, a non-string question."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.json"
        path.write_text(json.dumps(entries))
        with pytest.raises(DataError, match=re.escape(str(path))):
            read_any(path)


def test_deeply_nested_template_values_are_one_value():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.json"
        deep = "[" * 100_000
        path.write_text(json.dumps([{"video_id": "v", "question_content": "<A>?", "templ_values": deep, "anser": 1}]))
        (rec,) = read_any(path)
        assert rec.texts[0].prompt == deep + "?"


def test_overlong_file_names():
    """A file name longer than the file system allows is a missing file, not an OSError."""
    long = "x" * 300
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_text(Record(id="a", source="s", video=long).to_json() + "\n")
        assert read_manifest(path)[0].video == long
        with pytest.raises(DataError, match=re.escape(f"{path}:1")):
            read_manifest(path, check_files=True)
        vgg = Path(tmp) / "vggss.json"
        vgg.write_text(json.dumps([{"file": long, "bbox": [[0.1, 0.1, 0.5, 0.5]]}]))
        assert Path(read_vggss(vgg)[0].image).name == long + ".jpg"
        with pytest.raises(DataError, match="media file not found"):
            read_vggss(vgg, check_files=True)


def test_flickr_non_finite_numbers():
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "Annotations"
        ann.mkdir()
        box = "<bndbox><xmin>0</xmin><ymin>0</ymin><xmax>128</xmax><ymax>64</ymax></bndbox>"
        (ann / "a.xml").write_text(f"<annotation><size><width>nan</width><height>inf</height></size>"
                                   f"<object><annotator>nan</annotator>{box}</object></annotation>")  # fmt: skip
        (rec,) = read_flickr(tmp)
        assert (rec.width, rec.height) == (256, 256)  # the release's frame size, not a nan size
        assert rec.ssl_boxes == [[0.0, 0.0, 0.5, 0.25]] and rec.meta["annotators"] == [0]


# ----------------------------------------------------------------------------------------------------------------
# Grounding text: codecs of any size


@st.composite
def codec_and_text(draw) -> tuple[GroundingCodec, str]:
    codec = GroundingCodec(loc_bins=draw(st.integers(2, 300)), time_bins=draw(st.integers(2, 300)),
                           time_step=draw(st.floats(1e-3, 100.0)))  # fmt: skip
    tokens = [f"<loc_{draw(st.integers(0, codec.loc_bins + 2))}>" for _ in range(draw(st.integers(0, 9)))]
    tokens += [f"<t_{draw(st.integers(0, codec.time_bins + 2))}>" for _ in range(draw(st.integers(0, 5)))]
    noise = st.sampled_from([" ", ", ", "[", "]", "0.5", "\n", "<loc_", ">"]) | st.text(max_size=4)
    parts = draw(st.permutations(tokens + draw(st.lists(noise, max_size=8))))
    return codec, "".join(parts)


@FUZZ
@given(codec_and_text())
def test_parse_is_total_for_any_codec(case):
    codec, text = case
    got = codec.parse(text)
    for b in got.boxes:
        assert len(b) == 4 and all(0.0 <= v <= 1.0 for v in b) and b[0] <= b[2] and b[1] <= b[3]
    for s in got.segments:
        assert 0.0 <= s[0] <= s[1] and math.isfinite(s[1])
    assert isinstance(codec.decode_text(text), str)
    assert isinstance(codec.encode_text(text), str)
