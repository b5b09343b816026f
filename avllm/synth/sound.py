"""Audio of a scene, by numpy: one track per source (its class pattern inside its segments), background noise at
the scene's SNR, peak-normalised mix, loudness per source, and per-frame envelopes for the visual pulse.

Inside a segment ``[start, end]`` a source's pattern starts at ``start`` (a strike, hit or chirp lands on the
onset) and is faded in and out over 5 ms *inside* the segment, so the segment holds all of its sound. A source's
loudness is the RMS of its final (scaled) track over its segments, in dBFS (0 dBFS = RMS of a full-scale constant).
The SNR is 10 log10(mean power of all sources / mean power of the noise) over the whole clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from avllm.synth.classes import get_class
from avllm.synth.scene import Scene, SourceSpec

__all__ = ["AudioResult", "pattern", "render_audio", "frame_envelopes"]

_RAMP_S = 0.005
_PEAK = 0.9  # the mix is scaled so that its peak is this


@dataclass
class AudioResult:
    audio: np.ndarray  # (S,) float32 in [-1, 1]
    tracks: np.ndarray  # (K, S) float32 scaled tracks of the sources (speech last when present)
    loudness_db: list[float]  # (K,) dBFS of each track over its segments
    speech_segment: list[float] | None  # [start, end] seconds of the spoken phrase, when any
    scale: float  # gain applied to the mix


def pattern(envelope: str, f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) float32: ``n`` samples of a sound family's pattern, starting with an event at sample 0.

    rng draws the instance's rates, phases and decays (call with a generator seeded per source). float32 keeps it
    fast; phases stay accurate to ~1e-2 rad over a few seconds, which is inaudible here."""
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    tau2 = np.float32(2 * math.pi)
    f0 = np.float32(f0)
    if envelope == "strikes":  # bell: inharmonic partials, exponential decay, struck every P seconds
        P, tau = np.float32(rng.uniform(0.45, 0.8)), np.float32(rng.uniform(0.25, 0.4))
        tm = t % P
        e = np.exp(-tm / tau)
        x = np.sin(tau2 * f0 * t) * e
        x += 0.45 * np.sin(tau2 * 2.76 * f0 * t + 1.0) * e ** np.float32(1 / 0.6)
        x += 0.2 * np.sin(tau2 * 5.40 * f0 * t + 2.0) * e ** np.float32(1 / 0.4)
        return x * np.minimum(np.float32(1), tm / np.float32(0.003))
    if envelope == "ticks":  # clock: short damped tone clicks, tick-tock (alternating levels)
        P, tau = np.float32(rng.uniform(0.12, 0.18)), np.float32(rng.uniform(0.010, 0.014))
        tm = t % P
        amp = np.where((t // P) % 2 == 0, np.float32(1.0), np.float32(0.6))
        return amp * np.sin(tau2 * f0 * tm) * np.exp(-tm / tau) * np.minimum(np.float32(1), tm / np.float32(0.001))
    if envelope == "thumps":  # drum: low sine with a fast downward glide, decaying, hit every P seconds
        P, tau = np.float32(rng.uniform(0.25, 0.45)), np.float32(rng.uniform(0.08, 0.14))
        tm = t % P
        phase = tau2 * f0 * (tm + np.float32(0.03) * (1 - np.exp(-tm / np.float32(0.03))))
        return np.sin(phase) * np.exp(-tm / tau) * np.minimum(np.float32(1), tm / np.float32(0.002))
    if envelope == "sweep":  # siren: f(t) = f0 + dev * sin(2 pi t / P)
        P, dev = np.float32(rng.uniform(0.6, 1.2)), np.float32(rng.uniform(250, 400))
        phase = tau2 * f0 * t - dev * P * (np.cos(tau2 * t / P) - 1)
        return np.sin(phase) + np.float32(0.3) * np.sin(2 * phase)
    if envelope == "hum":  # engine / fan: harmonics 1/k with a slow amplitude wobble
        K = int(np.clip(900 // f0, 4, 8))
        x = _harmonics(tau2 * f0 * t + np.float32(rng.uniform(0, 2 * math.pi)), range(1, K + 1))
        return x * (1 + np.float32(0.2) * np.sin(tau2 * np.float32(rng.uniform(2, 6)) * t))
    if envelope == "chirps":  # bird / cricket: fast upward sweeps f0 -> f0 + 800 Hz
        P, L = np.float32(rng.uniform(0.12, 0.2)), np.float32(rng.uniform(0.05, 0.08))
        tm = t % P
        win = np.where(tm < L, np.sin(np.float32(math.pi) * np.minimum(tm, L) / L) ** 2, np.float32(0))
        return win * np.sin(tau2 * (f0 * tm + np.float32(400.0) * tm**2 / L))
    if envelope == "buzz":  # buzzer: odd harmonics (square-like), gated on and off a few times a second
        g = np.float32(rng.uniform(4, 6))
        x = _harmonics(tau2 * f0 * t, (1, 3, 5, 7))
        gate = np.clip((np.sin(tau2 * g * t) + np.float32(0.2)) * 10, 0, 1)
        gate[: int(0.002 * sr)] = 1.0
        return x * gate
    if envelope == "hiss":  # kettle: band noise around f0 (+-1.5 kHz) with a slow swell
        x = _slice(_band_noise(sr, int(round(f0 / 500)) * 500), int(rng.integers(2**31)), n)
        return x * (np.float32(0.7) + np.float32(0.3) * np.sin(tau2 * np.float32(0.5) * t + rng.uniform(0, 6.28)))
    raise ValueError(f"unknown sound envelope {envelope!r}")


def _harmonics(theta: np.ndarray, ks) -> np.ndarray:
    """sum_k sin(k theta) / k over ``ks`` (float32), by the recurrence sin(k x) = 2 cos(x) sin((k-1) x) - ..."""
    ks = set(ks)
    c2 = 2 * np.cos(theta)
    prev, cur = np.zeros_like(theta), np.sin(theta)
    out = cur.copy() if 1 in ks else np.zeros_like(theta)
    for k in range(2, max(ks) + 1):
        prev, cur = cur, c2 * cur - prev
        if k in ks:
            out += cur / np.float32(k)
    return out


@lru_cache(maxsize=16)
def _band_noise(sr: int, centre: int, seconds: float = 6.0) -> np.ndarray:
    """(seconds * sr,) float32 unit-RMS noise band-passed to centre +- 1.5 kHz (fixed seed, built once)."""
    rng = np.random.default_rng(centre)
    n = int(seconds * sr)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < centre - 1500) | (f > centre + 1500)] = 0
    x = np.fft.irfft(spec, n)
    return (x / x.std()).astype(np.float32)


@lru_cache(maxsize=4)
def _pink_noise(sr: int, seconds: float = 8.0) -> np.ndarray:
    """(seconds * sr,) float32 unit-RMS pink (1/f power) noise, 20 Hz and up (fixed seed, built once)."""
    rng = np.random.default_rng(7)
    n = int(seconds * sr)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec *= np.where(f >= 20, 1 / np.sqrt(np.maximum(f, 20)), 0)
    x = np.fft.irfft(spec, n)
    return (x / x.std()).astype(np.float32)


def _slice(bank: np.ndarray, offset: int, n: int) -> np.ndarray:
    """(n,) samples of ``bank`` from ``offset`` (modulo its length), wrapping around."""
    start = offset % len(bank)
    reps = -(-(start + n) // len(bank))
    src = bank if reps == 1 else np.tile(bank, reps)
    return src[start : start + n]


def _ramp(n: int, sr: int) -> np.ndarray:
    """(n,) fade-in/out window: raised cosine over 5 ms at each end."""
    r = min(int(_RAMP_S * sr), n // 2)
    w = np.ones(n, dtype=np.float32)
    if r > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        w[:r], w[n - r :] = edge, edge[::-1]
    return w


def _source_track(src: SourceSpec, num: int, sr: int) -> np.ndarray:
    """(num,) float32 track of one source: its pattern in each segment, active RMS = 1."""
    rng = np.random.default_rng(src.seed)
    env = get_class(src.category).sound.envelope
    track = np.zeros(num, dtype=np.float32)
    for s, e in src.segments:
        i0, i1 = int(round(s * sr)), min(num, int(round(e * sr)))
        if i1 <= i0:
            continue
        track[i0:i1] = pattern(env, src.f0, i1 - i0, sr, np.random.default_rng(rng.integers(2**31))) * _ramp(
            i1 - i0, sr
        )
    return _unit_active_rms(track, src.segments, sr)


def _unit_active_rms(track: np.ndarray, segments: list[list[float]], sr: int) -> np.ndarray:
    """``track`` scaled so that its RMS over ``segments`` is 1 (unchanged when silent there)."""
    energy, count = 0.0, 0
    for s, e in segments:
        seg = track[int(round(s * sr)) : min(len(track), int(round(e * sr)))]
        energy += float(np.dot(seg, seg))
        count += seg.size
    rms = math.sqrt(energy / count) if count else 0.0
    return track / np.float32(rms) if rms > 0 else track


def render_audio(scene: Scene, sr: int, speech: np.ndarray | None = None) -> AudioResult:
    """Mix the scene's sources (and the spoken phrase ``speech`` (L,) float, when given) with noise at its SNR."""
    num = int(round(scene.duration * sr))
    tracks, gains = [], []
    for src in scene.sources:
        tracks.append(_source_track(src, num, sr))
        gains.append(10 ** (src.gain_db / 20))
    speech_seg = None
    if speech is not None and scene.speech is not None:
        L = min(len(speech), num)
        i0 = int(round(scene.speech.start_frac * (num - L)))
        tr = np.zeros(num, dtype=np.float32)
        tr[i0 : i0 + L] = speech[:L]
        speech_seg = [round(i0 / sr, 3), round((i0 + L) / sr, 3)]
        tracks.append(_unit_active_rms(tr, [speech_seg], sr))
        gains.append(10 ** (scene.speech.gain_db / 20))
    stack = np.zeros((len(tracks), num), dtype=np.float32)  # (K, S)
    for k, (tr, g) in enumerate(zip(tracks, gains)):
        np.multiply(tr, np.float32(g), out=stack[k])
    sig = stack.sum(0)
    p_sig = float(np.dot(sig, sig)) / num
    noise_rms = math.sqrt(p_sig / 10 ** (scene.snr_db / 10)) if p_sig > 0 else 1e-3
    mix = sig + _slice(_pink_noise(sr), scene.noise_seed, num) * np.float32(noise_rms)
    scale = _PEAK / max(float(np.abs(mix).max()), 1e-9)
    loud = [round(20 * math.log10(g * scale), 2) for g in gains]
    return AudioResult(
        audio=mix * np.float32(scale),
        tracks=stack * np.float32(scale),
        loudness_db=loud,
        speech_segment=speech_seg,
        scale=scale,
    )


def frame_envelopes(tracks: np.ndarray, sr: int, fps: float, num_frames: int) -> np.ndarray:
    """(K, T) float in [0, 1]: RMS of each track in a 1/fps window centred on each frame, over the track's max."""
    K, S = tracks.shape
    win = max(1, int(round(sr / fps)))
    pad = np.zeros((K, num_frames * win), dtype=np.float32)  # frame i's window starts at i * win - win // 2
    n = min(S, num_frames * win - win // 2)
    pad[:, win // 2 : win // 2 + n] = tracks[:, :n]
    x = pad.reshape(K, num_frames, win)
    rms = np.sqrt(np.einsum("ktw,ktw->kt", x, x) / win)  # (K, T)
    return rms / np.maximum(rms.max(axis=1, keepdims=True), 1e-12)
