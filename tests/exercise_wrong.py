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


# --- chapter 3: soft_targets -------------------------------------------------------------------


def _gaussian_targets(x_px, n_buckets, width_px, sigma_px, centres):
    """Normalised Gaussian weights of ``centres`` around ``x_px`` (helper of the wrong answers)."""
    weights = np.exp(-0.5 * ((centres - np.asarray(x_px, float)[..., None]) / sigma_px) ** 2)
    return weights / weights.sum(axis=-1, keepdims=True)


def soft_targets_one_hot(x_px, n_buckets, width_px, spread):
    """Ignores the spread: always the hard one-hot target."""
    w = width_px / n_buckets
    return np.eye(n_buckets)[np.clip(np.floor(np.asarray(x_px) / w), 0, n_buckets - 1).astype(int)]


def soft_targets_left_edges(x_px, n_buckets, width_px, spread):
    """Off by half a bucket: uses the buckets' left edges k * w as their centres."""
    w = width_px / n_buckets
    if spread == 0:
        return soft_targets_one_hot(x_px, n_buckets, width_px, spread)
    return _gaussian_targets(x_px, n_buckets, width_px, spread * w, np.arange(n_buckets) * w)


def soft_targets_spread_in_px(x_px, n_buckets, width_px, spread):
    """Reads the spread in px instead of buckets."""
    w = width_px / n_buckets
    if spread == 0:
        return soft_targets_one_hot(x_px, n_buckets, width_px, spread)
    return _gaussian_targets(x_px, n_buckets, width_px, spread, (np.arange(n_buckets) + 0.5) * w)


def soft_targets_unnormalised(x_px, n_buckets, width_px, spread):
    """The Gaussian's values at the centres, not normalised to sum to 1."""
    w = width_px / n_buckets
    if spread == 0:
        return soft_targets_one_hot(x_px, n_buckets, width_px, spread)
    centres = (np.arange(n_buckets) + 0.5) * w
    return np.exp(-0.5 * ((centres - np.asarray(x_px, float)[..., None]) / (spread * w)) ** 2)


def soft_targets_rounded_bucket(x_px, n_buckets, width_px, spread):
    """Right Gaussian, but spread 0 rounds x / w to the nearest bucket instead of flooring."""
    w = width_px / n_buckets
    if spread == 0:
        nearest = np.clip(np.round(np.asarray(x_px) / w), 0, n_buckets - 1).astype(int)
        return np.eye(n_buckets)[nearest]
    centres = (np.arange(n_buckets) + 0.5) * w
    return _gaussian_targets(x_px, n_buckets, width_px, spread * w, centres)


# --- chapter 3: localise -----------------------------------------------------------------------


def localise_argmax(probs, width_px):
    """Only the centre of the most probable bucket: no weighting."""
    p = np.asarray(probs)
    return (p.argmax(axis=-1) + 0.5) * width_px / p.shape[-1]


def localise_not_renormalised(probs, width_px):
    """Weighted sum of the three centres without dividing by the sum of their weights."""
    p = np.asarray(probs)
    n = p.shape[-1]
    centres = (np.arange(n) + 0.5) * width_px / n
    best = p.argmax(axis=-1)[..., None]
    near = np.abs(np.arange(n) - best) <= 1
    return (p * near * centres).sum(axis=-1)


def localise_expected_value(probs, width_px):
    """The expected x over all buckets instead of the best one and its neighbours."""
    p = np.asarray(probs)
    n = p.shape[-1]
    return (p * (np.arange(n) + 0.5) * width_px / n).sum(axis=-1) / p.sum(axis=-1)


def localise_left_edges(probs, width_px):
    """Off by half a bucket: bucket k's position taken as its left edge k * w."""
    p = np.asarray(probs)
    n = p.shape[-1]
    best = p.argmax(axis=-1)[..., None]
    near = np.abs(np.arange(n) - best) <= 1
    return (p * near * np.arange(n) * width_px / n).sum(axis=-1) / (p * near).sum(axis=-1)


def localise_wraps_around(probs, width_px):
    """Indexes p[b - 1] and p[(b + 1) % B]: at the edges the far end of the window joins in."""
    p = np.atleast_2d(np.asarray(probs, dtype=float))
    n = p.shape[-1]
    out = []
    for row in p:
        b = int(row.argmax())
        ks = [b - 1, b, (b + 1) % n]
        centres = [((k % n) + 0.5) * width_px / n for k in ks]
        weights = [row[k] for k in ks]
        out.append(np.dot(weights, centres) / sum(weights))
    return out[0] if np.ndim(probs) == 1 else np.array(out)


# --- chapter 4: conv_output_size ---------------------------------------------------------------


def conv_output_size_true_division(height, width, n_blocks, stem_stride=1):
    """Divides with / instead of //: fractional sizes."""
    return (height / stem_stride / 2 ** n_blocks, width / stem_stride / 2 ** n_blocks)


def conv_output_size_stem_floors(height, width, n_blocks, stem_stride=1):
    """The stride-2 stem as n // 2: wrong for odd sizes (padding 1 rounds up)."""
    h, w = height // stem_stride, width // stem_stride
    return (h // 2 ** n_blocks, w // 2 ** n_blocks)


def conv_output_size_rounded(height, width, n_blocks, stem_stride=1):
    """Rounds n / 2**n_blocks to the nearest integer instead of flooring each pooling."""
    h, w = [(n - 1) // stem_stride + 1 for n in (height, width)]
    return (round(h / 2 ** n_blocks), round(w / 2 ** n_blocks))


def conv_output_size_no_stem(height, width, n_blocks, stem_stride=1):
    """Forgets the stem: counts the pooling only."""
    return (height // 2 ** n_blocks, width // 2 ** n_blocks)


WRONG: dict[str, list[Callable]] = {
    "log_frequencies": [log_frequencies_geomspace, log_frequencies_past_fmax,
                        log_frequencies_below_fmin, log_frequencies_open_interval,
                        log_frequencies_fixed_fref],
    "time_to_frame": [time_to_frame_truncate, time_to_frame_samples, time_to_frame_bankers,
                      time_to_frame_float, time_to_frame_fixed_fps, time_to_frame_scalar_only],
    "frame_to_time": [frame_to_time_times_fps, frame_to_time_floor_division,
                      frame_to_time_fixed_hop],
    "soft_targets": [soft_targets_one_hot, soft_targets_left_edges, soft_targets_spread_in_px,
                     soft_targets_unnormalised, soft_targets_rounded_bucket],
    "localise": [localise_argmax, localise_not_renormalised, localise_expected_value,
                 localise_left_edges, localise_wraps_around],
    "conv_output_size": [conv_output_size_true_division, conv_output_size_stem_floors,
                         conv_output_size_rounded, conv_output_size_no_stem],
}


# --- chapter 2: page_to_strip_x ----------------------------------------------------------------


def page_to_strip_x_no_origin(page_x, system, system_x0, system_start_x, scale):
    """Forgets that a system starts at x0 on its page: scales the whole page x."""
    return np.asarray(system_start_x, float)[system] + scale * np.asarray(page_x, float)


def page_to_strip_x_scales_start(page_x, system, system_x0, system_start_x, scale):
    """Scales the strip start too: (start + page_x - x0) * scale."""
    start, x0 = np.asarray(system_start_x, float), np.asarray(system_x0, float)
    return (start[system] + np.asarray(page_x, float) - x0[system]) * scale


def page_to_strip_x_divides(page_x, system, system_x0, system_start_x, scale):
    """Divides by the scale (the inverse mapping's factor)."""
    start, x0 = np.asarray(system_start_x, float), np.asarray(system_x0, float)
    return start[system] + (np.asarray(page_x, float) - x0[system]) / scale


def page_to_strip_x_first_system(page_x, system, system_x0, system_start_x, scale):
    """Ignores the system index: every point on the first system."""
    return system_start_x[0] + scale * (np.asarray(page_x, float) - system_x0[0])


def page_to_strip_x_next_start(page_x, system, system_x0, system_start_x, scale):
    """Off by one system: starts at system_start_x[system + 1]."""
    start, x0 = np.asarray(system_start_x, float), np.asarray(system_x0, float)
    k = np.minimum(np.asarray(system) + 1, len(start) - 1)
    return start[k] + scale * (np.asarray(page_x, float) - x0[system])


# --- chapter 2: correspondences ----------------------------------------------------------------


def _groups(score_onset_s):
    onsets, group = np.unique(np.asarray(score_onset_s), return_inverse=True)
    return onsets, group


def correspondences_mean_onset(score_onset_s, performed_onset_s, note_x, fps):
    """The frame of the chord's mean performed onset, not of its earliest."""
    onsets, group = _groups(score_onset_s)
    counts = np.bincount(group)
    t = np.bincount(group, weights=performed_onset_s) / counts
    x = np.bincount(group, weights=note_x) / counts
    return np.floor(fps * t + 0.5).astype(np.int64), x


def correspondences_per_note(score_onset_s, performed_onset_s, note_x, fps):
    """One correspondence per note head: chords are not merged."""
    order = np.argsort(score_onset_s, kind="stable")
    t = np.asarray(performed_onset_s)[order]
    return np.floor(fps * t + 0.5).astype(np.int64), np.asarray(note_x, float)[order]


def correspondences_truncated_frames(score_onset_s, performed_onset_s, note_x, fps):
    """Truncates fps * t to a frame instead of rounding to the nearest."""
    onsets, group = _groups(score_onset_s)
    first = np.full(len(onsets), np.inf)
    np.minimum.at(first, group, performed_onset_s)
    x = np.bincount(group, weights=note_x) / np.bincount(group)
    return (fps * first).astype(np.int64), x


def correspondences_first_listed_x(score_onset_s, performed_onset_s, note_x, fps):
    """The x of the chord's first listed head instead of the mean of its heads."""
    onsets, group = _groups(score_onset_s)
    first = np.full(len(onsets), np.inf)
    np.minimum.at(first, group, performed_onset_s)
    _, index = np.unique(group, return_index=True)
    return np.floor(fps * first + 0.5).astype(np.int64), np.asarray(note_x, float)[index]


def correspondences_by_performed_onset(score_onset_s, performed_onset_s, note_x, fps):
    """Groups notes by performed onset: a chord played with asynchrony falls apart."""
    onsets, group = _groups(performed_onset_s)
    x = np.bincount(group, weights=note_x) / np.bincount(group)
    return np.floor(fps * onsets + 0.5).astype(np.int64), x


def correspondences_float_frames(score_onset_s, performed_onset_s, note_x, fps):
    """Right values, but the frames are floats: they cannot index a spectrogram."""
    onsets, group = _groups(score_onset_s)
    first = np.full(len(onsets), np.inf)
    np.minimum.at(first, group, performed_onset_s)
    x = np.bincount(group, weights=note_x) / np.bincount(group)
    return np.floor(fps * first + 0.5), x


WRONG["page_to_strip_x"] = [page_to_strip_x_no_origin, page_to_strip_x_scales_start,
                            page_to_strip_x_divides, page_to_strip_x_first_system,
                            page_to_strip_x_next_start]
WRONG["correspondences"] = [correspondences_mean_onset, correspondences_per_note,
                            correspondences_truncated_frames, correspondences_first_listed_x,
                            correspondences_by_performed_onset, correspondences_float_frames]


# --- chapter 5: tracking_ratio -----------------------------------------------------------------


def tracking_ratio_counts_lost_onset(errors_px, window_px):
    """Off by one: counts the onset at which the follower is lost as tracked."""
    lost = np.abs(np.asarray(errors_px)) > window_px / 3
    return (np.argmax(lost) + 1) / len(lost) if lost.any() else 1.0


def tracking_ratio_at_least(errors_px, window_px):
    """>= instead of >: an error of exactly a third of the window counts as lost."""
    lost = np.abs(np.asarray(errors_px)) >= window_px / 3
    return np.argmax(lost) / len(lost) if lost.any() else 1.0


def tracking_ratio_signed(errors_px, window_px):
    """The signed error: a follower that falls behind (negative error) is never lost."""
    lost = np.asarray(errors_px) > window_px / 3
    return np.argmax(lost) / len(lost) if lost.any() else 1.0


def tracking_ratio_share_not_lost(errors_px, window_px):
    """The share of all onsets that are not lost, instead of those before the first loss."""
    return float(np.mean(np.abs(np.asarray(errors_px)) <= window_px / 3))


def tracking_ratio_zero_if_never_lost(errors_px, window_px):
    """np.argmax of an all-False array is 0: a follower that is never lost scores 0."""
    lost = np.abs(np.asarray(errors_px)) > window_px / 3
    return np.argmax(lost) / len(lost)


def tracking_ratio_half_window(errors_px, window_px):
    """Lost at half the window instead of a third."""
    lost = np.abs(np.asarray(errors_px)) > window_px / 2
    return np.argmax(lost) / len(lost) if lost.any() else 1.0


def tracking_ratio_fixed_window(errors_px, window_px):
    """Ignores the window_px argument: always the book's 390 px window."""
    lost = np.abs(np.asarray(errors_px)) > 390 / 3
    return np.argmax(lost) / len(lost) if lost.any() else 1.0


def tracking_ratio_count(errors_px, window_px):
    """The number of onsets before the first loss, not divided by the number of onsets."""
    lost = np.abs(np.asarray(errors_px)) > window_px / 3
    return float(np.argmax(lost)) if lost.any() else float(len(lost))


WRONG["tracking_ratio"] = [tracking_ratio_counts_lost_onset, tracking_ratio_at_least,
                           tracking_ratio_signed, tracking_ratio_share_not_lost,
                           tracking_ratio_zero_if_never_lost, tracking_ratio_half_window,
                           tracking_ratio_fixed_window, tracking_ratio_count]


# --- chapter 6: guided_relu_backward ------------------------------------------------------------


def guided_relu_backward_plain(x, grad_out):
    """The ordinary ReLU gradient: negative error signals pass too."""
    return np.asarray(grad_out) * (np.asarray(x) > 0)


def guided_relu_backward_deconvnet(x, grad_out):
    """The deconvnet rule (Zeiler and Fergus): only the signal's sign, the forward input ignored."""
    return np.maximum(np.asarray(grad_out), 0)


def guided_relu_backward_at_least(x, grad_out):
    """x >= 0 instead of x > 0: passes the signal where the ReLU's input was exactly zero."""
    x, grad_out = np.asarray(x), np.asarray(grad_out)
    return np.where((x >= 0) & (grad_out > 0), grad_out, 0.0)


def guided_relu_backward_mask(x, grad_out):
    """Returns the mask (1 where the signal may pass), not the signal itself."""
    return ((np.asarray(x) > 0) & (np.asarray(grad_out) > 0)).astype(float)


def guided_relu_backward_or(x, grad_out):
    """Either condition instead of both: `|` where `&` belongs."""
    x, grad_out = np.asarray(x), np.asarray(grad_out)
    return np.where((x > 0) | (grad_out > 0), grad_out, 0.0)


def guided_relu_backward_times_x(x, grad_out):
    """Multiplies by the forward activation max(x, 0) instead of the indicator [x > 0]."""
    return np.maximum(np.asarray(grad_out), 0) * np.maximum(np.asarray(x), 0)


def guided_relu_backward_passes_x(x, grad_out):
    """The arguments mixed up: passes the forward input where both are positive."""
    x, grad_out = np.asarray(x), np.asarray(grad_out)
    return np.where((x > 0) & (grad_out > 0), x, 0.0)


def guided_relu_backward_abs(x, grad_out):
    """Keeps the size of negative signals: |grad_out| where x > 0."""
    return np.abs(np.asarray(grad_out)) * (np.asarray(x) > 0)


WRONG["guided_relu_backward"] = [guided_relu_backward_plain, guided_relu_backward_deconvnet,
                                 guided_relu_backward_at_least, guided_relu_backward_mask,
                                 guided_relu_backward_or, guided_relu_backward_times_x,
                                 guided_relu_backward_passes_x, guided_relu_backward_abs]


# --- chapter 7: gru_step -----------------------------------------------------------------------


def _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """The three gate blocks of inputs and states: (x parts, h parts), each r, z, n."""
    size = h.shape[-1]
    gx, gh = x @ weight_ih.T + bias_ih, h @ weight_hh.T + bias_hh
    return ([gx[..., k * size:(k + 1) * size] for k in range(3)],
            [gh[..., k * size:(k + 1) * size] for k in range(3)])


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def gru_step_swapped_update(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """z weighs the new state instead of the old one: h' = z n + (1 - z) h."""
    (xr, xz, xn), (hr, hz, hn) = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    return z * np.tanh(xn + r * hn) + (1 - z) * h


def gru_step_reset_outside_bias(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """The reset gate multiplies W_hn h only, not its bias (the original paper's variant)."""
    (xr, xz, xn), (hr, hz, hn) = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    size = h.shape[-1]
    b_hn = bias_hh[2 * size:]
    return (1 - z) * np.tanh(xn + r * (hn - b_hn) + b_hn) + z * h


def gru_step_gates_z_first(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """Reads the stacked blocks in the order z, r, n instead of r, z, n."""
    (xz, xr, xn), (hz, hr, hn) = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    return (1 - z) * np.tanh(xn + r * hn) + z * h


def gru_step_reset_on_input(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """The reset gate applied to the input part of n instead of the state part."""
    (xr, xz, xn), (hr, hz, hn) = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    return (1 - z) * np.tanh(r * xn + hn) + z * h


def gru_step_no_state_bias(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """Forgets bias_hh: one bias per gate, as in some textbooks."""
    (xr, xz, xn), (hr, hz, hn) = _gates(x, h, weight_ih, weight_hh, bias_ih,
                                        np.zeros_like(bias_hh))
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    return (1 - z) * np.tanh(xn + r * hn) + z * h


def gru_step_sigmoid_candidate(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """A sigmoid instead of tanh for the new state."""
    (xr, xz, xn), (hr, hz, hn) = _gates(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
    return (1 - z) * _sigmoid(xn + r * hn) + z * h


WRONG["gru_step"] = [gru_step_swapped_update, gru_step_reset_outside_bias, gru_step_gates_z_first,
                     gru_step_reset_on_input, gru_step_no_state_bias, gru_step_sigmoid_candidate]


# --- chapter 8: forward_step -------------------------------------------------------------------


def _normalised(x):
    return x / x.sum()


def forward_step_same_convolution(belief, kernel, likelihood):
    """np.convolve(..., mode="same"): the steps come out shifted for longer kernels."""
    prior = np.convolve(belief, kernel, mode="same")
    return _normalised(prior * likelihood)


def forward_step_wraps_around(belief, kernel, likelihood):
    """np.roll for each step: mass past the last state reappears at the first (and back)."""
    prior = sum(p * np.roll(np.asarray(belief, float), j - 1) for j, p in enumerate(kernel))
    return _normalised(prior * likelihood)


def forward_step_drops_at_the_ends(belief, kernel, likelihood):
    """Mass that would leave the states is lost instead of kept at the first or last state."""
    prior = np.convolve(belief, kernel)[1:len(belief) + 1]
    return _normalised(prior * likelihood)


def forward_step_reversed_kernel(belief, kernel, likelihood):
    """np.correlate instead of np.convolve: kernel[0] moves forward, the last entry back."""
    full = np.convolve(belief, np.asarray(kernel)[::-1])
    shift = len(kernel) - 2  # align "stay" with the state itself
    n = len(belief)
    prior = full[shift:shift + n].copy()
    prior[0] += full[:shift].sum()
    prior[-1] += full[shift + n:].sum()
    return _normalised(prior * likelihood)


def forward_step_not_normalised(belief, kernel, likelihood):
    """Forgets to normalise: the belief no longer sums to 1."""
    spread = np.convolve(belief, kernel)
    n = len(belief)
    prior = spread[1:n + 1].copy()
    prior[0] += spread[0]
    prior[-1] += spread[n + 1:].sum()
    return prior * likelihood


def forward_step_update_then_predict(belief, kernel, likelihood):
    """Weights the old belief by the new likelihood, then predicts: the steps in the wrong order."""
    weighted = _normalised(np.asarray(belief, float) * likelihood)
    spread = np.convolve(weighted, kernel)
    n = len(belief)
    prior = spread[1:n + 1].copy()
    prior[0] += spread[0]
    prior[-1] += spread[n + 1:].sum()
    return prior


def forward_step_adds_likelihood(belief, kernel, likelihood):
    """Adds the likelihood to the prediction instead of multiplying."""
    spread = np.convolve(belief, kernel)
    n = len(belief)
    prior = spread[1:n + 1].copy()
    prior[0] += spread[0]
    prior[-1] += spread[n + 1:].sum()
    return _normalised(prior + likelihood)


def forward_step_no_back_step(belief, kernel, likelihood):
    """Reads kernel[0] as "stay" and kernel[k] as k forward: every move one state too short."""
    spread = np.convolve(belief, kernel)
    n = len(belief)
    prior = spread[:n].copy()
    prior[-1] += spread[n:].sum()
    return _normalised(prior * likelihood)


WRONG["forward_step"] = [forward_step_same_convolution, forward_step_wraps_around,
                         forward_step_drops_at_the_ends, forward_step_reversed_kernel,
                         forward_step_not_normalised, forward_step_update_then_predict,
                         forward_step_adds_likelihood, forward_step_no_back_step]


# --- chapter 9: recall_and_mrr -------------------------------------------------------------------


def _match(sim):
    sim = np.asarray(sim, dtype=float)
    return sim, np.diag(sim)


def recall_and_mrr_ties_against(sim, k):
    """Ties with a wrong candidate count against the match (>= instead of >)."""
    sim, match = _match(sim)
    ranks = (sim >= match[:, None]).sum(1)
    return float(np.mean(ranks <= k)), float(np.mean(1 / ranks))


def recall_and_mrr_columns(sim, k):
    """Ranks the match within its column (the other direction) instead of its row."""
    sim, match = _match(sim)
    ranks = (sim > match[None, :]).sum(0) + 1
    return float(np.mean(ranks <= k)), float(np.mean(1 / ranks))


def recall_and_mrr_zero_based(sim, k):
    """0-based ranks in the recall: counts matches with rank <= k + 1."""
    sim, match = _match(sim)
    ranks = (sim > match[:, None]).sum(1)
    return float(np.mean(ranks <= k)), float(np.mean(1 / (ranks + 1)))


def recall_and_mrr_as_distance(sim, k):
    """Treats the similarities as distances: the smallest is the nearest."""
    sim, match = _match(sim)
    ranks = (sim < match[:, None]).sum(1) + 1
    return float(np.mean(ranks <= k)), float(np.mean(1 / ranks))


def recall_and_mrr_inverse_of_mean(sim, k):
    """1 / mean rank instead of the mean of 1 / rank."""
    sim, match = _match(sim)
    ranks = (sim > match[:, None]).sum(1) + 1
    return float(np.mean(ranks <= k)), float(1 / np.mean(ranks))


def recall_and_mrr_strict_k(sim, k):
    """Recall counts ranks < k instead of <= k."""
    sim, match = _match(sim)
    ranks = (sim > match[:, None]).sum(1) + 1
    return float(np.mean(ranks < k)), float(np.mean(1 / ranks))


def recall_and_mrr_argsort(sim, k):
    """Position in a stable argsort of -sim: a tie with an earlier wrong candidate wins."""
    sim, _ = _match(sim)
    order = np.argsort(-sim, axis=1, kind="stable")
    ranks = np.array([int(np.flatnonzero(row == i)[0]) + 1 for i, row in enumerate(order)])
    return float(np.mean(ranks <= k)), float(np.mean(1 / ranks))


WRONG["recall_and_mrr"] = [recall_and_mrr_ties_against, recall_and_mrr_columns,
                           recall_and_mrr_zero_based, recall_and_mrr_as_distance,
                           recall_and_mrr_inverse_of_mean, recall_and_mrr_strict_k,
                           recall_and_mrr_argsort]


# --- chapter 9: pairwise_ranking_loss -------------------------------------------------------------


def _hinges(x, y, margin):
    """Both directions' hinge matrices (query in the row), the diagonal still included."""
    sim = np.asarray(x, float) @ np.asarray(y, float).T
    positive = np.diag(sim)
    return (np.maximum(0, margin - positive[:, None] + sim),
            np.maximum(0, margin - positive[:, None] + sim.T))


def _off(a):
    return a[~np.eye(len(a), dtype=bool)]


def pairwise_ranking_loss_one_direction(x, y, margin):
    """Only audio queries (x_i against every wrong y_j), not the reverse direction."""
    x_queries, _ = _hinges(x, y, margin)
    return float(_off(x_queries).sum() / len(x))


def pairwise_ranking_loss_with_diagonal(x, y, margin):
    """Sums over every j, the match itself included (each adds the margin)."""
    x_queries, y_queries = _hinges(x, y, margin)
    return float((x_queries.sum() + y_queries.sum()) / len(x))


def pairwise_ranking_loss_mean_over_pairs(x, y, margin):
    """Divides by the number of (query, wrong item) pairs instead of N."""
    x_queries, y_queries = _hinges(x, y, margin)
    return float((_off(x_queries).sum() + _off(y_queries).sum()) / (len(x) * (len(x) - 1)))


def pairwise_ranking_loss_no_hinge(x, y, margin):
    """Forgets max(0, .): well separated wrong items earn a negative cost."""
    sim = np.asarray(x, float) @ np.asarray(y, float).T
    positive = np.diag(sim)
    return float((_off(margin - positive[:, None] + sim).sum()
                  + _off(margin - positive[:, None] + sim.T).sum()) / len(x))


def pairwise_ranking_loss_flipped_sign(x, y, margin):
    """max(0, m + s(i, i) - s(i, j)): rewards wrong items for being similar."""
    sim = np.asarray(x, float) @ np.asarray(y, float).T
    positive = np.diag(sim)
    return float((_off(np.maximum(0, margin + positive[:, None] - sim)).sum()
                  + _off(np.maximum(0, margin + positive[:, None] - sim.T)).sum()) / len(x))


def pairwise_ranking_loss_same_direction_twice(x, y, margin):
    """Uses s(i, j) in both terms (the second should read s(j, i))."""
    x_queries, _ = _hinges(x, y, margin)
    return float(2 * _off(x_queries).sum() / len(x))


def pairwise_ranking_loss_distances(x, y, margin):
    """Euclidean distances in place of similarities, with the hinge's sign kept."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dist = np.linalg.norm(x[:, None] - y[None], axis=-1)
    positive = np.diag(dist)
    return float((_off(np.maximum(0, margin - positive[:, None] + dist)).sum()
                  + _off(np.maximum(0, margin - positive[:, None] + dist.T)).sum()) / len(x))


WRONG["pairwise_ranking_loss"] = [
    pairwise_ranking_loss_one_direction, pairwise_ranking_loss_with_diagonal,
    pairwise_ranking_loss_mean_over_pairs, pairwise_ranking_loss_no_hinge,
    pairwise_ranking_loss_flipped_sign, pairwise_ranking_loss_same_direction_twice,
    pairwise_ranking_loss_distances]
