"""Comparing score followers on the same pieces: frame-wise, recurrent, HMM (chapters 7 and 8).

A *tracker* is any function that follows one piece and returns a
:class:`~sheetlab.following.FollowResult`: :func:`sheetlab.following.follow` with the frame-wise
network (chapter 5), :func:`sheetlab.recurrent.follow` with the recurrent model (chapter 7) or
:func:`sheetlab.hmm.track` (chapter 8). :func:`compare` runs each on every piece and gives one
row per tracker with chapter 5's measures, the jitter and the real-time factor;
:func:`shipped_trackers` builds the three from the shipped weights.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Callable, Mapping, Sequence

import numpy as np

from sheetlab.dataset import PieceData
from sheetlab.following import FollowResult, follow, jitter, sounding_frames, summarise

Tracker = Callable[[PieceData], FollowResult]
"""Follows one piece: ``tracker(piece) -> FollowResult``."""

MEASURES = ("within_bucket", "mean_error_px", "median_error_px", "within_0.5s",
            "tracking_ratio", "tracked_to_end")
"""The measures of :func:`sheetlab.following.summarise` that :func:`compare` reports."""


def compare(trackers: Mapping[str, Tracker], pieces: Sequence[PieceData]) -> list[dict]:
    """Run every tracker on every piece; one row of measures per tracker (chapters 7 and 8).

    Parameters
    ----------
    trackers : mapping of str to callable
        Name -> ``tracker(piece) -> FollowResult``.
    pieces : sequence of PieceData
        The pieces, e.g. a test split.

    Returns
    -------
    list of dict
        Per tracker: ``tracker``, ``pieces``, ``onsets``, the :data:`MEASURES` over all pieces
        (shares and errors pooled over the onsets, ``tracking_ratio`` averaged over the
        pieces, ``tracked_to_end`` the share of pieces), ``jitter_px`` (mean over the pieces of
        :func:`sheetlab.following.jitter` on the sounding frames, px per frame) and
        ``real_time_factor`` (audio duration of all pieces over the tracker's wall-clock time,
        feature computation included; a single run, so noisy: the benchmarks take medians).
    """
    if not trackers or not pieces:
        raise ValueError("compare needs at least one tracker and one piece")
    rows = []
    for name, tracker in trackers.items():
        results, seconds = [], 0.0
        for piece in pieces:
            start = time.perf_counter()
            results.append(tracker(piece))
            seconds += time.perf_counter() - start
        total = summarise(results)[-1]
        wobble = [jitter(r, sounding_frames(p.spec)) for r, p in zip(results, pieces)]
        rows.append({"tracker": name, "pieces": len(pieces), "onsets": total["n_onsets"],
                     **{k: total[k] for k in MEASURES},
                     "jitter_px": float(np.mean(wobble)),
                     "real_time_factor": sum(p.duration_s for p in pieces) / seconds})
    return rows


def shipped_trackers(kind: str) -> dict[str, Tracker]:
    """The three followers of the book with the shipped weights of a kind (chapters 7 and 8).

    Parameters
    ----------
    kind : {"mono", "piano"}

    Returns
    -------
    dict
        ``"frame-wise"`` (:func:`sheetlab.following.follow`), ``"recurrent"``
        (:func:`sheetlab.recurrent.follow`) and ``"HMM"`` (:func:`sheetlab.hmm.track` with its
        default settings), each a :data:`Tracker`.
    """
    from sheetlab import hmm, recurrent
    from sheetlab.models import load_pretrained

    network = load_pretrained(kind)
    return {"frame-wise": partial(follow, network),
            "recurrent": partial(recurrent.follow, recurrent.load_pretrained(kind)),
            "HMM": partial(hmm.track, network)}
