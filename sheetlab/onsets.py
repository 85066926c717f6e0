"""Finding note onsets in audio: spectral flux and peak picking (chapters 2 and 11).

An onset is where new energy appears in the spectrogram. The *spectral flux* adds up, frame by
frame, how much each band got louder (decreases are ignored); its peaks are the onsets.
The onset detector of :cite:p:`boeck2016madmom` is a trained network; this one is the classic
baseline, good enough to check that a synthesised performance sounds its notes where
:func:`sheetlab.perform.perform` says it does.
"""

from __future__ import annotations

import numpy as np

from sheetlab.perform import SAMPLE_RATE
from sheetlab.spectrogram import FPS, log_spectrogram

THRESHOLD = 0.05
"""Default peak threshold: a fraction of the activation's maximum (see :func:`pick_peaks`)."""


def spectral_flux(spec: np.ndarray) -> np.ndarray:
    """Spectral flux: the summed increase of every band from one frame to the next (chapter 2).

    Parameters
    ----------
    spec : numpy.ndarray
        ``(n_bands, n_frames)`` log-magnitude spectrogram (:func:`sheetlab.spectrogram.log_spectrogram`).

    Returns
    -------
    numpy.ndarray
        ``(n_frames,) float32``, non-negative; frame 0 is compared with silence.
    """
    spec = np.asarray(spec, dtype=np.float32)
    if spec.ndim != 2:
        raise ValueError(f"expected a (n_bands, n_frames) spectrogram, got shape {spec.shape}")
    rise = np.diff(spec, axis=1, prepend=0.0)
    return np.maximum(rise, 0.0).sum(axis=0)


def pick_peaks(activation: np.ndarray, threshold: float = THRESHOLD, fps: float = FPS,
               max_s: float = 0.03, avg_s: float = 0.1, combine_s: float = 0.03) -> np.ndarray:
    """Frames where an onset activation peaks, madmom-style (chapter 2).

    A frame is an onset when its activation is the maximum within ``±max_s`` and exceeds the
    mean within ``±avg_s`` by ``threshold`` times the activation's maximum; of onsets closer
    than ``combine_s``, only the first is kept.

    Parameters
    ----------
    activation : numpy.ndarray
        ``(n_frames,)`` onset activation, e.g. :func:`spectral_flux`.
    threshold : float
        Minimum height above the local mean, as a fraction of ``activation.max()``.
    fps : float
        Frames per second.
    max_s, avg_s, combine_s : float
        Half-widths of the maximum and mean windows, and the minimum onset distance, in seconds.

    Returns
    -------
    numpy.ndarray
        ``(n_onsets,) int64`` frame indices, increasing.
    """
    activation = np.asarray(activation, dtype=np.float64)
    if activation.size == 0 or activation.max() <= 0:
        return np.zeros(0, dtype=np.int64)
    w_max, w_avg = max(int(round(max_s * fps)), 1), max(int(round(avg_s * fps)), 1)
    padded = np.pad(activation, w_max, constant_values=-np.inf)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * w_max + 1).max(axis=1)
    box = np.ones(2 * w_avg + 1) / (2 * w_avg + 1)
    local_mean = np.convolve(np.pad(activation, w_avg, mode="edge"), box, "valid")
    high = activation >= local_mean + threshold * activation.max()
    frames = np.flatnonzero((activation == local_max) & high)
    kept = []
    for frame in frames:
        if not kept or frame - kept[-1] > combine_s * fps:
            kept.append(frame)
    return np.array(kept, dtype=np.int64)


def detect_onsets(signal: np.ndarray, sr: int = SAMPLE_RATE, threshold: float = THRESHOLD) -> np.ndarray:
    """Onset times of a recording: log spectrogram, spectral flux, peak picking (chapter 2).

    Parameters
    ----------
    signal : numpy.ndarray
        ``(n_samples,)`` mono audio at ``sr``.
    sr : int
        Sample rate in Hz.
    threshold : float
        Peak threshold (see :func:`pick_peaks`).

    Returns
    -------
    numpy.ndarray
        ``(n_onsets,) float64`` onset times in seconds (frame centres, at :data:`FPS`).
    """
    flux = spectral_flux(log_spectrogram(signal, sr))
    return pick_peaks(flux, threshold) / FPS
