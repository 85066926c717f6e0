"""Localisation quality of the shipped models on held-out test pieces (chapters 4 and 5).

For every correspondence of every test piece the network gets the sheet window that contains
the target (placed as in training: a seeded random offset at least 20 px from the edges, see
:class:`sheetlab.dataset.SnippetDataset`) and the spectrogram excerpt that ends at the onset,
and says where in the window the note is (:func:`sheetlab.following.localise_onsets`).
Reported over all onsets of the split: the share within one bucket (error below 10 px), the
mean and median absolute error in px, and the same given a centred window. Both models are
measured on the test pieces of the default subset and of the whole catalogue (the former are
among the latter; neither meets a training piece), the piano pieces of the whole catalogue
also by group (:func:`sheetlab.corpus.group`: chorales, string-quartet movements, piano
pieces). The composer split (train and validate on Mozart, test on the other composers) uses
the model trained on it when it is shipped (``piano-light-mozart``).
"""

from __future__ import annotations

import torch

from sheetlab import corpus
from sheetlab.following import localise_onsets, summarise
from sheetlab.models import load_checkpoint, load_pretrained, weights_path
from sheetlab.training import load_pieces

THREADS = 2

GROUP_LABELS = {"chorale": "chorales", "quartet": "quartet movements", "piano": "piano pieces"}
"""How the rows name the groups of the piano catalogue."""

PLACEMENTS = (("random", True), ("centred", False))
"""The windows of each onset: placed as in training (seeded random offset), or centred."""


def _localised(model: torch.nn.Module, pieces: list) -> dict[str, dict]:
    """Every piece of a list of catalogue pieces localised with both placements, by piece id."""
    return {piece.piece_id: {placement: localise_onsets(model, piece, random_offset=random)
                             for placement, random in PLACEMENTS}
            for piece in load_pieces(pieces, progress=False)}


def _row(label: str, split: str, localised: dict[str, dict], pieces: list) -> dict:
    """Localisation metrics of one model over the localised pieces of one list."""
    chosen = [localised[p.id] for p in pieces if p.id in localised]
    pooled = {placement: summarise([piece[placement] for piece in chosen])[-1]
              for placement, _ in PLACEMENTS}
    return {"model": label, "test split": split,
            "pieces": len(chosen), "onsets": pooled["random"]["n_onsets"],
            "within_bucket": pooled["random"]["within_bucket"],
            "mean_error_px": pooled["random"]["mean_error_px"],
            "median_error_px": pooled["random"]["median_error_px"],
            "within_bucket_centred": pooled["centred"]["within_bucket"]}


def _subset_rows(model: torch.nn.Module, kind: str, label: str,
                 splits: tuple[str, str]) -> list[dict]:
    """Rows for the test pieces of the default subset and of the whole catalogue of one kind;
    the former are among the latter, so every piece is localised once."""
    whole = corpus.pieces(kind, "test", subset="all")
    localised = _localised(model, whole)
    rows = [_row(label, splits[0], localised, corpus.pieces(kind, "test")),
            _row(label, splits[1], localised, whole)]
    group_of = {p.id: corpus.group(p) for p in whole}
    groups = sorted(set(group_of.values()))
    if len(groups) > 1:  # piano: chorales, quartet movements and piano pieces apart
        rows += [_row(label, f"{splits[1]}: {GROUP_LABELS[name]}", localised,
                      [p for p in whole if group_of[p.id] == name]) for name in groups]
    return rows


def run() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        rows = (_subset_rows(load_pretrained("mono"), "mono", "mono-light",
                             ("mono test (Essen)", "mono test (Essen, whole catalogue)"))
                + _subset_rows(load_pretrained("piano"), "piano", "piano-light",
                               ("piano test (default subset)", "piano test (whole catalogue)")))
        mozart = weights_path("piano", "light-mozart")
        if mozart.exists():
            composer = corpus.composer_split("Mozart")["test"]
            rows.append(_row("piano-light-mozart", "composer split test (not Mozart, and K. 545)",
                             _localised(load_checkpoint(mozart), composer), composer))
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
