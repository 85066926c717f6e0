"""Spectrogram throughput: sheetlab's log-frequency spectrogram against librosa's mel spectrogram.

Both on the same 60 s of synthesized piano at 22.05 kHz, with the same window (2048) and hop
(705.6 samples for ours; librosa needs an integer hop: 706). Throughput is audio duration over
the median wall time of repeated runs (× real time).
"""

from __future__ import annotations

import time

import numpy as np

from sheetlab.perform import SAMPLE_RATE, Note, synthesize
from sheetlab.spectrogram import log_spectrogram

REPEATS = 7
SECONDS = 60.0


def piano_audio(seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """A minute of random piano notes and chords, synthesized by FluidSynth."""
    rng = np.random.default_rng(seed)
    notes, t = [], 0.0
    while t < seconds - 1.5:
        for pitch in rng.choice(np.arange(40, 90), size=rng.integers(1, 4), replace=False):
            notes.append(Note(int(pitch), t, float(rng.uniform(0.2, 0.8)), int(rng.integers(50, 110))))
        t += float(rng.choice([0.125, 0.25, 0.5]))
    return synthesize(notes)[: int(seconds * SAMPLE_RATE)]


def median_seconds(fn, audio: np.ndarray) -> float:
    fn(audio)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(audio)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def librosa_mel(audio: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=2048, hop_length=706,
                                         n_mels=136, fmin=30.0, fmax=8000.0, power=1.0)
    return np.log10(1.0 + mel)


def run() -> dict:
    audio = piano_audio()
    rows = []
    for name, fn in [("sheetlab.log_spectrogram (136 log bands)", log_spectrogram),
                     ("librosa melspectrogram + log10(1+x) (136 mel bands)", librosa_mel)]:
        seconds = median_seconds(fn, audio)
        rows.append({"method": name, "median_s_per_60s": seconds, "x_real_time": SECONDS / seconds})
    ratio = rows[0]["x_real_time"] / rows[1]["x_real_time"]
    return {
        "title": "Spectrogram throughput",
        "rows": rows,
        "notes": f"Median of {REPEATS} runs on {SECONDS:.0f} s of FluidSynth piano. "
                 f"sheetlab / librosa speed ratio: {ratio:.2f}.",
    }
