"""Plausible wrong answers to the book's exercises: the checks must fail every one of them.

``WRONG`` maps each exercise name to its wrong implementations. A chapter that registers an
exercise in :mod:`sheetlab.exercises` adds at least one here (``tests/test_exercises.py``
insists): a mistake a student would actually make, not a random function.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# --- chapter 1: log_frequencies ---------------------------------------------------------------


def log_frequencies_geomspace(bands_per_octave, fmin, fmax, fref=440.0):
    """Evenly spaced on a log axis from fmin to fmax, but not aligned to fref."""
    n = int(np.floor(np.log2(fmax / fmin) * bands_per_octave)) + 1
    return np.geomspace(fmin, fmax, n)


def log_frequencies_past_fmax(bands_per_octave, fmin, fmax, fref=440.0):
    """Off-by-one at the top: keeps the grid point just above fmax."""
    lo = np.ceil(np.log2(fmin / fref) * bands_per_octave)
    hi = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    return fref * 2.0 ** (np.arange(lo, hi + 1) / bands_per_octave)


def log_frequencies_below_fmin(bands_per_octave, fmin, fmax, fref=440.0):
    """Off-by-one at the bottom: starts at the grid point at or below fmin."""
    lo = np.floor(np.log2(fmin / fref) * bands_per_octave)
    hi = np.floor(np.log2(fmax / fref) * bands_per_octave)
    return fref * 2.0 ** (np.arange(lo, hi + 1) / bands_per_octave)


def log_frequencies_open_interval(bands_per_octave, fmin, fmax, fref=440.0):
    """Keeps only frequencies strictly above fmin: drops fmin when it is a grid point."""
    k = np.arange(-20 * bands_per_octave, 20 * bands_per_octave)
    freqs = fref * 2.0 ** (k / bands_per_octave)
    return freqs[(freqs > fmin) & (freqs < fmax)]


def log_frequencies_fixed_fref(bands_per_octave, fmin, fmax, fref=440.0):
    """Right grid, but always around 440 Hz: ignores the fref argument."""
    k = np.arange(-20 * bands_per_octave, 20 * bands_per_octave)
    freqs = 440.0 * 2.0 ** (k / bands_per_octave)
    return freqs[(freqs >= fmin) & (freqs <= fmax)]


# --- chapter 1: time_to_frame ------------------------------------------------------------------


def time_to_frame_truncate(time_s, fps):
    """Truncation instead of rounding to the nearest frame."""
    if np.ndim(time_s):
        return (np.asarray(time_s) * fps).astype(int)
    return int(time_s * fps)


def time_to_frame_samples(time_s, fps):
    """Multiplies by the hop in samples: gives a sample index, not a frame index."""
    return np.floor(np.asarray(time_s) * fps * 705.6 + 0.5).astype(np.int64)


def time_to_frame_bankers(time_s, fps):
    """np.round: rounds halfway cases to the even frame."""
    return np.round(np.asarray(time_s) * fps).astype(np.int64)


def time_to_frame_float(time_s, fps):
    """Right values, but floats: cannot index a spectrogram."""
    return np.floor(np.asarray(time_s) * fps + 0.5)


def time_to_frame_fixed_fps(time_s, fps):
    """Ignores the fps argument: always the book's 31.25 frames per second."""
    return np.floor(np.asarray(time_s) * 31.25 + 0.5).astype(np.int64)


def time_to_frame_scalar_only(time_s, fps):
    """Works for one time only (Python's int() on an array fails)."""
    return int(np.floor(time_s * fps + 0.5))


# --- chapter 1: frame_to_time ------------------------------------------------------------------


def frame_to_time_times_fps(frame, fps):
    """Multiplies by the frame rate instead of dividing."""
    return np.asarray(frame) * fps


def frame_to_time_floor_division(frame, fps):
    """Floor division: whole seconds only."""
    return np.asarray(frame) // fps


def frame_to_time_fixed_hop(frame, fps):
    """Ignores the fps argument: hop 705.6 samples at 22.05 kHz."""
    return np.asarray(frame) * 705.6 / 22050


WRONG: dict[str, list[Callable]] = {
    "log_frequencies": [log_frequencies_geomspace, log_frequencies_past_fmax,
                        log_frequencies_below_fmin, log_frequencies_open_interval,
                        log_frequencies_fixed_fref],
    "time_to_frame": [time_to_frame_truncate, time_to_frame_samples, time_to_frame_bankers,
                      time_to_frame_float, time_to_frame_fixed_fps, time_to_frame_scalar_only],
    "frame_to_time": [frame_to_time_times_fps, frame_to_time_floor_division,
                      frame_to_time_fixed_hop],
}
