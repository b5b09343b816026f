"""Spoken phrases through the ``espeak-ng`` program (a subprocess writing a wav), resampled to the clip's rate.

When ``espeak-ng`` is not installed, asking for speech raises ``SpeechUnavailable`` with the reason and the fix;
the speech subset is never dropped silently.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["SpeechUnavailable", "espeak_available", "require_espeak", "speak"]


class SpeechUnavailable(RuntimeError):
    """The spoken-phrase subset was asked for but ``espeak-ng`` cannot be run."""


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def require_espeak() -> str:
    """The path of espeak-ng, or SpeechUnavailable saying how to get it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise SpeechUnavailable(
            "speech=True needs the espeak-ng program, which is not on PATH. Install it (Debian/Ubuntu: "
            "`apt-get install espeak-ng`, macOS: `brew install espeak-ng`) or generate without speech."
        )
    return path


@lru_cache(maxsize=256)
def speak(text: str, voice: str, speed: int, pitch: int, sample_rate: int) -> np.ndarray:
    """(L,) float32 mono in [-1, 1] at ``sample_rate``: ``text`` spoken by espeak-ng, silence trimmed (cached,
    read-only)."""
    exe = require_espeak()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if res.returncode != 0 or not out.is_file():
            raise SpeechUnavailable(f"espeak-ng failed ({' '.join(cmd)}): {res.stderr.strip() or res.returncode}")
        with wave.open(str(out), "rb") as w:
            rate, width, chans = w.getframerate(), w.getsampwidth(), w.getnchannels()
            raw = w.readframes(w.getnframes())
    if width != 2:
        raise SpeechUnavailable(f"espeak-ng wrote {8 * width}-bit audio; 16-bit expected")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if chans > 1:
        x = x.reshape(-1, chans).mean(1)
    loud = np.flatnonzero(np.abs(x) > 0.02 * max(float(np.abs(x).max()), 1e-6))
    if loud.size == 0:
        raise SpeechUnavailable(f"espeak-ng produced silence for {text!r}")
    x = x[loud[0] : loud[-1] + 1]
    if rate != sample_rate:  # linear resampling is enough for speech used as a sound source
        n_out = int(round(len(x) * sample_rate / rate))
        x = np.interp(np.arange(n_out) * rate / sample_rate, np.arange(len(x)), x).astype(np.float32)
    x.setflags(write=False)
    return x
