"""Checkpoints: exact round trip, atomic writes, and refusal of pickles, damaged files, unknown keys, wrong shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from avllm import checkpoint
from avllm.checkpoint import CheckpointError
from model_factory import synth_batch, tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(3)
    model = tiny_model().eval()
    path = tmp_path_factory.mktemp("ckpt") / "step_1"
    checkpoint.save(model, path, meta={"step": 1})
    return model, path


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_round_trip_exact(saved):
    model, path = saved
    loaded = checkpoint.load(path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    batch = synth_batch(batch_size=2)
    with torch.no_grad():
        fa = model.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
        fb = loaded.encode(batch["frames"], batch["frame_times"], batch["audio"], batch["audio_len"])
    assert torch.equal(fa.ssl_map, fb.ssl_map) and torch.equal(fa.box, fb.box)
    assert checkpoint.read_meta(path) == {"step": 1}
    assert loaded.lm.tokenizer.get_vocab() == model.lm.tokenizer.get_vocab()


def test_half_export_is_smaller_and_close(saved, tmp_path):
    model, path = saved
    out = checkpoint.export(path, tmp_path / "half")
    full = (path / checkpoint.WEIGHTS).stat().st_size
    half = (out / checkpoint.WEIGHTS).stat().st_size
    assert half < 0.55 * full
    loaded = checkpoint.load(out)
    w = "img_proj.1.weight"
    assert loaded.state_dict()[w].dtype == torch.float32
    assert torch.allclose(loaded.state_dict()[w], model.state_dict()[w], atol=1e-3)
    assert not (out / "train_state.pt").exists()


def test_export_renames_the_config_and_nothing_else(saved, tmp_path):
    model, path = saved
    out = checkpoint.export(path, tmp_path / "named", name="shipped-name")
    back = checkpoint.load(out)
    assert back.cfg.name == "shipped-name" != model.cfg.name
    assert back.cfg.replace(name=model.cfg.name) == model.cfg
    assert checkpoint.read_meta(out)["exported_from"] == str(path)


def test_atomic_write_keeps_the_old_checkpoint(saved, tmp_path):
    model, path = saved
    target = _copy(path, tmp_path / "ckpt")
    before = (target / checkpoint.WEIGHTS).read_bytes()

    def boom(_tmp: Path) -> None:
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        checkpoint.save(model, target, extra_writer=boom)
    assert (target / checkpoint.WEIGHTS).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left behind


def test_save_clears_what_a_killed_write_of_the_same_name_left(saved, tmp_path):
    model, _ = saved
    killed = tmp_path / ".ckpt.k1ll3d"  # what kill -9 leaves mid-save: the temporary folder, never renamed
    killed.mkdir()
    (killed / checkpoint.WEIGHTS).write_bytes(b"half")
    other = tmp_path / ".other.k1ll3d"  # another checkpoint's leftover is not this save's business
    other.mkdir()
    checkpoint.save(model, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.k1ll3d", "ckpt"]
    checkpoint.load(tmp_path / "ckpt")


def test_missing_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        checkpoint.load(tmp_path / "empty")


def test_pickle_refused(tmp_path):
    f = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, f)
    with pytest.raises(CheckpointError, match="pickle"):
        checkpoint.load(f)


def test_truncated_safetensors_refused(saved, tmp_path):
    _, path = saved
    bad = _copy(path, tmp_path / "bad")
    data = (bad / checkpoint.WEIGHTS).read_bytes()
    (bad / checkpoint.WEIGHTS).write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="damaged"):
        checkpoint.load(bad)


def test_unknown_config_key_refused(saved, tmp_path):
    _, path = saved
    bad = _copy(path, tmp_path / "bad")
    cfg = json.loads((bad / checkpoint.CONFIG).read_text())
    cfg["slots"]["iterations"] = 3
    (bad / checkpoint.CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"slots\.iterations"):
        checkpoint.load(bad)


def test_wrong_shape_refused(saved, tmp_path):
    _, path = saved
    bad = _copy(path, tmp_path / "bad")
    state = load_file(str(bad / checkpoint.WEIGHTS))
    state["img_proj.1.weight"] = torch.zeros(3, 3)
    save_file(state, str(bad / checkpoint.WEIGHTS))
    with pytest.raises(CheckpointError, match=r"img_proj\.1\.weight has shape \(3, 3\)"):
        checkpoint.load(bad)


def test_missing_and_extra_tensors_refused(saved, tmp_path):
    _, path = saved
    bad = _copy(path, tmp_path / "bad")
    state = load_file(str(bad / checkpoint.WEIGHTS))
    extra = dict(state, **{"not.a.weight": torch.zeros(1)})
    save_file(extra, str(bad / checkpoint.WEIGHTS))
    with pytest.raises(CheckpointError, match="not.a.weight"):
        checkpoint.load(bad)
    del state["box_head.q.weight"]
    save_file(state, str(bad / checkpoint.WEIGHTS))
    with pytest.raises(CheckpointError, match="lacks tensors: box_head.q.weight"):
        checkpoint.load(bad)
