"""Score-following speed: :func:`sheetlab.following.follow` against :func:`follow_naive`.

Both follow the same whole piece (Mozart K. 545, 1st movement, engraved and performed with the
default condition) with the same light piano network, window policy and result; ``follow``
computes the sheet pathway once per window position of its grid and the spectrogram pathway
once per frame, in batches, and runs only the head per frame; ``follow_naive`` runs both
pathways on every sounding frame. Real-time factor = audio duration / wall time of the whole
call (features included), median of repeated runs, with 2 torch threads.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sheetlab import corpus
from sheetlab.dataset import build_piece
from sheetlab.following import GRID_PX, follow, follow_naive, sounding_frames, window_grid
from sheetlab.models import AudioSheetNet, config, load_pretrained, weights_path

REPEATS = 3
THREADS = 2


def network() -> tuple[torch.nn.Module, str]:
    """The pretrained light piano model if it is shipped, else a random one (same speed)."""
    if weights_path("piano", "light").exists():
        return load_pretrained("piano", "light"), "pretrained light piano model"
    torch.manual_seed(0)
    return AudioSheetNet(config("light", "piano")).eval(), "random-init light piano model"


def median_seconds(fn, repeats: int = REPEATS) -> float:
    """Median wall time of ``repeats`` calls of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        entry = next(p for p in corpus.catalogue("piano") if p.id == corpus.DEMO_ID)
        piece = build_piece(corpus.score(entry))
        model, model_name = network()
        follow(model, piece)  # warm-up
        rows = []
        for name, fn in [("follow (cached sheet features)", follow),
                         ("follow_naive (both pathways per frame)", follow_naive)]:
            seconds = median_seconds(lambda: fn(model, piece))
            rows.append({"method": name, "median_s": seconds,
                         "ms_per_frame": 1000 * seconds / piece.spec.shape[1],
                         "x_real_time": piece.duration_s / seconds})
    finally:
        torch.set_num_threads(threads)
    ratio = rows[0]["x_real_time"] / rows[1]["x_real_time"]
    n_windows = len(window_grid(piece.strip.shape[1]))
    n_sounding = int(sounding_frames(piece.spec).sum())
    return {
        "title": "Score-following speed",
        "rows": rows,
        "notes": f"{entry.title} ({piece.duration_s:.1f} s of audio, {piece.spec.shape[1]} frames "
                 f"of which {n_sounding} sound, a strip of {piece.strip.shape[1]} px: "
                 f"{n_windows} window positions every {GRID_PX} px), {model_name} (the speed "
                 f"does not depend on the weights), {THREADS} torch threads, median of "
                 f"{REPEATS} runs. Speed-up of follow over follow_naive: {ratio:.1f}x.",
    }
