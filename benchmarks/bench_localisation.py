"""Localisation quality of the shipped models on held-out test pieces (chapters 4 and 5).

For every correspondence of every test piece the network gets the sheet window that contains
the target (placed as in training: a seeded random offset at least 20 px from the edges, see
:class:`sheetlab.dataset.SnippetDataset`) and the spectrogram excerpt that ends at the onset,
and says where in the window the note is (:func:`sheetlab.following.localise_onsets`).
Reported over all onsets of the split: the share within one bucket (error below 10 px), the
mean and median absolute error in px, and the same given a centred window. Both models are
measured on the test pieces of the default subset and of the whole catalogue (the former are
among the latter; neither meets a training piece). The composer split
(train and validate on Mozart, test on the other composers) uses the model trained on it when
it is shipped (``piano-light-mozart``).
"""

from __future__ import annotations

import torch

from sheetlab import corpus
from sheetlab.following import localise_onsets, summarise
from sheetlab.models import load_checkpoint, load_pretrained, weights_path
from sheetlab.training import load_pieces

THREADS = 2


def _row(model: torch.nn.Module, label: str, split: str, pieces: list) -> dict:
    """Localisation metrics of one model over one list of catalogue pieces."""
    data = load_pieces(pieces, progress=False)
    pooled = {}
    for placement, random_offset in (("random", True), ("centred", False)):
        results = [localise_onsets(model, piece, random_offset=random_offset) for piece in data]
        pooled[placement] = summarise(results)[-1]
    return {"model": label, "test split": split,
            "pieces": len(data), "onsets": pooled["random"]["n_onsets"],
            "within_bucket": pooled["random"]["within_bucket"],
            "mean_error_px": pooled["random"]["mean_error_px"],
            "median_error_px": pooled["random"]["median_error_px"],
            "within_bucket_centred": pooled["centred"]["within_bucket"]}


def run() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        mono, piano = load_pretrained("mono"), load_pretrained("piano")
        rows = [_row(mono, "mono-light", "mono test (Essen)", corpus.pieces("mono", "test")),
                _row(mono, "mono-light", "mono test (Essen, whole catalogue)",
                     corpus.pieces("mono", "test", subset="all")),
                _row(piano, "piano-light", "piano test (default subset)",
                     corpus.pieces("piano", "test")),
                _row(piano, "piano-light", "piano test (whole catalogue)",
                     corpus.pieces("piano", "test", subset="all"))]
        mozart = weights_path("piano", "light-mozart")
        if mozart.exists():
            rows.append(_row(load_checkpoint(mozart), "piano-light-mozart",
                             "composer split test (not Mozart, and K. 545)",
                             corpus.composer_split("Mozart")["test"]))
    finally:
        torch.set_num_threads(threads)
    return {
        "title": "Localisation given the correct window (held-out test pieces)",
        "rows": rows,
        "notes": "Shipped light models (sheetlab/weights, see their JSON cards). within_bucket: "
                 "share of onsets whose localised x is less than one bucket (10 px) from the "
                 "true x, windows placed as in training (seeded random offsets); "
                 "within_bucket_centred: the same with the target in the window's middle. "
                 "Targets of the issue: mono >= 0.90, piano >= 0.75.",
    }
