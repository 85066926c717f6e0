"""Log-magnitude, log-frequency spectrograms in numpy (chapter 1).

The representation of the talk and of madmom's ``LogarithmicFilteredSpectrogram``
:cite:p:`boeck2016madmom`: 22.05 kHz audio, a 2048-sample Hann window, 31.25 frames per second
(a fractional hop of 705.6 samples), the magnitude spectrum, a triangular filterbank with
24 bands per octave between ``fmin`` and ``fmax`` (normalised filters, duplicate filters
removed), and ``log10(1 + x)``. madmom itself no longer installs on current Python / numpy;
this module reproduces its semantics.

Conventions: spectrograms are ``(n_bands, n_frames) float32``; frame ``i`` is centred on sample
``floor(i * hop)``, that is at time ``i / fps`` seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft

from sheetlab.perform import SAMPLE_RATE
from sheetlab.threads import one_blas_thread

FRAME_SIZE = 2048
"""STFT window length in samples."""

FPS = 31.25
"""Frames per second (hop = SAMPLE_RATE / FPS = 705.6 samples)."""

BANDS_PER_OCTAVE = 24
FMIN_HZ = 30.0
FMAX_HZ = 8000.0
FREF_HZ = 440.0

_CHUNK_FRAMES = 1024  # frames transformed at once: bounds memory on long recordings


@dataclass(frozen=True)
class SpectrogramSettings:
    """Every setting that determines a spectrogram (used as part of data cache keys).

    Attributes
    ----------
    sr : int
        Sample rate in Hz.
    frame_size : int
        Window length in samples.
    fps : float
        Frames per second.
    bands_per_octave : int
        Filters per octave of the logarithmic filterbank.
    fmin_hz, fmax_hz : float
        Frequency range of the filterbank in Hz.
    """

    sr: int = SAMPLE_RATE
    frame_size: int = FRAME_SIZE
    fps: float = FPS
    bands_per_octave: int = BANDS_PER_OCTAVE
    fmin_hz: float = FMIN_HZ
    fmax_hz: float = FMAX_HZ

    def as_dict(self) -> dict:
        """The settings as a plain dict (JSON-serialisable)."""
        return asdict(self)

    @property
    def n_bands(self) -> int:
        """Number of frequency bands these settings produce."""
        return len(log_filterbank(self.sr, self.frame_size, self.bands_per_octave,
                                  self.fmin_hz, self.fmax_hz)[1])


def fft_frequencies(frame_size: int = FRAME_SIZE, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Centre frequencies of the STFT bins that madmom keeps (DC up to, not including, Nyquist).

    Parameters
    ----------
    frame_size : int
        FFT length in samples.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        ``(frame_size // 2,) float64`` in Hz: ``k * sr / frame_size``.
    """
    return np.arange(frame_size // 2) * (sr / frame_size)


def log_frequencies(bands_per_octave: int = BANDS_PER_OCTAVE, fmin: float = FMIN_HZ,
                    fmax: float = FMAX_HZ, fref: float = FREF_HZ) -> np.ndarray:
    """Logarithmically spaced frequencies in ``[fmin, fmax]``, aligned to ``fref`` (chapter 1).

    The frequencies are ``fref * 2 ** (k / bands_per_octave)`` for every integer ``k`` that
    lands in the range (as in madmom, a grid point exactly at ``fmax`` is left out): with
    24 bands per octave, every quarter tone of the A440 scale.

    Parameters
    ----------
    bands_per_octave : int
        Frequencies per octave.
    fmin, fmax : float
        Range in Hz (inclusive).
    fref : float
        Reference frequency in Hz; it is on the grid.

    Returns
    -------
    numpy.ndarray
        ``(n,) float64`` in Hz, increasing.
    """
    if not 0 < fmin < fmax:
        raise ValueError(f"need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if bands_per_octave < 1:
        raise ValueError(f"bands_per_octave must be >= 1, got {bands_per_octave}")
    # madmom's grid: k from floor(.) to ceil(.) - 1, then clipped to [fmin, fmax]
    lo = np.floor(np.log2(fmin / fref) * bands_per_octave)
    hi = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    freqs = fref * 2.0 ** (np.arange(lo, hi) / bands_per_octave)
    freqs = freqs[np.searchsorted(freqs, fmin):]
    return freqs[: np.searchsorted(freqs, fmax, "right")]


def frequencies_to_bins(freqs: np.ndarray, bin_freqs: np.ndarray, unique: bool = True) -> np.ndarray:
    """Index of the nearest STFT bin for each frequency (ties go to the lower bin).

    Parameters
    ----------
    freqs : numpy.ndarray
        ``(n,)`` frequencies in Hz.
    bin_freqs : numpy.ndarray
        ``(n_bins,)`` increasing bin centre frequencies in Hz.
    unique : bool
        Drop repeated bins (low frequencies crowd into the same bin).

    Returns
    -------
    numpy.ndarray
        ``(m,) int64`` bin indices, ``m <= n``.
    """
    idx = np.clip(np.searchsorted(bin_freqs, freqs), 1, len(bin_freqs) - 1)
    idx = idx - (freqs - bin_freqs[idx - 1] < bin_freqs[idx] - freqs)
    return np.unique(idx) if unique else idx


def _triangle(start: int, centre: int, stop: int, n_bins: int, norm: bool) -> np.ndarray:
    """One triangular filter over ``n_bins`` bins: rises from ``start``, peaks at ``centre``."""
    if stop - start < 2:  # too narrow for a triangle: a single bin
        centre, stop = start, start + 1
    weights = np.zeros(n_bins)
    weights[start:centre] = np.linspace(0.0, 1.0, centre - start, endpoint=False)
    weights[centre:stop] = np.linspace(1.0, 0.0, stop - centre, endpoint=False)
    return weights / weights.sum() if norm else weights


def log_filterbank(sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE,
                   bands_per_octave: int = BANDS_PER_OCTAVE, fmin: float = FMIN_HZ,
                   fmax: float = FMAX_HZ, fref: float = FREF_HZ, norm: bool = True,
                   unique: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Triangular filters on a logarithmic frequency axis, as madmom builds them (chapter 1).

    The log-spaced frequencies are snapped to their nearest STFT bins; every run of three
    consecutive bins (start, centre, stop) makes one triangular filter, so the first and last
    frequency only bound the outer filters. With ``unique`` repeated bins are merged first.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    frame_size : int
        FFT length in samples.
    bands_per_octave : int
        Filters per octave.
    fmin, fmax : float
        Frequency range in Hz.
    fref : float
        Reference frequency of the log grid in Hz.
    norm : bool
        Scale each filter to unit sum (a band is then an average of its bins).
    unique : bool
        Merge frequencies that snap to the same bin (otherwise duplicate filters remain).

    Returns
    -------
    weights : numpy.ndarray
        ``(frame_size // 2, n_bands) float32``: spectrum @ weights gives band energies.
    centres_hz : numpy.ndarray
        ``(n_bands,) float64``: frequency of each filter's peak bin, in Hz.
    """
    bin_freqs = fft_frequencies(frame_size, sr)
    bins = frequencies_to_bins(log_frequencies(bands_per_octave, fmin, fmax, fref), bin_freqs, unique)
    if len(bins) < 3:
        raise ValueError(f"{fmin}-{fmax} Hz at {bands_per_octave} bands/octave gives fewer than 3 bins")
    triples = np.lib.stride_tricks.sliding_window_view(bins, 3)
    weights = np.stack([_triangle(*map(int, t), len(bin_freqs), norm) for t in triples], axis=1)
    return weights.astype(np.float32), bin_freqs[triples[:, 1]]


def num_frames(n_samples: int, sr: int = SAMPLE_RATE, fps: float = FPS) -> int:
    """Number of frames of a signal: ``ceil(n_samples / hop)`` with ``hop = sr / fps``.

    Parameters
    ----------
    n_samples : int
        Signal length in samples.
    sr : int
        Sample rate in Hz.
    fps : float
        Frames per second.

    Returns
    -------
    int
        Frames covering the signal (the last one may hang over its end).
    """
    return int(np.ceil(n_samples * fps / sr - 1e-9))


def frame_starts(n_frames: int, sr: int = SAMPLE_RATE, fps: float = FPS,
                 frame_size: int = FRAME_SIZE) -> np.ndarray:
    """First sample of every frame: frame ``i`` is centred on sample ``floor(i * sr / fps)``.

    Each start is computed from the frame index, never by adding up hops, so a fractional
    hop (705.6 samples) does not drift, however long the signal.

    Returns
    -------
    numpy.ndarray
        ``(n_frames,) int64`` sample indices (negative at the start: zero padding).
    """
    # exact rational arithmetic when sr / fps is a ratio of small integers (705.6 = 3528 / 5)
    hop = np.float64(sr) / np.float64(fps)
    centres = np.floor(np.arange(n_frames) * hop + 1e-9).astype(np.int64)
    return centres - frame_size // 2


def _magnitude_chunks(signal: np.ndarray, sr: int, frame_size: int, fps: float):
    """Yield ``(first_frame, magnitude)`` chunks, ``magnitude: (n_chunk, frame_size // 2)``.

    Frames are gathered by index from a zero-padded copy of the signal, windowed and transformed
    a chunk at a time, so memory stays bounded on long recordings.
    """
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got shape {signal.shape}")
    starts = frame_starts(num_frames(len(signal), sr, fps), sr, fps, frame_size)
    padded = np.concatenate([np.zeros(frame_size, np.float32), signal,
                             np.zeros(2 * frame_size, np.float32)])
    window = np.hanning(frame_size).astype(np.float32)
    offsets = np.arange(frame_size) + frame_size
    for first in range(0, len(starts), _CHUNK_FRAMES):
        frames = padded[starts[first:first + _CHUNK_FRAMES, None] + offsets] * window
        spectrum = scipy.fft.rfft(frames, axis=1, workers=-1)[:, : frame_size // 2]
        yield first, np.abs(spectrum)


def stft_magnitude(signal: np.ndarray, sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE,
                   fps: float = FPS) -> np.ndarray:
    """Magnitude STFT with a Hann window and a fractional hop (chapter 1).

    Parameters
    ----------
    signal : numpy.ndarray
        ``(n_samples,)`` mono audio in [-1, 1].
    sr : int
        Sample rate in Hz.
    frame_size : int
        Window and FFT length in samples.
    fps : float
        Frames per second.

    Returns
    -------
    numpy.ndarray
        ``(frame_size // 2, n_frames) float32``: bins DC .. Nyquist - 1, frames centred on
        ``i / fps`` seconds; samples outside the signal count as zeros.
    """
    out = np.empty((frame_size // 2, num_frames(len(signal), sr, fps)), dtype=np.float32)
    for first, magnitude in _magnitude_chunks(signal, sr, frame_size, fps):
        out[:, first:first + len(magnitude)] = magnitude.T
    return out


def log_spectrogram(signal: np.ndarray, sr: int = SAMPLE_RATE, frame_size: int = FRAME_SIZE,
                    fps: float = FPS, bands_per_octave: int = BANDS_PER_OCTAVE,
                    fmin: float = FMIN_HZ, fmax: float = FMAX_HZ) -> np.ndarray:
    """The network's audio input: log-magnitude, log-frequency spectrogram (chapter 1).

    Magnitude STFT (:func:`stft_magnitude`), the triangular log filterbank
    (:func:`log_filterbank`), then ``log10(1 + x)``, as madmom's
    ``LogarithmicFilteredSpectrogram``. The defaults give the talk's 136 bands.

    Parameters
    ----------
    signal : numpy.ndarray
        ``(n_samples,)`` mono audio in [-1, 1] at ``sr``.
    sr, frame_size, fps, bands_per_octave, fmin, fmax
        As in :class:`SpectrogramSettings`.

    Returns
    -------
    numpy.ndarray
        ``(n_bands, n_frames) float32``, non-negative.
    """
    weights, _ = log_filterbank(sr, frame_size, bands_per_octave, fmin, fmax)
    out = np.empty((weights.shape[1], num_frames(len(signal), sr, fps)), dtype=np.float32)
    with one_blas_thread():  # no BLAS workers left spinning for what comes next
        for first, magnitude in _magnitude_chunks(signal, sr, frame_size, fps):
            out[:, first:first + len(magnitude)] = np.log10(1.0 + magnitude @ weights).T
    return out


def frame_to_time(frame: np.ndarray | int, fps: float = FPS) -> np.ndarray | float:
    """Time in seconds of the centre of frame(s) ``frame`` (chapter 1).

    Parameters
    ----------
    frame : int or numpy.ndarray
        Frame index (or indices).
    fps : float
        Frames per second.

    Returns
    -------
    float or numpy.ndarray
        ``frame / fps`` in seconds, same shape as ``frame``.
    """
    return np.asarray(frame) / fps if np.ndim(frame) else float(frame) / fps


def time_to_frame(time_s: np.ndarray | float, fps: float = FPS) -> np.ndarray | int:
    """Index of the frame whose centre is nearest to ``time_s`` (chapter 1).

    Halfway cases go to the later frame (``floor(t * fps + 0.5)``), so the mapping is the same
    on every platform.

    Parameters
    ----------
    time_s : float or numpy.ndarray
        Time(s) in seconds, >= 0.
    fps : float
        Frames per second.

    Returns
    -------
    int or numpy.ndarray
        Frame index (int64 array for array input).
    """
    frames = np.floor(np.asarray(time_s, dtype=np.float64) * fps + 0.5).astype(np.int64)
    return frames if np.ndim(time_s) else int(frames)
