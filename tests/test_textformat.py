"""Display and model (location-token) forms of boxes and segments: round trips, totality of parsing."""

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import LMConfig
from avllm.textformat import (
    GroundingCodec,
    format_box,
    format_boxes,
    format_segment,
    format_segments,
    parse_boxes,
    parse_display,
    parse_segments,
)

unit = st.floats(0.0, 1.0, allow_nan=False)
seconds = st.floats(0.0, 7.99, allow_nan=False)


@st.composite
def boxes(draw):
    x0, x1 = sorted((draw(unit), draw(unit)))
    y0, y1 = sorted((draw(unit), draw(unit)))
    return [x0, y0, x1, y1]


@st.composite
def segments(draw):
    return sorted((draw(seconds), draw(seconds)))


CODEC = GroundingCodec()


def _valid_box(b):
    return len(b) == 4 and all(0.0 <= v <= 1.0 for v in b) and b[0] <= b[2] and b[1] <= b[3]


# ----------------------------------------------------------------------------------------------------------------
# Display form


def test_display_examples():
    assert format_box([0.123, 0.34, 0.561, 0.78]) == "[0.12, 0.34, 0.56, 0.78]"
    assert format_segment([1.25, 2.5]) == "[1.25, 2.50]"
    assert format_boxes([[0, 0, 1, 1], [0.5, 0.5, 0.75, 0.75]]) == "[0.00, 0.00, 1.00, 1.00], [0.50, 0.50, 0.75, 0.75]"
    assert format_segments([]) == ""
    assert format_box([-0.001, 0.2, 1.3, 0.4]) == "[0.00, 0.20, 1.00, 0.40]"  # clipped, never "-0.00"
    text = "The bell is at [0.12, 0.34, 0.56, 0.78]; it rings from [1.25, 2.50] and [3.0s, 4.5s]."
    assert parse_boxes(text) == [[0.12, 0.34, 0.56, 0.78]]
    assert parse_segments(text) == [[1.25, 2.5], [3.0, 4.5]]


def test_display_rules():
    assert parse_boxes("[0.6, 0.7, 0.1, 0.2]") == [[0.1, 0.2, 0.6, 0.7]]  # sorted per axis
    assert parse_boxes("[1.02, 0.1, -0.01, 0.5]") == [[0.0, 0.1, 1.0, 0.5]]  # within tolerance: clipped
    assert parse_boxes("[12, 40, 100, 200]") == []  # pixel boxes are not boxes
    assert parse_boxes("[0.1, 0.2, 0.3]") == [] and parse_segments("[0.1, 0.2, 0.3]") == []
    assert parse_boxes("[nan, 0.1, 0.2, 0.3]") == []
    assert parse_boxes("[[0.1, 0.2, 0.3, 0.4]]") == [[0.1, 0.2, 0.3, 0.4]]  # innermost group
    assert parse_segments("[2.5, 1.0]") == [[1.0, 2.5]]
    assert parse_segments("[-3, -1]") == []
    assert parse_segments("[1e400, 2]") == []  # infinite
    assert parse_boxes("[0.1, 0.") == [] and parse_segments("[1.0, ") == []


def test_format_rejects_bad_input():
    for bad in ([0.1, 0.2, 0.3], [0.1, float("nan"), 0.2, 0.3], [float("inf")] * 4):
        with pytest.raises(ValueError):
            format_box(bad)
    with pytest.raises(ValueError):
        format_segment([1.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(boxes(), max_size=4), st.lists(segments(), max_size=4))
def test_display_round_trip(bs, ss):
    text = f"boxes {format_boxes(bs)} and segments {format_segments(ss)}."
    got = parse_display(text)
    assert got.boxes == [[round(v, 2) for v in b] for b in bs]
    assert got.segments == [[round(v, 2) for v in s] for s in ss]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_is_total_on_any_text(text):
    got = parse_display(text)
    assert all(_valid_box(b) for b in got.boxes)
    assert all(0.0 <= s[0] <= s[1] and math.isfinite(s[1]) for s in got.segments)
    model = CODEC.parse(text)
    assert all(_valid_box(b) for b in model.boxes)
    assert isinstance(CODEC.decode_text(text), str)
    assert isinstance(CODEC.encode_text(text), str)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="[]0123456789.,-+eEs naN\n\u00a0\u0663", max_size=200))
def test_parse_is_total_on_bracket_soup(text):
    got = parse_display(text)
    assert all(_valid_box(b) for b in got.boxes)
    assert all(0.0 <= s[0] <= s[1] for s in got.segments)


def test_parse_handles_odd_inputs():
    huge = "[0.1, 0.2, 0.3, 0.4] " + "x" * 200_000 + "[" * 10_000 + "9" * 5_000 + "]"
    assert parse_boxes(huge) == [[0.1, 0.2, 0.3, 0.4]]
    assert parse_boxes("[" + "9" * 400 + ", 0, 0, 0]") == []
    assert parse_boxes(None) == []  # type: ignore[arg-type]
    assert CODEC.parse(b"[0.1, 0.2, 0.3, 0.4]").boxes == []  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------------------
# Model form


def test_codec_tokens_and_config():
    codec = GroundingCodec.from_config(LMConfig(loc_bins=16, time_bins=8, time_step=0.5))
    toks = codec.special_tokens()
    assert len(toks) == 16 + 8 and len(set(toks)) == len(toks)
    assert toks[0] == "<loc_0>" and toks[15] == "<loc_15>" and toks[16] == "<t_0>" and toks[-1] == "<t_7>"
    assert codec.max_time == 4.0
    assert codec.loc_index(1.0) == 15 and codec.loc_index(-3) == 0
    assert codec.time_index(100.0) == 7  # clipped to the last bin
    with pytest.raises(ValueError):
        GroundingCodec(loc_bins=1)


def test_codec_examples():
    text = "The bell is at [0.12, 0.34, 0.56, 0.78], ringing [1.25, 2.50]."
    enc = CODEC.encode_text(text)
    assert enc == "The bell is at <loc_3><loc_10><loc_17><loc_24>, ringing <t_10><t_20>."
    assert CODEC.decode_text(enc) == "The bell is at [0.11, 0.33, 0.55, 0.77], ringing [1.31, 2.56]."
    assert CODEC.encode_text("[1, 2, 3] and [0.1, 0.2, 2.0, 0.4]") == "[1, 2, 3] and [0.1, 0.2, 2.0, 0.4]"


def test_codec_decoding_rules():
    # eight tokens in a row are two boxes; leftovers and out-of-range tokens drop
    got = CODEC.parse("<loc_1><loc_2><loc_3><loc_4> <loc_5><loc_6><loc_7><loc_8><loc_9><loc_10>")
    assert len(got.boxes) == 2
    assert CODEC.parse("<loc_1><loc_99><loc_2><loc_3><loc_4>").boxes == []
    assert CODEC.decode_text("a <loc_1><loc_2> b") == "a  b"
    assert CODEC.decode_text("[<loc_0><loc_0><loc_1><loc_1>]") == "[[0.02, 0.02, 0.05, 0.05]]"  # tokens in brackets
    # reversed and equal bins: sorted, never empty
    (b,) = CODEC.parse("<loc_20><loc_5><loc_3><loc_5>").boxes
    assert b[0] < b[2] and b[1] < b[3]
    assert b[1] == pytest.approx(5 / 32) and b[3] == pytest.approx(6 / 32)  # spans the shared bin
    (s,) = CODEC.parse("<t_9><t_2>").segments
    assert s == [pytest.approx(2.5 * 0.125), pytest.approx(9.5 * 0.125)]
    # mixed model and display text, in order of appearance
    got = CODEC.parse("[0.1, 0.2, 0.3, 0.4] then <loc_0><loc_0><loc_31><loc_31>")
    assert got.boxes[0] == [0.1, 0.2, 0.3, 0.4] and got.boxes[1][2] == pytest.approx(31.5 / 32)


@settings(max_examples=200, deadline=None)
@given(st.lists(boxes(), min_size=1, max_size=3), st.lists(segments(), max_size=3))
def test_model_round_trip_within_half_a_bin(bs, ss):
    display = f"at {format_boxes(bs)} during {format_segments(ss)}"
    want = parse_display(display)  # what the display form says (2 decimals)
    got = CODEC.parse(CODEC.encode_text(display))
    assert len(got.boxes) == len(want.boxes) and len(got.segments) == len(want.segments)
    half_loc, half_t = 0.5 / CODEC.loc_bins, 0.5 * CODEC.time_step
    for w, g in zip(want.boxes, got.boxes):
        assert g[0] < g[2] and g[1] < g[3]  # never empty
        for lo, hi in ((0, 2), (1, 3)):
            shared = CODEC.loc_index(w[lo]) == CODEC.loc_index(w[hi])
            tol = 2 * half_loc if shared else half_loc  # a shared bin decodes to the bin's span
            assert abs(g[lo] - w[lo]) <= tol + 1e-9 and abs(g[hi] - w[hi]) <= tol + 1e-9
    for w, g in zip(want.segments, got.segments):
        assert g[0] < g[1]
        shared = CODEC.time_index(w[0]) == CODEC.time_index(w[1])
        tol = 2 * half_t if shared else half_t
        assert abs(g[0] - w[0]) <= tol + 1e-9 and abs(g[1] - w[1]) <= tol + 1e-9
    # the decoded display text reads back to the same boxes, up to its 2-decimal rounding
    again = parse_display(CODEC.decode_text(CODEC.encode_text(display)))
    for g, a in zip(got.boxes, again.boxes):
        assert all(abs(x - y) <= 0.005 + 1e-9 for x, y in zip(g, a))
    assert len(again.segments) == len(got.segments)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            CODEC.special_tokens()[:6]
            + CODEC.special_tokens()[30:36]
            + CODEC.special_tokens()[-3:]
            + ["<loc_99>", "<t_64>", "<loc_", ">", " ", ", ", "[", "]", "0.5", "\n"]
        ),
        max_size=60,
    )
)
def test_parse_is_total_on_token_soup(tokens):
    text = "".join(tokens)
    got = CODEC.parse(text)
    for b in got.boxes:
        assert _valid_box(b) and b[0] < b[2] and b[1] < b[3]
    for s in got.segments:
        assert 0.0 <= s[0] < s[1] <= CODEC.max_time
    # decoding removes every special token
    dec = CODEC.decode_text(text)
    assert "<loc_1>" not in dec and "<t_0>" not in dec and "<loc_0>" not in dec and "<loc_99>" not in dec


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(CODEC.special_tokens()[:5] + CODEC.special_tokens()[-5:] + [" ", ", "]), max_size=40))
def test_decoded_token_soup_reads_back(tokens):
    text = "".join(tokens)
    got = CODEC.parse(text)
    again = parse_display(CODEC.decode_text(text))
    assert len(again.boxes) == len(got.boxes) and len(again.segments) == len(got.segments)
    for g, a in zip(got.boxes + got.segments, again.boxes + again.segments):
        assert all(abs(x - y) <= 0.005 + 1e-9 for x, y in zip(g, a))


def test_prompt_times_become_time_tokens():
    codec = GroundingCodec()  # 0.125 s bins
    assert codec.encode_prompt("True or false: At 2.50 seconds the bell can be heard.") == (
        "True or false: At <t_20> seconds the bell can be heard.")
    assert codec.encode_prompt("Is it on at 3 s or 1.5 sec?") == "Is it on at <t_24> s or <t_12> sec?"
    # numbers that are not seconds, words that start with s, and tokens already written stay as they are
    for kept in ("Are there 2 sounds?", "Is the bell 2 sizes bigger?", "at <t_20> seconds", "version 1.5"):
        assert codec.encode_prompt(kept) == kept
    assert codec.encode_prompt("in [1.00, 2.50]") == "in <t_8><t_20>"  # display groups as in encode_text
    assert codec.encode_prompt("at 99 seconds") == f"at <t_{codec.time_bins - 1}> seconds"  # clipped


@given(seconds)
def test_prompt_time_token_holds_the_time(t):
    codec = GroundingCodec()
    enc = codec.encode_prompt(f"You can hear the bell {t:.2f} seconds into the clip.")
    (j,) = [int(m) for m in re.findall(r"<t_(\d+)>", enc)]
    assert abs(codec.time_value(j) - round(t, 2)) <= codec.time_step / 2 + 1e-9
