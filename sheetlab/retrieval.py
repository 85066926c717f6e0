"""Cross-modal retrieval: a shared space of audio excerpts and sheet-music snippets (chapter 9).

The talk's second task. Two pathways (:class:`sheetlab.models.RetrievalNet`) map a sheet
snippet and an audio excerpt each to a 32-d vector; a **CCA layer** (:class:`CCALayer`)
projects both onto their canonical directions, and after **L2 normalisation** the cosine
similarity of a snippet and an excerpt says how well they match. The network learns with the
**pairwise ranking loss** (:func:`ranking_loss`): a matching pair must be more similar, by a
margin, than the pair's items with every other item of the mini-batch. Retrieval is then
nearest-neighbour search, one matrix product for all queries (:func:`similarity`,
:func:`retrieve`).

**Pairs.** A pair is one position of a performance: a centre frame ``c``, the
:data:`~sheetlab.models.EXCERPT_FRAMES` frames around it (:func:`excerpt_end`) and the
:data:`~sheetlab.models.SNIPPET_PX`-wide snippet of the unrolled score centred on the strip x
that the correspondences give for ``c`` (linear interpolation between onsets,
:func:`position_x`). Pairs are drawn uniformly over the frames between a piece's first and
last onset (:func:`sample_positions`), so a training epoch sees new, seeded positions.

**CCA layer.** Given a batch's vectors ``X`` and ``Y`` (``(N, d)`` each), with means removed,
covariances ``Cxx = X'X/(N-1) + rI``, ``Cyy = Y'Y/(N-1) + rI``, ``Cxy = X'Y/(N-1)`` and
``T = Cxx^-1/2 Cxy Cyy^-1/2 = U S V'``, the projections are ``A = Cxx^-1/2 U`` and
``B = Cyy^-1/2 V``; ``XA`` and ``YB`` are whitened and their i-th columns correlate with the
i-th canonical correlation ``S_i`` and not with any other column. In training the projections
are computed from each batch and the loss back-propagates through them (float64, symmetric
inverse square roots from ``eigh``); for test time :meth:`CCALayer.fit` re-estimates them once
on a large training sample and keeps them as buffers.

**Baseline.** The same pathways without the CCA layer: the two learned linear layers alone,
then L2 normalisation (``RetrievalConfig.cca = False``).

**Evaluation.** :func:`rank_of_match` and :func:`retrieval_metrics` (recall at 1, 5, 10, 25,
mean reciprocal rank, median rank, both directions), :func:`identify_pieces` (each audio
excerpt's 25 nearest snippets vote for their pieces), and :func:`align` (dynamic time warping
of a piece's excerpts against its snippets, the offline alignment of ISMIR 2017).
"""

from __future__ import annotations

import hashlib
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sheetlab.dataset import PieceData
from sheetlab.following import (batched_outputs, evaluating, model_device, sheet_input,
                                spec_input)
from sheetlab.models import (EXCERPT_FRAMES, SNIPPET_PX, RetrievalConfig, RetrievalNet,
                             count_parameters, device, retrieval_config, save_checkpoint,
                             to_device)

RECALL_AT = (1, 5, 10, 25)
"""The ``k`` of the recall-at-k figures."""

DEFAULT_MARGIN = 0.7
"""Margin of the ranking loss, in cosine similarity."""


# --------------------------------------------------------------------------- the CCA layer


def inverse_sqrt(cov: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The symmetric inverse square root of a symmetric positive-definite matrix (chapter 9).

    ``cov = Q diag(l) Q'`` (``torch.linalg.eigh``) gives ``Q diag(l^-1/2) Q'``; eigenvalues
    below ``eps`` are raised to ``eps``. Differentiable (as long as eigenvalues are distinct).

    Parameters
    ----------
    cov : torch.Tensor
        ``(d, d)`` symmetric positive-definite (use float64).
    eps : float
        Floor of the eigenvalues.

    Returns
    -------
    torch.Tensor
        ``(d, d)`` symmetric, ``M @ cov @ M = I``.
    """
    values, vectors = torch.linalg.eigh((cov + cov.T) / 2)
    return (vectors * values.clamp_min(eps).rsqrt()) @ vectors.T


@dataclass
class CCAProjections:
    """The result of :func:`cca`: means, projections and canonical correlations (chapter 9).

    Attributes
    ----------
    mean_x, mean_y : torch.Tensor
        ``(d,)`` means of both views.
    proj_x, proj_y : torch.Tensor
        ``(d, d)`` projections ``A`` and ``B``: column i of ``(X - mean_x) A`` and of
        ``(Y - mean_y) B`` are the i-th canonical variates.
    corr : torch.Tensor
        ``(d,)`` canonical correlations, decreasing (with the ridge: slightly shrunk).
    """

    mean_x: torch.Tensor
    mean_y: torch.Tensor
    proj_x: torch.Tensor
    proj_y: torch.Tensor
    corr: torch.Tensor


def cca(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3) -> CCAProjections:
    """Canonical correlation analysis of two views, differentiable, in float64 (chapter 9).

    Parameters
    ----------
    x, y : torch.Tensor
        ``(N, d)`` paired samples of both views (row i of ``x`` belongs to row i of ``y``);
        computed in float64 whatever their dtype.
    ridge : float
        Added to the diagonal of both covariance matrices (regularisation; > 0 keeps them
        invertible for small batches).

    Returns
    -------
    CCAProjections
        In float64.

    Raises
    ------
    ValueError
        Shapes differ, fewer than two samples, or a negative ridge.
    """
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"cca needs two (N, d) arrays of one shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"cca needs at least two samples, got {n}")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    x, y = x.double(), y.double()
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc, yc = x - mean_x, y - mean_y
    eye = torch.eye(dim, dtype=torch.float64, device=x.device)
    cxx = xc.T @ xc / (n - 1) + ridge * eye
    cyy = yc.T @ yc / (n - 1) + ridge * eye
    cxy = xc.T @ yc / (n - 1)
    wx, wy = inverse_sqrt(cxx), inverse_sqrt(cyy)
    u, s, vh = torch.linalg.svd(wx @ cxy @ wy)
    return CCAProjections(mean_x, mean_y, wx @ u, wy @ vh.T, s)


class CCALayer(nn.Module):
    """The CCA projection layer (chapter 9).

    In training mode each call computes the projections from the batch (:func:`cca`, with
    gradients); in eval mode it applies the projections that :meth:`fit` estimated on a large
    sample. Outputs have the input's dtype.

    Parameters
    ----------
    dim : int
        Dimension ``d`` of both views.
    ridge : float
        Ridge of the covariance matrices.
    """

    def __init__(self, dim: int, ridge: float = 1e-3) -> None:
        super().__init__()
        self.dim, self.ridge = dim, ridge
        self.register_buffer("mean_x", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("mean_y", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("proj_x", torch.eye(dim, dtype=torch.float64))
        self.register_buffer("proj_y", torch.eye(dim, dtype=torch.float64))
        self.register_buffer("corr", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> CCAProjections:
        """Estimate the test-time projections from ``(N, d)`` paired samples; returns them."""
        result = cca(x, y, self.ridge)
        for name in ("mean_x", "mean_y", "proj_x", "proj_y", "corr"):
            getattr(self, name).copy_(getattr(result, name))
        self.fitted.fill_(True)
        return result

    def project_x(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` canonical variates of view x with the fitted projections."""
        self._check_fitted()
        return ((x.double() - self.mean_x) @ self.proj_x).to(x.dtype)

    def project_y(self, y: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` canonical variates of view y with the fitted projections."""
        self._check_fitted()
        return ((y.double() - self.mean_y) @ self.proj_y).to(y.dtype)

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("the CCA layer has no test-time projections yet: call fit() on "
                               "a training sample (sheetlab.retrieval.fit_cca)")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views' canonical variates: ``(N, d)`` each (batch statistics in training)."""
        if x.shape[-1] != self.dim or y.shape[-1] != self.dim:
            raise ValueError(f"the CCA layer expects {self.dim} features, got "
                             f"{x.shape[-1]} and {y.shape[-1]}")
        if not self.training:
            return self.project_x(x), self.project_y(y)
        if x.shape[0] <= self.dim:
            raise ValueError(f"a training batch of the CCA layer needs more than {self.dim} "
                             f"pairs, got {x.shape[0]}")
        p = cca(x, y, self.ridge)
        return ((x.double() - p.mean_x) @ p.proj_x).to(x.dtype), \
            ((y.double() - p.mean_y) @ p.proj_y).to(y.dtype)


class Embedding(nn.Module):
    """The whole embedding: two pathways, the CCA layer (or not), L2 normalisation (chapter 9).

    Parameters
    ----------
    config : RetrievalConfig
        The network's sizes; ``config.cca`` chooses the CCA layer or the baseline.

    Attributes
    ----------
    config : RetrievalConfig
    net : sheetlab.models.RetrievalNet
    cca : CCALayer or None
    metadata : dict
        What :func:`load_embedding` read with the weights.
    """

    def __init__(self, config: RetrievalConfig) -> None:
        super().__init__()
        self.config = config
        self.metadata: dict = {}
        self.net = RetrievalNet(config)
        self.cca = CCALayer(config.embedding_dim, config.cca_ridge) if config.cca else None

    def forward(self, sheet: torch.Tensor, spec: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, d)`` unit vectors of ``N`` snippets and their ``N`` excerpts (a batch of pairs).

        In training mode the CCA layer uses the batch's statistics, so the batch must hold
        matching pairs; in eval mode the modalities may also be embedded separately
        (:meth:`embed_sheet`, :meth:`embed_spec`).
        """
        return self.project(*self.net(sheet, spec))

    def project(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The CCA layer (if any) and the L2 normalisation of ``(N, d)`` pathway outputs."""
        if self.cca is not None:
            x, y = self.cca(x, y)
        return F.normalize(x, dim=1), F.normalize(y, dim=1)

    def embed_sheet(self, sheet: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` unit vectors of ``(N, 1, H, W)`` snippets (test-time projections)."""
        x = self.net.sheet_features(sheet)
        return F.normalize(self.cca.project_x(x) if self.cca is not None else x, dim=1)

    def embed_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` unit vectors of ``(N, 1, n_bands, n_frames)`` excerpts."""
        y = self.net.spec_features(spec)
        return F.normalize(self.cca.project_y(y) if self.cca is not None else y, dim=1)


def load_embedding(path: str | Path, map_location: str | torch.device = "cpu") -> Embedding:
    """An :class:`Embedding` from a file written by :func:`sheetlab.models.save_checkpoint`,
    in eval mode and channels-last order (chapter 9).

    Raises
    ------
    FileNotFoundError
        No such file (the message says how to make the shipped one).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no retrieval weights; make them with "
                                f"'sheetlab train-retrieval --out {path}'")
    blob = torch.load(path, map_location=map_location, weights_only=True)
    model = Embedding(RetrievalConfig.from_dict(blob["config"]))
    model.load_state_dict(blob["state_dict"])
    model.metadata = blob["metadata"]
    return model.to(map_location, memory_format=torch.channels_last).eval()


def pretrained_path(cca: bool = True, kind: str = "piano") -> Path:
    """Where the shipped retrieval weights live: ``sheetlab/weights/<kind>-retrieval-cca.pt``
    (or ``-linear`` for the baseline)."""
    from sheetlab.models import WEIGHTS_DIR

    return WEIGHTS_DIR / f"{kind}-retrieval-{'cca' if cca else 'linear'}.pt"


def load_pretrained_embedding(cca: bool = True, kind: str = "piano") -> Embedding:
    """The shipped retrieval model (chapter 9), in eval mode on the CPU."""
    return load_embedding(pretrained_path(cca, kind))


# --------------------------------------------------------------------------- the loss


def ranking_loss(x: torch.Tensor, y: torch.Tensor, margin: float = DEFAULT_MARGIN
                 ) -> torch.Tensor:
    """The pairwise ranking loss over a batch of matching pairs (chapter 9).

    With cosine similarities ``s(i, j) = x_i . y_j`` of unit vectors, the loss is

    ``1/N sum_i sum_{j != i} [max(0, m - s(i, i) + s(i, j)) + max(0, m - s(i, i) + s(j, i))]``:

    for every query, in both directions, each wrong item of the batch that is not at least
    ``m`` less similar than the right one costs the difference.

    Parameters
    ----------
    x, y : torch.Tensor
        ``(N, d)`` L2-normalised embeddings; row i of ``x`` matches row i of ``y``.
    margin : float
        ``m``, in cosine similarity.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    if x.ndim != 2 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"ranking_loss needs two (N, d) arrays of one shape with N >= 2, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    sim = x @ y.T
    positive = sim.diagonal()
    off = ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    x_queries = (margin - positive[:, None] + sim).clamp_min(0)  # query x_i, wrong y_j
    y_queries = (margin - positive[None, :] + sim).clamp_min(0)  # query y_j, wrong x_i
    return (x_queries[off].sum() + y_queries[off].sum()) / len(x)


def pairwise_ranking_loss(x: np.ndarray, y: np.ndarray, margin: float = DEFAULT_MARGIN) -> float:
    """:func:`ranking_loss` for numpy arrays, as a Python float (chapter 9's exercise).

    Parameters
    ----------
    x, y : numpy.ndarray
        ``(N, d)`` unit vectors; row i of ``x`` matches row i of ``y``.
    margin : float
        ``m``, in cosine similarity.

    Returns
    -------
    float
        The loss, summed over both directions and every wrong item, divided by ``N``.
    """
    loss = ranking_loss(torch.as_tensor(np.asarray(x, dtype=np.float64)),
                        torch.as_tensor(np.asarray(y, dtype=np.float64)), margin)
    return float(loss)


# --------------------------------------------------------------------------- pairs


def position_x(piece: PieceData, frame: np.ndarray | float) -> np.ndarray:
    """Strip x of a performance position: the correspondences interpolated linearly (chapter 9).

    Parameters
    ----------
    piece : PieceData
        The piece.
    frame : array_like
        Spectrogram frames (fractional allowed).

    Returns
    -------
    numpy.ndarray
        Strip x in px (clamped to the first and last onset's x outside them).
    """
    frames, index = np.unique(piece.onset_frame, return_index=True)
    return np.interp(np.asarray(frame, dtype=np.float64), frames.astype(np.float64),
                     piece.onset_x[index])


def excerpt_end(frame: int, n_frames: int = EXCERPT_FRAMES) -> int:
    """The last frame of the ``n_frames``-long excerpt centred on ``frame`` (frames
    ``frame - n_frames // 2`` to ``frame + n_frames - n_frames // 2 - 1``), for
    :func:`sheetlab.dataset.spectrogram_excerpt` (chapter 9)."""
    return int(frame) + n_frames - n_frames // 2 - 1


def sample_positions(pieces: Sequence[PieceData], n: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pair positions drawn uniformly over the frames of all pieces (chapter 9).

    A piece's frames run from its first to its last onset; each position is drawn uniformly
    from the frames of all pieces together, so a long piece gives more pairs.

    Parameters
    ----------
    pieces : sequence of PieceData
    n : int
        Number of positions.
    seed : int
        Seed of the draw.

    Returns
    -------
    piece_index : numpy.ndarray
        ``(n,) int64`` index into ``pieces``.
    frame : numpy.ndarray
        ``(n,) int64`` centre frame of each pair.
    """
    if not pieces:
        raise ValueError("sample_positions needs at least one piece")
    first = np.array([p.onset_frame.min() for p in pieces], dtype=np.int64)
    counts = np.array([p.onset_frame.max() for p in pieces], dtype=np.int64) - first + 1
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, counts.sum(), size=n)
    bounds = np.cumsum(counts)
    piece_index = np.searchsorted(bounds, flat, side="right")
    frame = first[piece_index] + flat - (bounds - counts)[piece_index]
    return piece_index.astype(np.int64), frame.astype(np.int64)


def snippet_input(piece: PieceData, x_px: float, width_px: int = SNIPPET_PX) -> torch.Tensor:
    """``(1, H, width_px) float32`` snippet centred on strip x (ink in [0, 1]) (chapter 9)."""
    return sheet_input(piece.strip, int(round(x_px - width_px / 2)), width_px)


def excerpt_input(piece: PieceData, frame: int, n_frames: int = EXCERPT_FRAMES) -> torch.Tensor:
    """``(1, n_bands, n_frames) float32`` excerpt centred on a frame (zero-padded) (chapter 9)."""
    return spec_input(piece.spec, excerpt_end(frame, n_frames), n_frames)


def pair_batch(pieces: Sequence[PieceData], piece_index: np.ndarray, frame: np.ndarray,
               config: RetrievalConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The network inputs of pairs at given positions (chapter 9).

    Returns
    -------
    sheet : torch.Tensor
        ``(N, 1, H, W) float32`` snippets.
    spec : torch.Tensor
        ``(N, 1, n_bands, n_frames) float32`` excerpts.
    """
    width, n_frames = config.sheet_shape[1], config.spec_shape[1]
    sheets, specs = [], []
    for i, f in zip(piece_index, frame):
        piece = pieces[int(i)]
        sheets.append(snippet_input(piece, float(position_x(piece, f)), width))
        specs.append(excerpt_input(piece, int(f), n_frames))
    return torch.stack(sheets), torch.stack(specs)


# --------------------------------------------------------------------------- embedding


def embed_snippets(model: Embedding, pieces: Sequence[PieceData], piece_index: np.ndarray,
                   x_px: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Embed snippets centred on given strip positions, in batches (chapter 9).

    Parameters
    ----------
    model : Embedding
        The model (run in eval mode; its mode is restored).
    pieces : sequence of PieceData
    piece_index : numpy.ndarray
        ``(N,)`` piece of each snippet.
    x_px : numpy.ndarray
        ``(N,)`` strip x of each snippet's centre.
    batch_size : int
        Snippets per forward pass.

    Returns
    -------
    numpy.ndarray
        ``(N, d) float32`` unit vectors.
    """
    width = model.config.sheet_shape[1]
    if len(x_px) == 0:
        return np.zeros((0, model.config.embedding_dim), np.float32)
    with evaluating(model):
        return batched_outputs(model.embed_sheet, len(x_px), batch_size, model_device(model),
                               lambda k: snippet_input(pieces[int(piece_index[k])],
                                                       float(x_px[k]), width))


def embed_excerpts(model: Embedding, pieces: Sequence[PieceData], piece_index: np.ndarray,
                   frame: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Embed audio excerpts centred on given frames, in batches (chapter 9).

    Returns
    -------
    numpy.ndarray
        ``(N, d) float32`` unit vectors.
    """
    n_frames = model.config.spec_shape[1]
    if len(frame) == 0:
        return np.zeros((0, model.config.embedding_dim), np.float32)
    with evaluating(model):
        return batched_outputs(model.embed_spec, len(frame), batch_size, model_device(model),
                               lambda k: excerpt_input(pieces[int(piece_index[k])],
                                                       int(frame[k]), n_frames))


@torch.no_grad()
def fit_cca(model: Embedding, pieces: Sequence[PieceData], n_pairs: int = 10_000,
            seed: int = 0, batch_size: int = 256) -> CCAProjections | None:
    """Re-estimate the CCA layer's test-time projections on a training sample (chapter 9).

    The pathways run in eval mode on ``n_pairs`` positions drawn by :func:`sample_positions`;
    :meth:`CCALayer.fit` computes the projections from all their vectors at once. Nothing to
    do for the baseline (returns None).
    """
    if model.cca is None:
        return None
    piece_index, frame = sample_positions(pieces, n_pairs, seed)
    width, n_frames = model.config.sheet_shape[1], model.config.spec_shape[1]
    xs, ys = [], []
    with evaluating(model):
        where = model_device(model)
        for start in range(0, n_pairs, batch_size):
            sl = slice(start, start + batch_size)
            sheet, spec = pair_batch(pieces, piece_index[sl], frame[sl], model.config)
            x, y = model.net(sheet.to(where), spec.to(where))
            xs.append(x.cpu())
            ys.append(y.cpu())
    return model.cca.fit(torch.cat(xs), torch.cat(ys))


# --------------------------------------------------------------------------- retrieval


def similarity(queries: np.ndarray | torch.Tensor, candidates: np.ndarray | torch.Tensor
               ) -> torch.Tensor:
    """Cosine similarities of unit vectors, one matrix product (chapter 9).

    Parameters
    ----------
    queries : array_like
        ``(Q, d)`` unit vectors.
    candidates : array_like
        ``(C, d)`` unit vectors.

    Returns
    -------
    torch.Tensor
        ``(Q, C) float32``; the cosine distance is ``1 - similarity``.
    """
    q = torch.as_tensor(queries, dtype=torch.float32)
    c = torch.as_tensor(candidates, dtype=torch.float32)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"queries and candidates must be (Q, d) and (C, d), got "
                         f"{tuple(q.shape)} and {tuple(c.shape)}")
    return q @ c.T


def retrieve(queries: np.ndarray | torch.Tensor, candidates: np.ndarray | torch.Tensor,
             k: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest candidates of every query by cosine similarity (chapter 9).

    Returns
    -------
    index : numpy.ndarray
        ``(Q, k) int64`` candidate indices, most similar first.
    sim : numpy.ndarray
        ``(Q, k) float32`` their similarities.
    """
    sim = similarity(queries, candidates)
    if not 1 <= k <= sim.shape[1]:
        raise ValueError(f"k must be in [1, {sim.shape[1]}] (the number of candidates), got {k}")
    values, index = torch.topk(sim, k, dim=1)
    return index.numpy(), values.numpy()


def rank_of_match(sim: np.ndarray | torch.Tensor) -> np.ndarray:
    """The rank of each query's true match, which is candidate ``i`` for query ``i``
    (chapter 9).

    Parameters
    ----------
    sim : array_like
        ``(N, N)`` similarities (higher = nearer); the diagonal holds the true matches.

    Returns
    -------
    numpy.ndarray
        ``(N,) int64`` ranks, 1 = the match is the nearest candidate; a tie with a wrong
        candidate counts in the match's favour (rank = 1 + candidates strictly more similar).
    """
    sim = torch.as_tensor(sim)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"rank_of_match needs a square (N, N) matrix, got {tuple(sim.shape)}")
    return ((sim > sim.diagonal()[:, None]).sum(1) + 1).numpy().astype(np.int64)


def retrieval_metrics(ranks: np.ndarray, recall_at: Sequence[int] = RECALL_AT) -> dict[str, float]:
    """Recall at k, mean reciprocal rank and median rank of a set of ranks (chapter 9).

    Parameters
    ----------
    ranks : numpy.ndarray
        ``(N,)`` ranks of the true matches, 1-based (:func:`rank_of_match`).
    recall_at : sequence of int
        The k of the recalls.

    Returns
    -------
    dict
        ``R@k`` (share of queries whose match is among the k nearest), ``MRR`` (mean of
        1 / rank) and ``median_rank``.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or len(ranks) == 0 or np.any(ranks < 1):
        raise ValueError("ranks must be a non-empty 1-d array of ranks >= 1")
    return {**{f"R@{k}": float(np.mean(ranks <= k)) for k in recall_at},
            "MRR": float(np.mean(1.0 / ranks)), "median_rank": float(np.median(ranks))}


def recall_and_mrr(sim: np.ndarray, k: int) -> tuple[float, float]:
    """Recall at ``k`` and mean reciprocal rank of a query-by-candidate similarity matrix
    whose diagonal holds the true matches (chapter 9's exercise).

    :func:`rank_of_match` then :func:`retrieval_metrics`: ties with a wrong candidate count
    in the match's favour.

    Parameters
    ----------
    sim : numpy.ndarray
        ``(N, N)`` similarities, query i in row i, its match in column i.
    k : int
        The k of the recall.

    Returns
    -------
    recall : float
        Share of queries whose match is among the ``k`` most similar candidates.
    mrr : float
        Mean of ``1 / rank`` over the queries.
    """
    metrics = retrieval_metrics(rank_of_match(np.asarray(sim, dtype=np.float64)), (k,))
    return metrics[f"R@{k}"], metrics["MRR"]


def pair_ranks(model: Embedding, pieces: Sequence[PieceData], piece_index: np.ndarray,
               frame: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The rank of every pair's partner, both ways, among a set of pairs (chapter 9).

    Every excerpt queries all snippets of the set and every snippet all excerpts; the pair's
    own partner is the one right answer.

    Returns
    -------
    dict
        ``{"audio_to_sheet": ranks, "sheet_to_audio": ranks}``, each ``(N,) int64``, 1-based
        (:func:`rank_of_match`), query ``i`` being pair ``i``.
    """
    x = np.array([position_x(pieces[int(i)], f) for i, f in zip(piece_index, frame)])
    sheet = embed_snippets(model, pieces, piece_index, x, batch_size)
    audio = embed_excerpts(model, pieces, piece_index, frame, batch_size)
    sim = similarity(audio, sheet)
    return {"audio_to_sheet": rank_of_match(sim), "sheet_to_audio": rank_of_match(sim.T)}


def evaluate_pairs(model: Embedding, pieces: Sequence[PieceData], piece_index: np.ndarray,
                   frame: np.ndarray, batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Two-way retrieval measures among a set of pairs (chapter 9).

    Returns
    -------
    dict
        ``{"audio_to_sheet": metrics, "sheet_to_audio": metrics}`` (:func:`retrieval_metrics`
        of :func:`pair_ranks`).
    """
    ranks = pair_ranks(model, pieces, piece_index, frame, batch_size)
    return {direction: retrieval_metrics(r) for direction, r in ranks.items()}


def mrr_difference(ranks_a: np.ndarray, ranks_b: np.ndarray, groups: np.ndarray, *,
                   n_resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """How much model A's MRR exceeds model B's on the same queries, with a bootstrap interval
    (chapter 9).

    Queries from one piece are not independent (neighbouring excerpts share most of their
    audio), so the interval resamples whole pieces: each resample draws as many groups as
    there are, with replacement, and takes the difference of the two MRRs over all their
    queries. The interval holds the central 95 % of the resampled differences.

    Parameters
    ----------
    ranks_a, ranks_b : numpy.ndarray
        ``(N,)`` 1-based ranks of the same N queries under the two models.
    groups : numpy.ndarray
        ``(N,)`` the group (piece) of each query.
    n_resamples : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``difference`` (MRR of A minus MRR of B), ``low`` and ``high`` (the 2.5 % and 97.5 %
        quantiles of the resampled differences).
    """
    ranks_a, ranks_b, groups = (np.asarray(a) for a in (ranks_a, ranks_b, groups))
    if not ranks_a.shape == ranks_b.shape == groups.shape or ranks_a.ndim != 1:
        raise ValueError("ranks_a, ranks_b and groups must be 1-d arrays of one length")
    gain = 1.0 / ranks_a - 1.0 / ranks_b
    names, group = np.unique(groups, return_inverse=True)
    total = np.bincount(group, weights=gain, minlength=len(names))
    count = np.bincount(group, minlength=len(names))
    draws = np.random.default_rng(seed).integers(0, len(names), (n_resamples, len(names)))
    resampled = total[draws].sum(axis=1) / count[draws].sum(axis=1)
    low, high = np.quantile(resampled, [0.025, 0.975])
    return {"difference": float(gain.mean()), "low": float(low), "high": float(high)}


# --------------------------------------------------------------------------- piece identification


def snippet_grid(pieces: Sequence[PieceData]) -> tuple[np.ndarray, np.ndarray]:
    """A collection's snippets: one centred on every correspondence of every piece (chapter 9).

    Returns
    -------
    piece_index : numpy.ndarray
        ``(S,) int64``.
    x_px : numpy.ndarray
        ``(S,) float64`` strip x of each snippet's centre.
    """
    piece_index = np.concatenate([np.full(p.n_correspondences, i) for i, p in enumerate(pieces)])
    return piece_index.astype(np.int64), np.concatenate([p.onset_x for p in pieces])


def query_frames(piece: PieceData, n: int = 100) -> np.ndarray:
    """``n`` centre frames spread evenly from a piece's first to its last onset (chapter 9)."""
    return np.round(np.linspace(piece.onset_frame.min(), piece.onset_frame.max(), n)
                    ).astype(np.int64)


def vote(neighbour_piece: np.ndarray, n_pieces: int) -> np.ndarray:
    """Pieces ranked by the votes of their snippets among the neighbours (chapter 9).

    Parameters
    ----------
    neighbour_piece : numpy.ndarray
        ``(Q, k)`` piece of each query's k nearest snippets (all queries of one piece).
    n_pieces : int
        Pieces in the collection.

    Returns
    -------
    numpy.ndarray
        ``(n_pieces,)`` piece indices, most votes first (ties: lower index first).
    """
    votes = np.bincount(np.asarray(neighbour_piece).ravel(), minlength=n_pieces)
    return np.argsort(-votes, kind="stable")


def identify_pieces(model: Embedding, pieces: Sequence[PieceData], n_queries: int = 100,
                    k: int = 25, batch_size: int = 256) -> np.ndarray:
    """Piece identification from audio (chapter 9).

    For each piece, ``n_queries`` excerpts spread over it (:func:`query_frames`) retrieve their
    ``k`` nearest snippets among all snippets of all pieces (:func:`snippet_grid`); each
    neighbour votes for its piece and the pieces are ranked by votes (:func:`vote`).

    Returns
    -------
    numpy.ndarray
        ``(n_pieces,) int64`` the rank (1 = first) of each piece in its own ranking.
    """
    grid_piece, grid_x = snippet_grid(pieces)
    sheet = embed_snippets(model, pieces, grid_piece, grid_x, batch_size)
    ranks = []
    for i, piece in enumerate(pieces):
        frames = query_frames(piece, n_queries)
        audio = embed_excerpts(model, pieces, np.full(len(frames), i), frames, batch_size)
        neighbours, _ = retrieve(audio, sheet, k)
        ranking = vote(grid_piece[neighbours], len(pieces))
        ranks.append(int(np.flatnonzero(ranking == i)[0]) + 1)
    return np.array(ranks, dtype=np.int64)


# --------------------------------------------------------------------------- alignment


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic time warping: the cheapest monotonic path through a cost matrix (chapter 9).

    Steps (1, 0), (0, 1) and (1, 1), each adding the cost of the cell it enters; the path runs
    from ``(0, 0)`` to ``(N-1, M-1)``. Each row of the accumulated cost is computed at once
    (``D[i] = C + cummin(m - C)`` with ``C`` the row's cumulative cost and ``m`` the best
    entry from the row above), so only the rows are a Python loop.

    Parameters
    ----------
    cost : numpy.ndarray
        ``(N, M)`` non-negative local costs (e.g. cosine distances).

    Returns
    -------
    rows, cols : numpy.ndarray
        ``(L,) int64`` the path's cells in order.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or 0 in cost.shape or not np.all(np.isfinite(cost)):
        raise ValueError(f"dtw needs a finite, non-empty (N, M) cost matrix, got shape "
                         f"{cost.shape}")
    n, m = cost.shape
    acc = np.empty((n, m))
    acc[0] = np.cumsum(cost[0])
    for i in range(1, n):
        above = acc[i - 1]
        best = np.concatenate([[above[0]], np.minimum(above[1:], above[:-1])]) + cost[i]
        run = np.cumsum(cost[i])
        acc[i] = run + np.minimum.accumulate(best - run)
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
            i, j = min(steps, key=lambda s: acc[s])
        path.append((i, j))
    rows, cols = np.array(path[::-1], dtype=np.int64).T
    return rows, cols


@dataclass
class Alignment:
    """The offline alignment of one piece (chapter 9).

    Attributes
    ----------
    piece_id : str
    pred_x, true_x : numpy.ndarray
        ``(n_onsets,)`` strip x of every onset by DTW and by the ground truth, px.
    """

    piece_id: str
    pred_x: np.ndarray
    true_x: np.ndarray

    @property
    def errors_px(self) -> np.ndarray:
        """``(n_onsets,)`` absolute errors in px."""
        return np.abs(self.pred_x - self.true_x)


def align(model: Embedding, piece: PieceData, hop_px: int = 10,
          batch_size: int = 256) -> Alignment:
    """Align a piece's audio to its score by DTW in the shared space (chapter 9).

    The audio side is the excerpt centred on every onset; the sheet side the snippets centred
    on ``0, hop_px, 2 hop_px, ...`` along the strip. DTW (:func:`dtw`) over their cosine
    distances maps each onset to one or more snippets; the onset's predicted x is the mean
    centre of those.

    Returns
    -------
    Alignment
        Predicted and true x of every correspondence.
    """
    if hop_px < 1:
        raise ValueError(f"hop_px must be a positive number of px, got {hop_px}")
    centres = np.arange(0, piece.strip.shape[1], hop_px, dtype=np.float64)
    sheet = embed_snippets(model, [piece], np.zeros(len(centres), np.int64), centres, batch_size)
    audio = embed_excerpts(model, [piece], np.zeros(piece.n_correspondences, np.int64),
                           piece.onset_frame, batch_size)
    rows, cols = dtw(1.0 - similarity(audio, sheet).numpy())
    pred = np.bincount(rows, weights=centres[cols], minlength=len(audio)) / np.bincount(rows)
    return Alignment(piece.piece_id, pred, piece.onset_x.astype(np.float64))


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class RetrievalTrainSettings:
    """How to train a retrieval model (chapter 9).

    Attributes
    ----------
    epochs : int
        Epochs in all.
    pairs_per_epoch : int
        Pairs drawn afresh (seeded) for each epoch.
    batch_size : int
        Pairs per mini-batch (> the embedding dimension: the CCA layer needs it).
    lr : float
        Adam's initial learning rate.
    lr_step_epochs : int
        The learning rate is multiplied by ``lr_gamma`` every this many epochs.
    lr_gamma : float
    weight_decay : float
    margin : float
        Margin of the ranking loss.
    valid_pairs : int
        Validation pairs (fixed positions; their two-way MRR picks the best epoch).
    fit_pairs : int
        Training pairs on which the CCA layer's statistics are re-estimated for validation.
    final_fit_pairs : int
        The same for the kept model, once after training.
    seed : int
    threads : int, optional
        ``torch.set_num_threads`` during training.
    device : str, optional
        None for :func:`sheetlab.models.device`.
    progress : bool
    bf16 : bool
        Compute the pathways of the training forward pass in bfloat16 (as
        :class:`sheetlab.training.TrainSettings`); the CCA layer, the loss and the optimiser
        stay in float64 / float32.
    """

    epochs: int = 20
    pairs_per_epoch: int = 10_000
    batch_size: int = 100
    lr: float = 1e-3
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    weight_decay: float = 1e-4
    margin: float = DEFAULT_MARGIN
    valid_pairs: int = 1_000
    fit_pairs: int = 3_000
    final_fit_pairs: int = 20_000
    seed: int = 0
    threads: int | None = None
    device: str | None = None
    progress: bool = True
    bf16: bool = False

    def as_dict(self) -> dict:
        """All settings as plain values."""
        return asdict(self)


def train_retrieval(train_pieces: Sequence[PieceData], valid_pieces: Sequence[PieceData],
                    config: RetrievalConfig, settings: RetrievalTrainSettings,
                    out_path: str | Path, *, command: str | None = None) -> list[dict]:
    """Train the retrieval embedding, validating every epoch and keeping the best (chapter 9).

    Each epoch draws ``pairs_per_epoch`` new positions (seed ``(seed, epoch)``), trains with
    Adam on the ranking loss, re-estimates the CCA statistics on ``fit_pairs`` training pairs
    and computes the two-way retrieval metrics on fixed validation pairs. The model with the
    best mean MRR of both directions is kept at ``out_path``
    (:func:`sheetlab.models.save_checkpoint`); after the last epoch it is reloaded, its CCA
    layer re-estimated on ``final_fit_pairs`` training pairs, and saved again. A JSON card
    (:func:`sheetlab.training.card_path`) records command, data hash, settings, curves and
    metrics.

    Returns
    -------
    list of dict
        One row per epoch: ``epoch``, ``lr``, ``train_loss``, ``valid_mrr`` (mean of both
        directions), ``valid_audio_to_sheet_MRR``, ``valid_sheet_to_audio_MRR``, ... .
    """
    from sheetlab.training import card_path, check_pieces, data_hash, write_card

    if settings.batch_size <= config.embedding_dim and config.cca:
        raise ValueError(f"batch_size must exceed the embedding dimension "
                         f"({config.embedding_dim}) for the CCA layer")
    check_pieces(train_pieces, config, "training")
    check_pieces(valid_pieces, config, "validation")
    out_path = Path(out_path)
    threads_before = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        where = torch.device(settings.device) if settings.device else device()
        torch.manual_seed(settings.seed)
        model = Embedding(config).to(where, memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr,
                                     weight_decay=settings.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, settings.lr_step_epochs,
                                                    settings.lr_gamma)
        digest = data_hash(train_pieces, valid_pieces)
        valid_index, valid_frame = sample_positions(valid_pieces, settings.valid_pairs,
                                                    settings.seed + 1)
        card = {"command": command or shlex.join(sys.argv), "data_hash": digest,
                "n_train_pieces": len(train_pieces), "n_valid_pieces": len(valid_pieces),
                "model": config.as_dict(), "parameters": count_parameters(model),
                "settings": settings.as_dict(), "device": str(where),
                "threads": torch.get_num_threads(), "torch": torch.__version__}
        run: dict = {"history": [], "best": None, "elapsed_s": 0.0}
        for epoch in range(1, settings.epochs + 1):
            start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train_loss = _train_epoch(model, train_pieces, optimizer, settings, epoch)
            fit_cca(model, train_pieces, settings.fit_pairs, seed=settings.seed + 2)
            valid = evaluate_pairs(model, valid_pieces, valid_index, valid_frame)
            scheduler.step()
            row = {"epoch": epoch, "lr": lr, "train_loss": train_loss,
                   "valid_mrr": (valid["audio_to_sheet"]["MRR"]
                                 + valid["sheet_to_audio"]["MRR"]) / 2,
                   **{f"valid_{d}_{k}": v for d, m in valid.items() for k, v in m.items()},
                   "epoch_s": round(time.perf_counter() - start, 1)}
            run["history"].append(row)
            if run["best"] is None or row["valid_mrr"] > run["best"]["valid_mrr"]:
                run["best"] = row
                save_checkpoint(out_path, model, {"best": row, "data_hash": digest,
                                                  "settings": settings.as_dict()})
            run["elapsed_s"] += time.perf_counter() - start
            write_card(card_path(out_path), card, run)
            if settings.progress:
                tqdm.write(f"epoch {epoch:3d}  lr {lr:.0e}  train loss {train_loss:.3f}  "
                           f"valid MRR a->s {row['valid_audio_to_sheet_MRR']:.3f}  "
                           f"s->a {row['valid_sheet_to_audio_MRR']:.3f}  "
                           f"({row['epoch_s']:.0f} s)")
        best = load_embedding(out_path, where)
        final_fit = fit_cca(best, train_pieces, settings.final_fit_pairs, seed=settings.seed + 3)
        final = evaluate_pairs(best, valid_pieces, valid_index, valid_frame)
        card["final_fit_pairs"] = settings.final_fit_pairs
        card["valid_after_final_fit"] = final
        if final_fit is not None:
            card["canonical_correlations"] = [round(float(c), 4) for c in final_fit.corr]
        save_checkpoint(out_path, best, {**best.metadata, "valid_after_final_fit": final})
        card["weights_sha256"] = hashlib.sha256(out_path.read_bytes()).hexdigest()
        write_card(card_path(out_path), card, run)
        return run["history"]
    finally:
        torch.set_num_threads(threads_before)


def _train_epoch(model: Embedding, pieces: Sequence[PieceData], optimizer: torch.optim.Optimizer,
                 settings: RetrievalTrainSettings, epoch: int) -> float:
    """One epoch on freshly drawn pairs; the mean training loss."""
    from sheetlab.training import epoch_seed

    seed = epoch_seed(settings.seed, epoch)
    torch.manual_seed(seed)
    piece_index, frame = sample_positions(pieces, settings.pairs_per_epoch, seed)
    where = model_device(model)
    model.train()
    losses = []
    n_batches = settings.pairs_per_epoch // settings.batch_size
    bar = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, disable=not settings.progress)
    for b in bar:
        sl = slice(b * settings.batch_size, (b + 1) * settings.batch_size)
        sheet, spec = pair_batch(pieces, piece_index[sl], frame[sl], model.config)
        with torch.autocast(where.type, torch.bfloat16, enabled=settings.bf16):
            x, y = model.net(to_device(sheet, where), to_device(spec, where))
        x, y = model.project(x.float(), y.float())
        loss = ranking_loss(x, y, settings.margin)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return float(np.mean(losses))


__all__ = ["CCALayer", "CCAProjections", "Embedding", "RetrievalTrainSettings", "Alignment",
           "align", "cca", "dtw", "embed_excerpts", "embed_snippets", "evaluate_pairs",
           "excerpt_end", "fit_cca", "identify_pieces", "inverse_sqrt", "load_embedding",
           "mrr_difference", "pair_ranks",
           "load_pretrained_embedding", "pair_batch", "position_x", "pretrained_path",
           "pairwise_ranking_loss", "query_frames", "rank_of_match", "ranking_loss",
           "recall_and_mrr", "retrieval_config", "retrieve",
           "retrieval_metrics", "sample_positions", "similarity", "snippet_grid",
           "train_retrieval", "vote"]
