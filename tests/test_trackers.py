"""Tracker comparison tests: the rows agree with the follower's own measures on a real piece, an
oracle beats a random network, and the shipped trackers are the three of the book."""

from functools import partial

import numpy as np
import pytest

from sheetlab.following import follow, jitter, sounding_frames, summarise
from sheetlab.hmm import track
from sheetlab.trackers import MEASURES, compare
from test_following import Oracle, one_thread, oracle_piece, random_network, truth  # noqa: F401
from test_recurrent import piece  # noqa: F401


def test_rows_are_the_followers_measures(piece, one_thread):
    network = random_network(piece)
    coded = oracle_piece(piece)
    trackers = {"random": partial(follow, network), "oracle": partial(follow, Oracle(truth(piece))),
                "oracle HMM": partial(track, Oracle(truth(piece)))}
    pieces = {"random": piece, "oracle": coded, "oracle HMM": coded}
    rows = {name: compare({name: tracker}, [pieces[name]])[0]
            for name, tracker in trackers.items()}
    result = follow(network, piece)
    expected = summarise([result])[-1]
    random = rows["random"]
    assert random["tracker"] == "random" and random["pieces"] == 1
    assert random["onsets"] == piece.n_correspondences
    for measure in MEASURES:
        assert random[measure] == pytest.approx(expected[measure])
    assert random["jitter_px"] == pytest.approx(jitter(result, sounding_frames(piece.spec)))
    assert random["real_time_factor"] > 0
    assert rows["oracle"]["tracking_ratio"] == 1.0
    assert rows["oracle"]["within_bucket"] > random["within_bucket"]
    assert rows["oracle HMM"]["tracked_to_end"] == 1.0


def test_two_pieces_pool_their_onsets(piece, one_thread):
    tracker = partial(follow, random_network(piece))
    both = compare({"net": tracker}, [piece, piece])[0]
    one = compare({"net": tracker}, [piece])[0]
    assert both["onsets"] == 2 * one["onsets"]
    assert both["tracking_ratio"] == pytest.approx(one["tracking_ratio"])
    assert np.isclose(both["within_bucket"], one["within_bucket"])


def test_nothing_to_compare_is_an_error(piece):
    with pytest.raises(ValueError, match="at least one"):
        compare({}, [piece])
    with pytest.raises(ValueError, match="at least one"):
        compare({"net": lambda p: None}, [])
