"""The three followers compared: frame-wise, recurrent and HMM on the held-out test pieces.

For the mono and the piano test split (and the piano test pieces of the whole catalogue, 41
of which the default's 7 are a part), :func:`sheetlab.trackers.compare` runs the frame-wise
follower (:func:`sheetlab.following.follow`), the recurrent follower
(:func:`sheetlab.recurrent.follow`) and the HMM tracker (:func:`sheetlab.hmm.track`, default
settings) of the shipped weights on every piece, and reports chapter 5's measures, the jitter
and the real-time factor (audio duration of the whole split over the wall time of following
all of it, features included, from the cached spectrograms), with 2 torch threads. The
timings come from one pass over a whole split (tens of pieces): the noise of a single call
averages out over the split, but the load of the machine does not, so the notes give it.
"""

from __future__ import annotations

import os

import torch

from sheetlab import corpus
from sheetlab.dataset import load_piece
from sheetlab.trackers import compare, shipped_trackers

THREADS = 2


def run() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()[0]
    rows = []
    try:
        for name, kind, subset in (("mono", "mono", "default"), ("piano", "piano", "default"),
                                   ("piano, whole catalogue", "piano", "all")):
            pieces = [load_piece(corpus.score(p))
                      for p in corpus.pieces(kind, "test", subset=subset)]
            rows += [{"test set": name, **row} for row in compare(shipped_trackers(kind), pieces)]
    finally:
        torch.set_num_threads(threads)
    return {
        "title": "Frame-wise, recurrent and HMM followers on the test pieces",
        "rows": rows,
        "notes": f"Shipped light weights (frame-wise network, recurrent follower on top of it; "
                 f"the HMM uses the frame-wise network's output), the default subset's test "
                 f"splits and the whole piano catalogue's, {THREADS} torch threads. "
                 f"tracking_ratio: mean over pieces; tracked_to_end: share of pieces; "
                 f"jitter_px: excess travel per sounding frame, mean over pieces; "
                 f"real_time_factor: audio duration / wall time over the whole split "
                 f"(one pass). Load average when started: {load_before:.1f} "
                 f"(on {os.cpu_count()} cores).",
    }
