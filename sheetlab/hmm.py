"""Temporal context II: a hidden Markov model over the unrolled score (chapter 8).

The frame-wise follower of chapter 5 (:func:`sheetlab.following.follow`) trusts every frame's
prediction: one wrong frame moves its window, and a window without the music in it cannot be
corrected. A hidden Markov model keeps a *belief*, a probability distribution over where in the
score the music is, and combines two sources of knowledge frame by frame:

* **states**: cells of the unrolled score one bucket wide (:data:`STATE_PX` = 10 px, the
  network's bucket width). State ``s`` covers strip x ``[10 s, 10 (s + 1))``, centre
  ``10 s + 5``; a strip ``W`` px wide has ``ceil(W / 10)`` states (:func:`n_states`).
* **transitions** (the tempo prior, :class:`HMMSettings`, :func:`transition_kernel`): from one
  frame to the next the music stays where it is, moves forward by ``k = 1 .. max_jump`` states
  (every size equally likely), or moves back by one state (chords whose mean x is a little
  left of the previous onset; and the way back after running ahead). The probability of moving
  forward is set so that the expected advance per frame is the prior tempo
  ``speed_px_s / fps`` px. The transition matrix is a band: the prediction step
  (:func:`predict`) is a convolution with ``max_jump + 2`` taps, never an
  ``n_states × n_states`` matrix. Mass that would leave the strip stays at its first or last
  state. By default ``max_jump`` is 1: ten px a frame (312 px/s) is far faster than the
  pieces of the corpus move, and larger jumps let the belief follow the network's confident
  mistakes (with the shipped folk-song weights they lowered the tracking ratio on held-out
  songs). The price: a wide gap between two onsets, such as the clef and key signature at the
  start of a system, takes the belief a few frames to cross.
* **tempo classes** (``tempi``, :func:`tempo_speeds`, :func:`predict_tempi`): one prior
  tempo for every piece loses the pieces far from it, since wherever the network says little
  the belief moves at the prior tempo. With ``tempi > 1`` the hidden state is a pair (tempo
  class, position), as in the bar-pointer model of Whiteley, Cemgil and Godsill (2006): the
  classes' tempi are spread geometrically around ``speed_px_s`` (``tempo_ratio`` apart), each
  class moves with its own kernel (:func:`tempo_kernels`), and between two frames each class
  hands ``tempo_switch`` of its mass to each neighbouring class. Every class gets the same
  emission; the belief over the positions is the sum over the classes, and the tracker's
  tempo is the expected class tempo. A frame costs ``tempi`` times the prediction of one
  class.
* **a tempo that follows the music** (``tempo_window_s``, :func:`adapted_speed`; on by
  default): the tempo classes find the tempo only as fast as the tempered evidence separates
  them, and on the piano validation pieces they did not help (below). The simpler remedy:
  once ``tempo_after_s`` (4) seconds of sound have been tracked, the prior tempo of the next
  frame is the speed of the belief's mean over the last ``tempo_window_s`` (16) seconds of
  sound, kept within a factor ``tempo_range`` (2.5) of ``speed_px_s``: 16 to 100 px/s. Where
  the network pulls the belief ahead of the prior, the prior speeds up, and the belief no
  longer falls further behind a fast piece with every frame the network says little. A frame
  costs what it did, plus a new kernel. The danger is the loop: a belief that lags measures a
  slower tempo and lags more; the long window and the range bound it. With tempo classes, the
  classes are spread around the followed tempo.
* **emissions** (:func:`emission`): the network of chapter 4 says, for one sheet window and the
  spectrogram excerpt ending at the frame, a soft-max over its 39 buckets. The follower's
  window grid (:func:`sheetlab.following.window_grid`, every 30 px: three states) keeps the
  windows' buckets on the states, so bucket ``b`` of the window at ``left`` is the state that
  holds its centre, ``(left + 10 b + 5) // 10``. A state seen by several windows gets the
  **mean** of their probabilities. The two buckets at each inner edge of a window do not count
  (``edge_buckets``): the network learnt with its targets at least 20 px inside the window, and
  a window that does not show the music tends to pile its mass on the edge towards it. Every
  state gets a small **floor** added, so that a frame on which the network is wrong scales the
  belief at the true state down by about ``floor`` (the next right frame restores it) instead
  of wiping it out; a state no evaluated window covers gets the floor alone.
* **tempering** (``exponent``): the probabilities are raised to a small power before all this.
  The HMM takes the frames' observations as independent given the state, but the excerpts of
  consecutive frames share all but one of their 40 frames, so a network that is wrong on one
  frame is wrong on the next ones too: untempered, a second of confident mistakes counts as
  thirty independent votes and outweighs any tempo prior. With the default exponent (0.025)
  the emission of the evaluated windows varies by at most a factor of about two within a
  frame, evidence builds up over many frames, and the states outside the windows (the floor)
  are ruled out: the band of windows, which follows the prediction, keeps the belief near
  where the tempo prior can have taken it.
* **the band**: only ``n_windows`` consecutive grid windows are evaluated per frame, around the
  window that shows the predicted MAP state at ``anchor`` of its width. The sheet features of
  every grid window and the spectrogram features of every frame are computed once, in
  batches, by the predictor of :func:`sheetlab.following.follow`, so a frame costs
  ``n_windows`` one-row passes of the merging head. (One row at a time, not one
  ``n_windows``-row product: with OpenBLAS, five rows through the rest of the piano network's
  head (dense layers of 512 × 512 and 39 × 512) took longer as one product than as five, on one
  BLAS thread, as :func:`track` runs them, as on two: about 180 against 110 µs and 130 against
  115 µs.)

**Forward filtering** (:func:`track`, :func:`forward_filter`): the belief starts with all its
mass on state 0, the beginning of the score. Every sounding frame is predicted
(:func:`predict`), weighted by its emission and normalised (:func:`update`), and the prior
tempo follows the belief (:func:`adapted_speed`); a silent frame
(:func:`sheetlab.following.sounding_frames` false: before, between and after the notes)
**holds** the belief, as :func:`follow` holds its position: the network's target, the newest
onset, does not move in silence, and drifting with the tempo prior through a long silence
would only blur the belief. The tracked position of a frame is the belief's mean
(``estimate="mean"``, the default: slightly smaller errors on held-out songs) or the centre of
the most probable state (``"map"``). A frame costs
``O(n_states × max_jump)`` for the prediction, ``O(n_states)`` for the update and the
estimate, and the head on ``n_windows`` windows: nothing depends on the number of frames, and
the frame is finished before the next one is read (online).

**The default settings** (:class:`HMMSettings`) were chosen on validation pieces only, never
on test pieces: the mono validation split (50 folk songs, the shipped mono model), the piano
validation split (8 pieces, the piano model) and the validation pieces of the composer split
(3 pieces by Mozart, the Mozart-only model). Tracking ratio (mean over the pieces) / share
of pieces tracked to the end, on each of the three validation sets::

    settings (the others as the defaults)    mono           piano          composer split
    exponent 1, 3 windows (first version)    0.954 /  90 %  0.213 / 13 %   0.206 /  0 %
    exponent 0.5, 3 windows                  -              0.248 / 13 %   0.222 /  0 %
    exponent 0.3, 5 windows                  0.981 /  96 %  0.410 / 25 %   0.351 /  0 %
    exponent 0.2, 5 windows                  0.998 /  98 %  0.446 / 25 %   0.354 /  0 %
    exponent 0.1, 5 windows                  1.000 / 100 %  0.574 / 38 %   0.360 /  0 %
    exponent 0.05, 5 windows                 1.000 / 100 %  0.566 / 50 %   0.736 / 33 %
    exponent 0.025, 5 windows (the default)  1.000 / 100 %  0.684 / 63 %   0.915 / 67 %
    exponent 0.025, 3 windows                1.000 / 100 %  0.597 / 50 %   0.737 / 33 %
    exponent 0.01, 5 windows                 1.000 / 100 %  0.580 / 50 %   0.686 / 33 %
    exponent 0.025, 5 windows, 30 px/s       1.000 / 100 %  0.444 / 38 %   0.582 / 33 %
    exponent 0.025, 5 windows, 55 px/s       1.000 / 100 %  0.608 / 50 %   0.354 /  0 %
    exponent 0.025, 5 windows, "map"         1.000 / 100 %  0.422 / 25 %   0.497 /  0 %
    exponent 1e-6, 5 windows (control)       0.925 /  84 %  0.537 / 50 %   -

The last row is a control, not a candidate: with an exponent of 1e-6 the emission is flat
inside the evaluated windows, so the belief moves with the tempo prior alone (the windows
still follow it, and the floor still rules out the states outside them). The tempo prior
alone explains much of the tracking ratio on these pieces, whose tempi lie near the prior;
the network adds the rest, and the precision (within one bucket: mono 0.163 for the control,
0.813 with the default).

The price of the small exponent: the belief lags a little more behind a network that is right
(within one bucket at the onsets: mono 0.845 with exponent 1 and 3 windows, 0.864 with 0.2,
0.813 with 0.025). Also tried and not taken: a floor of 0.01 (no change at exponents <= 0.5),
one window (tracking ratio 0.24-0.28 on the piano pieces at exponents 0.2-0.5), seven windows
(no better than five), ``back`` 0.03 (no better at exponent 0.3), and transitions gated by the
spectral flux (:func:`sheetlab.onsets.spectral_flux`: move only where a note starts; piano
0.38-0.42, composer split 0.33-0.47 at exponent 0.3). The piano validation set is small
(8 pieces): its figures move by 1/8 when one piece is lost or not.

Its mono column was made with the first folk-song network (400 training tunes); the shipped
one, fine-tuned on the whole catalogue's 5786 training tunes, tracks the 50 validation songs
1.000 / 100 % with the defaults too, 0.868 of the onsets within one bucket (the control:
0.925 / 84 %, 0.164).
The piano column was made with an earlier piano network, trained on the default subset's 34
pieces (22 % of its validation onsets within one bucket given the window). With the first
one trained on the whole catalogue's 340 training pieces (63 %), the defaults were checked
again on the 41 validation pieces of the whole catalogue::

    settings (the others as the defaults)    piano, whole catalogue
    the defaults                             0.949 /  93 %   within one bucket 0.498
    exponent 0.05                            0.932 /  90 %                     0.525
    exponent 0.1                             0.915 /  90 %                     0.548
    3 tempo classes (``tempi=3``)            0.951 /  93 %                     0.558
    exponent 1e-6 (control)                  0.784 /  63 %                     0.093
    frame-wise follower (chapter 5)          0.191 /   2 %                     0.381

The defaults stay: a larger exponent buys precision with tracking, and the tempo classes
track as far, more precisely, at three times the states. That network fine-tuned five more
epochs with the long pieces' continuations (:func:`sheetlab.corpus.continuations`; 66 % of the
validation onsets within one bucket): on the same 41 pieces the defaults track 0.952 / 93 %
(within one bucket 0.533), exponent 0.05 0.933 / 90 %, exponent 0.1 0.917 / 88 %, the control
0.784 / 63 %: the defaults stay again. The one shipped now, that one two more epochs with the
augmented conditions as well (:mod:`sheetlab.augment`; 68 %): the defaults 0.953 / 93 %
(within one bucket 0.539), exponent 0.05 0.952 / 93 % (0.590), exponent 0.1 0.950 / 93 %
(0.616), the control 0.784 / 63 %. A larger exponent now costs the piano pieces little
tracking for much precision, but the defaults serve every network, and on the composer split's
validation pieces exponent 0.05 tracked 0.736 / 33 % against 0.915 / 67 %: they stay.

Most of those 41 pieces are Bach chorales, slow and even. The default subset's 8 validation
pieces (among them) have five that are not: with the first network trained on the whole
catalogue the defaults track them 0.740 / 63 %, losing Clara Schumann's Polonaise op. 1 no. 1,
Bach's Prelude BWV 846 and the third movement of Mozart's K. 458, where that network localises
61 %, 24 % and 40 % of the onsets given the window, and whose tempi (58, 39 and 93 px/s) are
far from the prior or uneven. Nothing else tried did clearly better: 3 tempo classes
0.749 / 63 %; 5 classes (ratio 1.3 or 1.4), 7 (1.3) or 9 (1.2) 0.67 / 63 %; 5 classes at ratio
1.5 0.61 / 50 %, 3 at 1.8 0.58 / 50 %; 9 windows 0.740 / 63 %; anchor 0.5 0.65 / 50 %; exponent
0.2 with 7 classes 0.45 / 38 %; ``max_jump`` 2 with 7 classes 0.56 / 50 %; a prior of 50 px/s,
a floor of 0.01, ``back`` 0.03 or no ignored edge buckets left 7 classes at 0.67. The tempo
classes do not save these pieces: the tempered evidence is too weak there to tell the classes
apart. The two networks
after it lose the same three (0.755 / 63 % and, the shipped one, 0.761 / 63 %), though they
localise 64 %, 24 % and 46 %, and 63 %, 24 % and 51 % of their onsets.

All of the above was measured with a fixed prior tempo (``tempo_window_s=0``; the prior did
not follow the music then). The prior that follows it was chosen afterwards, on the same
validation sets with the shipped networks, the other settings as the defaults (the followed
tempo within 20-100 px/s, or where the row says; the default's 16-100 px/s measured the same
as 20-100 on all four sets)::

    prior tempo                                mono           piano (8)      piano (41)     composer split
    fixed at 40 px/s                           1.000 / 100 %  0.761 / 63 %   0.953 / 93 %   0.915 / 67 %
    followed over 16 s, after 4 s (default)    1.000 / 100 %  0.869 / 75 %   0.975 / 95 %   0.819 / 67 %
    over 16 s, after 4 s, 20-150 px/s          -              0.869 / 75 %   0.975 / 95 %   0.819 / 67 %
    over 16 s, after 4 s, 30-100 px/s          -              0.869 / 75 %   0.975 / 95 %   0.748 / 33 %
    over 16 s, after 2 s                       -              0.869 / 75 %   0.975 / 95 %   0.589 / 33 %
    over 24 s, after 4 s                       -              0.870 / 75 %   0.975 / 95 %   0.742 / 33 %
    over 12 s, after 4 s                       -              0.896 / 75 %   0.980 / 95 %   0.496 /  0 %
    over 8 s, after 8 s, 30-100 px/s           1.000 / 100 %  0.891 / 75 %   0.979 / 95 %   0.504 /  0 %
    fixed, 3 tempo classes                     1.000 / 100 %  0.853 / 75 %   0.971 / 95 %   0.741 / 33 %
    fixed, 5 tempo classes                     1.000 / 100 %  0.853 / 75 %   0.971 / 95 %   0.741 / 33 %

Within one bucket, the default against the fixed prior: mono 0.874 against 0.868, piano (8)
0.458 against 0.324, piano (41) 0.615 against 0.539, composer split 0.423 against 0.422 (3
tempo classes: 0.878, 0.375, 0.585, 0.377; 5: 0.877, 0.410, 0.601, 0.287). With these
networks the tempo classes help too, but the followed tempo tracks the piano pieces a little
further and more precisely, at the cost of one class; 5 classes with the followed tempo
tracked the 8 piano pieces 0.801 / 75 % (BWV 846 lost early). On
the 8 piano pieces the followed tempo saves Clara Schumann's Polonaise op. 1 no. 1 (tracking
ratio 1.00 from 0.15) and takes K. 458-3 a little further (0.16 from 0.10); BWV 846 goes from
0.84 to 0.80. On the composer split's three it tracks K. 80-4 to the end (from 0.75) and loses
K. 458-2 at 46 % of its onsets: a slower passage brings the followed tempo down to about
30 px/s, and when the music moves on at 45 px/s the belief falls 165 px behind, where the fixed
prior fell 120 px behind, just short of the 130 px that count as lost. Shorter windows track
the piano pieces a little further and lose the composer split's; the default is the setting
that loses least anywhere.

The result is a :class:`~sheetlab.following.FollowResult` (an :class:`HMMResult`), so the
metrics of chapter 5 (:func:`~sheetlab.following.onset_metrics`,
:func:`~sheetlab.following.summarise`) and the cursors of
:func:`sheetlab.widgets.follow_tracks` work unchanged; :func:`sheetlab.following.jitter`
measures how much the tracked position wanders back and forth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from math import ceil

import numpy as np
import torch

from sheetlab.dataset import CONTEXT_FRAMES, WINDOW_PX, PieceData
from sheetlab.following import (ANCHOR, BATCH_SIZE, GRID_PX, SILENCE, FollowResult,
                                cached_predictor, evaluating, sounding_frames, window_grid,
                                window_index)
from sheetlab.spectrogram import FPS, frame_to_time
from sheetlab.targets import N_BUCKETS, bucket_width, softmax

STATE_PX = round(bucket_width(N_BUCKETS, WINDOW_PX))
"""Width of one state in strip px: one bucket of the default window (10 px)."""

ESTIMATES = ("map", "mean")
"""The tracked positions :func:`track` can report: most probable state or expected x."""

@dataclass(frozen=True)
class HMMSettings:
    """The tempo prior, the emission floor and the evaluated windows of :func:`track`
    (chapter 8).

    Attributes
    ----------
    speed_px_s : float
        Prior tempo: the expected advance along the strip, px per second (the pieces of the
        corpus move at about 25-70 px/s, median ≈ 35 px/s).
    max_jump : int
        Largest forward move in one frame, in states (>= 1); the moves of ``1 .. max_jump``
        states are equally likely.
    back : float
        Probability of moving one state back in a frame, in ``[0, 1)``.
    floor : float
        Added to every state's emission (> 0): how much a state the network rules out, or that
        no evaluated window covers, keeps of its belief.
    n_windows : int
        Consecutive grid windows evaluated per sounding frame (>= 1); the states outside them
        get the emission floor alone.
    edge_buckets : int
        Buckets at each edge of a window that the emission ignores, except at the ends of the
        strip (>= 0). The network learnt with its targets at least 20 px (two buckets) inside
        the window (:class:`~sheetlab.dataset.SnippetDataset`), so where it puts its mass on an
        edge bucket it mostly means "further that way", not "here".
    anchor : float
        The middle one of the evaluated windows shows the predicted MAP state at this fraction
        of its width from its left edge, in ``[0, 1)`` (as :func:`sheetlab.following.follow`'s
        window).
    exponent : float
        The network's bucket probabilities are raised to this power before they become the
        emission (> 0; 1 takes them as they are). Below 1 it tempers the evidence of a frame:
        the excerpts of consecutive frames share all but one of their frames, so their
        answers are far from the independent observations the HMM assumes, and a run of
        confident mistakes would otherwise count as many independent votes.
    tempi : int
        Number of tempo classes (>= 1; :func:`tempo_speeds`). With 1 the tempo is the fixed
        prior ``speed_px_s``; with more, the state is (tempo class, position) and the
        tracker finds the piece's tempo as it goes.
    tempo_ratio : float
        Ratio between the speeds of neighbouring tempo classes (> 1); the classes are spread
        geometrically around ``speed_px_s``.
    tempo_switch : float
        Probability per frame of moving to each neighbouring tempo class, in ``[0, 0.5]``.
    tempo_window_s : float
        The prior tempo follows the music (:func:`adapted_speed`): once ``tempo_after_s``
        seconds of sound have been tracked, ``speed_px_s`` is replaced before every sounding
        frame by the speed of the tracked position over the last this many seconds of sound
        (>= 0; 0 keeps the prior tempo fixed).
    tempo_after_s : float
        Seconds of sound tracked before the prior tempo starts to follow the music (>= 0).
    tempo_range : float
        The followed tempo stays within this factor of ``speed_px_s``, both ways (>= 1).
    """

    speed_px_s: float = 40.0
    max_jump: int = 1
    back: float = 0.01
    floor: float = 1e-3
    n_windows: int = 5
    edge_buckets: int = 2
    anchor: float = ANCHOR
    exponent: float = 0.025
    tempi: int = 1
    tempo_ratio: float = 1.4
    tempo_switch: float = 1e-3
    tempo_window_s: float = 16.0
    tempo_after_s: float = 4.0
    tempo_range: float = 2.5

    def __post_init__(self) -> None:
        checks = [(self.speed_px_s > 0, f"speed_px_s must be > 0 px/s, got {self.speed_px_s}"),
                  (self.max_jump >= 1, f"max_jump must be >= 1 state, got {self.max_jump}"),
                  (0 <= self.back < 1, f"back must be a probability in [0, 1), got {self.back}"),
                  (self.floor > 0, f"floor must be > 0, got {self.floor}"),
                  (self.n_windows >= 1, f"n_windows must be >= 1, got {self.n_windows}"),
                  (self.edge_buckets >= 0, f"edge_buckets must be >= 0, got "
                                           f"{self.edge_buckets}"),
                  (0 <= self.anchor < 1, f"anchor must be in [0, 1), got {self.anchor}"),
                  (self.exponent > 0, f"exponent must be > 0, got {self.exponent}"),
                  (self.tempi >= 1, f"tempi must be >= 1 tempo class, got {self.tempi}"),
                  (self.tempo_ratio > 1, f"tempo_ratio must be > 1, got {self.tempo_ratio}"),
                  (0 <= self.tempo_switch <= 0.5, f"tempo_switch must be a probability in "
                                                  f"[0, 0.5], got {self.tempo_switch}"),
                  (self.tempo_window_s >= 0, f"tempo_window_s must be >= 0 s, got "
                                             f"{self.tempo_window_s}"),
                  (self.tempo_after_s >= 0, f"tempo_after_s must be >= 0 s, got "
                                            f"{self.tempo_after_s}"),
                  (self.tempo_range >= 1, f"tempo_range must be >= 1, got {self.tempo_range}")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass
class HMMResult(FollowResult):
    """What :func:`track` did on one piece: a :class:`~sheetlab.following.FollowResult` and,
    on request, the belief (chapter 8).

    Attributes
    ----------
    belief : numpy.ndarray or None
        ``(n_frames, n_states) float32`` the filtered belief over the positions after each
        frame (summed over the tempo classes; rows sum to 1), or None unless :func:`track`
        was asked to keep it.
    tempo_px_s : numpy.ndarray or None
        ``(n_frames,) float64`` the expected tempo after each frame in px/s: with one tempo
        class the prior tempo, ``speed_px_s`` throughout if it is fixed, else as it follows
        the music (:func:`adapted_speed`).

    ``frame_x`` is the tracked position after each frame and ``window_left`` the window that
    shows the most probable state at the anchor (:class:`HMMSettings`), predicted before a
    sounding frame (the middle one of the windows evaluated) or held through a silent one.
    """

    belief: np.ndarray | None = None
    tempo_px_s: np.ndarray | None = None


# --------------------------------------------------------------------------- the model


def n_states(strip_width_px: int) -> int:
    """Number of states of a strip (chapter 8).

    Parameters
    ----------
    strip_width_px : int
        Width of the strip in px.

    Returns
    -------
    int
        ``ceil(strip_width_px / STATE_PX)`` (at least 1).
    """
    if strip_width_px < 1:
        raise ValueError(f"the strip must be at least 1 px wide, got {strip_width_px}")
    return ceil(strip_width_px / STATE_PX)


def state_centres(count: int) -> np.ndarray:
    """Strip x of the states' centres (chapter 8).

    Parameters
    ----------
    count : int
        Number of states.

    Returns
    -------
    numpy.ndarray
        ``(count,) float64`` ``(s + 1/2) * STATE_PX`` in px.
    """
    return (np.arange(count) + 0.5) * STATE_PX


def transition_kernel(settings: HMMSettings, fps: float = FPS, *,
                      speed_px_s: float | None = None) -> np.ndarray:
    """The tempo prior as the probability of each step per frame (chapter 8).

    Each forward move of ``k = 1 .. max_jump`` states has probability ``p_move / max_jump``;
    ``p_move`` makes the expected advance ``speed_px_s / fps / STATE_PX`` states per frame
    (net of the step back). What is left after moving forward or back is the probability of
    staying.

    Parameters
    ----------
    settings : HMMSettings
        The prior.
    fps : float
        Frames per second.
    speed_px_s : float or None
        The prior tempo in px/s, if not ``settings.speed_px_s``.

    Returns
    -------
    numpy.ndarray
        ``(max_jump + 2,) float64``: entry ``j`` is the probability of a step of ``j - 1``
        states (entry 0: one back, entry 1: stay, entry ``k + 1``: ``k`` forward); sums to 1.

    Raises
    ------
    ValueError
        If the prior tempo needs more than certain movement (raise ``max_jump`` or lower
        ``speed_px_s``).
    """
    speed = settings.speed_px_s if speed_px_s is None else speed_px_s
    return _kernels(np.array([speed], dtype=np.float64), settings, fps)[0]


def _kernels(speeds: np.ndarray, settings: HMMSettings, fps: float) -> np.ndarray:
    """``(len(speeds), max_jump + 2)`` :func:`transition_kernel` at each of ``speeds`` (px/s)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    advance = speeds / fps / STATE_PX  # expected states per frame
    p_move = (advance + settings.back) / ((settings.max_jump + 1) / 2)  # mean move: (1 + max) / 2
    too_fast = p_move + settings.back > 1
    if too_fast.any():
        k = int(np.argmax(too_fast))
        raise ValueError(
            f"a prior tempo of {speeds[k]:g} px/s ({advance[k]:.2f} states per frame at "
            f"{fps} fps) needs forward moves of probability {p_move[k]:.2f} per frame, more "
            f"than 1 - back = {1 - settings.back}: raise max_jump or lower speed_px_s")
    kernels = np.empty((len(speeds), settings.max_jump + 2))
    kernels[:, 0] = settings.back
    kernels[:, 1] = 1 - settings.back - p_move
    kernels[:, 2:] = (p_move / settings.max_jump)[:, None]
    return kernels


def predict(belief: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The prediction step: the belief one frame later under the tempo prior (chapter 8).

    ``prior[s] = sum_d belief[s - d] P(step d)``: a convolution with the kernel, in
    ``O(n_states × len(kernel))``. Mass that would move before the first state or past the
    last one stays there.

    Parameters
    ----------
    belief : numpy.ndarray
        ``(n_states,)`` probabilities.
    kernel : numpy.ndarray
        ``(max_jump + 2,)`` step probabilities, entry ``j`` for a step of ``j - 1`` states
        (:func:`transition_kernel`).

    Returns
    -------
    numpy.ndarray
        ``(n_states,) float64``, with the same sum as ``belief``.
    """
    spread = np.convolve(belief, kernel)  # spread[s + 1]: mass arriving at state s
    count = len(belief)
    prior = spread[1:count + 1].copy()
    prior[0] += spread[0]
    prior[-1] += spread[count + 1:].sum()
    return prior


def tempo_speeds(settings: HMMSettings, *, speed_px_s: float | None = None) -> np.ndarray:
    """The prior tempo of each tempo class (chapter 8).

    Parameters
    ----------
    settings : HMMSettings
        ``speed_px_s``, ``tempi`` and ``tempo_ratio``.
    speed_px_s : float or None
        The tempo the classes are spread around, if not ``settings.speed_px_s``.

    Returns
    -------
    numpy.ndarray
        ``(tempi,) float64`` px/s, ``speed_px_s * tempo_ratio ** (k - (tempi - 1) / 2)`` for
        ``k = 0 .. tempi - 1``: spread geometrically around ``speed_px_s`` (just
        ``[speed_px_s]`` with one class).
    """
    steps = np.arange(settings.tempi) - (settings.tempi - 1) / 2
    speed = settings.speed_px_s if speed_px_s is None else speed_px_s
    return speed * settings.tempo_ratio ** steps


def tempo_kernels(settings: HMMSettings, fps: float = FPS, *,
                  speed_px_s: float | None = None) -> np.ndarray:
    """The step probabilities of every tempo class (chapter 8).

    Parameters
    ----------
    settings : HMMSettings
        The prior; its tempo is replaced by each class's tempo (:func:`tempo_speeds`).
    fps : float
        Frames per second.
    speed_px_s : float or None
        The tempo the classes are spread around, if not ``settings.speed_px_s``.

    Returns
    -------
    numpy.ndarray
        ``(tempi, max_jump + 2) float64``: row ``k`` is :func:`transition_kernel` at the
        tempo of class ``k``.

    Raises
    ------
    ValueError
        If the fastest class needs more than certain movement (:func:`transition_kernel`).
    """
    return _kernels(tempo_speeds(settings, speed_px_s=speed_px_s), settings, fps)


def predict_tempi(belief: np.ndarray, kernels: np.ndarray, switch: float) -> np.ndarray:
    """The prediction step of the HMM with tempo classes (chapter 8).

    Each class's row moves with its own kernel (:func:`predict`); then each class hands
    ``switch`` of its mass to each neighbouring class (the slowest and the fastest keep what
    they would hand past the ends).

    Parameters
    ----------
    belief : numpy.ndarray
        ``(tempi, n_states)`` probabilities.
    kernels : numpy.ndarray
        ``(tempi, max_jump + 2)`` step probabilities (:func:`tempo_kernels`).
    switch : float
        Probability per frame of moving to each neighbouring class, in ``[0, 0.5]``.

    Returns
    -------
    numpy.ndarray
        ``(tempi, n_states) float64``, with the same sum as ``belief``.
    """
    moved = np.stack([predict(row, kernel) for row, kernel in zip(belief, kernels)])
    if len(moved) == 1 or switch == 0:
        return moved
    mixed = (1 - 2 * switch) * moved
    mixed[1:] += switch * moved[:-1]
    mixed[:-1] += switch * moved[1:]
    mixed[0] += switch * moved[0]
    mixed[-1] += switch * moved[-1]
    return mixed


def adapted_speed(positions_px: np.ndarray, settings: HMMSettings, fps: float = FPS) -> float:
    """The prior tempo for the next frame when it follows the music (chapter 8).

    Once more than ``tempo_after_s`` seconds of sounding frames have been tracked, the tempo is
    how fast the tracked position moved over the last ``tempo_window_s`` seconds of them (or
    all of them, while there are fewer), kept within a factor ``tempo_range`` of
    ``speed_px_s``; before that, and with ``tempo_window_s = 0``, it is ``speed_px_s``.

    Parameters
    ----------
    positions_px : numpy.ndarray
        ``(n,)`` the tracked position after each sounding frame so far, strip x in px.
    settings : HMMSettings
        ``speed_px_s`` and the ``tempo_*`` settings of the following.
    fps : float
        Frames per second.

    Returns
    -------
    float
        px/s.
    """
    window = round(settings.tempo_window_s * fps)
    if window == 0 or len(positions_px) - 1 < max(round(settings.tempo_after_s * fps), 1):
        return settings.speed_px_s
    span = min(window, len(positions_px) - 1)
    speed = (positions_px[-1] - positions_px[-1 - span]) * fps / span
    return float(np.clip(speed, settings.speed_px_s / settings.tempo_range,
                         settings.speed_px_s * settings.tempo_range))


def update(prior: np.ndarray, likelihood: np.ndarray) -> np.ndarray:
    """The update step: weight the predicted belief by the emission and normalise (chapter 8).

    Parameters
    ----------
    prior : numpy.ndarray
        ``(n_states,)`` predicted belief (:func:`predict`), or ``(tempi, n_states)`` with tempo
        classes (:func:`predict_tempi`).
    likelihood : numpy.ndarray
        ``(n_states,)`` positive emission of the frame (:func:`emission`); the same for every
        tempo class.

    Returns
    -------
    numpy.ndarray
        The filtered belief, shaped as ``prior``, ``float64``, summing to 1.
    """
    posterior = prior * likelihood
    return posterior / posterior.sum()


def forward_step(belief: np.ndarray, kernel: np.ndarray, likelihood: np.ndarray) -> np.ndarray:
    """One step of the forward filter: :func:`predict`, then :func:`update` (chapter 8).

    ``new[s] ∝ likelihood[s] · sum_d belief[s - d] P(step d)``, normalised to sum 1; mass that
    a step would carry before the first state or past the last one stays there.

    Parameters
    ----------
    belief : numpy.ndarray
        ``(n_states,)`` the filtered belief after the previous frame (sums to 1).
    kernel : numpy.ndarray
        ``(max_jump + 2,)`` step probabilities, entry ``j`` for a step of ``j - 1`` states
        (:func:`transition_kernel`).
    likelihood : numpy.ndarray
        ``(n_states,)`` positive emission of the new frame (:func:`emission`).

    Returns
    -------
    numpy.ndarray
        ``(n_states,) float64`` the filtered belief after the new frame, summing to 1.
    """
    return update(predict(np.asarray(belief, dtype=np.float64), np.asarray(kernel)),
                  np.asarray(likelihood, dtype=np.float64))


def start_belief(count: int) -> np.ndarray:
    """The belief before the first frame: all mass on state 0, the beginning of the score
    (chapter 8).

    Parameters
    ----------
    count : int
        Number of states.

    Returns
    -------
    numpy.ndarray
        ``(count,) float64`` one-hot on state 0.
    """
    belief = np.zeros(count)
    belief[0] = 1.0
    return belief


def forward_filter(likelihoods: np.ndarray, kernel: np.ndarray,
                   initial: np.ndarray) -> np.ndarray:
    """Forward filtering of a whole sequence of emissions (chapter 8).

    The loop of :func:`track` without the network: :func:`forward_step` (:func:`predict`, then
    :func:`update`) for every frame.

    Parameters
    ----------
    likelihoods : numpy.ndarray
        ``(n_frames, n_states)`` positive emission of every frame.
    kernel : numpy.ndarray
        ``(max_jump + 2,)`` step probabilities (:func:`transition_kernel`).
    initial : numpy.ndarray
        ``(n_states,)`` belief before the first frame (e.g. :func:`start_belief`).

    Returns
    -------
    numpy.ndarray
        ``(n_frames, n_states) float64`` the filtered belief after each frame.
    """
    likelihoods = np.asarray(likelihoods, dtype=np.float64)
    if likelihoods.ndim != 2 or likelihoods.shape[1] != len(initial):
        raise ValueError(f"likelihoods must be (n_frames, {len(initial)}), "
                         f"got {likelihoods.shape}")
    beliefs = np.empty_like(likelihoods)
    belief = np.asarray(initial, dtype=np.float64)
    for t, likelihood in enumerate(likelihoods):
        belief = beliefs[t] = forward_step(belief, kernel, likelihood)
    return beliefs


def emission(probs: np.ndarray, left_px: np.ndarray, count: int, floor: float,
             edge_buckets: int = 0, exponent: float = 1.0) -> np.ndarray:
    """The emission over all states from the bucket probabilities of some windows (chapter 8).

    Bucket ``b`` of the window at ``left_px[k]`` is the state that holds its centre,
    ``(left_px[k] + (b + 1/2) STATE_PX) // STATE_PX`` (clipped to the last state for a window
    that reaches past the strip). The ``edge_buckets`` first and last buckets of a window do
    not count, except the first ones of a window at the strip's start and the last ones of a
    window that reaches its end. A state gets the mean probability of the windows that cover
    it with a bucket that counts, plus ``floor``; any other state gets ``floor``. With an
    ``exponent`` other than 1 the probabilities are raised to that power first (tempering).

    Parameters
    ----------
    probs : numpy.ndarray
        ``(K, B)`` bucket probabilities (soft-max of the network's outputs) of ``K`` windows
        of ``B`` buckets of :data:`STATE_PX` px.
    left_px : numpy.ndarray
        ``(K,)`` strip x of the windows' left edges, px.
    count : int
        Number of states.
    floor : float
        Added to every state (> 0).
    edge_buckets : int
        Buckets ignored at each inner edge of a window, ``0 <= edge_buckets < B / 2``.
    exponent : float
        Power applied to the probabilities (> 0).

    Returns
    -------
    numpy.ndarray
        ``(count,) float64`` positive likelihood (not normalised).
    """
    n_buckets = probs.shape[1]
    if exponent <= 0:
        raise ValueError(f"exponent must be > 0, got {exponent}")
    if exponent != 1:
        probs = np.asarray(probs, dtype=np.float64) ** exponent
    if not 0 <= 2 * edge_buckets < n_buckets:
        raise ValueError(f"edge_buckets must be in [0, {n_buckets} / 2), got {edge_buckets}")
    offsets, counts, lo, covered = _emission_layout(tuple(np.asarray(left_px, dtype=np.float64)),
                                                    count, n_buckets, edge_buckets)
    total = np.bincount(offsets, weights=np.ravel(probs * counts))
    likelihood = np.full(count, float(floor))
    likelihood[lo:lo + len(total)] += np.divide(total, covered, out=np.zeros(len(total)),
                                                where=covered > 0)
    return likelihood


@functools.lru_cache(maxsize=1024)
def _emission_layout(left_px: tuple[float, ...], count: int, n_buckets: int,
                     edge_buckets: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Where :func:`emission` puts the buckets of windows at ``left_px``, made once per band
    (a tracker evaluates the same few bands of the grid over and over).

    Returns
    -------
    offsets : numpy.ndarray
        ``(K * B,) int64`` each bucket's state minus ``lo``.
    counts : numpy.ndarray
        ``(K, B) float64`` 1 where a bucket counts, 0 at the inner edges.
    lo : int
        The first state a window covers.
    covered : numpy.ndarray
        ``(n,) float64`` how many windows cover each state from ``lo`` on with a bucket that
        counts.
    """
    left = np.array(left_px)[:, None]
    states = np.minimum((left + state_centres(n_buckets)) // STATE_PX, count - 1).astype(np.int64)
    counts = np.ones(states.shape)
    counts[:, :edge_buckets] = left <= 0
    counts[:, n_buckets - edge_buckets:] = states[:, -1:] >= count - 1
    lo = int(states.min())
    offsets = states.ravel() - lo
    covered = np.bincount(offsets, weights=counts.ravel())
    for array in (offsets, counts, covered):
        array.flags.writeable = False
    return offsets, counts, lo, covered


def estimate_x(belief: np.ndarray, estimate: str = "map") -> float:
    """The tracked position of a belief (chapter 8).

    Parameters
    ----------
    belief : numpy.ndarray
        ``(n_states,)`` probabilities.
    estimate : {"map", "mean"}
        ``"map"``: the centre of the most probable state; ``"mean"``: the expected centre.

    Returns
    -------
    float
        Strip x in px.
    """
    if estimate == "map":
        return (int(np.argmax(belief)) + 0.5) * STATE_PX
    if estimate == "mean":
        return float(belief @ _frozen_centres(len(belief)))
    raise ValueError(f"unknown estimate {estimate!r}; known: {', '.join(ESTIMATES)}")


@functools.lru_cache(maxsize=16)
def _frozen_centres(count: int) -> np.ndarray:
    """:func:`state_centres`, made once per number of states and read-only (every frame of
    :func:`track` takes a mean over them)."""
    centres = state_centres(count)
    centres.flags.writeable = False
    return centres


# --------------------------------------------------------------------------- tracking


def track(model: torch.nn.Module, piece: PieceData, settings: HMMSettings = HMMSettings(), *,
          estimate: str = "mean", keep_belief: bool = False, width_px: int = WINDOW_PX,
          context_frames: int = CONTEXT_FRAMES, grid_px: int = GRID_PX,
          silence: float = SILENCE, fps: float = FPS,
          batch_size: int = BATCH_SIZE) -> HMMResult:
    """Track a whole performance in the unrolled score with the HMM's forward filter
    (chapter 8).

    The model, the windows and the features are those of :func:`sheetlab.following.follow`;
    the module docstring describes the states, the tempo prior, the emission and the loop.

    Parameters
    ----------
    model : torch.nn.Module
        A network with ``sheet_features``, ``spec_features`` and ``head`` as for
        :func:`~sheetlab.following.follow` (an :class:`~sheetlab.models.AudioSheetNet` runs its
        head folded, :func:`~sheetlab.models.fold_head`); run in eval mode. Its buckets must
        be :data:`STATE_PX` wide (``width_px / B``).
    piece : PieceData
        The piece: its spectrogram is tracked in its strip.
    settings : HMMSettings
        Tempo prior, emission floor and evaluated windows.
    estimate : {"map", "mean"}
        The tracked position: centre of the most probable state, or expected position.
    keep_belief : bool
        Also return the belief after every frame (``(n_frames, n_states) float32``).
    width_px : int
        Window width in px.
    context_frames : int
        Spectrogram frames per excerpt (the excerpt of frame ``t`` ends at ``t``).
    grid_px : int
        Step between the window positions in px (a multiple of :data:`STATE_PX` keeps the
        windows' buckets on the states).
    silence : float
        Frames quieter than this hold the belief (:func:`~sheetlab.following.sounding_frames`).
    fps : float
        Frames per second of the piece's spectrogram.
    batch_size : int
        Windows or excerpts per forward pass of a pathway.

    Returns
    -------
    HMMResult
        Positions at every frame and at the onsets, the windows used, and the belief if asked.
    """
    if estimate not in ESTIMATES:
        raise ValueError(f"unknown estimate {estimate!r}; known: {', '.join(ESTIMATES)}")
    strip_width = piece.strip.shape[1]
    grid = window_grid(strip_width, width_px, grid_px)
    count = n_states(strip_width)
    _check_tempo_range(settings, fps)
    speed = settings.speed_px_s
    speeds = tempo_speeds(settings)
    kernels = _kernels(speeds, settings, fps)
    sounding = sounding_frames(piece.spec, silence)
    n_frames = piece.spec.shape[1]
    frame_x = np.empty(n_frames)
    tempo = np.empty(n_frames)
    window_left = np.empty(n_frames, dtype=np.int64)
    beliefs = np.empty((n_frames, count), dtype=np.float32) if keep_belief else None
    positions = np.empty(int(sounding.sum()))  # the belief's mean after each sounding frame
    n_sounding = 0
    belief = np.tile(start_belief(count) / len(speeds), (len(speeds), 1))  # (tempi, count)
    anchor_px = settings.anchor * width_px
    with evaluating(model):
        predictor = cached_predictor(model, piece, grid, width_px, context_frames,
                                      batch_size=batch_size)
        for t in range(n_frames):
            if sounding[t]:
                prior = predict_tempi(belief, kernels, settings.tempo_switch)
                middle = window_index(grid, estimate_x(prior.sum(axis=0)), anchor_px)
                band = _band(middle, len(grid), settings.n_windows)
                logits = np.concatenate([predictor(t, i) for i in band])
                probs = _bucket_probs(logits, width_px)
                likelihood = emission(probs, grid[band.start:band.stop], count, settings.floor,
                                      settings.edge_buckets, settings.exponent)
                belief = update(prior, likelihood)
                position = belief.sum(axis=0)
                positions[n_sounding] = mean = estimate_x(position, "mean")
                n_sounding += 1
                followed = adapted_speed(positions[:n_sounding], settings, fps)
                if followed != speed:
                    speed = followed
                    speeds = tempo_speeds(settings, speed_px_s=speed)
                    kernels = _kernels(speeds, settings, fps)
            else:
                position = belief.sum(axis=0)
                mean = estimate_x(position, "mean")
                middle = window_index(grid, estimate_x(position), anchor_px)
            window_left[t] = grid[middle]
            frame_x[t] = mean if estimate == "mean" else estimate_x(position, estimate)
            tempo[t] = belief.sum(axis=1) @ speeds
            if beliefs is not None:
                beliefs[t] = position
    return HMMResult(piece.piece_id, frame_x[piece.onset_frame], piece.onset_x.astype(np.float64),
                     frame_to_time(piece.onset_frame, fps), width_px, frame_x, window_left, fps,
                     strip_width, beliefs, tempo)


def _check_tempo_range(settings: HMMSettings, fps: float) -> None:
    """ValueError unless every tempo class can move at the fastest tempo the prior may follow."""
    if settings.tempo_window_s == 0:
        return
    fastest = settings.speed_px_s * settings.tempo_range
    try:
        tempo_kernels(settings, fps, speed_px_s=fastest)
    except ValueError as error:
        raise ValueError(f"the prior tempo may follow the music up to speed_px_s x tempo_range "
                         f"= {fastest:g} px/s, and {error} (or lower tempo_range, or set "
                         f"tempo_window_s to 0)") from None


def _band(middle: int, n_grid: int, n_windows: int) -> range:
    """``n_windows`` consecutive grid indices around ``middle``, shifted to stay on the grid
    (all of them if the grid has fewer)."""
    start = min(max(middle - (n_windows - 1) // 2, 0), max(n_grid - n_windows, 0))
    return range(start, min(start + n_windows, n_grid))


def _bucket_probs(logits: np.ndarray, width_px: int) -> np.ndarray:
    """``(K, B)`` soft-max of the logits, after checking that the buckets are states."""
    if logits.shape[1] * STATE_PX != width_px:
        raise ValueError(f"the HMM's states are {STATE_PX} px wide: a window of {width_px} px "
                         f"needs {width_px / STATE_PX:g} buckets, but the network gives "
                         f"{logits.shape[1]}")
    return softmax(logits)
