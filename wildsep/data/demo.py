"""Built-in demo corpus: deterministic, procedurally synthesised audio laid out on disk exactly
the way a user would bring their own data.

Run ``python -m wildsep.data.demo OUT_DIR`` (add ``--small`` for the few-second test corpus), or
call :func:`generate`. Layout of ``OUT_DIR``::

    demo.json                 what was generated (seed, sample rate, sizes); a rerun with the
                              same arguments finds it and returns at once
    unlabeled/clip_0000.wav   (a) in-the-wild-like clips mixed from 1-4 sources, mixed formats:
              clip_0001.flac      WAV/FLAC/OGG, mono and stereo, at the demo rate, 22.05, 44.1
              ...                 and 48 kHz, with widely varying loudness
    unlabeled.csv             the same clips as a manifest (column ``path``)
    pools/<class>/<class>_0000.wav
                              (b) labeled source pools, class = folder name; every fourth file is
                                  a 44.1 kHz stereo FLAC
    pools.csv                 the same pools as a manifest (columns ``path``, ``class``)
    valid/manifest.jsonl      (c) fixed evaluation mixtures, one JSON object per line:
    test/manifest.jsonl           {"mixture": "mix_0000/mixture.wav",
                                   "references": ["mix_0000/s0_speech.wav", ...],
                                   "classes": ["speech", ...]}
    valid/mix_0000/...        32-bit float WAV at the demo rate; mixture == sum of references
    valid/single.jsonl        single-source examples in the same format ("single_0000/..."),
    test/single.jsonl             for the FUSS single-source score (SS) of unconditional models

``python -m wildsep.data.demo OUT_DIR --stems`` (or :func:`generate_stems`) writes a music
set in the MUSDB18-HQ layout instead, for fixed-stem models (Demucs)::

    valid/track_0000/{mixture,drums,bass,vocals,other}.wav   32-bit float, mixture == sum
    valid/manifest.jsonl      the same tracks as an evaluation manifest (classes drums, bass,
    test/...                      vocals, other), for `wildsep evaluate`

Manifest paths are relative to the manifest's own folder. Every file is a pure function of
(seed, kind, index), so the corpus is identical whatever the number of worker processes.

The synthesis functions (:func:`synth_speech`, :func:`synth_sfx`, ...) are public so tests can
make audio in memory; each takes a ``numpy.random.Generator``, a sample rate and a duration and
returns a mono float32 array peak-normalised to 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

CLASSES = ("speech", "sfx", "sfxbg", "drums", "bass", "vocals", "other", "musicbg")
FORMAT_VERSION = 1
_PEAK = 0.5

# --------------------------------------------------------------------------------------------
# Signal helpers


def _num_samples(sr: int, seconds: float) -> int:
    return max(1, round(sr * seconds))


def _fade(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine on/off ramps so that segments start and stop without clicks."""
    env = np.ones(n)
    a = min(n // 2, max(1, round(attack * sr)))
    r = min(n // 2, max(1, round(release * sr)))
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    env[n - r :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(r) / r)
    return env


def _decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (sr * tau))


def _clamp_band(lo: float, hi: float, sr: int) -> tuple[float, float]:
    hi = min(hi, 0.45 * sr)
    lo = min(max(lo, 20.0), 0.8 * hi)
    return lo, hi


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    lo, hi = _clamp_band(lo, hi, sr)
    sos = signal.butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _lowpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.45 * sr), btype="lowpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _highpass(x: np.ndarray, cutoff: float, sr: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.4 * sr), btype="highpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _smooth_noise(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """Zero-mean, unit-scale random contour that changes about `rate_hz` times per second."""
    points = max(2, int(n / sr * rate_hz) + 2)
    knots = rng.standard_normal(points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), knots)


def _sawtooth(phase: np.ndarray) -> np.ndarray:
    # A naive sawtooth aliases, but for voice/bass pitches the folded partials are > 30 dB down,
    # and it costs one pass instead of one sine per harmonic.
    return 2.0 * ((phase / (2 * np.pi)) % 1.0) - 1.0


def _formants(x: np.ndarray, freqs: np.ndarray, bandwidths: np.ndarray, sr: int) -> np.ndarray:
    """Cascade of two-pole resonators: the source-filter model of a vocal tract."""
    for f, bw in zip(freqs, bandwidths, strict=True):
        if f >= 0.45 * sr:
            continue
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2.0 * r * np.cos(2 * np.pi * f / sr), r * r]
        x = signal.lfilter([1.0 - r], a, x)
    return x


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    # Third-order IIR approximation of a 1/f spectrum (standard published coefficients).
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    return signal.lfilter(b, a, rng.standard_normal(n))


def _brown_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return signal.lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))


def _normalise_peak(x: np.ndarray, peak: float = _PEAK) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m) if m > 0 else x).astype(np.float32)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return x / rms if rms > 0 else x


def _place(out: np.ndarray, event: np.ndarray, start: int) -> None:
    end = min(len(out), start + len(event))
    if end > start:
        out[start:end] += event[: end - start]


def _midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69.0) / 12.0)


_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord roots of common progressions, in scale degrees (I-V-vi-IV, i-VI-III-VII, ...).
_PROGRESSIONS = ([0, 4, 5, 3], [0, 5, 2, 6], [0, 3, 4, 4], [0, 0, 3, 4])


@dataclass(frozen=True)
class _Song:
    """Musical context shared by the stems of one piece so they sound like one band."""

    tempo: float
    root_midi: int
    scale: np.ndarray
    progression: list[int]

    @staticmethod
    def draw(rng: np.random.Generator) -> _Song:
        scale = _MAJOR if rng.random() < 0.5 else _MINOR
        progression = list(_PROGRESSIONS[rng.integers(len(_PROGRESSIONS))])
        return _Song(float(rng.uniform(80, 150)), int(rng.integers(0, 12)), scale, progression)

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    def chord_root(self, bar: int) -> int:
        """Semitone offset of the chord root in `bar` (4 beats a bar)."""
        return int(self.scale[self.progression[bar % len(self.progression)] % 7])

    def scale_note(self, degree: int) -> int:
        return int(12 * (degree // 7) + self.scale[degree % 7])


# --------------------------------------------------------------------------------------------
# Speech

# First three formants (Hz) of /a i u e o æ ə/ for an adult male voice.
_VOWELS = np.array(
    [
        [730, 1090, 2440],
        [270, 2290, 3010],
        [300, 870, 2240],
        [530, 1840, 2480],
        [570, 840, 2410],
        [660, 1720, 2410],
        [500, 1500, 2500],
    ],
    dtype=float,
)
_FORMANT_BANDWIDTHS = np.array([70.0, 100.0, 140.0])


def _consonant(rng: np.random.Generator, sr: int) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # fricative /s/, /ʃ/, /f/: band-passed noise
        n = _num_samples(sr, rng.uniform(0.05, 0.13))
        lo = rng.choice([1800.0, 3500.0, 1200.0])
        x = _bandpass(rng.standard_normal(n), lo, lo * rng.uniform(1.8, 2.5), sr)
        return 0.25 * x * _fade(n, sr, 0.02, 0.02)
    if kind == 1:  # plosive /t/, /k/, /p/: short broadband burst
        n = _num_samples(sr, rng.uniform(0.015, 0.04))
        x = _highpass(rng.standard_normal(n), rng.uniform(500, 2500), sr)
        return 0.4 * x * _decay(n, sr, 0.008)
    n = _num_samples(sr, rng.uniform(0.03, 0.08))  # nasal hum /m/, /n/
    t = np.arange(n) / sr
    return 0.15 * np.sin(2 * np.pi * rng.uniform(200, 300) * t) * _fade(n, sr, 0.01, 0.01)


def synth_speech(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Speech-like utterances: phrases of syllables (unvoiced consonant + voiced vowel).

    Vowels are a sawtooth glottal source at a pitch contour (speaker pitch, phrase declination,
    slow wander and per-syllable accents) shaped by three formant resonators; consonants are
    noise bursts or fricatives. Phrases are separated by pauses. Returns float32 (T,).
    """
    n = _num_samples(sr, seconds)
    out = np.zeros(n)
    f0_base = rng.uniform(85, 230)
    formant_scale = 1.0 + 0.18 * (f0_base - 85) / 145  # higher voices have shorter tracts
    f0 = f0_base * (1.0 + 0.05 * _smooth_noise(rng, n, sr, 3.0))
    accents = np.ones(n)
    segments: list[tuple[int, int, np.ndarray, float]] = []
    cursor = int(rng.uniform(0, 0.3) * sr)
    while cursor < n:
        syllables = int(rng.integers(3, 9))
        phrase_start = cursor
        for _ in range(syllables):
            if rng.random() < 0.7:
                burst = _consonant(rng, sr)
                _place(out, burst, cursor)
                cursor += len(burst)
            length = _num_samples(sr, rng.uniform(0.08, 0.25))
            vowel = _VOWELS[rng.integers(len(_VOWELS))] * formant_scale
            gain = rng.uniform(0.5, 1.0)
            segments.append((cursor, min(n, cursor + length), vowel, gain))
            accents[cursor : cursor + length] = 1.0 + rng.uniform(-0.08, 0.12)
            cursor += length + int(rng.uniform(0.0, 0.04) * sr)
            if cursor >= n:
                break
        # Pitch falls over a phrase (declination), then resets.
        span = slice(phrase_start, min(n, cursor))
        f0[span] *= np.linspace(1.12, 0.85, span.stop - span.start)
        cursor += int(rng.uniform(0.15, 0.6) * sr)
    phase = 2 * np.pi * np.cumsum(f0 * accents) / sr
    source = _lowpass(_sawtooth(phase), 3000, sr, order=1) + 0.02 * rng.standard_normal(n)
    for start, stop, vowel, gain in segments:
        if stop <= start:
            continue
        voiced = _formants(source[start:stop], vowel, _FORMANT_BANDWIDTHS, sr)
        voiced = voiced / (np.max(np.abs(voiced)) + 1e-9)
        out[start:stop] += gain * voiced * _fade(stop - start, sr, 0.015, 0.03)
    return _normalise_peak(out)


# --------------------------------------------------------------------------------------------
# Sound effects


def _impact(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Modal synthesis: a click exciting a few inharmonic exponentially decaying modes."""
    n = _num_samples(sr, rng.uniform(0.15, 0.8))
    t = np.arange(n) / sr
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 8))):
        f = np.exp(rng.uniform(np.log(150), np.log(min(6000, 0.4 * sr))))
        tau = rng.uniform(0.02, 0.3) * (300 / f) ** 0.3
        out += (
            rng.uniform(0.2, 1.0)
            * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
            * (np.exp(-t / tau))
        )
    click = _highpass(rng.standard_normal(n), 1000, sr) * _decay(n, sr, 0.003)
    return out + 0.5 * click


def _chirp(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Exponential sine sweep with a second harmonic (birds, sirens, whistles)."""
    duration = rng.uniform(0.15, 1.0)
    n = _num_samples(sr, duration)
    t = np.arange(n) / sr
    f_top = min(5000.0, 0.4 * sr)
    f_a, f_b = np.exp(rng.uniform(np.log(200), np.log(f_top), size=2))
    k = np.log(f_b / f_a) / duration
    phase = 2 * np.pi * f_a * np.expm1(k * t) / k if abs(k) > 1e-6 else 2 * np.pi * f_a * t
    x = np.sin(phase) + (0.3 * np.sin(2 * phase) if 2 * max(f_a, f_b) < 0.45 * sr else 0.0)
    return x * _fade(n, sr, 0.01, 0.05)


def _noise_texture(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Band-passed noise with a fluttering envelope (engines, water, rustling)."""
    n = _num_samples(sr, rng.uniform(0.4, 2.0))
    centre = np.exp(rng.uniform(np.log(300), np.log(0.3 * sr)))
    width = rng.uniform(1.3, 3.0)
    x = _bandpass(rng.standard_normal(n), centre / width, centre * width, sr)
    flutter = 0.6 + 0.4 * np.abs(_smooth_noise(rng, n, sr, rng.uniform(5, 20)))
    return x * flutter * _fade(n, sr, 0.05, 0.1)


def _beeps(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A short train of identical tones (alarms, phones, appliances)."""
    f = rng.uniform(600, min(2500, 0.4 * sr))
    on, off = rng.uniform(0.06, 0.15), rng.uniform(0.05, 0.15)
    beep_n, gap_n = _num_samples(sr, on), _num_samples(sr, off)
    beep = np.sin(2 * np.pi * f * np.arange(beep_n) / sr) * _fade(beep_n, sr, 0.005, 0.005)
    count = int(rng.integers(2, 6))
    out = np.zeros(count * (beep_n + gap_n))
    for i in range(count):
        _place(out, beep, i * (beep_n + gap_n))
    return out


_SFX_EVENTS: tuple[Callable[[np.random.Generator, int], np.ndarray], ...] = (
    _impact,
    _chirp,
    _noise_texture,
    _beeps,
)


def synth_sfx(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Sparse foreground sound events: impacts, chirps, filtered-noise textures, beeps.

    Returns float32 (T,) with one or more events at random times and silence between them.
    """
    n = _num_samples(sr, seconds)
    out = np.zeros(n)
    for _ in range(max(1, int(rng.poisson(0.6 * seconds)))):
        event = _SFX_EVENTS[rng.integers(len(_SFX_EVENTS))](rng, sr)
        event = event / (np.max(np.abs(event)) + 1e-9) * 10 ** (rng.uniform(-12, 0) / 20)
        _place(out, event, int(rng.integers(0, max(1, n - len(event)))))
    return _normalise_peak(out)


def synth_sfx_background(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Continuous ambience: one or two layers of wind, rain, machine hum or traffic rumble,
    sometimes with faint distant events. Returns float32 (T,)."""
    n = _num_samples(sr, seconds)
    t = np.arange(n) / sr
    out = np.zeros(n)
    layers = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
    for layer in layers:
        if layer == 0:  # wind: low-passed noise with slow gusts
            x = _lowpass(_pink_noise(rng, n), rng.uniform(300, 1200), sr)
            x *= 0.5 + 0.5 * np.abs(_smooth_noise(rng, n, sr, rng.uniform(0.3, 1.0)))
        elif layer == 1:  # rain: dense random droplets over a hiss bed
            drops = (rng.random(n) < 400 / sr) * rng.standard_normal(n)
            x = _bandpass(drops, 1000, 6000, sr) + 0.1 * _highpass(_pink_noise(rng, n), 2000, sr)
        elif layer == 2:  # machine hum: mains-like harmonics plus broadband motor noise
            f = rng.choice([50.0, 60.0, rng.uniform(40, 120)])
            x = sum(
                np.sin(2 * np.pi * k * f * t + rng.uniform(0, 6.3)) / k
                for k in range(1, 6)
                if k * f < 0.45 * sr
            )
            x = x + 0.3 * _bandpass(rng.standard_normal(n), 200, 2000, sr)
        else:  # traffic: rumble that swells as vehicles pass
            x = _lowpass(_brown_noise(rng, n), 400, sr)
            x *= 0.4 + np.abs(_smooth_noise(rng, n, sr, 0.3))
        out += _unit_rms(x) * 10 ** (rng.uniform(-6, 0) / 20)
    if rng.random() < 0.5:
        events = synth_sfx(rng, sr, seconds)
        out += _unit_rms(_lowpass(events.astype(np.float64), 2000, sr)) * 0.2
    return _normalise_peak(out)


# --------------------------------------------------------------------------------------------
# Music stems


def _drum_kit(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    n_kick, n_snare, n_hat = (_num_samples(sr, s) for s in (0.35, 0.2, 0.06))
    t = np.arange(n_kick) / sr
    f_hi, f_lo = rng.uniform(120, 180), rng.uniform(40, 60)
    kick_phase = 2 * np.pi * (f_lo * t + (f_hi - f_lo) * 0.03 * (1 - np.exp(-t / 0.03)))
    kick = np.sin(kick_phase) * _decay(n_kick, sr, rng.uniform(0.08, 0.2))
    ts = np.arange(n_snare) / sr
    snare = 0.6 * _bandpass(rng.standard_normal(n_snare), 1000, 5000, sr) + 0.4 * np.sin(
        2 * np.pi * rng.uniform(160, 220) * ts
    )
    snare *= _decay(n_snare, sr, rng.uniform(0.04, 0.09))
    hat = _highpass(rng.standard_normal(n_hat), 0.3 * sr, sr, order=4)
    hat *= _decay(n_hat, sr, rng.uniform(0.01, 0.03))
    return {"kick": kick, "snare": snare, "hat": hat / (np.max(np.abs(hat)) + 1e-9)}


def synth_drums(
    rng: np.random.Generator, sr: int, seconds: float, *, song: _Song | None = None
) -> np.ndarray:
    """A drum kit (pitch-swept kick, noisy snare, hi-hat) playing a 16-step groove with velocity
    and timing variation. Returns float32 (T,)."""
    song = song or _Song.draw(rng)
    n = _num_samples(sr, seconds)
    out = np.zeros(n)
    kit = _drum_kit(rng, sr)
    kicks = {0, 8} | {s for s in (3, 6, 10, 11, 14) if rng.random() < 0.3}
    snares = {4, 12}
    hat_every = 1 if rng.random() < 0.4 else 2
    step = song.beat / 4
    for i in range(int(seconds / step) + 1):
        s = i % 16
        hits = [("kick", 1.0)] if s in kicks else []
        hits += [("snare", 0.8)] if s in snares or rng.random() < 0.04 else []
        hits += [("hat", 0.35)] if s % hat_every == 0 else []
        for name, level in hits:
            jitter = rng.normal(0, 0.003)
            start = round((i * step + jitter) * sr)
            _place(out, kit[name] * level * rng.uniform(0.7, 1.0), max(0, start))
    return _normalise_peak(out)


def _notes_to_signal(
    notes: list[tuple[float, float, float, float]],
    n: int,
    sr: int,
    render: Callable[[float, int], np.ndarray],
) -> np.ndarray:
    """Sum `render(freq, length)` for notes given as (start s, duration s, freq Hz, velocity)."""
    out = np.zeros(n)
    for start, duration, freq, velocity in notes:
        length = _num_samples(sr, duration)
        _place(out, velocity * render(freq, length), round(start * sr))
    return out


def synth_bass(
    rng: np.random.Generator, sr: int, seconds: float, *, song: _Song | None = None
) -> np.ndarray:
    """A low-passed sawtooth bass line following a chord progression in eighth notes.
    Returns float32 (T,)."""
    song = song or _Song.draw(rng)
    n = _num_samples(sr, seconds)
    base = 28 + song.root_midi  # E1..D#2
    eighth = song.beat / 2
    notes = []
    for i in range(int(seconds / eighth) + 1):
        if rng.random() < 0.7:
            pitch = base + song.chord_root(i // 8) + int(rng.choice([0, 0, 0, 7, 12, 10]))
            notes.append((i * eighth, eighth * rng.uniform(0.5, 1.0), _midi_to_hz(pitch), 1.0))

    def pluck(freq: float, length: int) -> np.ndarray:
        phase = 2 * np.pi * freq * np.arange(length) / sr
        return _sawtooth(phase) * _decay(length, sr, 0.3) * _fade(length, sr, 0.005, 0.02)

    out = _notes_to_signal(notes, n, sr, pluck)
    return _normalise_peak(_lowpass(out, rng.uniform(300, 900), sr, order=2))


def synth_harmonic_instrument(
    rng: np.random.Generator, sr: int, seconds: float, *, song: _Song | None = None
) -> np.ndarray:
    """A pitched instrument (plucked/piano-like, organ pad or mallet, by additive synthesis)
    playing chords or arpeggios. This is the `other` stem. Returns float32 (T,)."""
    song = song or _Song.draw(rng)
    n = _num_samples(sr, seconds)
    timbre = rng.integers(3)
    ratios, amps = {
        0: (np.arange(1, 9) * (1 + 0.0005 * np.arange(1, 9) ** 2), 1 / np.arange(1, 9) ** 1.2),
        1: (np.array([1.0, 2, 3, 4, 6, 8]), np.array([1.0, 0.7, 0.5, 0.4, 0.25, 0.2])),
        2: (np.array([1.0, 3.93, 9.54]), np.array([1.0, 0.4, 0.15])),
    }[int(timbre)]
    sustained = timbre == 1

    def voice(freq: float, length: int) -> np.ndarray:
        t = np.arange(length) / sr
        out = np.zeros(length)
        for r, a in zip(ratios, amps, strict=True):
            if r * freq < 0.45 * sr:
                tau = 10.0 if sustained else 0.8 / np.sqrt(r)
                out += a * np.sin(2 * np.pi * r * freq * t) * np.exp(-t / tau)
        attack = 0.08 if sustained else 0.003
        return out * _fade(length, sr, attack, 0.05)

    base = 55 + song.root_midi
    arpeggio = rng.random() < 0.5
    notes = []
    bar = 4 * song.beat
    for b in range(int(seconds / bar) + 1):
        degree = song.progression[b % len(song.progression)]
        chord = [base + song.scale_note(degree + k) for k in (0, 2, 4)]
        if arpeggio:
            for i in range(8):
                notes.append((b * bar + i * bar / 8, bar / 4, _midi_to_hz(chord[i % 3]), 0.8))
        else:
            notes += [(b * bar, bar * 0.95, _midi_to_hz(p), 0.6) for p in chord]
    return _normalise_peak(_notes_to_signal(notes, n, sr, voice))


def synth_vocals(
    rng: np.random.Generator, sr: int, seconds: float, *, song: _Song | None = None
) -> np.ndarray:
    """A sung melody: sawtooth glottal source with portamento and delayed vibrato, shaped by the
    formants of a sustained vowel per note plus a singer's formant near 3 kHz; phrases are
    separated by breaths. Returns float32 (T,)."""
    song = song or _Song.draw(rng)
    n = _num_samples(sr, seconds)
    base = 52 + song.root_midi + int(rng.integers(0, 8))
    eighth = song.beat / 2
    target = np.full(n, float(base))
    voiced = np.zeros(n)
    notes: list[tuple[int, int, np.ndarray]] = []
    cursor, degree = int(rng.uniform(0, 0.5) * sr), 0
    while cursor < n:
        for _ in range(int(rng.integers(4, 9))):
            length = round(eighth * int(rng.integers(1, 5)) * sr)
            degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
            stop = min(n, cursor + length)
            target[cursor:stop] = base + song.scale_note(degree)
            voiced[cursor:stop] = 1.0
            notes.append((cursor, stop, _VOWELS[rng.integers(5)] * rng.uniform(1.1, 1.3)))
            cursor = stop
            if cursor >= n:
                break
        cursor += int(rng.uniform(0.3, 1.0) * sr)
    # Portamento: glide between notes with a one-pole smoother on the pitch in semitones.
    alpha = np.exp(-1.0 / (0.03 * sr))
    pitch = signal.lfilter([1 - alpha], [1, -alpha], target - base, zi=[0.0])[0] + base
    vibrato = rng.uniform(0.3, 0.6) * np.sin(2 * np.pi * rng.uniform(5.0, 6.5) * np.arange(n) / sr)
    pitch += vibrato * np.clip(_smooth_noise(rng, n, sr, 0.5) + 0.5, 0, 1)
    phase = 2 * np.pi * np.cumsum(_midi_to_hz(pitch)) / sr
    source = _lowpass(_sawtooth(phase), 4000, sr, order=1)
    out = np.zeros(n)
    singer_formant = (np.array([3000.0]), np.array([300.0]))
    for start, stop, vowel in notes:
        seg = _formants(source[start:stop], vowel, _FORMANT_BANDWIDTHS, sr)
        seg = seg + 0.3 * _formants(source[start:stop], *singer_formant, sr)
        seg = seg / (np.max(np.abs(seg)) + 1e-9)
        out[start:stop] += seg * _fade(stop - start, sr, 0.02, 0.03)
    return _normalise_peak(out * (voiced > 0))


def synth_music_background(rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """A full music mix (drums, bass and a harmonic instrument sharing tempo and key, sometimes
    with vocals): the `musicbg` class. Returns float32 (T,)."""
    song = _Song.draw(rng)
    stems = [synth_harmonic_instrument(rng, sr, seconds, song=song)]
    if rng.random() < 0.85:
        stems.append(synth_bass(rng, sr, seconds, song=song))
    if rng.random() < 0.8:
        stems.append(synth_drums(rng, sr, seconds, song=song))
    if rng.random() < 0.3:
        stems.append(synth_vocals(rng, sr, seconds, song=song))
    mix = sum(_unit_rms(s.astype(np.float64)) * 10 ** (rng.uniform(-6, 0) / 20) for s in stems)
    return _normalise_peak(mix)


SYNTHESISERS: dict[str, Callable[[np.random.Generator, int, float], np.ndarray]] = {
    "speech": synth_speech,
    "sfx": synth_sfx,
    "sfxbg": synth_sfx_background,
    "drums": synth_drums,
    "bass": synth_bass,
    "vocals": synth_vocals,
    "other": synth_harmonic_instrument,
    "musicbg": synth_music_background,
}
"""Class name → synthesis function ``(rng, sample_rate, seconds) -> float32 (T,)``."""


def synthesise(class_name: str, rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """Synthesise one source of `class_name` (one of :data:`CLASSES`). Returns float32 (T,)."""
    if class_name not in SYNTHESISERS:
        raise ValueError(f"unknown demo class {class_name!r}; choose from {list(CLASSES)}")
    return SYNTHESISERS[class_name](rng, sr, seconds)


# --------------------------------------------------------------------------------------------
# Corpus layout


@dataclass(frozen=True)
class DemoSize:
    """How much audio :func:`generate` writes."""

    unlabeled_clips: int
    unlabeled_seconds: float
    pool_clips_per_class: int
    pool_seconds: float
    eval_mixtures: int
    eval_seconds: float
    eval_single: int = 0  # single-source examples per evaluation split


SIZES = {
    "small": DemoSize(8, 3.0, 4, 2.0, 3, 2.0, 2),
    "default": DemoSize(120, 10.0, 24, 5.0, 16, 6.0, 16),
}

# Format of unlabeled clip i is _UNLABELED_FORMATS[i % 5]: (rate or None for the demo rate,
# channels, container, subtype). Mixed on purpose, to exercise resampling and down-mixing.
_UNLABELED_FORMATS = (
    (None, 1, "wav", "PCM_16"),
    (44100, 2, "flac", "PCM_16"),
    (None, 1, "wav", "PCM_16"),
    (22050, 1, "ogg", "VORBIS"),
    (48000, 2, "wav", "PCM_24"),
)

# In-the-wild scenes: the classes an unlabeled clip may contain, drawn as (weight, classes).
_SCENES = (
    (3, ("speech", "sfxbg")),
    (2, ("speech", "speech", "sfxbg")),
    (2, ("sfx", "sfxbg")),
    (2, ("musicbg",)),
    (1, ("musicbg", "speech")),
    (1, ("vocals", "other", "bass", "drums")),
    (2, ("sfx", "sfx", "speech")),
    (1, ("speech",)),
)

# Per-class gain range (dB) after unit-RMS scaling, as in TUSS dynamic mixing (reference §7).
EVAL_GAINS_DB = {
    "speech": (-10.0, 0.0),
    "sfx": (-20.0, 0.0),
    "sfxbg": (-20.0, 0.0),
    "musicbg": (-20.0, 0.0),
    "drums": (-10.0, 0.0),
    "bass": (-10.0, 0.0),
    "vocals": (-10.0, 0.0),
    "other": (-10.0, 0.0),
}
_ONCE_PER_MIXTURE = {"sfxbg", "musicbg", "drums", "bass", "vocals", "other"}

_KIND_POOL, _KIND_UNLABELED, _KIND_VALID, _KIND_TEST = 1, 2, 3, 4
_KIND_SINGLE = {"valid": 5, "test": 6}
_KIND_STEMS = {"train": 7, "valid": 8, "test": 9}
STEMS = ("drums", "bass", "vocals", "other")


def _rng(seed: int, kind: int, *index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, kind, *index]))


def _to_stereo(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    """Pan and slightly delay one channel: a plausible stereo image from a mono source."""
    pan = rng.uniform(0.2, 0.8)
    delay = int(rng.integers(0, max(1, sr // 2000)))
    right = np.concatenate([np.zeros(delay), x[: len(x) - delay]])
    return np.stack([x * np.sqrt(1 - pan), right * np.sqrt(pan)], axis=1).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sr: int, container: str, subtype: str) -> None:
    fmt = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[container]
    sf.write(path, audio, sr, format=fmt, subtype=subtype)


def _write_pool_file(out: Path, seed: int, sr: int, size: DemoSize, c: int, i: int) -> str:
    class_name = CLASSES[c]
    rng = _rng(seed, _KIND_POOL, c, i)
    stereo = i % 4 == 3
    rate = 44100 if stereo else sr
    seconds = size.pool_seconds * rng.uniform(0.8, 1.25)
    x = synthesise(class_name, rng, rate, seconds) * 10 ** (rng.uniform(-12, 0) / 20) / _PEAK
    rel = f"pools/{class_name}/{class_name}_{i:04d}.{'flac' if stereo else 'wav'}"
    audio = _to_stereo(rng, x, rate) if stereo else x
    _write(out / rel, audio, rate, "flac" if stereo else "wav", "PCM_16")
    return rel


def _write_unlabeled_clip(out: Path, seed: int, sr: int, size: DemoSize, i: int) -> str:
    rng = _rng(seed, _KIND_UNLABELED, i)
    rate, channels, container, subtype = _UNLABELED_FORMATS[i % len(_UNLABELED_FORMATS)]
    rate = rate or sr
    weights = np.array([w for w, _ in _SCENES], dtype=float)
    _, scene = _SCENES[rng.choice(len(_SCENES), p=weights / weights.sum())]
    n = _num_samples(rate, size.unlabeled_seconds)
    mix = np.zeros(n)
    for class_name in scene:
        # Sources come and go within a clip: each covers a random span of at least half of it.
        seconds = size.unlabeled_seconds * rng.uniform(0.5, 1.0)
        x = _unit_rms(synthesise(class_name, rng, rate, seconds).astype(np.float64))
        _place(mix, x * 10 ** (rng.uniform(-15, 0) / 20), int(rng.integers(0, n - len(x) + 1)))
    if rng.random() < 0.3:  # a cheap microphone or a lossy upload: missing high frequencies
        mix = _lowpass(mix, rng.uniform(3000, 7000), rate, order=4)
    mix = _normalise_peak(mix, 10 ** (rng.uniform(-20, -1) / 20))
    audio = _to_stereo(rng, mix, rate) if channels == 2 else mix
    rel = f"unlabeled/clip_{i:04d}.{container}"
    _write(out / rel, audio, rate, container, subtype)
    return rel


def _draw_eval_classes(rng: np.random.Generator) -> list[str]:
    count = int(rng.integers(2, 5))
    chosen: list[str] = []
    while len(chosen) < count:
        c = CLASSES[rng.integers(len(CLASSES))]
        if c in _ONCE_PER_MIXTURE and c in chosen:
            continue
        chosen.append(c)
    return chosen


def _write_eval_mixture(
    out: Path, seed: int, sr: int, size: DemoSize, split: str, i: int, single: bool = False
) -> dict:
    if single:  # one source of a class drawn uniformly
        rng = _rng(seed, _KIND_SINGLE[split], i)
        classes = [CLASSES[rng.integers(len(CLASSES))]]
    else:
        rng = _rng(seed, _KIND_VALID if split == "valid" else _KIND_TEST, i)
        classes = _draw_eval_classes(rng)
    n = _num_samples(sr, size.eval_seconds)
    refs = []
    for c in classes:
        x = _unit_rms(synthesise(c, rng, sr, size.eval_seconds).astype(np.float64))
        lo, hi = EVAL_GAINS_DB[c]
        refs.append(x[:n] * 10 ** (rng.uniform(lo, hi) / 20))
    references = np.stack(refs)
    references *= 0.25 / max(np.max(np.abs(references.sum(0))), 1e-9)  # keep headroom
    references = references.astype(np.float32)
    mixture = references.sum(0, dtype=np.float32)
    folder = f"{'single' if single else 'mix'}_{i:04d}"
    (out / split / folder).mkdir(parents=True, exist_ok=True)
    ref_paths = [f"{folder}/s{k}_{c}.wav" for k, c in enumerate(classes)]
    for rel, ref in zip(ref_paths, references, strict=True):
        _write(out / split / rel, ref, sr, "wav", "FLOAT")
    _write(out / split / folder / "mixture.wav", mixture, sr, "wav", "FLOAT")
    return {"mixture": f"{folder}/mixture.wav", "references": ref_paths, "classes": classes}


def _run_task(task: tuple) -> tuple[str, object]:
    kind, args = task[0], task[1:]
    if kind == "pool":
        return kind, _write_pool_file(*args)
    if kind == "unlabeled":
        return kind, _write_unlabeled_clip(*args)
    return kind, (args[4], args[6] if len(args) > 6 else False, _write_eval_mixture(*args))


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    size: str | DemoSize = "default",
    num_workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write the demo corpus to `out_dir` (layout in the module docstring) and return its path.

    `size` is ``"small"`` (a few seconds of work, for tests), ``"default"`` (under a minute on
    two cores) or a :class:`DemoSize`. If `out_dir` already holds a demo corpus generated with
    the same arguments, nothing is written. A non-empty `out_dir` holding anything else is left
    alone unless `overwrite` is true.
    """
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown demo size {size!r}; choose from {sorted(SIZES)}")
        size = SIZES[size]
    out = Path(out_dir).expanduser().resolve()
    meta = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "sample_rate": sample_rate,
        "size": asdict(size),
        "classes": list(CLASSES),
    }
    meta_path = out / "demo.json"
    if meta_path.exists():
        try:
            if json.loads(meta_path.read_text()) == meta:
                return out
        except (OSError, json.JSONDecodeError):
            pass
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} is not empty and holds no matching demo corpus; pass overwrite=True "
            "(--overwrite) to write into it anyway"
        )
    for c in CLASSES:
        (out / "pools" / c).mkdir(parents=True, exist_ok=True)
    (out / "unlabeled").mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)

    tasks: list[tuple] = [
        ("pool", out, seed, sample_rate, size, c, i)
        for c in range(len(CLASSES))
        for i in range(size.pool_clips_per_class)
    ]
    tasks += [("unlabeled", out, seed, sample_rate, size, i) for i in range(size.unlabeled_clips)]
    tasks += [
        ("eval", out, seed, sample_rate, size, split, i, single)
        for split in ("valid", "test")
        for single, count in ((False, size.eval_mixtures), (True, size.eval_single))
        for i in range(count)
    ]
    workers = num_workers if num_workers is not None else (os.cpu_count() or 1)
    started = time.perf_counter()
    if workers <= 1 or len(tasks) < 64:
        results = [_run_task(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_run_task, tasks, chunksize=4))

    pools = [rel for kind, rel in results if kind == "pool"]
    unlabeled = [rel for kind, rel in results if kind == "unlabeled"]
    with open(out / "pools.csv", "w") as f:
        f.write("path,class\n")
        f.writelines(f"{rel},{rel.split('/')[1]}\n" for rel in pools)
    with open(out / "unlabeled.csv", "w") as f:
        f.write("path\n")
        f.writelines(f"{rel}\n" for rel in unlabeled)
    evaluation = [r for kind, r in results if kind == "eval"]
    for split in ("valid", "test"):
        for single, name in ((False, "manifest.jsonl"), (True, "single.jsonl")):
            rows = [row for s, one, row in evaluation if s == split and one == single]
            with open(out / split / name, "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    if progress:
        print(f"wrote {len(tasks)} demo items to {out} in {time.perf_counter() - started:.1f} s")
    return out


def _write_stems_track(
    out: Path, seed: int, sr: int, split: str, i: int, seconds: float, stereo: bool
) -> dict:
    """Track i of `split`: one source of each of :data:`STEMS`, the demo's gains, headroom."""
    rng = _rng(seed, _KIND_STEMS[split], i)
    n = _num_samples(sr, seconds)
    refs = []
    for c in STEMS:
        x = _unit_rms(synthesise(c, rng, sr, seconds).astype(np.float64))
        lo, hi = EVAL_GAINS_DB[c]
        refs.append(x[:n] * 10 ** (rng.uniform(lo, hi) / 20))
    references = np.stack(refs)
    references *= 0.25 / max(np.max(np.abs(references.sum(0))), 1e-9)
    if stereo:
        references = np.stack([_to_stereo(rng, r, sr) for r in references])  # (S, T, 2)
    references = references.astype(np.float32)
    folder = out / split / f"track_{i:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    for c, ref in zip(STEMS, references, strict=True):
        _write(folder / f"{c}.wav", ref, sr, "wav", "FLOAT")
    _write(folder / "mixture.wav", references.sum(0, dtype=np.float32), sr, "wav", "FLOAT")
    return {
        "mixture": f"{folder.name}/mixture.wav",
        "references": [f"{folder.name}/{c}.wav" for c in STEMS],
        "classes": list(STEMS),
    }


def generate_stems(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    tracks: dict[str, int] | None = None,
    seconds: float = 6.0,
    stereo: bool = False,
) -> Path:
    """Write a demo music set in the MUSDB18-HQ layout (module docstring): `tracks` per split
    (default 8 valid, 16 test), each `seconds` long, mono or `stereo`. Its sources are drawn
    apart from the corpus's pools (other random streams). Refuses a non-empty `out_dir`."""
    tracks = tracks if tracks is not None else {"valid": 8, "test": 16}
    unknown = sorted(set(tracks) - set(_KIND_STEMS))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; choose from {sorted(_KIND_STEMS)}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: choose a new folder for the stems set")
    for split, count in tracks.items():
        rows = [
            _write_stems_track(out, seed, sample_rate, split, i, seconds, stereo)
            for i in range(count)
        ]
        with open(out / split / "manifest.jsonl", "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wildsep.data.demo",
        description="Write the deterministic, procedurally synthesised wildsep demo corpus.",
    )
    parser.add_argument("out_dir", help="folder to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--small", action="store_true", help="tiny corpus for tests (seconds)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--stems", action="store_true", help="write a music set in the MUSDB18-HQ layout instead"
    )
    args = parser.parse_args(argv)
    try:
        if args.stems:
            generate_stems(args.out_dir, seed=args.seed, sample_rate=args.sample_rate)
            print(f"wrote a demo stems set to {args.out_dir}")
            return 0
        generate(
            args.out_dir,
            seed=args.seed,
            sample_rate=args.sample_rate,
            size="small" if args.small else "default",
            num_workers=args.workers,
            overwrite=args.overwrite,
            progress=True,
        )
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
