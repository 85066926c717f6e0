"""Spectrogram tests against values derived independently of the implementation."""

import numpy as np
import pytest

from sheetlab import spectrogram as sp

SR = 22050
HOP = SR / 31.25  # 705.6 samples


def brute_force_band_count(fmin: float, fmax: float, bpo: int = 24, n_fft: int = 2048) -> int:
    """Count madmom's unique bands by the definition: snap each grid frequency to its nearest
    bin by exhaustive search, drop repeats, and every three consecutive bins make one filter."""
    bin_hz = np.arange(n_fft // 2) * SR / n_fft
    ks = range(-200, 200)
    grid = [440.0 * 2 ** (k / bpo) for k in ks]
    grid = [f for f in grid if fmin <= f <= fmax and not np.isclose(f, fmax)]
    bins = []
    for f in grid:
        dist = np.abs(bin_hz - f)
        nearest = int(np.flatnonzero(dist == dist.min())[0])  # ties: the lower bin
        if nearest not in bins:
            bins.append(nearest)
    return len(bins) - 2


@pytest.mark.parametrize("fmin, expected", [(30.0, 136), (80.0, 132)])
def test_band_counts_match_the_talk(fmin, expected):
    assert brute_force_band_count(fmin, 8000.0) == expected
    weights, centres = sp.log_filterbank(fmin=fmin, fmax=8000.0)
    assert weights.shape == (1024, expected)
    assert centres.shape == (expected,)
    assert sp.SpectrogramSettings(fmin_hz=fmin).n_bands == expected


def test_log_frequencies_are_the_quarter_tone_grid():
    freqs = sp.log_frequencies(24, 400.0, 500.0)
    # quarter tones of A440 between 400 and 500 Hz: k = -3 .. 4
    expected = 440.0 * 2.0 ** (np.arange(-3, 5) / 24)
    np.testing.assert_allclose(freqs, expected)
    assert np.isclose(sp.log_frequencies(12, 440.0, 1000.0)[0], 440.0)  # fmin on the grid is kept


def test_filter_centres_sit_on_the_nearest_bins_of_the_grid():
    _, centres = sp.log_filterbank()
    bin_hz = SR / 2048
    # A4 = 440 Hz snaps to bin round(440 / 10.77) = 41; A6 = 1760 Hz to bin 163
    assert 41 * bin_hz in centres
    assert 163 * bin_hz in centres
    assert np.all(np.diff(centres) > 0)


def test_filters_are_normalised_unique_and_peak_at_their_centre():
    weights, centres = sp.log_filterbank()
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, rtol=1e-5)
    assert len({w.tobytes() for w in weights.T}) == weights.shape[1]
    peak_bins = weights.argmax(axis=0)
    np.testing.assert_allclose(peak_bins * SR / 2048, centres)


@pytest.mark.parametrize("freq_hz", [110.0, 440.0, 1000.0, 3000.0])
def test_a_sine_peaks_in_the_band_nearest_its_frequency(freq_hz):
    t = np.arange(SR) / SR
    spec = sp.log_spectrogram(0.5 * np.sin(2 * np.pi * freq_hz * t))
    _, centres = sp.log_filterbank()
    middle = spec.shape[1] // 2
    assert spec[:, middle].argmax() == np.abs(centres - freq_hz).argmin()


@pytest.mark.parametrize("seconds, frames", [(1.0, 32), (10.0, 313), (600.0, 18750)])
def test_frame_count_for_a_known_length(seconds, frames):
    n = int(seconds * SR)
    assert sp.num_frames(n) == frames  # ceil(n / 705.6)
    assert sp.stft_magnitude(np.zeros(n, np.float32)).shape == (1024, frames)


def test_no_drift_over_ten_minutes():
    n = sp.num_frames(600 * SR)
    starts = sp.frame_starts(n)
    exact_centres = (np.arange(n, dtype=np.int64) * 3528) // 5  # floor(i * 705.6), exact integers
    np.testing.assert_array_equal(starts + 1024, exact_centres)


def test_stft_frame_equals_a_direct_dft_of_the_windowed_excerpt():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR).astype(np.float32)
    mag = sp.stft_magnitude(x)
    i = 17
    centre = int(np.floor(i * HOP))
    excerpt = x[centre - 1024: centre + 1024] * np.hanning(2048)
    k = np.arange(1024)
    dft = np.abs(np.exp(-2j * np.pi * np.outer(k, np.arange(2048)) / 2048) @ excerpt)
    np.testing.assert_allclose(mag[:, i], dft, rtol=1e-3, atol=1e-3)


def test_first_frame_is_zero_padded_and_silence_is_zero():
    assert np.all(sp.log_spectrogram(np.zeros(SR, np.float32)) == 0)
    x = np.zeros(SR, np.float32)
    x[0] = 1.0  # an impulse at sample 0 is the centre of frame 0: its spectrum is flat
    mag = sp.stft_magnitude(x)
    np.testing.assert_allclose(mag[:, 0], np.hanning(2048)[1024], rtol=1e-5)


def test_log_compression_is_log10_one_plus_x():
    t = np.arange(SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 600 * t)).astype(np.float32)
    weights, _ = sp.log_filterbank()
    linear = weights.T @ sp.stft_magnitude(x)
    np.testing.assert_allclose(sp.log_spectrogram(x), np.log10(1 + linear), rtol=1e-5)


def test_time_frame_conversions():
    assert sp.frame_to_time(125) == 4.0
    assert sp.time_to_frame(4.0) == 125
    assert sp.time_to_frame(0.016) == 1  # 0.5 frames: halves go up
    np.testing.assert_array_equal(sp.time_to_frame(np.array([0.0, 0.015, 0.017, 1.0])), [0, 0, 1, 31])
    frames = np.arange(1000)
    np.testing.assert_array_equal(sp.time_to_frame(sp.frame_to_time(frames)), frames)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="mono"):
        sp.stft_magnitude(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="fmin"):
        sp.log_frequencies(24, 8000.0, 30.0)
