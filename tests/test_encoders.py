"""Image (open_clip ViT) and audio (laion-clap HTSAT) encoders: token shapes, windows, masks, weight loading."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avllm.config import ConfigError, get_preset
from avllm.encoders import (
    AudioEncoder,
    ImageEncoder,
    WeightsError,
    build_audio_encoder,
    build_image_encoder,
)

TINY = get_preset("tiny")
SR = TINY.audio.sample_rate


@pytest.fixture(scope="module")
def image_encoder() -> ImageEncoder:
    torch.manual_seed(0)
    return build_image_encoder(TINY.image).eval()


@pytest.fixture(scope="module")
def audio_encoder() -> AudioEncoder:
    torch.manual_seed(0)
    return build_audio_encoder(TINY.audio).eval()


def _tone(seconds: float, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = round(seconds * SR)
    t = torch.arange(n) / SR
    f = 200 + 800 * torch.rand(batch, 1, generator=g)
    return (0.3 * torch.sin(2 * math.pi * f * t) + 0.05 * torch.randn(batch, n, generator=g)).float()


class _RunsCode:
    """Unpickling this opens (creates) a file: what a weights-only load must refuse to do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ----------------------------------------------------------------------------------------------------------------
# image


def test_image_tokens_shape_without_cls(image_encoder):
    g, w = TINY.image.grid, TINY.image.width
    x = torch.rand(3, 3, TINY.image.image_size, TINY.image.image_size)
    with torch.no_grad():
        tok = image_encoder(x)
        small = image_encoder(torch.rand(2, 3, 96, 96))  # resized inside
    assert tok.shape == (3, g * g, w) and small.shape == (2, g * g, w)
    assert image_encoder.grid == g and image_encoder.out_dim == w
    assert torch.isfinite(tok).all()


def test_image_normalisation_inside(image_encoder):
    s = TINY.image.image_size
    mean_image = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1).expand(1, 3, s, s)
    with torch.no_grad():
        ours = image_encoder(mean_image)
        _, raw = image_encoder.visual(torch.zeros(1, 3, s, s))  # the tower on the normalised (all-zero) image
    torch.testing.assert_close(ours, raw)


def _tiny_clip():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    im = TINY.image
    vision = CLIPVisionCfg(layers=im.layers, width=im.width, head_width=im.head_width, patch_size=im.patch_size,
                           image_size=im.image_size, mlp_ratio=im.mlp_ratio)
    text = CLIPTextCfg(context_length=8, vocab_size=50, width=32, heads=2, layers=1)
    torch.manual_seed(123)
    return CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text)


def test_image_loads_full_clip_state_dict(tmp_path):
    clip = _tiny_clip()
    path = tmp_path / "clip.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in clip.state_dict().items()}}, path)
    enc = build_image_encoder(TINY.image.replace(pretrained=str(path)))
    torch.testing.assert_close(enc.visual.conv1.weight, clip.visual.conv1.weight)
    torch.testing.assert_close(enc.visual.transformer.resblocks[-1].mlp.c_fc.weight,
                               clip.visual.transformer.resblocks[-1].mlp.c_fc.weight)
    assert enc.load_report is not None and not enc.load_report.missing and not enc.load_report.unexpected
    x = torch.rand(1, 3, 128, 128)
    clip.visual.output_tokens = True
    with torch.no_grad():
        _, want = clip.visual.eval()((x - enc.mean) / enc.std)
        torch.testing.assert_close(enc.eval()(x), want)


def test_image_loads_visual_only_safetensors(tmp_path):
    from safetensors.torch import save_file

    clip = _tiny_clip()
    path = tmp_path / "visual.safetensors"
    save_file({k: v.contiguous() for k, v in clip.visual.state_dict().items()}, str(path))
    enc = build_image_encoder(TINY.image.replace(pretrained=str(path), freeze=True))
    torch.testing.assert_close(enc.visual.positional_embedding, clip.visual.positional_embedding)
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.visual.training  # a frozen tower stays in eval mode


def test_image_weight_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_image_encoder(TINY.image.replace(pretrained=str(tmp_path / "missing.pt")))

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": _RunsCode(marker)}, evil)
    with pytest.raises(WeightsError, match="refused"):
        build_image_encoder(TINY.image.replace(pretrained=str(evil)))
    assert not marker.exists()

    unrelated = tmp_path / "other.pt"
    torch.save({"encoder.layer.0.weight": torch.zeros(3)}, unrelated)
    with pytest.raises(WeightsError, match="no weights"):
        build_image_encoder(TINY.image.replace(pretrained=str(unrelated)))

    wider = tmp_path / "wider.pt"
    torch.save({"conv1.weight": torch.zeros(256, 3, 16, 16)}, wider)
    with pytest.raises(WeightsError, match="shape mismatch"):
        build_image_encoder(TINY.image.replace(pretrained=str(wider)))


def test_image_open_clip_tag_offline_is_a_clear_error():
    base = get_preset("base").image
    with pytest.raises(WeightsError, match="cannot fetch.*local path"):
        build_image_encoder(base.replace(pretrained="openai"))
    with pytest.raises(WeightsError, match="neither a file nor an open_clip tag"):
        build_image_encoder(base.replace(pretrained="no-such-tag"))
    with pytest.raises(ConfigError, match="width"):
        ImageEncoder(base.replace(width=512))


# ----------------------------------------------------------------------------------------------------------------
# audio


@pytest.mark.parametrize("seconds", [2.0, 5.0, 12.0])
def test_audio_tokens_mask_times(audio_encoder, seconds):
    cfg = TINY.audio
    with torch.no_grad():
        tok, mask, times = audio_encoder(_tone(seconds, batch=2))
    windows = math.ceil(seconds / cfg.window_seconds)
    ta = windows * cfg.tokens_per_window
    assert tok.shape == (2, ta, cfg.token_dim) and mask.shape == (2, ta) and times.shape == (ta,)
    assert mask.dtype == torch.bool and torch.isfinite(tok).all()
    assert (times.diff() > 0).all()
    torch.testing.assert_close(times.diff(), torch.full((ta - 1,), cfg.seconds_per_token))
    assert times[0] == pytest.approx(cfg.seconds_per_token / 2)
    assert int(mask[0].sum()) == math.ceil(seconds / cfg.seconds_per_token)


def test_audio_mask_respects_lengths(audio_encoder):
    spt = TINY.audio.seconds_per_token
    audio = _tone(12.0, batch=3)
    lengths = torch.tensor([12 * SR, 7 * SR, SR // 2])
    with torch.no_grad():
        tok, mask, times = audio_encoder(audio, lengths)
    assert tok.shape[1] == 96
    for row, n in enumerate(lengths.tolist()):
        valid = mask[row]
        assert int(valid.sum()) == math.ceil(n / SR / spt)
        assert valid[: int(valid.sum())].all()  # a prefix: no holes
        assert ((times - spt / 2 < n / SR) == valid).all()
    # lengths shorter than the tensor: audio beyond the longest row is not encoded
    with torch.no_grad():
        tok2, mask2, _ = audio_encoder(audio, torch.tensor([4 * SR, 3 * SR, SR]))
    assert tok2.shape[1] == 32 and mask2.shape == (3, 32)


def test_audio_windows_are_encoded_independently(audio_encoder):
    """Each 5 s window gives the tokens of that window encoded alone; a short clip is zero-padded."""
    W = round(TINY.audio.window_seconds * SR)
    audio = _tone(12.0, batch=1, seed=3)
    with torch.no_grad():
        full, _, _ = audio_encoder(audio)
        second, _, _ = audio_encoder(audio[:, W : 2 * W])
        short, _, _ = audio_encoder(audio[:, : 2 * SR])
        padded, _, _ = audio_encoder(torch.nn.functional.pad(audio[:, : 2 * SR], (0, W - 2 * SR)))
    torch.testing.assert_close(full[:, 32:64], second, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(short, padded, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(full[:, :32], full[:, 32:64], atol=1e-3)


def test_audio_tokens_match_htsat_forward(audio_encoder):
    """Our FFT spectrogram + HTSAT steps give HTSAT.forward's fine_grained_embedding, one token in 32."""
    wave = _tone(TINY.audio.window_seconds, batch=2, seed=5)
    with torch.no_grad():
        ref_spec = audio_encoder.htsat.spectrogram_extractor(wave)
        ref = audio_encoder.htsat({"waveform": wave})["fine_grained_embedding"]  # (2, 1024, C)
        ours, _, _ = audio_encoder(wave)
    torch.testing.assert_close(audio_encoder.spectrogram(wave), ref_spec, rtol=1e-4, atol=1e-4 * ref_spec.max())
    assert torch.equal(ref[:, ::32], ref[:, 31::32])  # HTSAT repeats each token 32 times
    torch.testing.assert_close(ours, ref[:, ::32], rtol=1e-4, atol=1e-4)


def test_audio_loads_laion_clap_checkpoint(tmp_path, audio_encoder):
    torch.manual_seed(7)
    src = AudioEncoder(TINY.audio).eval()
    state = {f"module.audio_branch.{k}": v for k, v in src.htsat.state_dict().items()}
    state["module.text_branch.embeddings.word_embeddings.weight"] = torch.zeros(4, 4)
    state["module.audio_projection.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "clap.pt"
    torch.save({"epoch": 10, "state_dict": state}, path)
    enc = build_audio_encoder(TINY.audio.replace(pretrained=str(path), freeze=True))
    torch.testing.assert_close(enc.htsat.patch_embed.proj.weight, src.htsat.patch_embed.proj.weight)
    assert not torch.equal(enc.htsat.patch_embed.proj.weight, audio_encoder.htsat.patch_embed.proj.weight)
    assert enc.load_report is not None and not enc.load_report.missing
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.htsat.training
    x = _tone(3.0)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[0], src(x)[0])

    with pytest.raises(WeightsError, match="not found"):
        build_audio_encoder(TINY.audio.replace(pretrained=str(tmp_path / "nope.pt")))
    with pytest.raises(WeightsError, match="local path"):
        build_audio_encoder(TINY.audio.replace(pretrained="630k-audioset-best"))


def test_audio_pooled_tokens_and_config_checks():
    enc = AudioEncoder(TINY.audio.replace(tokens_per_window=16)).eval()
    with torch.no_grad():
        tok, mask, times = enc(_tone(6.0))
    assert tok.shape == (1, 32, TINY.audio.token_dim) and times[1] - times[0] == pytest.approx(5 / 16)
    with pytest.raises(ConfigError, match="tokens_per_window"):
        AudioEncoder(TINY.audio.replace(tokens_per_window=24))


def test_base_audio_tower_builds_and_runs():
    enc = AudioEncoder(get_preset("base").audio).eval()
    assert enc.out_dim == 768
    assert 25e6 < sum(p.numel() for p in enc.parameters()) < 40e6  # HTSAT-tiny, as in LAION-CLAP
    with torch.no_grad():
        tok, mask, times = enc(_tone(3.0))
    assert tok.shape == (1, 32, 768) and times[-1] == pytest.approx(10 - 10 / 64)


def test_import_is_light():
    code = ("import sys, avllm.encoders, avllm.llm, avllm.tokenizer; "
            "heavy = [m for m in ('laion_clap', 'open_clip', 'peft', 'librosa') if m in sys.modules]; "
            "assert not heavy, heavy")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
