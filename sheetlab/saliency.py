"""Looking inside the network: saliency maps and a pitch-sensitivity experiment (chapter 6).

A **saliency map** says which parts of an input matter for a prediction. For a trained
network, fixed inputs and the logit ``y_b`` of one bucket ``b`` (by default the predicted one,
the talk's ``max f(X)``), :func:`input_gradients` computes ``dy_b / dX`` for *both* inputs of a
:mod:`sheetlab.models` network: the sheet window and the spectrogram excerpt. The logit, not the
soft-max probability, is differentiated: the soft-max couples all buckets, so its gradient also
says how to make the *other* buckets less likely.

Plain gradients are noisy: positive and negative contributions cancel on their way back.
**Guided back-propagation** (Springenberg et al., "Striving for Simplicity: The All
Convolutional Net", 2015) changes only the backward pass of every ReLU: the error signal is
passed on only where the ReLU's input was positive (as in the ordinary gradient) *and* the
signal itself is positive,
``delta_in = delta_out * [x > 0] * [delta_out > 0]`` (:func:`guided_relu_backward`). What
reaches the input then marks the evidence *for* the bucket. :func:`guided_backprop` computes it
inside :func:`guided_relus`, which replaces the model's ``nn.ReLU`` modules for the duration of
a ``with`` block by :class:`GuidedReLU` modules (same forward values, guided backward) and puts
the very same module objects back afterwards, also after an exception. Replacing modules, not
hooking them, is deliberate: the models' ReLUs work in place (``inplace=True``), overwriting
their input, and PyTorch's full backward hooks refuse in-place modules; a :class:`GuidedReLU`
is never in place. Only ``nn.ReLU`` modules are guided: a ReLU called as a function
(``torch.relu``) inside a ``forward`` is not seen.

Both gradient functions run the model in eval mode (batch norm with its running statistics,
no drop-out, so every example's logits depend on that example alone and nothing in the model
is updated) and restore its mode afterwards; they use ``torch.autograd.grad``, so the
parameters' ``.grad`` stay untouched.

:func:`overlay` draws a saliency map over its input as an RGB image. Its rows are the input's
rows: a sheet window's top row is at the top with ``imshow(rgb)``; a spectrogram's row 0 is
its lowest band, so show it with ``imshow(rgb, origin="lower")`` for low frequencies at the
bottom.

The talk's reading of the saliency maps, "the network looks at note heads but is not pitch
sensitive", is a qualitative one. :func:`pitch_sensitivity` measures it: every onset of a set
of pieces is localised in the windows of :func:`sheetlab.following.localise_onsets`, once with
the real audio and once with the spectrogram transposed by ``k`` semitones
(:func:`pitch_shift_excerpt`, 2 bands per semitone), and the table says how far the predicted
position moves. A network that reads pitch should move its prediction to other note heads; one
that reads only rhythm and onsets should not move at all.
:func:`transposed_predictions` gives the per-onset predictions behind the table, for
analyses of one's own (where did a moved prediction go?).
"""

from __future__ import annotations

import operator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Iterator, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from tqdm.auto import tqdm

from sheetlab.dataset import (CONTEXT_FRAMES, WINDOW_PX, PieceData, SnippetDataset,
                              spectrogram_excerpt)
from sheetlab.following import BATCH_SIZE, evaluating, localise_onsets
from sheetlab.spectrogram import BANDS_PER_OCTAVE
from sheetlab.targets import N_BUCKETS, bucket_width, localise, softmax

SALIENCY_RGB = (230, 40, 20)
"""Colour of positive saliency in :func:`overlay` (red, 0-255 per channel)."""

TRANSPOSITIONS = (-12, -7, -2, -1, 0, 1, 2, 7, 12)
"""Default transpositions of :func:`pitch_sensitivity`, in semitones (0: the reference)."""

Buckets = int | Sequence[int] | torch.Tensor | None
"""Which logit to explain: one bucket for every example, one per example, or None for the
predicted one."""


# --------------------------------------------------------------------------- the guided ReLU


def guided_relu_backward(x: ArrayLike, grad_out: ArrayLike) -> np.ndarray:
    """The guided back-propagation rule of one ReLU, in numpy (chapter 6).

    ``grad_in = grad_out * [x > 0] * [grad_out > 0]``: the ordinary ReLU gradient
    (``grad_out`` where the input was positive), with the negative error signals removed.

    Parameters
    ----------
    x : array_like
        ``(...)`` the ReLU's input in the forward pass.
    grad_out : array_like
        ``(...)`` the error signal arriving at the ReLU's output, same shape as ``x``.

    Returns
    -------
    numpy.ndarray
        ``(...)`` the error signal passed on to the ReLU's input, dtype of ``grad_out``; zero
        wherever ``x <= 0`` or ``grad_out <= 0``.
    """
    x, grad_out = np.asarray(x), np.asarray(grad_out)
    if x.shape != grad_out.shape:
        raise ValueError(f"x and grad_out must have one shape, got {x.shape} and "
                         f"{grad_out.shape}")
    return np.where((x > 0) & (grad_out > 0), grad_out, np.zeros_like(grad_out))


class _GuidedReLUFunction(torch.autograd.Function):
    """``max(x, 0)`` forward; :func:`guided_relu_backward` backward (in torch)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad_out * ((x > 0) & (grad_out > 0))


class GuidedReLU(nn.Module):
    """A ReLU with the guided backward pass (chapter 6).

    Forward: ``max(x, 0)``, never in place (the same values as ``nn.ReLU``). Backward:
    ``grad_out * [x > 0] * [grad_out > 0]`` (:func:`guided_relu_backward`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedReLUFunction.apply(x)


def _relu_slots(model: nn.Module) -> list[tuple[nn.Module, str, nn.ReLU]]:
    """``(parent, attribute name, ReLU)`` for every place a ``nn.ReLU`` sits in the model
    (a ReLU object used in two places appears twice)."""
    slots = []
    for path, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, nn.ReLU) and path:
            parent, _, name = path.rpartition(".")
            slots.append((model.get_submodule(parent), name, module))
    return slots


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[nn.Module]:
    """Give every ``nn.ReLU`` of a model the guided backward pass, for a ``with`` block
    (chapter 6).

    Each ``nn.ReLU`` submodule is replaced by a :class:`GuidedReLU` (same forward values, so
    the model's outputs do not change) and the original module objects are put back when the
    block ends, also when it raises. Nothing else is changed: not the parameters, not the mode.

    Parameters
    ----------
    model : torch.nn.Module
        The network (e.g. an :class:`sheetlab.models.AudioSheetNet`).

    Yields
    ------
    torch.nn.Module
        The same model, with guided ReLUs.
    """
    slots = _relu_slots(model)
    try:
        for parent, name, _ in slots:
            setattr(parent, name, GuidedReLU())
        yield model
    finally:
        for parent, name, relu in slots:
            setattr(parent, name, relu)


# --------------------------------------------------------------------------- saliency


def input_gradients(model: nn.Module, sheet: torch.Tensor, spec: torch.Tensor,
                    bucket: Buckets = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of one bucket's logit with respect to both inputs (chapter 6).

    Computed in eval mode (the model's mode is restored afterwards), with
    ``torch.autograd.grad``: the model and its parameters' ``.grad`` are left as they were.

    Parameters
    ----------
    model : torch.nn.Module
        A network ``forward(sheet, spec) -> (N, B) logits`` (:mod:`sheetlab.models`).
    sheet : torch.Tensor
        ``(N, 1, H, W)`` sheet windows (ink in [0, 1]), on the model's device.
    spec : torch.Tensor
        ``(N, 1, n_bands, n_frames)`` spectrogram excerpts (e.g. ``(N, 1, 136, 40)``).
    bucket : int, sequence of int or torch.Tensor, optional
        The bucket whose logit is differentiated: one for all examples or ``(N,)``, one per
        example; default: each example's predicted (most probable) bucket.

    Returns
    -------
    sheet_grad : torch.Tensor
        ``(N, 1, H, W)`` ``dy_b / d sheet``, per unit of ink.
    spec_grad : torch.Tensor
        ``(N, 1, n_bands, n_frames)`` ``dy_b / d spec``, per unit of log magnitude.
    """
    return _logit_gradients(model, sheet, spec, bucket, guided=False)


def guided_backprop(model: nn.Module, sheet: torch.Tensor, spec: torch.Tensor,
                    bucket: Buckets = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided back-propagation saliency of one bucket's logit for both inputs (chapter 6).

    :func:`input_gradients` with every ReLU's backward pass guided (:func:`guided_relus`):
    only positive error signals pass a ReLU, and only where its input was positive. The
    model is unchanged afterwards (same modules, parameters and mode).

    Parameters
    ----------
    model : torch.nn.Module
        A network ``forward(sheet, spec) -> (N, B) logits`` whose ReLUs are ``nn.ReLU``
        modules (:mod:`sheetlab.models`).
    sheet : torch.Tensor
        ``(N, 1, H, W)`` sheet windows (ink in [0, 1]), on the model's device.
    spec : torch.Tensor
        ``(N, 1, n_bands, n_frames)`` spectrogram excerpts.
    bucket : int, sequence of int or torch.Tensor, optional
        The bucket to explain: one for all examples or ``(N,)``; default: the predicted one.

    Returns
    -------
    sheet_saliency : torch.Tensor
        ``(N, 1, H, W)``.
    spec_saliency : torch.Tensor
        ``(N, 1, n_bands, n_frames)``.
    """
    return _logit_gradients(model, sheet, spec, bucket, guided=True)


def _logit_gradients(model: nn.Module, sheet: torch.Tensor, spec: torch.Tensor,
                     bucket: Buckets, guided: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the chosen logits w.r.t. both inputs, in eval mode, optionally guided."""
    if sheet.ndim != 4 or spec.ndim != 4 or len(sheet) != len(spec):
        raise ValueError(f"sheet and spec must be (N, 1, H, W) and (N, 1, n_bands, n_frames) "
                         f"batches of one size N, got {tuple(sheet.shape)} and "
                         f"{tuple(spec.shape)}")
    was_training = model.training
    model.eval()
    try:
        with guided_relus(model) if guided else nullcontext(), torch.enable_grad():
            inputs = [sheet.detach().requires_grad_(True), spec.detach().requires_grad_(True)]
            logits = model(*inputs)
            chosen = _chosen_buckets(logits, bucket)
            # eval mode: example i's logits depend on example i only, so the gradient of the
            # sum is every example's own gradient
            sheet_grad, spec_grad = torch.autograd.grad(
                logits.gather(1, chosen[:, None]).sum(), inputs)
    finally:
        model.train(was_training)
    return sheet_grad, spec_grad


def _chosen_buckets(logits: torch.Tensor, bucket: Buckets) -> torch.Tensor:
    """``(N,) int64`` bucket per example: the argmax of the logits, or the one(s) given."""
    n, n_buckets = logits.shape
    if bucket is None:
        return logits.argmax(dim=1)
    chosen = torch.as_tensor(bucket, dtype=torch.int64, device=logits.device)
    chosen = chosen.expand(n) if chosen.ndim == 0 else chosen
    if chosen.shape != (n,) or chosen.min() < 0 or chosen.max() >= n_buckets:
        raise ValueError(f"bucket must be one index or {n} indices in [0, {n_buckets - 1}], "
                         f"got {bucket!r}")
    return chosen


def overlay(image: ArrayLike, saliency: ArrayLike, *, colour: tuple[int, int, int] = SALIENCY_RGB,
            percentile: float = 99.0) -> np.ndarray:
    """Positive saliency in colour over its input drawn in grey (chapter 6).

    The input is drawn as ink on paper: its smallest value white, its largest black (note
    heads of a sheet window, loud bins of a spectrogram). The positive part of the saliency,
    divided by its ``percentile``-th percentile over the positive pixels and clipped to
    [0, 1], is the opacity of ``colour`` over that grey; negative saliency is not shown.

    Rows of the result are rows of the input: show a sheet window with ``imshow(rgb)`` and a
    spectrogram excerpt (row 0 = lowest band) with ``imshow(rgb, origin="lower")``, so that
    low frequencies are at the bottom.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` the input: a sheet window ``sheet[i, 0]`` (ink in [0, 1]) or a spectrogram
        excerpt ``spec[i, 0]`` (``(n_bands, n_frames)``).
    saliency : array_like
        ``(H, W)`` its saliency (:func:`guided_backprop` or :func:`input_gradients`).
    colour : tuple of int
        RGB of full saliency, 0-255.
    percentile : float
        Percentile of the positive saliency that gets full opacity (100: the maximum).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3) uint8`` RGB image.
    """
    image = np.asarray(image, dtype=np.float64)
    saliency = np.asarray(saliency, dtype=np.float64)
    if image.ndim != 2 or image.shape != saliency.shape:
        raise ValueError(f"image and saliency must be (H, W) arrays of one shape, got "
                         f"{image.shape} and {saliency.shape}")
    span = image.max() - image.min()
    paper = 1 - (image - image.min()) / span if span > 0 else np.ones_like(image)
    positive = np.clip(saliency, 0, None)
    scale = np.percentile(positive[positive > 0], percentile) if (positive > 0).any() else 1.0
    alpha = np.clip(positive / scale, 0, 1)[..., None]
    rgb = (1 - alpha) * paper[..., None] + alpha * np.asarray(colour, dtype=np.float64) / 255
    return np.round(255 * rgb).astype(np.uint8)


# --------------------------------------------------------------------------- pitch sensitivity


def pitch_shift_excerpt(spec_excerpt: ArrayLike, semitones: int,
                        bands_per_octave: int = BANDS_PER_OCTAVE) -> np.ndarray:
    """Transpose a log-frequency spectrogram by moving its bands (chapter 6).

    With 24 bands per octave a semitone is 2 bands: band ``i`` moves to ``i + 2 k`` for
    ``k`` semitones up (down for negative ``k``); bands shifted in from outside are silent
    (0, the spectrogram's floor ``log10(1 + 0)``) and bands shifted past the edge are lost.
    Every frame is shifted alike, so shifting a whole spectrogram and then cutting an excerpt
    equals cutting and then shifting.

    The default filterbank (:mod:`sheetlab.spectrogram`) has 24 bands per octave only above
    about 370 Hz (band 30 of 136): below it, bands are single STFT bins 10.8 Hz apart, fewer
    than 2 per semitone, so there a shift of 2 bands is more than a semitone (about 1.8 at
    200 Hz, 3.6 at 100 Hz). Above it the band centres are snapped to STFT bins, so a semitone
    is 2 bands on average but 1 to 3 bands locally.

    Parameters
    ----------
    spec_excerpt : array_like
        ``(n_bands, n_frames)`` log spectrogram or excerpt, band 0 the lowest.
    semitones : int
        Transposition ``k``; positive is up.
    bands_per_octave : int
        Bands per octave of the spectrogram; a multiple of 12.

    Returns
    -------
    numpy.ndarray
        ``(n_bands, n_frames)`` with the input's dtype.
    """
    if bands_per_octave % 12:
        raise ValueError(f"bands_per_octave must be a multiple of 12 for whole-semitone "
                         f"shifts, got {bands_per_octave}")
    spec = np.asarray(spec_excerpt)
    if spec.ndim != 2:
        raise ValueError(f"spec_excerpt must be (n_bands, n_frames), got {spec.shape}")
    shift = operator.index(semitones) * (bands_per_octave // 12)
    shifted = np.zeros_like(spec)
    lo, hi = max(shift, 0), min(len(spec) + shift, len(spec))
    if hi > lo:
        shifted[lo:hi] = spec[lo - shift:hi - shift]
    return shifted


def pitch_sensitivity(model: nn.Module, pieces: Sequence[PieceData],
                      semitones: Sequence[int] = TRANSPOSITIONS, *, random_offset: bool = True,
                      seed: int = 0, margin_px: int = 20, width_px: int = WINDOW_PX,
                      context_frames: int = CONTEXT_FRAMES, n_buckets: int = N_BUCKETS,
                      bands_per_octave: int = BANDS_PER_OCTAVE,
                      progress: bool = True) -> list[dict]:
    """How far the localised x moves when the audio is transposed: a table (chapter 6).

    Every correspondence of every piece is localised by
    :func:`sheetlab.following.localise_onsets` (the windows of
    :class:`sheetlab.dataset.SnippetDataset`, seeded), once with the piece's spectrogram and
    once per transposition ``k`` with the spectrogram shifted by :func:`pitch_shift_excerpt`;
    the sheet windows are the same. A network that reads pitch moves its prediction; one that
    does not keeps it.

    The predictions come from :func:`transposed_predictions`, the table from
    :func:`shift_table`.

    Parameters
    ----------
    model : torch.nn.Module
        A network ``forward(sheet, spec) -> (N, B) logits`` (:mod:`sheetlab.models`).
    pieces : sequence of PieceData
        The pieces, e.g. the test split.
    semitones : sequence of int
        Transpositions, one row each; 0 is the reference (it moves nothing by definition).
    random_offset, seed, margin_px
        Placement of the target in its window (:class:`sheetlab.dataset.SnippetDataset`).
    width_px : int
        Window width in px.
    context_frames : int
        Spectrogram frames per excerpt.
    n_buckets : int
        Buckets per window (the network's outputs): sets the bucket width.
    bands_per_octave : int
        Bands per octave of the pieces' spectrograms.
    progress : bool
        Show a tqdm progress bar over the pieces.

    Returns
    -------
    list of dict
        One row per transposition, pooled over all onsets of all pieces: ``semitones``,
        ``n_onsets``; ``mean_shift_px`` and ``median_shift_px``, the absolute distance
        between the predictions with transposed and with real audio; ``stay_within_bucket``,
        the share of predictions that move less than one bucket width; ``within_bucket``, the
        share less than one bucket width from the true x (as in
        :func:`sheetlab.following.onset_metrics`); ``median_error_px``, the median absolute
        error to the true x.
    """
    if not pieces:
        raise ValueError("pitch_sensitivity needs at least one piece")
    placement = dict(random_offset=random_offset, seed=seed, margin_px=margin_px,
                     width_px=width_px, context_frames=context_frames)
    predicted = [transposed_predictions(model, piece, semitones,
                                        bands_per_octave=bands_per_octave, **placement)
                 for piece in tqdm(pieces, desc="pitch sensitivity", unit="piece",
                                   disable=not progress)]
    return shift_table(predicted, [piece.onset_x for piece in pieces], semitones,
                       n_buckets=n_buckets, width_px=width_px)


def shift_table(predicted: Sequence[dict[int, np.ndarray]], true_x: Sequence[ArrayLike],
                semitones: Sequence[int] | None = None, *, n_buckets: int = N_BUCKETS,
                width_px: int = WINDOW_PX) -> list[dict]:
    """The table of :func:`pitch_sensitivity` from per-onset predictions (chapter 6).

    Parameters
    ----------
    predicted : sequence of dict of int to numpy.ndarray
        One :func:`transposed_predictions` result per piece: ``{k: (n_onsets,) strip x}`` in
        px, ``k = 0`` (the real audio) included.
    true_x : sequence of array_like
        ``(n_onsets,)`` the true strip x of each piece's correspondences, in px.
    semitones : sequence of int, optional
        The rows, in this order; default: every ``k`` of the first piece, ascending.
    n_buckets : int
        Buckets per window: sets the bucket width.
    width_px : int
        Window width in px.

    Returns
    -------
    list of dict
        One row per transposition, pooled over all onsets of all pieces, with the columns
        documented in :func:`pitch_sensitivity`.
    """
    if not predicted or len(predicted) != len(true_x):
        raise ValueError(f"need one true_x per piece and at least one piece, got "
                         f"{len(predicted)} predictions and {len(true_x)} true_x")
    semitones = sorted(predicted[0]) if semitones is None else list(semitones)
    reference = np.concatenate([p[0] for p in predicted])
    truth = np.concatenate([np.asarray(x, dtype=np.float64) for x in true_x])
    if reference.shape != truth.shape:
        raise ValueError(f"{len(reference)} predictions but {len(truth)} true positions")
    bucket_px = bucket_width(n_buckets, width_px)
    return [_shift_row(k, reference, np.concatenate([p[k] for p in predicted]), truth, bucket_px)
            for k in semitones]


def transposed_predictions(model: nn.Module, piece: PieceData,
                           semitones: Sequence[int] = TRANSPOSITIONS, *,
                           random_offset: bool = True, seed: int = 0, margin_px: int = 20,
                           width_px: int = WINDOW_PX, context_frames: int = CONTEXT_FRAMES,
                           bands_per_octave: int = BANDS_PER_OCTAVE,
                           batch_size: int = BATCH_SIZE) -> dict[int, np.ndarray]:
    """Where the network localises each onset of a piece when its audio is transposed
    (chapter 6).

    The per-onset predictions behind :func:`pitch_sensitivity`: every correspondence is
    localised in its window of :func:`sheetlab.following.localise_onsets` (the windows of
    :class:`sheetlab.dataset.SnippetDataset`, seeded), with the spectrogram shifted by
    :func:`pitch_shift_excerpt`; the windows do not depend on ``k``. A network with two
    pathways and a head (``sheet_features``, ``spec_features`` and ``head``, as
    :class:`sheetlab.models.AudioSheetNet`) runs its sheet pathway once per window and reuses
    the features for every transposition (the predictions of whole forward passes up to float
    rounding); any other network is run whole, once per transposition.

    Parameters
    ----------
    model : torch.nn.Module
        A network ``forward(sheet, spec) -> (N, B) logits``; run in eval mode, its mode
        restored afterwards.
    piece : PieceData
        The piece.
    semitones : sequence of int
        Transpositions ``k``; 0 (the real audio) is always computed.
    random_offset, seed, margin_px
        Placement of the target in its window (:class:`sheetlab.dataset.SnippetDataset`).
    width_px : int
        Window width in px.
    context_frames : int
        Spectrogram frames per excerpt.
    bands_per_octave : int
        Bands per octave of the piece's spectrogram.
    batch_size : int
        Examples per forward pass.

    Returns
    -------
    dict of int to numpy.ndarray
        ``{k: (n_onsets,) float64}`` the predicted strip x of every correspondence, in px, for
        ``k = 0`` and every ``k`` in ``semitones``.
    """
    semitones = sorted({0, *(operator.index(k) for k in semitones)})
    placement = dict(random_offset=random_offset, seed=seed, margin_px=margin_px,
                     width_px=width_px, context_frames=context_frames)
    if not all(callable(getattr(model, name, None))
               for name in ("sheet_features", "spec_features", "head")):
        return {k: localise_onsets(model, _transposed(piece, k, bands_per_octave), **placement,
                                   batch_size=batch_size).pred_x for k in semitones}
    examples = SnippetDataset([piece], width_px, context_frames, margin_px, random_offset, seed)
    device = next(model.parameters(), torch.empty(0)).device
    n = len(examples)
    starts = range(0, n, batch_size)
    predicted = {}
    with evaluating(model):
        sheet_features, target_x = [], []
        for start in starts:
            batch = [examples[i] for i in range(start, min(start + batch_size, n))]
            sheet, _, target = (torch.stack(t) for t in zip(*batch))
            sheet_features.append(model.sheet_features(sheet.to(device)))
            target_x.append(target.numpy().astype(np.float64))
        left_x = piece.onset_x - np.concatenate(target_x)  # strip x of each window's left edge
        for k in semitones:
            spec = _transposed(piece, k, bands_per_octave).spec
            logits = []
            for start, features in zip(starts, sheet_features):
                excerpts = np.stack([spectrogram_excerpt(spec, int(frame), context_frames)
                                     for frame in piece.onset_frame[start:start + batch_size]])
                spec_features = model.spec_features(torch.from_numpy(excerpts[:, None]).to(device))
                logits.append(model.head(features, spec_features).cpu().numpy())
            predicted[k] = left_x + localise(softmax(np.concatenate(logits)), width_px)
    return predicted


def _transposed(piece: PieceData, semitones: int, bands_per_octave: int) -> PieceData:
    """The piece with its spectrogram shifted by ``semitones`` (the piece itself for 0)."""
    if semitones == 0:
        return piece
    return replace(piece, spec=pitch_shift_excerpt(piece.spec, semitones, bands_per_octave))


def _shift_row(semitones: int, reference_x: np.ndarray, moved_x: np.ndarray,
               true_x: np.ndarray, bucket_px: float) -> dict:
    """One row of :func:`pitch_sensitivity` from ``(n_onsets,)`` strip x arrays in px."""
    shift, error = np.abs(moved_x - reference_x), np.abs(moved_x - true_x)
    return {"semitones": semitones, "n_onsets": len(shift),
            "mean_shift_px": float(shift.mean()), "median_shift_px": float(np.median(shift)),
            "stay_within_bucket": float(np.mean(shift < bucket_px)),
            "within_bucket": float(np.mean(error < bucket_px)),
            "median_error_px": float(np.median(error))}
