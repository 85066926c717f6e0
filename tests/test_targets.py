"""Soft targets, soft-max, cross-entropy and probability-weighted localisation (chapter 3)."""

import numpy as np
import pytest
import torch

from sheetlab.targets import (N_BUCKETS, SPREAD, bucket_centres, bucket_of, bucket_width,
                              cross_entropy, localise, log_softmax, soft_targets, softmax,
                              to_strip, to_window)


def test_buckets_tile_the_window():
    assert bucket_width() == 10.0 and N_BUCKETS == 39
    centres = bucket_centres()
    assert centres.shape == (39,) and centres[0] == 5.0 and centres[-1] == 385.0
    np.testing.assert_array_equal(bucket_of(centres), np.arange(39))
    np.testing.assert_array_equal(bucket_of([0.0, 9.999, 10.0, 389.9, -3.0, 400.0]),
                                  [0, 0, 1, 38, 0, 38])
    assert bucket_of(12.0).dtype == np.int64 and bucket_of(12.0) == 1
    np.testing.assert_allclose(bucket_centres(4, 100.0), [12.5, 37.5, 62.5, 87.5])


def test_window_and_strip_x_convert_both_ways():
    x = np.array([5.0, 200.0])
    left = np.array([1000.0, -20.0])
    np.testing.assert_array_equal(to_strip(x, left), [1005.0, 180.0])
    np.testing.assert_array_equal(to_window(to_strip(x, left), left), x)
    assert to_strip(bucket_centres()[3], 100.0) == 135.0


@pytest.mark.parametrize("spread", [0.0, 0.3, SPREAD, 1.0, 3.0])
def test_soft_targets_are_distributions_peaked_at_the_true_bucket(spread):
    x = np.array([0.0, 4.0, 17.3, 195.0, 250.1, 389.0])
    t = soft_targets(x, spread=spread)
    assert t.shape == (6, 39)
    assert np.all(t >= 0)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    np.testing.assert_array_equal(t.argmax(axis=1), bucket_of(x))


def test_spread_zero_is_one_hot():
    t = soft_targets(np.array([3.0, 123.0, 389.0]), spread=0)
    np.testing.assert_array_equal(t, np.eye(39)[[0, 12, 38]])
    assert soft_targets(55.0, 10, 100.0, 0.0).tolist() == [0.0] * 5 + [1.0] + [0.0] * 4


def test_neighbours_share_and_the_target_is_symmetric_about_a_centre():
    t = soft_targets(195.0)  # the centre of bucket 19
    np.testing.assert_allclose(t, t[::-1])
    assert t[19] > t[18] > t[17] > 0
    assert t[18:21].sum() > 0.95  # the three buckets the localisation reads
    # off-centre: the nearer neighbour gets more
    t = soft_targets(198.0)
    assert t[20] > t[18]


def test_soft_targets_scale_with_buckets_and_width():
    a = soft_targets(37.0, 10, 100.0, 1.0)
    b = soft_targets(74.0, 10, 200.0, 1.0)  # the same picture, twice as wide
    np.testing.assert_allclose(a, b)
    with pytest.raises(ValueError, match="spread"):
        soft_targets(1.0, spread=-1)


def test_softmax_and_log_softmax_are_stable():
    logits = np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), -np.inf]])
    p = softmax(logits)
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]])
    np.testing.assert_allclose(log_softmax(logits[:, :2]), np.log(p[:, :2]))


def test_cross_entropy_equals_torch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 39)) * 3
    targets = soft_targets(rng.uniform(0, 390, 7))
    ours = cross_entropy(logits, targets)
    assert ours.shape == (7,)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets),
                                               reduction="none").numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    # hard targets: the negative log-probability of the true bucket
    hard = soft_targets(np.full(7, 55.0), spread=0)
    np.testing.assert_allclose(cross_entropy(logits, hard), -log_softmax(logits)[:, 5])


def test_localise_one_hot_gives_bucket_centres():
    np.testing.assert_allclose(localise(np.eye(39)), bucket_centres())
    assert localise(np.eye(10)[3], 100.0) == pytest.approx(35.0)


def test_localise_symmetric_distribution_gives_its_centre():
    p = soft_targets(np.array([bucket_centres()[k] for k in (1, 7, 19, 37)]), spread=1.0)
    np.testing.assert_allclose(localise(p), bucket_centres()[[1, 7, 19, 37]])


def test_localise_weights_three_buckets_renormalised():
    p = np.zeros(10)
    p[[3, 4, 5, 9]] = [0.1, 0.4, 0.2, 0.3]  # bucket 9 is ignored: not a neighbour of b* = 4
    expected = (0.1 * 35 + 0.4 * 45 + 0.2 * 55) / 0.7
    assert localise(p, 100.0) == pytest.approx(expected)


def test_localise_handles_the_edges():
    p = np.zeros((2, 10))
    p[0, [0, 1]] = [0.6, 0.2]  # b* = 0: only the right neighbour exists
    p[1, [8, 9]] = [0.1, 0.3]  # b* = 9: only the left neighbour exists
    p[0, 9] = p[1, 0] = 0.2   # must not wrap around
    np.testing.assert_allclose(localise(p, 100.0), [(0.6 * 5 + 0.2 * 15) / 0.8,
                                                    (0.1 * 85 + 0.3 * 95) / 0.4])


def test_localise_recovers_soft_targets_closely():
    x = np.linspace(20, 370, 101)
    assert np.abs(localise(soft_targets(x)) - x).max() < 2.0  # within a fifth of a bucket
