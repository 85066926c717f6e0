"""HMM tests: the prediction step and the forward filter against brute force, the emission by
hand, an oracle network tracked through a real piece, a noisy oracle that loses the frame-wise
follower but not the HMM, the work done per frame, bad settings and the jitter."""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

import sheetlab.hmm as hmm
from sheetlab.dataset import build_piece
from sheetlab.engrave import engrave, unroll
from sheetlab.following import FollowResult, follow, jitter, sounding_frames, window_grid
from sheetlab.hmm import (STATE_PX, HMMResult, HMMSettings, emission, estimate_x,
                          forward_filter, forward_step, n_states, predict, predict_tempi,
                          start_belief, tempo_kernels, tempo_speeds, track, transition_kernel,
                          update)
from sheetlab.spectrogram import FPS
from sheetlab.widgets import cursor_position, follow_tracks
from test_following import (CONDITION, LONG_SCORE, Oracle, one_thread, oracle_piece,  # noqa: F401
                            random_network, truth)


@pytest.fixture(scope="module")
def piece():
    """The real grand-staff piece of test_following: three systems on two pages, ~25 s."""
    return build_piece(LONG_SCORE, CONDITION)


@pytest.fixture(scope="module")
def strip():
    return unroll(engrave(LONG_SCORE, CONDITION.engrave))


def dense_transition(count, kernel):
    """``A[s, s2]``: the probability of moving from state s to s2, entry by entry (steps of
    ``j - 1`` states for ``kernel[j]``, kept on the states at both ends)."""
    matrix = np.zeros((count, count))
    for s in range(count):
        for j, p in enumerate(kernel):
            matrix[s, min(max(s + j - 1, 0), count - 1)] += p
    return matrix


# --------------------------------------------------------------------------- the model


def test_tempo_prior_kernel():
    settings = HMMSettings(speed_px_s=150.0, max_jump=3, back=0.05)
    kernel = transition_kernel(settings, fps=FPS)
    assert kernel.shape == (5,) and np.all(kernel >= 0)
    assert kernel.sum() == pytest.approx(1.0)
    assert kernel[0] == pytest.approx(0.05)  # one state back
    np.testing.assert_allclose(kernel[2:], kernel[2])  # forward moves equally likely
    steps = np.arange(-1, 4)
    assert kernel @ steps == pytest.approx(150.0 / FPS / STATE_PX)  # the prior tempo
    default = transition_kernel(HMMSettings())
    assert default.shape == (3,) and default[1] > 0.8  # mostly the music stays put in a frame


@pytest.mark.parametrize("kernel", [transition_kernel(HMMSettings(speed_px_s=150.0, max_jump=3,
                                                                  back=0.05)),
                                    np.array([0.1, 0.2, 0.3, 0.0, 0.4])])
def test_prediction_equals_the_dense_transition_matrix(kernel):
    rng = np.random.default_rng(0)
    belief = rng.random(9)
    belief[[0, -1]] = [0.5, 0.7]  # mass at both ends, where moves are kept on the strip
    belief /= belief.sum()
    prior = predict(belief, kernel)
    np.testing.assert_allclose(prior, belief @ dense_transition(9, kernel), rtol=0, atol=1e-15)
    assert prior.sum() == pytest.approx(1.0)
    one = predict(np.array([1.0]), kernel)  # a single state keeps all its mass
    np.testing.assert_allclose(one, [1.0])


def test_forward_filter_equals_the_dense_forward_algorithm():
    rng = np.random.default_rng(1)
    kernel = transition_kernel(HMMSettings(speed_px_s=200.0, max_jump=2, back=0.1))
    likelihoods = rng.random((12, 10)) + 0.01
    initial = start_belief(10)
    matrix = dense_transition(10, kernel)
    alpha, expected = initial, []
    for likelihood in likelihoods:
        alpha = (alpha @ matrix) * likelihood
        alpha = alpha / alpha.sum()
        expected.append(alpha)
    beliefs = forward_filter(likelihoods, kernel, initial)
    np.testing.assert_allclose(beliefs, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(beliefs.sum(axis=1), 1.0)
    np.testing.assert_allclose(update(predict(initial, kernel), likelihoods[0]), beliefs[0])
    with pytest.raises(ValueError, match="likelihoods must be"):
        forward_filter(likelihoods[:, :9], kernel, initial)


def test_forward_filter_equals_the_sum_over_all_paths():
    """Filtering by definition: ``P(s_t | e_1..t)`` summed over every state path, no recursion."""
    rng = np.random.default_rng(2)
    kernel = np.array([0.1, 0.5, 0.3, 0.1])  # back, stay, one and two forward
    count, n_frames = 4, 5
    likelihoods = rng.random((n_frames, count)) + 0.05
    initial = np.array([0.6, 0.4, 0.0, 0.0])
    matrix = dense_transition(count, kernel)
    beliefs = forward_filter(likelihoods, kernel, initial)
    for t in range(n_frames):
        joint = np.zeros(count)
        for path in itertools.product(range(count), repeat=t + 2):  # s_0 .. s_{t+1}
            weight = initial[path[0]]
            for k in range(t + 1):
                weight *= matrix[path[k], path[k + 1]] * likelihoods[k, path[k + 1]]
            joint[path[-1]] += weight
        np.testing.assert_allclose(beliefs[t], joint / joint.sum(), rtol=1e-12)


def test_forward_step_is_one_step_of_the_dense_forward_algorithm():
    rng = np.random.default_rng(3)
    kernel = transition_kernel(HMMSettings(speed_px_s=150.0, max_jump=3, back=0.05))
    belief = rng.random(7)
    belief[[0, -1]] = [0.6, 0.9]  # mass at both ends
    belief /= belief.sum()
    likelihood = rng.random(7) + 0.01
    expected = (belief @ dense_transition(7, kernel)) * likelihood
    step = forward_step(belief, kernel, likelihood)
    np.testing.assert_allclose(step, expected / expected.sum(), rtol=1e-12)
    # lists are fine, and the library's loop is this step frame after frame
    np.testing.assert_allclose(forward_step(list(belief), list(kernel), list(likelihood)), step)
    np.testing.assert_allclose(forward_filter(likelihood[None], kernel, belief)[0], step)
    # a flat likelihood leaves the prediction; one back from state 0 stays on state 0
    np.testing.assert_allclose(forward_step([1.0, 0.0, 0.0], [0.2, 0.5, 0.3], np.ones(3)),
                               [0.7, 0.3, 0.0])


def test_tempo_classes_and_their_prediction_equal_the_dense_joint_matrix():
    settings = HMMSettings(speed_px_s=40.0, max_jump=2, back=0.02, tempi=3, tempo_ratio=2.0)
    np.testing.assert_allclose(tempo_speeds(settings), [20.0, 40.0, 80.0])
    np.testing.assert_allclose(tempo_speeds(HMMSettings(speed_px_s=55.0)), [55.0])
    kernels = tempo_kernels(settings)
    for kernel, speed in zip(kernels, [20.0, 40.0, 80.0]):
        np.testing.assert_allclose(kernel, transition_kernel(dataclasses.replace(
            settings, speed_px_s=speed)))
    switch, count = 0.1, 6
    tempo_matrix = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]])
    joint = np.zeros((3 * count, 3 * count))  # (k, s) -> (k2, s2): move with k, then switch
    for k, k2 in itertools.product(range(3), repeat=2):
        joint[k * count:(k + 1) * count, k2 * count:(k2 + 1) * count] = (
            tempo_matrix[k, k2] * dense_transition(count, kernels[k]))
    rng = np.random.default_rng(4)
    belief = rng.random((3, count))
    belief /= belief.sum()
    prior = predict_tempi(belief, kernels, switch)
    np.testing.assert_allclose(prior.ravel(), belief.ravel() @ joint, rtol=1e-12)
    assert prior.sum() == pytest.approx(1.0)
    # without switching, every class moves at its own tempo: the fast one gets furthest
    apart = predict_tempi(np.tile(start_belief(count), (3, 1)) / 3, kernels, 0.0)
    assert apart[0] @ np.arange(count) < apart[1] @ np.arange(count) < apart[2] @ np.arange(count)
    with pytest.raises(ValueError, match="tempo_switch"):
        HMMSettings(tempo_switch=0.6)
    with pytest.raises(ValueError, match="tempo_ratio"):
        HMMSettings(tempo_ratio=1.0)
    with pytest.raises(ValueError, match="tempi"):
        HMMSettings(tempi=0)


class Sparse(Oracle):
    """The oracle, but with flat outputs (no information) on the frames in ``mute``."""

    def __init__(self, position, mute):
        super().__init__(position)
        self.mute = mute

    def head(self, sheet_feat, spec_feat):
        logits = super().head(sheet_feat, spec_feat)
        logits[torch.from_numpy(self.mute[spec_feat[:, 0].long().numpy()])] = 0.0
        return logits


def sparse_oracle(piece):
    """An oracle that says nothing on 90 % of the frames, and the piece's tempo in px/s."""
    mute = np.random.default_rng(0).random(piece.spec.shape[1]) < 0.9
    seconds = (piece.onset_frame[-1] - piece.onset_frame[0]) / FPS
    return Sparse(truth(piece), mute), (piece.onset_x[-1] - piece.onset_x[0]) / seconds


def test_tempo_classes_find_a_tempo_far_from_the_prior(piece):
    """A sparse oracle and a fixed prior tempo 2.5 times too slow: with one tempo class the
    belief falls behind between the informative frames and is lost; with seven classes it
    finds the piece's tempo and stays with the music."""
    oracle, speed = sparse_oracle(piece)
    coded = oracle_piece(piece)
    slow = HMMSettings(speed_px_s=speed / 2.5, tempo_window_s=0.0)
    fixed = track(oracle, coded, slow)
    adaptive = track(oracle, coded, dataclasses.replace(slow, tempi=7, tempo_ratio=1.4))
    np.testing.assert_allclose(fixed.tempo_px_s, speed / 2.5)  # one class: the prior throughout
    assert fixed.metrics()["tracking_ratio"] < 0.6
    assert adaptive.metrics()["tracking_ratio"] == 1.0
    assert np.abs(adaptive.errors_px).mean() < np.abs(fixed.errors_px).mean() / 5
    last = np.flatnonzero(sounding_frames(piece.spec))[-1]
    assert 0.8 * speed < adaptive.tempo_px_s[last] < 1.25 * speed
    # the classes start spread evenly around the (wrong) prior
    assert adaptive.tempo_px_s[0] == pytest.approx(tempo_speeds(dataclasses.replace(
        slow, tempi=7, tempo_ratio=1.4)).mean(), rel=0.05)


def test_followed_tempo_finds_a_tempo_far_from_the_prior(piece):
    """The same sparse oracle and a prior tempo half the piece's: the prior that follows the
    tracked position's speed (the default) finds the piece's tempo and tracks to the end,
    where the fixed prior is lost."""
    oracle, speed = sparse_oracle(piece)
    coded = oracle_piece(piece)
    slow = HMMSettings(speed_px_s=speed / 2)
    fixed = track(oracle, coded, dataclasses.replace(slow, tempo_window_s=0.0))
    followed = track(oracle, coded, slow)
    assert fixed.metrics()["tracking_ratio"] < 0.6
    assert followed.metrics()["tracking_ratio"] == 1.0
    assert np.abs(followed.errors_px).mean() < np.abs(fixed.errors_px).mean() / 5
    sounding = np.flatnonzero(sounding_frames(piece.spec))
    after = round(slow.tempo_after_s * FPS)
    np.testing.assert_allclose(followed.tempo_px_s[sounding[:after]], speed / 2)
    assert 0.8 * speed < followed.tempo_px_s[sounding[-1]] < 1.25 * speed


def test_adapted_speed_by_hand():
    """At 10 fps, following over 2 s after 1 s, within a factor 3 of 40 px/s."""
    settings = HMMSettings(speed_px_s=40.0, tempo_window_s=2.0, tempo_after_s=1.0,
                           tempo_range=3.0)
    steady = 5.0 * np.arange(40)  # 5 px a frame: 50 px/s
    assert hmm.adapted_speed(steady[:10], settings, fps=10) == 40.0  # 0.9 s: not yet
    assert hmm.adapted_speed(steady[:11], settings, fps=10) == pytest.approx(50.0)
    # 100 px/s for 2 s, then 30 px/s: the last 2 s count, or all there is while it is less
    changing = np.concatenate([10.0 * np.arange(21), 200 + 3.0 * np.arange(1, 21)])
    assert hmm.adapted_speed(changing, settings, fps=10) == pytest.approx(30.0)
    assert hmm.adapted_speed(changing[:16], settings, fps=10) == pytest.approx(100.0)
    assert hmm.adapted_speed(changing[:26], settings, fps=10) == pytest.approx(
        (changing[25] - changing[5]) / 2)
    # within the range, both ways
    assert hmm.adapted_speed(30.0 * np.arange(40), settings, fps=10) == pytest.approx(120.0)
    assert hmm.adapted_speed(np.zeros(40), settings, fps=10) == pytest.approx(40.0 / 3)
    fixed = dataclasses.replace(settings, tempo_window_s=0.0)
    assert hmm.adapted_speed(steady, fixed, fps=10) == 40.0


def test_emission_exponent_tempers_the_probabilities():
    probs = np.array([[0.04, 0.16, 0.64, 0.16]])
    floor = 0.01
    tempered = emission(probs, [0], 4, floor, exponent=0.5)
    np.testing.assert_allclose(tempered, [0.2 + floor, 0.4 + floor, 0.8 + floor, 0.4 + floor])
    np.testing.assert_allclose(emission(probs, [0], 4, floor, exponent=1.0), probs[0] + floor)
    # a confident answer counts for less: the ratio of the peak to its neighbours shrinks
    assert tempered[2] / tempered[1] < 2.1 < 3.5 < (probs[0, 2] + floor) / (probs[0, 1] + floor)
    with pytest.raises(ValueError, match="exponent"):
        emission(probs, [0], 4, floor, exponent=0.0)


def test_track_uses_the_settings_exponent(piece, monkeypatch):
    seen = []

    def recording(*args):
        seen.append(args[-1])
        return emission(*args)

    monkeypatch.setattr(hmm, "emission", recording)
    oracle = Oracle(truth(piece))
    tempered = track(oracle, oracle_piece(piece), HMMSettings(exponent=0.3), keep_belief=True)
    assert seen and set(seen) == {0.3}
    plain = track(oracle, oracle_piece(piece), HMMSettings(exponent=1.0), keep_belief=True)
    assert set(seen) == {0.3, 1.0}
    assert not np.allclose(tempered.belief, plain.belief)  # the exponent changes the belief


def test_emission_by_hand():
    floor = 0.01
    # windows of 4 buckets (40 px) at 0, 30 (on the state grid) and 83 (the last one, off it)
    probs = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.2, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1]])
    left = np.array([0, 30, 83])
    likelihood = emission(probs, left, 12, floor)  # a strip of 111-120 px: 12 states
    expected = np.full(12, floor)
    expected[[0, 1, 2]] += [0.1, 0.2, 0.3]
    expected[3] += (0.4 + 0.5) / 2  # seen by two windows: the mean
    expected[[4, 5, 6]] += [0.2, 0.2, 0.1]
    expected[[8, 9, 10, 11]] += [0.4, 0.3, 0.2, 0.1]  # centres 88, 98, 108, 118 px
    np.testing.assert_allclose(likelihood, expected)
    # edge buckets do not count, except at the start and the end of the strip
    trimmed = emission(probs, left, 12, floor, edge_buckets=1)
    expected = np.full(12, floor)
    expected[[0, 1, 2]] += [0.1, 0.2, 0.3]
    expected[[4, 5]] += [0.2, 0.2]
    expected[[9, 10, 11]] += [0.3, 0.2, 0.1]
    np.testing.assert_allclose(trimmed, expected)
    # a window wider than the strip: the buckets past its end fall on the last state
    np.testing.assert_allclose(emission(probs[:1], [0], 2, floor), np.array([0.1, 0.3]) + floor)
    with pytest.raises(ValueError, match="edge_buckets"):
        emission(probs, left, 12, floor, edge_buckets=2)


def test_estimates_and_states():
    belief = np.array([0.1, 0.6, 0.0, 0.3])
    assert estimate_x(belief, "map") == 15.0
    assert estimate_x(belief, "mean") == pytest.approx(0.1 * 5 + 0.6 * 15 + 0.3 * 35)
    assert n_states(917) == 92 and n_states(920) == 92 and n_states(1) == 1
    with pytest.raises(ValueError, match="unknown estimate"):
        estimate_x(belief, "median")
    with pytest.raises(ValueError, match="at least 1 px"):
        n_states(0)


# --------------------------------------------------------------------------- tracking


def test_perfect_network_is_tracked_to_the_end(piece, strip):
    coded = oracle_piece(piece)
    result = track(Oracle(truth(piece)), coded, keep_belief=True)
    assert isinstance(result, HMMResult) and isinstance(result, FollowResult)
    metrics = result.metrics()
    assert metrics["tracking_ratio"] == 1.0 and metrics["tracked_to_end"] == 1.0
    # the tempered default trusts each frame little: it lags behind, but less than a window
    assert np.abs(result.errors_px).max() < 80.0 and np.median(result.errors_px) < 0
    # untempered, the belief moves at most one state (10 px) a frame: at an onset it is at most
    # one gap between onsets (here <= 38 px) behind; with larger jumps it is within a bucket
    plain = track(Oracle(truth(piece)), coded, HMMSettings(exponent=1.0))
    assert np.abs(plain.errors_px).max() < 40.0 and np.median(plain.errors_px) < 0
    assert np.abs(plain.errors_px).mean() < np.abs(result.errors_px).mean()
    jumps = track(Oracle(truth(piece)), coded, HMMSettings(max_jump=4, exponent=1.0),
                  estimate="map")
    assert np.abs(jumps.errors_px).max() < STATE_PX
    # the belief: one normalised row per frame, on request only
    count = n_states(piece.strip.shape[1])
    assert result.belief.shape == (piece.spec.shape[1], count)
    assert result.belief.dtype == np.float32 and jumps.belief is None
    np.testing.assert_allclose(result.belief.sum(axis=1), 1.0, rtol=1e-5)
    # the windows are grid windows, run along the whole strip and never go back
    grid = window_grid(piece.strip.shape[1])
    assert set(result.window_left) <= set(grid)
    assert result.window_left[0] == 0 and result.window_left[-1] == grid[-1]
    assert np.all(np.diff(result.window_left) >= 0)
    # silence after the music holds the belief
    last = np.flatnonzero(sounding_frames(piece.spec))[-1]
    assert last < piece.spec.shape[1] - 10
    np.testing.assert_array_equal(result.belief[last:], result.belief[last:last + 1].repeat(
        piece.spec.shape[1] - last, axis=0))
    # the cursors of chapter 5 work unchanged, onto the second page
    true, predicted = follow_tracks(result, strip)
    assert set(predicted.page) == {0, 1}
    assert cursor_position(predicted, true.times_s[-1])[0] == cursor_position(
        true, true.times_s[-1])[0]


def test_noisy_network_loses_the_follower_but_not_the_hmm(piece):
    """On a sixth of the frames the oracle points 150-400 px off: the frame-wise follower
    believes those frames, the HMM cannot get there in one frame and its belief outlives them."""
    rng = np.random.default_rng(0)
    n_frames = piece.spec.shape[1]
    wrong = rng.random(n_frames) < 1 / 6
    offset = rng.choice([-1.0, 1.0], n_frames) * rng.uniform(150, 400, n_frames)
    right = truth(piece)

    def noisy(frames):
        return right(frames) + np.where(wrong[frames], offset[frames], 0.0)

    coded = oracle_piece(piece)
    frame_wise = follow(Oracle(noisy), coded).metrics()
    tracked = track(Oracle(noisy), coded)
    assert frame_wise["tracking_ratio"] < 0.5 and frame_wise["tracked_to_end"] == 0.0
    assert tracked.metrics()["tracking_ratio"] == 1.0
    sounding = sounding_frames(piece.spec)
    assert jitter(tracked, sounding) < 1.0


class Unfolded(torch.nn.Module):
    """An :class:`AudioSheetNet` behind the plain interface, so that its head runs in torch."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def sheet_features(self, sheet):
        return self.net.sheet_features(sheet)

    def spec_features(self, spec):
        return self.net.spec_features(spec)

    def head(self, sheet_feat, spec_feat):
        return self.net.head(sheet_feat, spec_feat)


def test_folded_head_tracks_like_the_torch_head(piece, one_thread):
    model = random_network(piece)
    folded = track(model, piece, keep_belief=True)
    plain = track(Unfolded(model), piece, keep_belief=True)
    assert model.training  # the mode is restored
    assert len(np.unique(folded.window_left)) > 1  # the network did move the belief
    np.testing.assert_array_equal(folded.window_left, plain.window_left)
    np.testing.assert_allclose(folded.frame_x, plain.frame_x, rtol=0, atol=1e-3)
    np.testing.assert_allclose(folded.belief, plain.belief, rtol=0, atol=1e-4)


class CountingOracle(Oracle):
    """The oracle, recording how many rows each of its parts computes per call."""

    def __init__(self, position):
        super().__init__(position)
        self.rows = {"sheet": [], "spec": [], "head": []}

    def sheet_features(self, sheet):
        self.rows["sheet"].append(len(sheet))
        return super().sheet_features(sheet)

    def spec_features(self, spec):
        self.rows["spec"].append(len(spec))
        return super().spec_features(spec)

    def head(self, sheet_feat, spec_feat):
        self.rows["head"].append(len(sheet_feat))
        return super().head(sheet_feat, spec_feat)


@pytest.mark.parametrize("n_windows, tempi", [(1, 1), (3, 1), (3, 4)])
def test_work_per_frame_does_not_depend_on_the_number_of_frames(piece, monkeypatch, n_windows,
                                                                tempi):
    """The piece and the piece played twice: per sounding frame, the head on n_windows windows
    and the filter on (tempi, n_states) beliefs, one (n_states,) prediction per tempo class;
    the pathways once per window and once per frame."""
    shapes = []

    def recording(function):
        def wrapped(vector, other):
            shapes.append((vector.shape, other.shape))
            return function(vector, other)
        return wrapped

    monkeypatch.setattr(hmm, "predict", recording(predict))
    monkeypatch.setattr(hmm, "update", recording(update))
    twice = dataclasses.replace(piece, spec=np.concatenate([piece.spec, piece.spec], axis=1))
    count = n_states(piece.strip.shape[1])
    settings = HMMSettings(n_windows=n_windows, tempi=tempi)
    for performance in (piece, twice):
        shapes.clear()
        oracle = CountingOracle(truth(performance))
        track(oracle, oracle_piece(performance), settings, batch_size=64)
        n_sounding = int(sounding_frames(performance.spec).sum())
        assert oracle.rows["head"] == [1] * n_windows * n_sounding  # one row per window
        assert sum(oracle.rows["sheet"]) == len(window_grid(piece.strip.shape[1]))
        assert sum(oracle.rows["spec"]) == performance.spec.shape[1]
        assert max(oracle.rows["sheet"] + oracle.rows["spec"]) <= 64  # in batches
        kernel_shape = (settings.max_jump + 2,)
        per_frame = [((count,), kernel_shape)] * tempi + [((tempi, count), (count,))]
        assert shapes == per_frame * n_sounding


# --------------------------------------------------------------------------- errors, metrics


@pytest.mark.parametrize("bad", [dict(speed_px_s=0.0), dict(max_jump=0), dict(back=1.0),
                                 dict(back=-0.1), dict(floor=0.0), dict(n_windows=0),
                                 dict(edge_buckets=-1), dict(anchor=1.0),
                                 dict(exponent=0.0), dict(tempo_window_s=-1.0),
                                 dict(tempo_after_s=-1.0), dict(tempo_range=0.9)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        HMMSettings(**bad)


def test_bad_tracking_arguments_raise(piece):
    with pytest.raises(ValueError, match="raise max_jump"):  # 1.28 states a frame
        transition_kernel(HMMSettings(speed_px_s=400.0))
    transition_kernel(HMMSettings(speed_px_s=400.0, max_jump=2))  # fine with larger jumps
    with pytest.raises(ValueError, match="fps"):
        transition_kernel(HMMSettings(), fps=0.0)
    oracle = Oracle(truth(piece))
    with pytest.raises(ValueError, match="tempo_range"):  # 200 x 2.5 px/s: 1.6 states a frame
        track(oracle, oracle_piece(piece), HMMSettings(speed_px_s=200.0))
    track(oracle, oracle_piece(piece), HMMSettings(speed_px_s=200.0, tempo_window_s=0.0))
    with pytest.raises(ValueError, match="unknown estimate"):
        track(oracle, oracle_piece(piece), estimate="median")
    with pytest.raises(ValueError, match="needs 40 buckets, but the network gives 39"):
        track(oracle, oracle_piece(piece), width_px=400)


def test_jitter_by_hand():
    def result(frame_x):
        frame_x = np.asarray(frame_x, dtype=np.float64)
        return FollowResult("x", np.zeros(1), np.zeros(1), np.zeros(1), 390, frame_x,
                            np.zeros(len(frame_x), np.int64), FPS, 1000)

    wandering = result([0, 10, 5, 20, 20, 18])  # steps 10, -5, 15, 0, -2
    assert jitter(wandering) == pytest.approx((32 - 18) / 5)
    sounding = np.array([True, True, True, False, True, True])  # the step into frame 3 is out
    assert jitter(wandering, sounding) == pytest.approx((17 - 3) / 4)
    assert jitter(result([0, 5, 5, 30, 31])) == 0.0  # forward only
    assert jitter(result([7.0])) == 0.0
    with pytest.raises(ValueError, match="sounding must be"):
        jitter(wandering, sounding[:3])
