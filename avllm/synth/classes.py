"""The class catalogue of the synthetic world: each sound-making class is a visual family and a sound family.

The catalogue is data (a tuple of frozen dataclasses). Class names are single lower-case words, used as-is by the
captions, questions and answers. Visual families are kept far apart in hue and shape, except for deliberate,
labelled look-alike pairs; sound families are distinct except for deliberate, labelled sound-alike pairs:

- look alike, sound different: ``bell`` / ``clock`` (yellow circle: solid vs striped; rings vs ticks)
- sound alike, look different: ``bird`` / ``cricket`` (chirps), ``engine`` / ``fan`` (hum)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Shape",
    "Texture",
    "Envelope",
    "VisualFamily",
    "SoundFamily",
    "SoundClass",
    "CLASSES",
    "CLASS_NAMES",
    "LOOK_ALIKE",
    "SOUND_ALIKE",
    "get_class",
]

Shape = Literal["circle", "square", "triangle", "diamond", "hexagon", "ring", "star", "cross", "pentagon"]
Texture = Literal["solid", "stripes", "dots", "checker", "rings"]
Envelope = Literal["strikes", "ticks", "thumps", "sweep", "hum", "chirps", "buzz", "hiss"]


@dataclass(frozen=True)
class VisualFamily:
    shape: Shape
    colour: str  # colour word used in captions ("yellow")
    hue: float  # HSV hue in degrees, 0..360 (ignored when saturation is 0)
    saturation: float  # HSV saturation 0..1 (0 = grey/white)
    value: float  # HSV value 0..1
    texture: Texture  # pattern drawn inside the shape in a darker shade of the colour


@dataclass(frozen=True)
class SoundFamily:
    envelope: Envelope  # temporal pattern: how the sound is switched and shaped inside a segment
    f_lo: float  # lowest fundamental (Hz) drawn for an instance
    f_hi: float  # highest fundamental (Hz)
    band: tuple[float, float]  # frequency band (Hz) that holds most of the energy (used by tests and docs)
    timbre: str  # words for the harmonic content, for the docs
    verb: str  # what the class does when it sounds, for captions ("rings")


@dataclass(frozen=True)
class SoundClass:
    name: str  # single lower-case word
    visual: VisualFamily
    sound: SoundFamily


CLASSES: tuple[SoundClass, ...] = (
    SoundClass(
        "bell",
        VisualFamily("circle", "yellow", 58.0, 0.90, 0.95, "solid"),
        SoundFamily("strikes", 520.0, 820.0, (450.0, 2400.0), "inharmonic partials 1, 2.76, 5.4 x f0", "rings"),
    ),
    SoundClass(
        "clock",
        VisualFamily("circle", "yellow", 58.0, 0.90, 0.95, "stripes"),
        SoundFamily("ticks", 3000.0, 5500.0, (2500.0, 7500.0), "short damped-tone clicks, tick-tock", "ticks"),
    ),
    SoundClass(
        "drum",
        VisualFamily("square", "red", 355.0, 0.88, 0.82, "solid"),
        SoundFamily("thumps", 60.0, 110.0, (40.0, 260.0), "low sine with a downward pitch glide", "thumps"),
    ),
    SoundClass(
        "siren",
        VisualFamily("triangle", "blue", 222.0, 0.85, 0.95, "solid"),
        SoundFamily("sweep", 1300.0, 1700.0, (850.0, 2300.0), "sine + 2nd harmonic, slow up-down sweep", "wails"),
    ),
    SoundClass(
        "engine",
        VisualFamily("hexagon", "grey", 0.0, 0.0, 0.62, "dots"),
        SoundFamily("hum", 70.0, 105.0, (60.0, 900.0), "eight harmonics falling as 1/k, slow wobble", "hums"),
    ),
    SoundClass(
        "fan",
        VisualFamily("ring", "cyan", 185.0, 0.80, 0.90, "solid"),
        SoundFamily("hum", 95.0, 140.0, (80.0, 900.0), "six harmonics falling as 1/k, slow wobble", "whirs"),
    ),
    SoundClass(
        "bird",
        VisualFamily("diamond", "green", 122.0, 0.80, 0.80, "solid"),
        SoundFamily("chirps", 2500.0, 4500.0, (2200.0, 5600.0), "fast upward sine sweeps", "chirps"),
    ),
    SoundClass(
        "cricket",
        VisualFamily("star", "magenta", 305.0, 0.80, 0.92, "solid"),
        SoundFamily("chirps", 2900.0, 5000.0, (2600.0, 6100.0), "fast upward sine sweeps", "chirps"),
    ),
    SoundClass(
        "buzzer",
        VisualFamily("cross", "orange", 28.0, 0.95, 1.00, "solid"),
        SoundFamily("buzz", 180.0, 300.0, (150.0, 2300.0), "odd harmonics (square-like), gated on/off", "buzzes"),
    ),
    SoundClass(
        "kettle",
        VisualFamily("pentagon", "white", 0.0, 0.0, 0.97, "checker"),
        SoundFamily("hiss", 5000.0, 8000.0, (3500.0, 9500.0), "band-passed noise with a slow swell", "hisses"),
    ),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)

# Deliberate pairs (documented in docs/DATA.md).
LOOK_ALIKE: tuple[tuple[str, str], ...] = (("bell", "clock"),)
SOUND_ALIKE: tuple[tuple[str, str], ...] = (("bird", "cricket"), ("engine", "fan"))

_BY_NAME = {c.name: c for c in CLASSES}


def get_class(name: str) -> SoundClass:
    """The class called ``name``; raises KeyError naming the known classes."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown class {name!r}; known: {', '.join(CLASS_NAMES)}") from None
