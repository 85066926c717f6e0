"""Augmented conditions: other tempi and page widths of the same piece, exact correspondences."""

import numpy as np
import pytest

from sheetlab.augment import AUGMENTATIONS, conditions
from sheetlab.corpus import Score
from sheetlab.dataset import Condition, cache_key, load_piece
from sheetlab.spectrogram import time_to_frame
from test_engrave import musicxml, note

# 32 bars of eighth-note scales: several systems on a page, so the page width shows
BARS = [[note(step, 4 + (i % 2), 1, "eighth") for step in "CDEFGABC"] for i in range(32)]
SCALES = Score("test/scales", musicxml(BARS), "musicxml", "mono", "scales.musicxml")


@pytest.fixture(scope="module")
def renderings():
    """The piece in the default condition and in the first two augmented ones."""
    return [load_piece(SCALES, c) for c in [Condition(), *conditions(2)]]


def test_conditions_are_the_first_n_and_distinct():
    assert conditions(0) == [] and conditions(2) == list(AUGMENTATIONS[:2])
    assert len(conditions(len(AUGMENTATIONS))) == len(AUGMENTATIONS)
    keys = {cache_key(SCALES, c) for c in [Condition(), *AUGMENTATIONS]}
    assert len(keys) == len(AUGMENTATIONS) + 1
    for n in (-1, len(AUGMENTATIONS) + 1):
        with pytest.raises(ValueError, match=f"0..{len(AUGMENTATIONS)}, got {n}"):
            conditions(n)


def test_augmented_renderings_change_tempo_and_layout(renderings):
    """The slower condition (0.8) plays about 1/0.8 as long and the faster one (1.25) about
    0.8 as long (tempo curves of +-10 % around them); the narrower page breaks into more
    systems, the wider into fewer; the notes are the same."""
    default, slow, fast = renderings
    last = [r.note_onset_s[-1] for r in renderings]
    assert 1.1 < last[1] / last[0] < 1.45 and 0.65 < last[2] / last[0] < 0.92
    n_systems = [len(r.system_x) - 1 for r in renderings]
    assert n_systems[1] > n_systems[0] > n_systems[2]
    for r in (slow, fast):
        np.testing.assert_array_equal(r.note_pitch, default.note_pitch)
        np.testing.assert_allclose(r.note_score_s, default.note_score_s)


def test_augmented_correspondences_stay_exact(renderings):
    """Each correspondence pairs a note head's x with the frame of its performed onset, in
    every condition: the augmentation moves both, never one without the other."""
    fps = Condition().spectrogram.fps
    for r in renderings:  # a melody: one note per correspondence
        assert r.n_correspondences == len(r.note_x)
        np.testing.assert_array_equal(r.onset_frame, time_to_frame(r.note_onset_s, fps))
        np.testing.assert_array_equal(r.onset_x, r.note_x)
