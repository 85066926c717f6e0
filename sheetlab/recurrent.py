"""A recurrent score follower: a GRU carries what it has heard from frame to frame (chapter 7).

The frame-wise network of chapter 4 hears 40 frames (1.3 s) of audio and sees one window; it
forgets everything between two frames. So when a figure repeats inside the window it cannot
tell the occurrences apart, and its answer jumps from frame to frame (chapter 5). A recurrent
network keeps a state from frame to frame and can learn where the music was a moment ago.

**The model** (:class:`RecurrentFollower`). The frame-wise network
(:class:`~sheetlab.models.AudioSheetNet`, the *base*) stays frozen. For every sounding frame
``t``, with the window ``w_t`` the follower uses, its merging head (folded,
:func:`~sheetlab.models.fold_head`) gives the *fused features* ``f_t``: the activations of its
last hidden layer (``head_units``), where sheet and audio have been combined. A GRU reads
``[f_t, s_t]``, with ``s_t`` how far the window moved since the previous sounding frame (in
buckets: the GRU's picture of where the music is must move with the window), and its state
``h_t`` adds a correction to the base network's logits::

    logits_t = W_out f_t + b_out  +  V h_t + c

``V`` and ``c`` start at zero, so the untrained recurrent model *is* the frame-wise model and
training learns only what context adds. Only the GRU, ``V`` and ``c`` are trained.

**Training** (:func:`train_recurrent`). A sequence is a whole piece's sounding frames. The
true position at a frame is the strip x of the newest correspondence
(:func:`true_positions`), the question the frame-wise network answers too. The windows are
those a follower with a slowly varying error would use (:func:`follower_windows`): the true
position plus an error that is constant over segments of random length (``segment_frames``
on average) and uniform in ``+-error_px``, placed by the window policy of
:mod:`sheetlab.following`. So the target lies anywhere from about 15 to 245 px into the
window (further right where the window is clamped at the end of the strip), and the network
cannot learn to answer "at the anchor". Pieces run in parallel (``pieces_per_batch``) with
truncated back-propagation through time: one update per ``chunk_frames`` frames, the state
carried on (detached) to the next chunk. The loss is chapter 4's cross-entropy against soft
targets at every sounding frame, weighted so that the correspondence frames carry
``onset_share`` (90 %) of it (:func:`sequence_loss`); the optimiser is Adam.

After every epoch the validation pieces are evaluated twice (:func:`evaluate_recurrent`): on
fixed windows (one seeded error draw) the share of onsets within one bucket, for the recurrent
model and for the frozen base on the same windows, which is the learning curve against the
frame-wise model; and by following them (:func:`follow`) for the tracking ratio and the share
tracked to the end. The epoch with the best validation tracking ratio is kept.

**Checkpoints** (:func:`save_recurrent`, :func:`load_recurrent`) hold only the trained
parameters and name the base weights by file name and SHA-256; loading checks the hash.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sheetlab.dataset import CONTEXT_FRAMES, WINDOW_PX, PieceData
from sheetlab.following import (ANCHOR, BATCH_SIZE, GRID_PX, SILENCE, FollowResult, Predictor,
                                evaluating, head_parts, run_follower, sounding_frames,
                                summarise, window_grid, window_index)
from sheetlab.models import (AudioSheetNet, atomic_save, fold_head,
                             load_checkpoint, weights_path)
from sheetlab.spectrogram import FPS
from sheetlab.targets import N_BUCKETS, SPREAD, bucket_width, localise, soft_targets, softmax
from sheetlab.training import card_path, check_pieces, data_hash, epoch_seed, write_card

FORMAT = "sheetlab-recurrent-1"
"""The format tag of recurrent checkpoints."""


@dataclass(frozen=True)
class RecurrentSettings:
    """The recurrent model's size and how to train it (chapter 7).

    Attributes
    ----------
    hidden_units : int
        Size of the GRU's state.
    epochs : int
        Passes over the training pieces.
    pieces_per_batch : int
        Sequences run in parallel.
    chunk_frames : int
        Truncated back-propagation: frames per update.
    lr : float
        Adam's learning rate.
    error_px : float
        Largest simulated follower error when placing training windows, px.
    segment_frames : float
        Mean number of frames over which the simulated error stays constant.
    spread : float
        Soft-target spread, in buckets (chapter 3).
    onset_share : float
        The share of the loss that comes from the correspondence frames (the rest from the
        frames between them, which far outnumber them): see :func:`sequence_loss`.
    seed : int
        Seed of the initialisation, the piece order and the simulated errors.
    threads : int or None
        Torch threads during training (None: torch's choice).
    progress : bool
        Show progress bars.
    """

    hidden_units: int = 128
    epochs: int = 15
    pieces_per_batch: int = 16
    chunk_frames: int = 64
    lr: float = 1e-3
    error_px: float = 100.0
    segment_frames: float = 100.0
    spread: float = SPREAD
    onset_share: float = 0.9
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden_units", "epochs", "pieces_per_batch", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        largest = ANCHOR * WINDOW_PX - GRID_PX / 2  # the target stays inside the window
        if not 0 <= self.error_px < largest:
            raise ValueError(f"error_px must be in [0, {largest:g}) so that the target stays in "
                             f"the window, got {self.error_px}")
        if not 0 <= self.onset_share <= 1:
            raise ValueError(f"onset_share must be in [0, 1], got {self.onset_share}")
        if self.segment_frames < 1:
            raise ValueError(f"segment_frames must be at least 1, got {self.segment_frames}")


# --------------------------------------------------------------------------- the model


class RecurrentFollower(nn.Module):
    """A GRU over the fused features of a frozen frame-wise network, correcting its logits
    (chapter 7).

    Parameters
    ----------
    base : AudioSheetNet
        The frame-wise network; frozen and kept in eval mode.
    hidden_units : int
        Size of the GRU's state.

    Attributes
    ----------
    base : AudioSheetNet
    gru : torch.nn.GRU
        Input ``head_units + 1`` (fused features and window move), state ``hidden_units``.
    correction : torch.nn.Linear
        ``hidden_units -> B``, zero at initialisation.
    metadata : dict
        What :func:`load_recurrent` read with the weights (empty for a new model).
    """

    def __init__(self, base: AudioSheetNet, hidden_units: int = 128) -> None:
        super().__init__()
        self.base = base.eval()
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.hidden_units = hidden_units
        self.metadata: dict = {}
        self.folded = fold_head(base)
        *inner, (out_weight, out_bias) = self.folded.layers
        for k, (weight, bias) in enumerate(inner):
            self.register_buffer(f"inner_weight_{k}", torch.from_numpy(weight), persistent=False)
            self.register_buffer(f"inner_bias_{k}", torch.from_numpy(bias), persistent=False)
        self.n_inner = len(inner)
        self.register_buffer("out_weight", torch.from_numpy(out_weight), persistent=False)
        self.register_buffer("out_bias", torch.from_numpy(out_bias), persistent=False)
        fused_units = out_weight.shape[1]
        self.gru = nn.GRU(fused_units + 1, hidden_units, batch_first=True)
        self.correction = nn.Linear(hidden_units, out_weight.shape[0])
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)

    def train(self, mode: bool = True) -> RecurrentFollower:
        """Set the training mode of the recurrent part; the base stays in eval mode."""
        super().train(mode)
        self.base.eval()
        return self

    def fused(self, pre: torch.Tensor) -> torch.Tensor:
        """The base head's last hidden activations from its first layer's pre-activations.

        Parameters
        ----------
        pre : torch.Tensor
            ``(..., U) float32``: ``sheet_part + spec_part`` of the folded head
            (:func:`sheetlab.following.head_parts`).

        Returns
        -------
        torch.Tensor
            ``(..., head_units)``.
        """
        hidden = torch.relu(pre)
        for k in range(self.n_inner):
            weight, bias = getattr(self, f"inner_weight_{k}"), getattr(self, f"inner_bias_{k}")
            hidden = torch.relu(hidden @ weight.T + bias)
        return hidden

    def frame_wise(self, pre: torch.Tensor) -> torch.Tensor:
        """``(..., B)`` logits of the frozen base alone, from ``(..., U)`` pre-activations."""
        return self.fused(pre) @ self.out_weight.T + self.out_bias

    def forward(self, pre: torch.Tensor, shift: torch.Tensor,
                state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits for a batch of frame sequences.

        Parameters
        ----------
        pre : torch.Tensor
            ``(N, T, U) float32`` pre-activations of the base head's first layer for each
            frame and its window.
        shift : torch.Tensor
            ``(N, T) float32`` how far each frame's window moved since the previous frame, in
            buckets (0 for the first).
        state : torch.Tensor, optional
            ``(1, N, hidden_units)`` the GRU's state before the first frame (zeros if None).

        Returns
        -------
        logits : torch.Tensor
            ``(N, T, B)``.
        state : torch.Tensor
            ``(1, N, hidden_units)`` after the last frame.
        """
        fused = self.fused(pre)
        base = fused @ self.out_weight.T + self.out_bias
        out, state = self.gru(torch.cat([fused, shift[..., None]], dim=-1), state)
        return base + self.correction(out), state

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trained parameters (GRU and correction), without the base's."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("base.")}


def gru_step(x: np.ndarray, h: np.ndarray, weight_ih: np.ndarray, weight_hh: np.ndarray,
             bias_ih: np.ndarray, bias_hh: np.ndarray) -> np.ndarray:
    """One step of a GRU cell, as :class:`torch.nn.GRU` computes it (chapter 7).

    With the weights stacked as torch stores them (reset gate ``r``, update gate ``z``, new
    state ``n``, each ``H`` rows)::

        r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Parameters
    ----------
    x : numpy.ndarray
        ``(..., D)`` inputs.
    h : numpy.ndarray
        ``(..., H)`` states before the step.
    weight_ih : numpy.ndarray
        ``(3 H, D)`` input weights ``[W_ir; W_iz; W_in]``.
    weight_hh : numpy.ndarray
        ``(3 H, H)`` state weights ``[W_hr; W_hz; W_hn]``.
    bias_ih, bias_hh : numpy.ndarray
        ``(3 H,)`` biases in the same order.

    Returns
    -------
    numpy.ndarray
        ``(..., H)`` states after the step.
    """
    gates_x = x @ weight_ih.T + bias_ih
    gates_h = h @ weight_hh.T + bias_hh
    size = h.shape[-1]
    r = 1 / (1 + np.exp(-(gates_x[..., :size] + gates_h[..., :size])))
    z = 1 / (1 + np.exp(-(gates_x[..., size:2 * size] + gates_h[..., size:2 * size])))
    n = np.tanh(gates_x[..., 2 * size:] + r * gates_h[..., 2 * size:])
    return (1 - z) * n + z * h


# --------------------------------------------------------------------------- sequences


@dataclass
class PieceSequence:
    """A piece's frames prepared for the recurrent model (chapter 7).

    Attributes
    ----------
    piece : PieceData
    grid : numpy.ndarray
        ``(G,) int64`` the window left edges (:func:`~sheetlab.following.window_grid`).
    sheet_part : numpy.ndarray
        ``(G, U) float32`` the base head's sheet half per window.
    spec_part : numpy.ndarray
        ``(n, U) float32`` its spectrogram half per sounding frame.
    frames : numpy.ndarray
        ``(n,) int64`` the sounding frames.
    row : numpy.ndarray
        ``(n_frames,) int64`` the row of ``spec_part`` of every frame (that of the last
        sounding frame up to it; -1 before the first).
    true_x : numpy.ndarray
        ``(n,) float64`` the true strip x at each sounding frame (:func:`true_positions`).
    onset : numpy.ndarray
        ``(n,) bool`` which sounding frames are correspondence frames.
    """

    piece: PieceData
    grid: np.ndarray
    sheet_part: np.ndarray
    spec_part: np.ndarray
    frames: np.ndarray
    row: np.ndarray
    true_x: np.ndarray
    onset: np.ndarray


def true_positions(piece: PieceData, frames: np.ndarray) -> np.ndarray:
    """Where the music is at given frames: the strip x of the newest correspondence
    (chapter 7).

    As in chapters 3 to 5 the network answers where the newest onset is: from a
    correspondence's frame until the next one's, the target stays at its x.

    Parameters
    ----------
    piece : PieceData
        The piece (its ``onset_frame`` and ``onset_x``, in score order).
    frames : numpy.ndarray
        ``(n,)`` frame indices.

    Returns
    -------
    numpy.ndarray
        ``(n,) float64`` strip x in px (the first correspondence's x before it).
    """
    newest = np.searchsorted(piece.onset_frame, frames, side="right") - 1
    return piece.onset_x.astype(np.float64)[np.maximum(newest, 0)]


def piece_sequence(base: AudioSheetNet, piece: PieceData, *, width_px: int = WINDOW_PX,
                   context_frames: int = CONTEXT_FRAMES, grid_px: int = GRID_PX,
                   silence: float = SILENCE, batch_size: int = BATCH_SIZE) -> PieceSequence:
    """Run the base's pathways over a piece once: every grid window and every sounding frame
    (chapter 7).

    Parameters
    ----------
    base : AudioSheetNet
        The frame-wise network.
    piece : PieceData
        The piece.
    width_px, context_frames, grid_px, silence, batch_size
        As for :func:`sheetlab.following.follow`.

    Returns
    -------
    PieceSequence
    """
    grid = window_grid(piece.strip.shape[1], width_px, grid_px)
    sounding = sounding_frames(piece.spec, silence)
    with evaluating(base):
        _, sheet_part, spec_part = head_parts(base, piece, grid, width_px, context_frames,
                                              batch_size=batch_size)
    frames = np.flatnonzero(sounding)
    onset = np.isin(frames, piece.onset_frame)
    return PieceSequence(piece, grid, sheet_part, spec_part[frames], frames,
                         np.cumsum(sounding) - 1, true_positions(piece, frames), onset)


def follower_windows(sequence: PieceSequence, rng: np.random.Generator, error_px: float,
                     segment_frames: float, width_px: int = WINDOW_PX,
                     anchor: float = ANCHOR) -> np.ndarray:
    """The windows of a follower whose error drifts: training and validation inputs
    (chapter 7).

    The error is constant over segments whose lengths are geometric with mean
    ``segment_frames`` and uniform in ``[-error_px, error_px]`` on each; the window of a frame
    is the one the following policy picks for the true position plus the error.

    Parameters
    ----------
    sequence : PieceSequence
        The piece.
    rng : numpy.random.Generator
        Source of the segments and errors.
    error_px : float
        Largest error, px.
    segment_frames : float
        Mean segment length, frames.
    width_px : int
        Window width in px.
    anchor : float
        Where the follower keeps its position in the window (fraction of the width).

    Returns
    -------
    numpy.ndarray
        ``(n,) int64`` grid index of each sounding frame's window.
    """
    n = len(sequence.frames)
    lengths = rng.geometric(1 / segment_frames, size=n // max(int(segment_frames), 1) + 2)
    while lengths.sum() < n:
        lengths = np.append(lengths, rng.geometric(1 / segment_frames, size=len(lengths)))
    errors = np.repeat(rng.uniform(-error_px, error_px, len(lengths)), lengths)[:n]
    anchor_px = anchor * width_px
    return np.fromiter((window_index(sequence.grid, x, anchor_px)
                        for x in sequence.true_x + errors), dtype=np.int64, count=n)


def sequence_inputs(sequence: PieceSequence, windows: np.ndarray, width_px: int = WINDOW_PX,
                    n_buckets: int = N_BUCKETS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recurrent model's inputs and targets for given windows (chapter 7).

    Parameters
    ----------
    sequence : PieceSequence
        The piece.
    windows : numpy.ndarray
        ``(n,)`` grid index per sounding frame (:func:`follower_windows`).
    width_px : int
        Window width in px.
    n_buckets : int
        Buckets per window.

    Returns
    -------
    pre : numpy.ndarray
        ``(n, U) float32`` first-layer pre-activations.
    shift : numpy.ndarray
        ``(n,) float32`` window moves in buckets (0 first).
    target_x : numpy.ndarray
        ``(n,) float64`` the true x inside each frame's window, px.
    """
    left = sequence.grid[windows]
    pre = sequence.sheet_part[windows] + sequence.spec_part
    shift = np.diff(left, prepend=left[:1]) / bucket_width(n_buckets, width_px)
    return pre, shift.astype(np.float32), sequence.true_x - left


# --------------------------------------------------------------------------- following


def recurrent_predictor(model: RecurrentFollower, piece: PieceData, grid: np.ndarray,
                        width_px: int, context_frames: int, *, batch_size: int = BATCH_SIZE,
                        sequence: PieceSequence | None = None) -> Predictor:
    """A predictor for :func:`sheetlab.following.run_follower` that steps the GRU once per
    sounding frame (chapter 7).

    Parameters
    ----------
    model : RecurrentFollower
        The model (in eval mode while following).
    piece : PieceData
        The piece.
    grid : numpy.ndarray
        ``(G,)`` the follower's window left edges.
    width_px, context_frames, batch_size
        As for :func:`sheetlab.following.follow`.
    sequence : PieceSequence, optional
        The base's features of this piece on this grid, if already computed
        (:func:`piece_sequence`); else they are computed for every frame.

    Returns
    -------
    callable
        ``predict(frame, grid_index) -> (1, B) logits``; it keeps the GRU's state and the
        previous window between calls. The step runs in numpy (:func:`gru_step`): per frame
        it is a few small matrix products, where torch's per-call overhead would dominate.
    """
    if sequence is None:
        sequence = piece_sequence(model.base, piece, width_px=width_px,
                                  context_frames=context_frames, silence=0.0,
                                  batch_size=batch_size)
    if not np.array_equal(sequence.grid, grid):
        raise ValueError(f"{piece.piece_id}: the prepared sequence has another window grid")
    *inner, (out_weight, out_bias) = model.folded.layers
    gru = [getattr(model.gru, f"{name}_l0").detach().cpu().numpy()
           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    correction = (model.correction.weight.detach().cpu().numpy(),
                  model.correction.bias.detach().cpu().numpy())
    bucket_px = bucket_width(out_weight.shape[0], width_px)
    carried = {"state": np.zeros((1, model.hidden_units), dtype=np.float32), "left": None}

    def predict(frame: int, grid_index: int) -> np.ndarray:
        left = int(grid[grid_index])
        shift = 0.0 if carried["left"] is None else (left - carried["left"]) / bucket_px
        fused = np.maximum(sequence.sheet_part[grid_index:grid_index + 1]
                           + sequence.spec_part[sequence.row[frame]], 0)
        for weight, bias in inner:
            fused = np.maximum(fused @ weight.T + bias, 0)
        state = gru_step(np.append(fused, [[shift]], axis=1).astype(np.float32),
                         carried["state"], *gru)
        carried["state"], carried["left"] = state, left
        return fused @ out_weight.T + out_bias + state @ correction[0].T + correction[1]

    return predict


def follow(model: RecurrentFollower, piece: PieceData, *, width_px: int = WINDOW_PX,
           context_frames: int = CONTEXT_FRAMES, grid_px: int = GRID_PX,
           anchor: float = ANCHOR, silence: float = SILENCE, fps: float = FPS,
           batch_size: int = BATCH_SIZE, sequence: PieceSequence | None = None
           ) -> FollowResult:
    """Follow a whole performance with the recurrent model (chapter 7).

    The window policy, the silence rule and the result are those of
    :func:`sheetlab.following.follow`; the only difference is the predictor, which carries the
    GRU's state from one sounding frame to the next.

    Parameters
    ----------
    model : RecurrentFollower
        The model.
    piece : PieceData
        The piece.
    width_px, context_frames, grid_px, anchor, silence, fps, batch_size
        As for :func:`sheetlab.following.follow`.
    sequence : PieceSequence, optional
        The base's features of this piece, if already computed with the same window settings.

    Returns
    -------
    FollowResult
    """
    return run_follower(partial(recurrent_predictor, batch_size=batch_size, sequence=sequence),
                        model, piece, width_px, context_frames, grid_px, anchor, silence, fps)


# --------------------------------------------------------------------------- training


def _padded(inputs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
            onsets: Sequence[np.ndarray], n_buckets: int, width_px: int, spread: float
            ) -> tuple[torch.Tensor, ...]:
    """Stack sequences of different lengths: ``pre (N, T, U)``, ``shift (N, T)``, soft
    ``targets (N, T, B)``, ``mask (N, T)`` (True on real frames) and ``onset (N, T)`` (True on
    correspondence frames)."""
    length = max(len(x) for _, _, x in inputs)
    units = inputs[0][0].shape[1]
    pre = np.zeros((len(inputs), length, units), dtype=np.float32)
    shift = np.zeros((len(inputs), length), dtype=np.float32)
    targets = np.zeros((len(inputs), length, n_buckets), dtype=np.float32)
    mask = np.zeros((len(inputs), length), dtype=bool)
    onset = np.zeros((len(inputs), length), dtype=bool)
    for k, ((p, s, x), o) in enumerate(zip(inputs, onsets)):
        pre[k, :len(x)], shift[k, :len(x)], mask[k, :len(x)], onset[k, :len(x)] = p, s, True, o
        targets[k, :len(x)] = soft_targets(x, n_buckets, width_px, spread)
    return tuple(torch.from_numpy(a) for a in (pre, shift, targets, mask, onset))


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                  onset: torch.Tensor, onset_share: float = 0.9) -> torch.Tensor:
    """Cross-entropy against soft targets, weighing correspondence frames and the rest
    (chapter 7).

    Between two correspondences the target stays put, so those frames outnumber the
    correspondence frames (about 14 to 1 in the mono tunes); on their own they would teach
    the network mostly to stay where it is, and to move late. The loss is therefore
    ``onset_share`` times the mean over the correspondence frames plus ``1 - onset_share``
    times the mean over the others (a group that is empty counts 0).

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, T, B)``.
    targets : torch.Tensor
        ``(N, T, B)`` target distributions.
    mask : torch.Tensor
        ``(N, T) bool``: real frames (not padding).
    onset : torch.Tensor
        ``(N, T) bool``: correspondence frames.
    onset_share : float
        Weight of the correspondence frames' mean, in [0, 1].

    Returns
    -------
    torch.Tensor
        Scalar loss in nats.
    """
    frame_loss = -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    loss = logits.new_zeros(())
    for group, weight in ((mask & onset, onset_share), (mask & ~onset, 1 - onset_share)):
        if group.any() and weight > 0:
            loss = loss + weight * frame_loss[group].mean()
    return loss


def _groups(lengths: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random groups of ``size`` sequences of similar length: a random order, sorted by length
    within runs of four groups (less padding)."""
    order = rng.permutation(len(lengths))
    groups = []
    for start in range(0, len(order), 4 * size):
        run = order[start:start + 4 * size]
        run = run[np.argsort(-lengths[run], kind="stable")]
        groups += [run[k:k + size] for k in range(0, len(run), size)]
    return [groups[k] for k in rng.permutation(len(groups))]


def train_epoch(model: RecurrentFollower, sequences: Sequence[PieceSequence],
                optimizer: torch.optim.Optimizer, settings: RecurrentSettings,
                epoch: int, width_px: int = WINDOW_PX) -> float:
    """One epoch of truncated back-propagation through time, reproducible from
    ``(settings.seed, epoch)`` (chapter 7).

    Parameters
    ----------
    model : RecurrentFollower
        The model (its recurrent part is put in training mode).
    sequences : sequence of PieceSequence
        The training pieces (:func:`piece_sequence`).
    optimizer : torch.optim.Optimizer
        Over the model's trainable parameters.
    settings : RecurrentSettings
        Batch, chunk, simulated errors, spread, progress.
    epoch : int
        The epoch's number (1 for the first).
    width_px : int
        Window width in px.

    Returns
    -------
    float
        Mean loss over the epoch's updates, nats per frame.
    """
    seed = epoch_seed(settings.seed, epoch)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n_buckets = model.out_weight.shape[0]
    model.train()
    losses = []
    groups = _groups(np.array([len(s.frames) for s in sequences]), settings.pieces_per_batch, rng)
    for group in tqdm(groups, desc=f"epoch {epoch}", leave=False, disable=not settings.progress):
        inputs = [sequence_inputs(sequences[k], follower_windows(
            sequences[k], rng, settings.error_px, settings.segment_frames, width_px),
            width_px, n_buckets) for k in group]
        pre, shift, targets, mask, onset = _padded(
            inputs, [sequences[k].onset for k in group], n_buckets, width_px, settings.spread)
        state = None
        for start in range(0, pre.shape[1], settings.chunk_frames):
            part = slice(start, start + settings.chunk_frames)
            logits, state = model(pre[:, part], shift[:, part], state)
            state = state.detach()
            loss = sequence_loss(logits, targets[:, part], mask[:, part], onset[:, part],
                                 settings.onset_share)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return float(np.mean(losses))


def evaluate_recurrent(model: RecurrentFollower, sequences: Sequence[PieceSequence], *,
                       seed: int = 1, error_px: float = 100.0, segment_frames: float = 100.0,
                       spread: float = SPREAD, onset_share: float = 0.9,
                       width_px: int = WINDOW_PX, follow_pieces: bool = True
                       ) -> dict[str, float]:
    """Validation measures of a recurrent model and of its frozen base (chapter 7).

    Parameters
    ----------
    model : RecurrentFollower
        The model.
    sequences : sequence of PieceSequence
        The validation pieces.
    seed : int
        Seed of the fixed windows (one :func:`follower_windows` draw per piece).
    error_px, segment_frames : float
        The simulated follower error of those windows.
    spread : float
        Soft-target spread of the loss, in buckets.
    onset_share : float
        Weight of the correspondence frames in the loss (:func:`sequence_loss`).
    width_px : int
        Window width in px.
    follow_pieces : bool
        Also follow every piece (:func:`follow`) for the tracking measures.

    Returns
    -------
    dict
        On the fixed windows: ``loss`` (:func:`sequence_loss` per piece, averaged over the
        pieces, nats), ``within_one_bucket`` and
        ``frame_wise_within_one_bucket`` (share of onset frames localised within one bucket
        by the recurrent model and by the base), ``mae_px``; when following:
        ``tracking_ratio`` (mean over pieces) and ``tracked_to_end`` (share of pieces).
    """
    n_buckets = model.out_weight.shape[0]
    losses, errors, base_errors = [], [], []
    with evaluating(model):
        for k, sequence in enumerate(sequences):
            windows = follower_windows(sequence, np.random.default_rng([seed, k]), error_px,
                                       segment_frames, width_px)
            pre, shift, x = sequence_inputs(sequence, windows, width_px, n_buckets)
            pre_t = torch.from_numpy(pre)[None]
            logits_t = model(pre_t, torch.from_numpy(shift)[None])[0]
            targets = torch.from_numpy(soft_targets(x, n_buckets, width_px, spread))[None]
            onset = sequence.onset
            losses.append(sequence_loss(logits_t, targets, torch.ones_like(targets[..., 0],
                                                                            dtype=torch.bool),
                                        torch.from_numpy(onset)[None], onset_share).item())
            logits, base = logits_t[0].numpy(), model.frame_wise(pre_t)[0].numpy()
            errors.append(np.abs(localise(softmax(logits[onset]), width_px) - x[onset]))
            base_errors.append(np.abs(localise(softmax(base[onset]), width_px) - x[onset]))
    errors, base_errors = np.concatenate(errors), np.concatenate(base_errors)
    bucket_px = bucket_width(n_buckets, width_px)
    measures = {"loss": float(np.mean(losses)),
                "within_one_bucket": float(np.mean(errors < bucket_px)),
                "frame_wise_within_one_bucket": float(np.mean(base_errors < bucket_px)),
                "mae_px": float(errors.mean())}
    if follow_pieces:
        total = summarise([follow(model, s.piece, sequence=s, silence=SILENCE)
                           for s in sequences])[-1]
        measures["tracking_ratio"] = total["tracking_ratio"]
        measures["tracked_to_end"] = total["tracked_to_end"]
    return measures


def train_recurrent(base_path: str | Path, train_pieces: Sequence[PieceData],
                    valid_pieces: Sequence[PieceData], settings: RecurrentSettings,
                    out_path: str | Path, *, command: str | None = None) -> list[dict]:
    """Train the recurrent model on top of frozen frame-wise weights (chapter 7).

    Parameters
    ----------
    base_path : str or pathlib.Path
        Checkpoint of the frame-wise network (:func:`sheetlab.models.save_checkpoint`).
    train_pieces, valid_pieces : sequence of PieceData
        Training and validation pieces of the base's kind.
    settings : RecurrentSettings
        Size and recipe.
    out_path : str or pathlib.Path
        Where the best model goes (:func:`save_recurrent`); its JSON card beside it
        (:func:`sheetlab.training.card_path`).
    command : str, optional
        The command line for the card (default: this process's ``sys.argv``).

    Returns
    -------
    list of dict
        The learning curves: per epoch ``epoch``, ``train_loss`` and the
        :func:`evaluate_recurrent` measures prefixed ``valid_``. The card also holds the
        measures before training (``epoch`` 0: the frame-wise model itself).
    """
    threads_before = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        return _train_recurrent(Path(base_path), train_pieces, valid_pieces, settings,
                                Path(out_path), command or shlex.join(sys.argv))
    finally:
        torch.set_num_threads(threads_before)


def _train_recurrent(base_path: Path, train_pieces, valid_pieces, settings: RecurrentSettings,
                     out_path: Path, command: str) -> list[dict]:
    """:func:`train_recurrent` with threads set."""
    base = load_checkpoint(base_path)
    check_pieces(train_pieces, base.config, "training")
    check_pieces(valid_pieces, base.config, "validation")
    start = time.perf_counter()
    prepare = partial(piece_sequence, base)
    train_set = [prepare(p) for p in tqdm(train_pieces, desc="base features",
                                          disable=not settings.progress)]
    valid_set = [prepare(p) for p in valid_pieces]
    torch.manual_seed(settings.seed)
    model = RecurrentFollower(base, settings.hidden_units)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                 lr=settings.lr)
    evaluate = partial(evaluate_recurrent, model, valid_set, seed=settings.seed + 1,
                       error_px=settings.error_px, segment_frames=settings.segment_frames,
                       spread=settings.spread, onset_share=settings.onset_share)
    digest = data_hash(train_pieces, valid_pieces)
    card = {"command": command, "data_hash": digest, "n_train_pieces": len(train_pieces),
            "n_valid_pieces": len(valid_pieces),
            "n_train_frames": int(sum(len(s.frames) for s in train_set)),
            "base": _base_reference(base_path), "base_model": base.config.as_dict(),
            "parameters": sum(v.numel() for v in model.trainable_state().values()),
            "settings": asdict(settings), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "before_training": {"epoch": 0, **{
                f"valid_{k}": v for k, v in evaluate().items()}}}
    run = {"history": [], "best": None, "elapsed_s": time.perf_counter() - start}
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        row = {"epoch": epoch,
               "train_loss": train_epoch(model, train_set, optimizer, settings, epoch),
               **{f"valid_{k}": v for k, v in evaluate().items()}}
        run["history"].append(row)
        if run["best"] is None or _better(row, run["best"]):
            run["best"] = row
            save_recurrent(out_path, model, base_path, {"best": row, "data_hash": digest})
        run["elapsed_s"] += time.perf_counter() - start
        write_card(card_path(out_path), card, run)
        if settings.progress:
            tqdm.write(_format_row(row))
    return run["history"]


def _better(row: dict, best: dict) -> bool:
    """Whether an epoch beats the best so far: tracking ratio first, then within one bucket."""
    key = ("valid_tracking_ratio", "valid_within_one_bucket")
    return tuple(row[k] for k in key) > tuple(best[k] for k in key)


def _format_row(row: dict) -> str:
    """One line per epoch for the terminal."""
    return (f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.3f}  valid loss "
            f"{row['valid_loss']:.3f}  within one bucket {row['valid_within_one_bucket']:.1%} "
            f"(frame-wise {row['valid_frame_wise_within_one_bucket']:.1%})  tracking ratio "
            f"{row['valid_tracking_ratio']:.3f}  to the end {row['valid_tracked_to_end']:.0%}")


# --------------------------------------------------------------------------- checkpoints


def _base_reference(base_path: Path) -> dict:
    """The base weights' file name and SHA-256."""
    return {"file": base_path.name, "sha256": hashlib.sha256(base_path.read_bytes()).hexdigest()}


def save_recurrent(path: str | Path, model: RecurrentFollower, base_path: str | Path,
                   metadata: dict | None = None) -> None:
    """Write a recurrent model's trained parameters, naming its base weights (chapter 7).

    Parameters
    ----------
    path : str or pathlib.Path
        The checkpoint; written atomically.
    model : RecurrentFollower
        The model.
    base_path : str or pathlib.Path
        The base's checkpoint: its file name and SHA-256 are recorded, and
        :func:`load_recurrent` looks for it beside ``path``.
    metadata : dict, optional
        Anything to keep with the weights (metrics, data hash).
    """
    atomic_save({"format": FORMAT, "hidden_units": model.hidden_units,
                 "base": _base_reference(Path(base_path)),
                 "state": model.trainable_state(), "metadata": metadata or {}}, path)


def load_recurrent(path: str | Path, base_path: str | Path | None = None) -> RecurrentFollower:
    """A recurrent model from :func:`save_recurrent`, on the CPU, in eval mode (chapter 7).

    Parameters
    ----------
    path : str or pathlib.Path
        The checkpoint.
    base_path : str or pathlib.Path, optional
        The base's checkpoint (default: the file it names, beside ``path``).

    Returns
    -------
    RecurrentFollower

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    ValueError
        If ``path`` is no recurrent checkpoint, or the base file is not the one it was trained
        on (SHA-256 differs).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such recurrent checkpoint")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from error
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path}: not a recurrent checkpoint (format {FORMAT} expected)")
    base_path = Path(base_path) if base_path else path.with_name(saved["base"]["file"])
    if not base_path.exists():
        raise FileNotFoundError(f"{path}: its base weights {base_path} are missing")
    if _base_reference(base_path)["sha256"] != saved["base"]["sha256"]:
        raise ValueError(f"{path}: was trained on other base weights than {base_path} "
                         f"(SHA-256 differs)")
    model = RecurrentFollower(load_checkpoint(base_path), saved["hidden_units"])
    missing, unexpected = model.load_state_dict(saved["state"], strict=False)
    if unexpected or [k for k in missing if not k.startswith("base.")]:
        raise ValueError(f"{path}: parameters do not fit the model "
                         f"(missing {missing}, unexpected {unexpected})")
    model.metadata = saved["metadata"]
    return model.eval()


def load_pretrained(kind: str) -> RecurrentFollower:
    """The shipped recurrent model of a kind of piece, on its shipped base (chapter 7).

    Parameters
    ----------
    kind : {"mono", "piano"}

    Returns
    -------
    RecurrentFollower
        In eval mode.

    Raises
    ------
    FileNotFoundError
        If the weights are absent; the message names the command that makes them.
    """
    path = weights_path(kind, "light-gru")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pretrained recurrent {kind} model; make it with "
                                f"'sheetlab train-recurrent --kind {kind}'")
    return load_recurrent(path)
