"""Following tests: the window policy, an oracle network followed through a real piece (system
changes and a page turn), cached against naive following, and the metrics on hand-made arrays."""

import dataclasses

import numpy as np
import pytest
import torch

from sheetlab.corpus import Score
from sheetlab.dataset import Condition, SnippetDataset, build_piece
from sheetlab.engrave import engrave, unroll
from sheetlab.widgets import follow_tracks
from sheetlab.following import (FollowResult, OnsetPredictions, follow,
                                follow_naive, localise_onsets, onset_metrics, position_to_time,
                                sounding_frames, summarise, window_grid, window_index)
from sheetlab.models import AudioSheetNet, config
from sheetlab.targets import N_BUCKETS, bucket_of
from sheetlab.widgets import audio_sheet_player, cursor_position
from test_engrave import SHORT_PAGES, long_piano

LONG_SCORE = Score("test/long", long_piano(12), "musicxml", "piano", "long.musicxml")
CONDITION = Condition(engrave=SHORT_PAGES)
CODE_MAX = 250  # the oracle's strip encodes x in base 250 (ink 1..250; 0 is the white padding)


@pytest.fixture(scope="module")
def piece():
    """A real grand-staff piece: three systems on two pages, ~25 s."""
    return build_piece(LONG_SCORE, CONDITION)


@pytest.fixture(scope="module")
def engraving():
    return engrave(LONG_SCORE, CONDITION.engrave)


@pytest.fixture(scope="module")
def strip(engraving):
    return unroll(engraving)


def truth(piece):
    """x of the newest onset at every frame: what a perfect network reports."""
    def at(frames: np.ndarray) -> np.ndarray:
        k = np.searchsorted(piece.onset_frame, frames, side="right") - 1
        return piece.onset_x[np.clip(k, 0, None)]
    return at


def oracle_piece(piece):
    """The piece with its strip x written into rows 0-1 of the strip and minus the frame index
    into band 0 of the spectrogram, so that the oracle can read both from its inputs (band 0 is
    negative: whether a frame sounds still depends on the real bands)."""
    strip = piece.strip.copy()
    x = np.arange(strip.shape[1])
    strip[0] = 255 - (1 + x % CODE_MAX)
    strip[1] = 255 - (1 + x // CODE_MAX)
    spec = piece.spec.copy()
    spec[0] = -np.arange(spec.shape[1])
    return dataclasses.replace(piece, strip=strip, spec=spec)


class Oracle(torch.nn.Module):
    """A stand-in network with the interface of :class:`AudioSheetNet` that knows the answer.

    ``sheet_features`` decodes the window's left edge from the strip code (its first column
    inside the strip), ``spec_features`` the frame index from band 0 of the excerpt's last frame;
    ``head`` puts a sharp peak on the bucket of ``position(frame)`` in the window."""

    def __init__(self, position):
        super().__init__()
        self.position = position

    def sheet_features(self, sheet):
        code = torch.round(sheet[:, 0, :2] * 255)
        first = (code[:, 0] > 0).int().argmax(dim=1)
        column = code[torch.arange(len(code)), :, first]
        return (column[:, 0] - 1 + CODE_MAX * (column[:, 1] - 1) - first)[:, None]

    def spec_features(self, spec):
        return -spec[:, 0, 0, -1:]

    def head(self, sheet_feat, spec_feat):
        x = self.position(spec_feat[:, 0].long().numpy()) - sheet_feat[:, 0].numpy()
        peak = torch.nn.functional.one_hot(torch.from_numpy(bucket_of(x)), N_BUCKETS)
        return 30.0 * peak.float()

    def forward(self, sheet, spec):
        return self.head(self.sheet_features(sheet), self.spec_features(spec))


def test_window_grid_and_clamping():
    grid = window_grid(1000, 390, 5)
    assert grid[0] == 0 and grid[-1] == 610 and np.all(np.diff(grid) <= 5)
    anchor = 130.0
    assert grid[window_index(grid, 0.0, anchor)] == 0  # clamped at the start
    assert grid[window_index(grid, 999.0, anchor)] == 610  # clamped at the end
    assert grid[window_index(grid, 400.0, anchor)] == 270  # the position at a third
    assert grid[window_index(grid, 403.0, anchor)] == 275  # nearest grid position
    np.testing.assert_array_equal(window_grid(200, 390, 5), [0])  # narrower than the window


def test_silent_frames():
    spec = np.array([[0.0, 0.2, 0.01], [0.01, 0.0, 0.04]])
    np.testing.assert_array_equal(sounding_frames(spec, 0.05), [False, True, False])
    assert sounding_frames(spec, 0.0).all()


def test_perfect_network_tracks_through_systems_and_pages(piece, engraving, strip):
    assert len(piece.system_x) == 4 and piece.n_pages == 2  # the piece turns systems and a page
    coded = oracle_piece(piece)
    result = follow(Oracle(truth(piece)), coded, batch_size=64)
    metrics = result.metrics()
    assert metrics["tracking_ratio"] == 1.0 and metrics["tracked_to_end"] == 1.0
    assert np.abs(result.errors_px).max() <= 5.0 + 1e-9  # within half a 10 px bucket
    assert metrics["within_bucket"] == 1.0 and metrics["within_0.5s"] == 1.0
    # the window moves along the whole strip and stays on it
    width = piece.strip.shape[1]
    assert result.window_left.min() == 0 and result.window_left.max() == width - 390
    assert np.all(np.diff(result.window_left) >= 0)  # a perfect follower never goes back
    # silence after the music holds the position
    last = np.flatnonzero(sounding_frames(piece.spec))[-1]
    assert last < piece.spec.shape[1] - 10
    assert np.all(result.frame_x[last:] == result.frame_x[last])
    # the cursors follow onto the second page
    true, predicted = follow_tracks(result, strip)
    assert set(true.page) == {0, 1} and set(predicted.page) == {0, 1}
    for t in true.times_s:
        assert cursor_position(true, t)[0] == cursor_position(predicted, t)[0]
    audio_sheet_player(engraving.pages, np.zeros(1000), 22050, [true, predicted])  # valid tracks


def test_a_network_lost_in_the_middle_gives_the_tracking_ratio(piece):
    k_lost = piece.n_correspondences // 2
    right = truth(piece)

    def wrong_from_the_middle(frames):
        return right(frames) + np.where(frames >= piece.onset_frame[k_lost], 250.0, 0.0)

    result = follow(Oracle(wrong_from_the_middle), oracle_piece(piece))
    metrics = result.metrics()
    assert metrics["tracking_ratio"] == pytest.approx(k_lost / piece.n_correspondences)
    assert metrics["tracked_to_end"] == 0.0
    assert np.abs(result.errors_px[:k_lost]).max() <= 5.0 + 1e-9


def test_localisation_given_the_window(piece):
    coded = oracle_piece(piece)
    for random_offset in (True, False):
        result = localise_onsets(Oracle(truth(piece)), coded, random_offset=random_offset,
                                 batch_size=32)
        assert len(result.pred_x) == piece.n_correspondences
        assert np.abs(result.errors_px).max() <= 5.0 + 1e-4


def random_network(piece):
    """A small random :class:`AudioSheetNet` whose batch norms have seen the piece's inputs once,
    so that its outputs depend on them (with the initial statistics the features are ~1e-4, all
    alike, and the window only runs to the end). Narrower than ``light`` to keep the naive
    follower fast."""
    torch.manual_seed(0)
    model = AudioSheetNet(dataclasses.replace(
        config("light", "piano"), name="tiny", sheet_channels=(4, 8, 8), spec_channels=(4, 8, 8),
        pathway_units=32, head_units=32))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # plain average of what the batch norm sees
    examples = SnippetDataset([piece], seed=0)
    half = (examples[i] for i in range(0, len(examples), 2))
    sheet, spec, _ = (torch.stack(t) for t in zip(*half))
    with torch.no_grad():
        model(sheet, spec)
    return model


@pytest.fixture
def one_thread():
    """One torch thread: the naive follower's many tiny forward passes are many times slower with
    two threads on a busy machine (the threads wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cached_following_equals_naive_following(piece, one_thread):
    model = random_network(piece)
    cached = follow(model, piece, batch_size=64)
    naive = follow_naive(model, piece)
    assert model.training  # the mode is restored
    assert len(np.unique(cached.window_left)) > 5  # the window did move
    np.testing.assert_array_equal(cached.window_left, naive.window_left)
    # equal up to float32 rounding: a pathway's output depends slightly on the batch it is in
    np.testing.assert_allclose(cached.frame_x, naive.frame_x, rtol=0, atol=1e-3)


def test_position_to_time_is_monotone_interpolation():
    onset_x = np.array([10.0, 20.0, 20.0, 40.0, 35.0, 60.0])
    onset_s = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 3.0])
    times = position_to_time(np.array([0.0, 15.0, 20.0, 30.0, 50.0, 99.0]), onset_x, onset_s)
    # equal x: the earliest time; the step back at x=35 is ignored (monotone curve)
    np.testing.assert_allclose(times, [0.0, 0.5, 1.0, 1.5, 2.5, 3.0])


def test_onset_metrics_by_hand():
    true_x = np.arange(6) * 100.0  # 100 px per second
    onset_s = np.arange(6.0)
    errors = np.array([0.0, 4.0, -8.0, 12.0, -250.0, 0.0])
    m = onset_metrics(true_x + errors, true_x, onset_s, window_px=390, staff_space_px=4.0)
    assert m["n_onsets"] == 6
    assert m["mean_error_px"] == pytest.approx(274 / 6)
    assert m["median_error_px"] == pytest.approx(6.0)
    assert m["median_error_ss"] == pytest.approx(1.5)
    assert m["mean_error_ss"] == pytest.approx(274 / 24)
    assert m["within_bucket"] == pytest.approx(4 / 6)  # below 10 px
    assert m["within_0.1s"] == pytest.approx(4 / 6)  # 0, 0.04, 0.08 and 0 s
    assert m["within_0.5s"] == pytest.approx(5 / 6) and m["within_1s"] == pytest.approx(5 / 6)
    assert m["tracking_ratio"] == pytest.approx(4 / 6) and m["tracked_to_end"] == 0.0
    perfect = onset_metrics(true_x, true_x, onset_s)
    assert perfect["tracking_ratio"] == 1.0 and perfect["tracked_to_end"] == 1.0
    with pytest.raises(ValueError, match="non-empty"):
        onset_metrics(np.zeros(0), np.zeros(0), np.zeros(0))


def test_summary_pools_onsets_and_averages_pieces():
    a = OnsetPredictions("a", np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 22.0]),
                         np.arange(3.0), 390)
    b = OnsetPredictions("b", np.array([500.0]), np.array([0.0]), np.zeros(1), 390)
    rows = summarise([a, b])
    assert [r["piece"] for r in rows] == ["a", "b", "all (2 pieces)"]
    total = rows[-1]
    assert total["n_onsets"] == 4
    assert total["median_error_px"] == pytest.approx(1.0)  # of 0, 0, 2, 500
    assert total["mean_error_px"] == pytest.approx(502 / 4)
    assert total["within_bucket"] == pytest.approx(3 / 4)
    assert total["tracking_ratio"] == pytest.approx(0.5) and total["tracked_to_end"] == 0.5


def test_cursor_tracks_need_the_pieces_strip(piece, strip):
    result = FollowResult("x", piece.onset_x, piece.onset_x, piece.onset_frame / 31.25, 390,
                          np.zeros(10), np.zeros(10, np.int64), 31.25, 123)
    with pytest.raises(ValueError, match="123 px"):
        follow_tracks(result, strip)
