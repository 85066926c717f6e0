"""Following a score: localisation, frame-wise following of a whole piece, metrics (chapter 5).

Two ways to use the multimodal network of chapter 4 (:mod:`sheetlab.models`):

* **localisation** (:func:`localise_onsets`): for every correspondence the sheet window is
  placed as in training and evaluation (the target at a seeded random or a central offset),
  and the network says where in the window the note is. This measures the network alone.
* **following** (:func:`follow`): the network reads the performance frame by frame and the
  window moves with its own predictions, as a score follower must: nobody tells it where the
  music is. A mistake moves the window, and a window without the right music in it cannot be
  corrected; that is how a follower gets lost.

The window policy of :func:`follow`: the follower starts at the beginning of the score
(strip x 0). Before each frame the window is placed so that the current position lies at
``anchor`` (1/3) of its width from the left edge (two thirds of the window show the music
ahead), with its left edge snapped to a grid of strip positions every ``grid_px`` and clamped
to the strip (``0 <= left <= strip width - window width``). The network predicts where in that
window the newest onset is, and that becomes the new position. Frames whose loudest band is
below ``silence`` (before, between and after the notes) keep the position. Because the strip
is the unrolled score, moving along it crosses system ends and page turns without any special
case; :meth:`Strip.to_page <sheetlab.engrave.Strip.to_page>` maps positions back onto the
pages (:func:`sheetlab.widgets.follow_tracks`).

The grid step is three buckets (30 px). The position then stays within 15 px of the anchor,
which matters little to a network trained on targets anywhere in the window; because the step
is a whole number of buckets, every window's buckets lie on one grid of the strip, so a perfect
network's answer does not jitter as the window moves; and the strip needs one window per
30 px. That count matters: a 112 × 390 window costs the sheet pathway about eight times what a
136 × 40 excerpt costs the spectrogram pathway, and the piano pieces have a few windows per
second of music at this step (about 6.5 at 10 px for K. 545) against 31.25 frames.

The cost of a frame: the sheet window of frame ``t`` depends on the prediction at ``t - 1``,
but the spectrogram excerpt does not depend on the window, and the windows all come from the
grid. So :func:`follow` runs the sheet pathway once per grid position and the spectrogram
pathway once per frame, each in large batches, before following; the sequential loop only runs
the network's small merging head. :func:`follow_naive` runs the same loop but evaluates both
pathways on every frame's window and excerpt; it exists to measure what the caching saves
(``benchmarks/bench_following.py``). Both run inside :func:`evaluating`, which also keeps
numpy's BLAS, used by the head, on one thread (:mod:`sheetlab.threads`: its idle workers
would otherwise spin on the cores the pathways need).

Metrics (:func:`onset_metrics`, :func:`summarise`), per onset, from the prediction at the onset's
frame: the absolute error in px and in staff spaces, the share within one bucket, the share
whose predicted position maps back (through the piece's own onset-x-to-time curve) to within
0.1 / 0.5 / 1.0 s of the onset, and the measures of the score-following game of Dorfer,
Henkel and Widmer (ISMIR 2018): the **tracking ratio** (:func:`tracking_ratio`: the share of
the piece's onsets before the follower is first lost, lost meaning an error of more than a
third of the window) and whether the piece was tracked to the end.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from sheetlab.dataset import (CONTEXT_FRAMES, WINDOW_PX, PieceData, SnippetDataset, sheet_window,
                              spectrogram_excerpt)
from sheetlab.engrave import EngraveSettings
from sheetlab.models import (AudioSheetNet, FoldedHead, fold_batch_norm, fold_head,
                             to_device)
from sheetlab.spectrogram import FPS, frame_to_time
from sheetlab.targets import N_BUCKETS, bucket_width, localise, softmax
from sheetlab.threads import one_blas_thread


ANCHOR = 1 / 3
"""Where the current position is kept in the window, as a fraction of its width from the left."""

GRID_PX = 3 * round(bucket_width(N_BUCKETS, WINDOW_PX))
"""Step between the window positions of :func:`follow`, in strip px: three buckets (30 px)."""

SILENCE = 0.05
"""A frame whose loudest band is below this (``log10(1 + |X|)``) is silent: the position holds."""

LOST_FRACTION = 1 / 3
"""The follower is lost at an onset whose error exceeds this fraction of the window width."""

TIME_TOLERANCES_S = (0.1, 0.5, 1.0)
"""Tolerances of the time-based metrics, in seconds."""

STAFF_SPACE_PX = EngraveSettings().strip_staff_space_px
"""Strip px per staff space of the default engraving (4 px)."""

BATCH_SIZE = 64
"""Windows or excerpts per forward pass when features are computed in batches."""

Predictor = Callable[[int, int], np.ndarray]
"""``predict(frame, grid_index) -> (1, B) logits`` for one frame and one grid window."""

Pathway = Callable[[torch.Tensor], torch.Tensor]
"""``pathway(batch (N, ...)) -> (N, D) features``, e.g. a model's ``sheet_features``."""


@dataclass
class OnsetPredictions:
    """Predicted and true position of every onset of one piece (chapter 5).

    Attributes
    ----------
    piece_id : str
        The piece.
    pred_x : numpy.ndarray
        ``(n_onsets,) float64`` predicted strip x of each correspondence, in px.
    true_x : numpy.ndarray
        ``(n_onsets,) float64`` true strip x (:attr:`PieceData.onset_x`), in px.
    onset_s : numpy.ndarray
        ``(n_onsets,) float64`` time of each correspondence's frame, in seconds.
    window_px : int
        Width of the sheet window, in px.
    """

    piece_id: str
    pred_x: np.ndarray
    true_x: np.ndarray
    onset_s: np.ndarray
    window_px: int

    @property
    def errors_px(self) -> np.ndarray:
        """``(n_onsets,) float64`` signed error ``pred_x - true_x`` in px."""
        return self.pred_x - self.true_x

    def metrics(self, staff_space_px: float = STAFF_SPACE_PX) -> dict[str, float]:
        """The piece's :func:`onset_metrics`."""
        return onset_metrics(self.pred_x, self.true_x, self.onset_s, window_px=self.window_px,
                             staff_space_px=staff_space_px)


@dataclass
class FollowResult(OnsetPredictions):
    """What :func:`follow` did on one piece: the position at every frame and at every onset
    (chapter 5).

    Attributes
    ----------
    frame_x : numpy.ndarray
        ``(n_frames,) float64`` the follower's position (strip x, px) after each frame.
    window_left : numpy.ndarray
        ``(n_frames,) int64`` strip x of the left edge of the window shown at each frame.
    fps : float
        Frames per second of the spectrogram.
    strip_width_px : int
        Width of the strip it was followed in, px.

    The inherited ``pred_x`` is ``frame_x`` at the onset frames.
    """

    frame_x: np.ndarray
    window_left: np.ndarray
    fps: float
    strip_width_px: int


# --------------------------------------------------------------------------- localisation


def localise_onsets(model: torch.nn.Module, piece: PieceData, *, random_offset: bool = True,
                    seed: int = 0, margin_px: int = 20, width_px: int = WINDOW_PX,
                    context_frames: int = CONTEXT_FRAMES, fps: float = FPS,
                    batch_size: int = BATCH_SIZE) -> OnsetPredictions:
    """Localise every onset given a sheet window that contains it (chapter 5).

    The windows and excerpts are those of :class:`sheetlab.dataset.SnippetDataset` (the
    target at a seeded random offset at least ``margin_px`` from the edges, or centred), so
    these are the evaluation examples of chapter 4, one per correspondence.

    Parameters
    ----------
    model : torch.nn.Module
        A network with ``forward(sheet (N, 1, H, width_px), spec (N, 1, n_bands,
        context_frames)) -> (N, B) logits`` (:mod:`sheetlab.models`); run in eval mode.
    piece : PieceData
        The piece.
    random_offset, seed, margin_px
        Placement of the target in its window (see :class:`SnippetDataset`).
    width_px : int
        Window width in px.
    context_frames : int
        Spectrogram frames per excerpt.
    fps : float
        Frames per second of the piece's spectrogram.
    batch_size : int
        Examples per forward pass.

    Returns
    -------
    OnsetPredictions
        The predicted strip x of every correspondence.
    """
    examples = SnippetDataset([piece], width_px, context_frames, margin_px, random_offset, seed)
    device = model_device(model)
    pred = []
    with evaluating(model):
        for batch in _batches(len(examples), batch_size):
            sheet, spec, target = (torch.stack(t) for t in zip(*(examples[i] for i in batch)))
            logits = model(to_device(sheet, device), to_device(spec, device)).cpu().numpy()
            window_x = localise(softmax(logits), width_px)
            pred.append(piece.onset_x[batch] - target.numpy().astype(np.float64) + window_x)
    return OnsetPredictions(piece.piece_id, np.concatenate(pred), piece.onset_x.astype(np.float64),
                            frame_to_time(piece.onset_frame, fps), width_px)


# --------------------------------------------------------------------------- the window policy


def window_grid(strip_width_px: int, width_px: int = WINDOW_PX,
                step_px: int = GRID_PX) -> np.ndarray:
    """The window positions the follower may use (chapter 5).

    Parameters
    ----------
    strip_width_px : int
        Width of the strip in px.
    width_px : int
        Window width in px.
    step_px : int
        Step between positions in px.

    Returns
    -------
    numpy.ndarray
        ``(G,) int64`` left edges ``0, step, 2 step, ...`` and, last, the rightmost position
        ``strip_width_px - width_px`` (only ``0`` for a strip narrower than the window).
    """
    if step_px < 1:
        raise ValueError(f"step_px must be a positive number of px, got {step_px}")
    last = max(strip_width_px - width_px, 0)
    return np.unique(np.append(np.arange(0, last, step_px), last)).astype(np.int64)


def window_index(grid: np.ndarray, x_px: float, anchor_px: float) -> int:
    """The grid window that shows position ``x_px`` nearest to ``anchor_px`` from its left edge
    (chapter 5).

    Parameters
    ----------
    grid : numpy.ndarray
        ``(G,)`` increasing left edges (:func:`window_grid`).
    x_px : float
        The current position, strip x in px.
    anchor_px : float
        Where in the window the position should be, px from its left edge.

    Returns
    -------
    int
        Index into ``grid`` of the left edge nearest to ``x_px - anchor_px`` (the first or last
        window beyond the grid's ends: the window is clamped to the strip).
    """
    left = x_px - anchor_px
    j = min(int(np.searchsorted(grid, left)), len(grid) - 1)
    if j > 0 and left - grid[j - 1] <= grid[j] - left:
        j -= 1
    return j


def sounding_frames(spec: np.ndarray, silence: float = SILENCE) -> np.ndarray:
    """Which frames have sound: their loudest band reaches ``silence`` (chapter 5).

    Parameters
    ----------
    spec : numpy.ndarray
        ``(n_bands, n_frames)`` log spectrogram.
    silence : float
        Threshold on the loudest band (``log10(1 + |X|)``); 0 makes every frame sound.

    Returns
    -------
    numpy.ndarray
        ``(n_frames,) bool``.
    """
    return spec.max(axis=0) >= silence


# --------------------------------------------------------------------------- following


def follow(model: torch.nn.Module, piece: PieceData, *, width_px: int = WINDOW_PX,
           context_frames: int = CONTEXT_FRAMES, grid_px: int = GRID_PX,
           anchor: float = ANCHOR, silence: float = SILENCE, fps: float = FPS,
           batch_size: int = BATCH_SIZE) -> FollowResult:
    """Follow a whole performance in the unrolled score, frame by frame (chapter 5).

    The window policy is in the module docstring. The sheet pathway runs once per grid window
    and the spectrogram pathway once per frame, in batches of ``batch_size``; the frame loop
    runs only ``model.head``.

    Parameters
    ----------
    model : torch.nn.Module
        A network with ``sheet_features(sheet (N, 1, H, width_px)) -> (N, D)``,
        ``spec_features(spec (N, 1, n_bands, context_frames)) -> (N, D)`` and
        ``head(sheet_features, spec_features) -> (N, B) logits`` (:mod:`sheetlab.models`);
        run in eval mode.
    piece : PieceData
        The piece: its spectrogram is followed in its strip.
    width_px : int
        Window width in px.
    context_frames : int
        Spectrogram frames per excerpt (the excerpt of frame ``t`` ends at ``t``).
    grid_px : int
        Step between the window positions in px (:func:`window_grid`).
    anchor : float
        Where the current position is kept, as a fraction of the window from its left edge.
    silence : float
        Frames quieter than this keep the position (:func:`sounding_frames`).
    fps : float
        Frames per second of the piece's spectrogram.
    batch_size : int
        Windows or excerpts per forward pass of a pathway.

    Returns
    -------
    FollowResult
        Positions at every frame and at the onsets, and the windows used.
    """
    return run_follower(partial(cached_predictor, batch_size=batch_size), model, piece, width_px,
                   context_frames, grid_px, anchor, silence, fps)


def follow_naive(model: torch.nn.Module, piece: PieceData, *, width_px: int = WINDOW_PX,
                 context_frames: int = CONTEXT_FRAMES, grid_px: int = GRID_PX,
                 anchor: float = ANCHOR, silence: float = SILENCE,
                 fps: float = FPS) -> FollowResult:
    """:func:`follow`, but evaluating the whole network on every frame (chapter 5).

    The same windows, the same loop and the same result as :func:`follow` (up to floating-point
    rounding), computed without reusing features: both pathways run once per sounding frame.
    The reference for measuring what the caching saves; the parameters are those of
    :func:`follow`.
    """
    return run_follower(_naive_predictor, model, piece, width_px, context_frames, grid_px, anchor,
                   silence, fps)


def run_follower(make_predictor: Callable[..., Predictor], model: torch.nn.Module,
                 piece: PieceData, width_px: int = WINDOW_PX,
                 context_frames: int = CONTEXT_FRAMES, grid_px: int = GRID_PX,
                 anchor: float = ANCHOR, silence: float = SILENCE,
                 fps: float = FPS) -> FollowResult:
    """The following loop of :func:`follow`, with any predictor (chapters 5 and 7).

    Parameters
    ----------
    make_predictor : callable
        ``make_predictor(model, piece, grid, width_px, context_frames)`` returns
        ``predict(frame, grid_index) -> (1, B) logits`` for the window ``grid[grid_index]``. It
        is called once, in eval mode; ``predict`` is then called for every sounding frame in
        order (a predictor may keep state from frame to frame, as the recurrent follower of
        :mod:`sheetlab.recurrent` does).
    model : torch.nn.Module
        Passed to ``make_predictor``.
    piece, width_px, context_frames, grid_px, anchor, silence, fps
        As for :func:`follow`.

    Returns
    -------
    FollowResult
    """
    grid = window_grid(piece.strip.shape[1], width_px, grid_px)
    sounding = sounding_frames(piece.spec, silence)
    n_frames = piece.spec.shape[1]
    frame_x = np.empty(n_frames)
    window_left = np.empty(n_frames, dtype=np.int64)
    x = 0.0  # the beginning of the score
    with evaluating(model):
        predict = make_predictor(model, piece, grid, width_px, context_frames)
        for t in range(n_frames):
            i = window_index(grid, x, anchor * width_px)
            window_left[t] = grid[i]
            if sounding[t]:
                probs = softmax(predict(t, i))
                x = float(grid[i] + localise(probs, width_px)[0])
            frame_x[t] = x
    return FollowResult(piece.piece_id, frame_x[piece.onset_frame],
                        piece.onset_x.astype(np.float64), frame_to_time(piece.onset_frame, fps),
                        width_px, frame_x, window_left, fps, piece.strip.shape[1])


def cached_predictor(model: torch.nn.Module, piece: PieceData, grid: np.ndarray, width_px: int,
                     context_frames: int, *, batch_size: int) -> Predictor:
    """The predictor of :func:`follow` (and of :func:`sheetlab.hmm.track`), chapters 5 and 8.

    Both pathways in batches up front, for every grid window and every frame; per call only
    the head. For an :class:`AudioSheetNet` the head is folded (:func:`head_parts`): its first
    layer is applied in the batches too, and a call adds two rows and runs the small rest in
    numpy; any other model's ``head`` runs per call."""
    if isinstance(model, AudioSheetNet):
        head, sheet, spec = head_parts(model, piece, grid, width_px, context_frames,
                                       batch_size=batch_size)
        return lambda frame, i: head.logits(sheet[i:i + 1], spec[frame:frame + 1])
    device = model_device(model)
    sheet, spec = _pathway_features(model, piece, grid, width_px, context_frames, batch_size)
    sheet, spec = torch.from_numpy(sheet).to(device), torch.from_numpy(spec).to(device)
    return lambda frame, i: model.head(sheet[i:i + 1], spec[frame:frame + 1]).cpu().numpy()


def head_parts(model: AudioSheetNet, piece: PieceData, grid: np.ndarray, width_px: int,
               context_frames: int, *, batch_size: int = BATCH_SIZE
               ) -> tuple[FoldedHead, np.ndarray, np.ndarray]:
    """The folded head and its first layer's halves for every grid window and every frame
    (chapters 5, 7 and 8).

    Parameters
    ----------
    model : AudioSheetNet
        The network, in eval mode.
    piece : PieceData
        The piece.
    grid : numpy.ndarray
        ``(G,)`` left edges of the windows (:func:`window_grid`).
    width_px : int
        Window width in px.
    context_frames : int
        Spectrogram frames per excerpt (the excerpt of frame ``t`` ends at ``t``).
    batch_size : int
        Windows or excerpts per forward pass of a pathway.

    Returns
    -------
    head : FoldedHead
        :func:`~sheetlab.models.fold_head` of the model.
    sheet_part : numpy.ndarray
        ``(G, U) float32``: :meth:`FoldedHead.sheet_part` of every window's features.
    spec_part : numpy.ndarray
        ``(n_frames, U) float32``: :meth:`FoldedHead.spec_part` of every frame's excerpt.
    """
    head = fold_head(model)
    sheet, spec = _pathway_features(model, piece, grid, width_px, context_frames, batch_size)
    return head, head.sheet_part(sheet), head.spec_part(spec)


def _pathway_features(model: torch.nn.Module, piece: PieceData, grid: np.ndarray,
                      width_px: int, context_frames: int,
                      batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(G, D)`` sheet features of every grid window, ``(n_frames, D)`` spectrogram features
    of every frame."""
    device = model_device(model)
    sheet_pathway, spec_pathway = _inference_pathways(model)
    sheet = batched_outputs(sheet_pathway, len(grid), batch_size, device,
                            lambda i: sheet_input(piece.strip, int(grid[i]), width_px))
    spec = batched_outputs(spec_pathway, piece.spec.shape[1], batch_size, device,
                           lambda t: spec_input(piece.spec, t, context_frames))
    return sheet, spec


def _inference_pathways(model: torch.nn.Module) -> tuple[Pathway, Pathway]:
    """The sheet and spectrogram pathways the followers run: those of an :class:`AudioSheetNet`
    in eval mode with the batch norms folded in (:func:`~sheetlab.models.fold_batch_norm`,
    the same features up to rounding, faster), any other model's own."""
    if isinstance(model, AudioSheetNet) and not model.training:
        return fold_batch_norm(model.sheet_pathway), fold_batch_norm(model.spec_pathway)
    return model.sheet_features, model.spec_features


def _naive_predictor(model: torch.nn.Module, piece: PieceData, grid: np.ndarray, width_px: int,
                     context_frames: int) -> Predictor:
    """The whole network on the frame's window and excerpt, per call (with the pathways of
    :func:`_inference_pathways`, as the cached predictor)."""
    device = model_device(model)
    sheet_pathway, spec_pathway = _inference_pathways(model)

    def predict(frame: int, grid_index: int) -> np.ndarray:
        sheet = to_device(sheet_input(piece.strip, int(grid[grid_index]), width_px)[None], device)
        spec = to_device(spec_input(piece.spec, frame, context_frames)[None], device)
        return model.head(sheet_pathway(sheet), spec_pathway(spec)).cpu().numpy()

    return predict


def batched_outputs(pathway: Pathway, n: int, batch_size: int, device: torch.device,
                    example: Callable[[int], torch.Tensor]) -> np.ndarray:
    """``(n, D) float32`` outputs of a network function for examples ``0 .. n-1``, computed
    in batches (chapters 5, 7 and 9).

    Parameters
    ----------
    pathway : callable
        ``pathway(batch (N, ...)) -> (N, D)``, e.g. a model's ``sheet_features``.
    n : int
        Number of examples (at least 1).
    batch_size : int
        Examples per call.
    device : torch.device
        Where the batches go.
    example : callable
        ``example(i) -> tensor``: the ``(C, H, W)`` input of example ``i``, without the batch
        axis (batches go in channels-last order, :func:`sheetlab.models.to_device`).
    """
    batches = _batches(n, batch_size)
    return torch.cat([pathway(to_device(torch.stack([example(int(i)) for i in batch]), device))
                      for batch in batches]).cpu().numpy()


def sheet_input(strip: np.ndarray, left_px: int, width_px: int) -> torch.Tensor:
    """``(1, H, width_px) float32`` network input of a window: ink in [0, 1], as in
    SnippetDataset (chapters 5 and 9)."""
    window = sheet_window(strip, left_px, width_px)
    return torch.from_numpy((255 - window[None].astype(np.float32)) / 255.0)


def spec_input(spec: np.ndarray, frame: int, context_frames: int) -> torch.Tensor:
    """``(1, n_bands, context_frames) float32`` network input: the excerpt ending at ``frame``
    (chapters 5 and 9)."""
    return torch.from_numpy(spectrogram_excerpt(spec, frame, context_frames)[None])


def _batches(n: int, size: int) -> Iterator[np.ndarray]:
    """Index arrays ``[0, size), [size, 2 size), ...`` covering ``0 .. n-1``."""
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without any), chapters 5 and 9."""
    return next(model.parameters(), torch.empty(0)).device


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the block, with numpy's BLAS on one thread
    (:func:`~sheetlab.threads.one_blas_thread`, so that its idle workers do not spin on the
    cores torch's pathways need); the model's mode is restored afterwards (chapters 5 and 8)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), one_blas_thread():
            yield
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- metrics


def position_to_time(x_px: np.ndarray, onset_x: np.ndarray, onset_s: np.ndarray) -> np.ndarray:
    """Map strip positions to performance time through a piece's correspondences (chapter 5).

    The correspondences ``(onset_x[k], onset_s[k])``, in score order, are made monotone (the
    x of each is at least that of every earlier one; of correspondences with equal x the
    earliest is kept) and interpolated linearly; positions before the first or after the last
    correspondence get its time.

    Parameters
    ----------
    x_px : numpy.ndarray
        ``(...)`` strip x in px.
    onset_x : numpy.ndarray
        ``(n_onsets,)`` strip x of the correspondences, in score order.
    onset_s : numpy.ndarray
        ``(n_onsets,)`` their performance times in seconds, non-decreasing.

    Returns
    -------
    numpy.ndarray
        ``(...) float64`` times in seconds.
    """
    x = np.maximum.accumulate(np.asarray(onset_x, dtype=np.float64))
    first = np.r_[True, np.diff(x) > 0]
    return np.interp(x_px, x[first], np.asarray(onset_s, dtype=np.float64)[first])


def tracking_ratio(errors_px: np.ndarray, window_px: float = WINDOW_PX, *,
                   lost_fraction: float = LOST_FRACTION) -> float:
    """The share of a piece's onsets before the follower is first lost (chapter 5).

    The measure of the score-following game of Dorfer, Henkel and Widmer (ISMIR 2018): the
    follower is lost at the first onset whose absolute error exceeds ``lost_fraction`` of the
    window (a third: the position has left the music the window shows ahead of it), and the
    ratio counts the onsets before that one. What happens after the first loss does not count,
    even if the follower finds its way back.

    Parameters
    ----------
    errors_px : numpy.ndarray
        ``(n_onsets,)`` signed errors ``pred_x - true_x`` of the onsets, in score order, px.
    window_px : float
        Window width in px.
    lost_fraction : float
        Lost at an error above ``lost_fraction * window_px`` (:data:`LOST_FRACTION`).

    Returns
    -------
    float
        ``k / n_onsets`` with ``k`` the index of the first onset with
        ``|error| > lost_fraction * window_px``; 1.0 if there is none.
    """
    errors = np.asarray(errors_px, dtype=np.float64)
    if errors.ndim != 1 or len(errors) == 0:
        raise ValueError(f"errors_px must be a non-empty (n_onsets,) array, got {errors.shape}")
    lost = np.abs(errors) > lost_fraction * window_px
    return float(np.argmax(lost) / len(lost)) if lost.any() else 1.0


def onset_metrics(pred_x: np.ndarray, true_x: np.ndarray, onset_s: np.ndarray, *,
                  window_px: int = WINDOW_PX, n_buckets: int = N_BUCKETS,
                  staff_space_px: float = STAFF_SPACE_PX) -> dict[str, float]:
    """Localisation and tracking measures of one piece's onsets (chapter 5).

    Parameters
    ----------
    pred_x : numpy.ndarray
        ``(n_onsets,)`` predicted strip x of each correspondence, in score order, px.
    true_x : numpy.ndarray
        ``(n_onsets,)`` true strip x, px.
    onset_s : numpy.ndarray
        ``(n_onsets,)`` performance time of each correspondence, seconds.
    window_px : int
        Window width in px: the bucket width is ``window_px / n_buckets``, and the follower is
        lost at an error above ``window_px / 3`` (:data:`LOST_FRACTION`).
    n_buckets : int
        Buckets per window.
    staff_space_px : float
        Strip px per staff space.

    Returns
    -------
    dict
        ``n_onsets``; ``mean_error_px``, ``median_error_px``, ``mean_error_ss``,
        ``median_error_ss`` (absolute errors in px and staff spaces); ``within_bucket`` (share
        with an error below one bucket width); ``within_0.1s``, ``within_0.5s``, ``within_1s``
        (share whose predicted x maps, by :func:`position_to_time`, to within that time of
        the onset); ``tracking_ratio`` (:func:`tracking_ratio`: share of onsets before the
        first one with an error above the lost threshold; 1 if there is none) and
        ``tracked_to_end`` (1.0 if no onset is lost, else 0.0).
    """
    pred_x, true_x = np.asarray(pred_x, dtype=np.float64), np.asarray(true_x, dtype=np.float64)
    if pred_x.shape != true_x.shape or pred_x.ndim != 1 or len(pred_x) == 0:
        raise ValueError(f"pred_x and true_x must be non-empty (n_onsets,) arrays of one shape, "
                         f"got {pred_x.shape} and {true_x.shape}")
    error = np.abs(pred_x - true_x)
    time_error = np.abs(position_to_time(pred_x, true_x, onset_s) - onset_s)
    metrics = {
        "n_onsets": len(error),
        "mean_error_px": float(error.mean()),
        "median_error_px": float(np.median(error)),
        "mean_error_ss": float(error.mean() / staff_space_px),
        "median_error_ss": float(np.median(error) / staff_space_px),
        "within_bucket": float(np.mean(error < bucket_width(n_buckets, window_px))),
    }
    for tolerance in TIME_TOLERANCES_S:
        metrics[f"within_{tolerance:g}s"] = float(np.mean(time_error <= tolerance))
    metrics["tracking_ratio"] = tracking_ratio(pred_x - true_x, window_px)
    metrics["tracked_to_end"] = float(metrics["tracking_ratio"] == 1.0)  # no onset is lost
    return metrics


def summarise(results: Sequence[OnsetPredictions],
              staff_space_px: float = STAFF_SPACE_PX) -> list[dict]:
    """A table of the metrics: one row per piece and a last row over all pieces (chapter 5).

    Parameters
    ----------
    results : sequence of OnsetPredictions
        One per piece (e.g. :class:`FollowResult` from :func:`follow`).
    staff_space_px : float
        Strip px per staff space.

    Returns
    -------
    list of dict
        Rows ``{"piece": id, **onset_metrics}``; the last row, ``piece = "all (n pieces)"``,
        pools the onsets of all pieces for the errors and shares, averages ``tracking_ratio``
        over the pieces and gives in ``tracked_to_end`` the share of pieces tracked to the end.
    """
    if not results:
        raise ValueError("summarise needs at least one result")
    rows = [{"piece": r.piece_id, **r.metrics(staff_space_px)} for r in results]
    counts = np.array([row["n_onsets"] for row in rows])
    error = np.abs(np.concatenate([r.errors_px for r in results]))
    overall = {"median_error_px": float(np.median(error)),
               "median_error_ss": float(np.median(error) / staff_space_px),
               "tracking_ratio": float(np.mean([row["tracking_ratio"] for row in rows])),
               "tracked_to_end": float(np.mean([row["tracked_to_end"] for row in rows]))}
    total = {"piece": f"all ({len(rows)} pieces)", "n_onsets": int(counts.sum())}
    for key in rows[0]:
        if key not in total:  # means and shares over all onsets: weighted by onsets per piece
            total[key] = overall.get(key, float(np.average([row[key] for row in rows],
                                                           weights=counts)))
    return rows + [total]


def jitter(result: FollowResult, sounding: np.ndarray | None = None) -> float:
    """How much a follower's position wanders back and forth, in px per frame (chapters 5 and 8).

    The excess travel: the distance the position covers from frame to frame minus its net
    progress, ``(sum |dx| - |sum dx|) / n``, over the ``n`` frame-to-frame changes into the
    frames considered. A follower that only moves forward (or only back) has none; a
    detour of ``d`` px and back adds ``2 d``.

    Parameters
    ----------
    result : FollowResult
        What a follower did (:func:`follow`, :func:`sheetlab.hmm.track`).
    sounding : numpy.ndarray, optional
        ``(n_frames,) bool``: count only the changes into these frames (e.g.
        :func:`sounding_frames` of the piece's spectrogram); all frames
        if None.

    Returns
    -------
    float
        Excess travel per frame change, px (0 for fewer than two frames).
    """
    x = np.asarray(result.frame_x, dtype=np.float64)
    step = np.diff(x)
    if sounding is not None:
        sounding = np.asarray(sounding, dtype=bool)
        if sounding.shape != x.shape:
            raise ValueError(f"sounding must be ({len(x)},) like frame_x, got {sounding.shape}")
        step = step[sounding[1:]]
    if len(step) == 0:
        return 0.0
    return float((np.abs(step).sum() - abs(step.sum())) / len(step))


# --------------------------------------------------------------------------- display

