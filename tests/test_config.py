"""Configs: presets load, JSON round trips are exact, unknown keys and bad options are errors that name them."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import (
    PRESET_DIR,
    AlignConfig,
    AudioEncoderConfig,
    ConfigError,
    ImageEncoderConfig,
    ModelConfig,
    QFormerConfig,
    SlotConfig,
    TrainConfig,
    get_preset,
    list_presets,
)


def test_presets_listed_and_load():
    assert {"tiny", "base"} <= set(list_presets())
    tiny, base = get_preset("tiny"), get_preset("base")
    assert tiny.name == "tiny" and base.name == "base"
    assert base.image.model_name == "ViT-B-16" and base.lm.arch == "hf"
    assert tiny.image.grid == 8


@pytest.mark.parametrize("name", ["tiny", "base"])
def test_round_trip_exact(name, tmp_path):
    cfg = get_preset(name)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    cfg.save(tmp_path / "c.json")
    assert ModelConfig.load(tmp_path / "c.json") == cfg
    assert get_preset(str(tmp_path / "c.json")) == cfg


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("path", sorted((PRESET_DIR / "ablations").glob("*.json")), ids=lambda p: p.stem)
def test_each_ablation_preset_changes_one_field_of_tiny(path):
    """An ablation compares one change against the default run: its preset is the tiny preset with its own name
    and exactly one other field changed."""
    tiny, variant = _leaves(get_preset("tiny").to_dict()), _leaves(ModelConfig.load(path).to_dict())
    assert variant["name"] == path.stem
    changed = [k for k in tiny if k != "name" and tiny[k] != variant[k]]
    assert len(changed) == 1, changed


def test_unknown_key_named_with_path():
    with pytest.raises(ConfigError, match=r"ModelConfig\.slots\.iterz"):
        ModelConfig.from_dict({"slots": {"iterz": 3}})
    with pytest.raises(ConfigError, match=r"ModelConfig\.bogus"):
        ModelConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    "build",
    [
        lambda: AlignConfig(ot_solver="greedy"),  # type: ignore[arg-type]
        lambda: QFormerConfig(mask="bidirectional"),  # type: ignore[arg-type]
        lambda: TrainConfig(stage="pretrain"),  # type: ignore[arg-type]
        lambda: TrainConfig(mixed_precision="fp8"),  # type: ignore[arg-type]
        lambda: ImageEncoderConfig(arch="resnet"),  # type: ignore[arg-type]
    ],
)
def test_bad_option_is_error(build):
    with pytest.raises(ConfigError, match="is not one of"):
        build()


def test_types_checked():
    with pytest.raises(ConfigError, match="must be an integer"):
        ModelConfig.from_dict({"dim": "256"})
    with pytest.raises(ConfigError, match="true or false"):
        SlotConfig(iqr=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        ImageEncoderConfig(image_size=130)
    with pytest.raises(ConfigError, match="1024"):
        AudioEncoderConfig(window_seconds=10.0, hop_size=240)


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="not found"):
        ModelConfig.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.load(tmp_path / "bad.json")


@settings(max_examples=50, deadline=None)
@given(
    dim=st.integers(1, 512).map(lambda k: 8 * k),
    iters=st.integers(1, 10),
    solver=st.sampled_from(["sinkhorn", "ipot"]),
    lr=st.floats(1e-6, 1.0),
    mask=st.sampled_from(["causal", "full"]),
)
def test_round_trip_property(dim, iters, solver, lr, mask):
    cfg = ModelConfig(
        dim=dim,
        slots=SlotConfig(iters=iters),
        align=AlignConfig(ot_solver=solver),
        qformer=QFormerConfig(mask=mask),
    )
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    t = TrainConfig(lr=lr)
    assert TrainConfig.from_json(t.to_json()) == t


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="stride_frames"):
        QFormerConfig(window_frames=2, stride_frames=3)
    with pytest.raises(ConfigError, match="odd"):
        ModelConfig.from_dict({"cad": {"context_size": 4}})
    with pytest.raises(ConfigError, match="avace_heads"):
        ModelConfig(dim=250)
    with pytest.raises(ConfigError, match="speech_share"):
        TrainConfig(speech=True, speech_share=1.5)
