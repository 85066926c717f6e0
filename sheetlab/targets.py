"""Soft targets: the sheet window as B buckets, the B-way soft-max and localisation (chapter 3).

The network does not regress the target's x. As in the talk, the sheet window (``width_px``
wide, :data:`sheetlab.dataset.WINDOW_PX` = 390 px) is quantised into ``B`` equal **buckets**;
bucket ``k`` covers ``[k w, (k + 1) w)`` with ``w = width_px / B`` and has its centre at
``c_k = (k + 1/2) w``. The network has one output per bucket; a **B-way soft-max** turns its
outputs into probabilities ``p_k``, and training minimises the **categorical cross-entropy**
``-sum_k t_k log p_k`` against **soft targets** ``t``: the bucket that holds the note gets
most of the probability and its neighbours share the rest.

Our soft target is a discretised Gaussian: ``t_k`` is proportional to
``exp(-(c_k - x)^2 / (2 (spread w)^2))``, normalised over the ``B`` buckets (so it is cut and
renormalised at the window's edges); ``spread`` is its standard deviation in buckets, and
``spread = 0`` is the hard one-hot target of the bucket that holds ``x``. Because the Gaussian
is centred on ``x`` itself, not on its bucket's centre, the target also tells where in its
bucket the note lies.

At test time the talk's **probability-weighted localisation** reads a position back: take the
most probable bucket ``b*`` and average the centres of ``b* - 1, b*, b* + 1`` weighted by their
probabilities, renormalised to sum to 1 (at the window's edges only the neighbour that exists).

Defaults: :data:`N_BUCKETS` = 39 buckets of 10 px over the 390 px window, and
:data:`SPREAD` = 0.5 buckets (5 px, about a note head's width), which keeps more than 99 % of
the target's mass inside the three buckets the localisation looks at (99.1–99.95 %, depending
on where in its bucket the note lies).

Everything here is vectorised numpy for the chapter; the training loss is torch's
``torch.nn.functional.cross_entropy``, which accepts these soft targets (see
:mod:`sheetlab.training`) and equals :func:`cross_entropy` averaged over the batch.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sheetlab.dataset import WINDOW_PX

N_BUCKETS = 39
"""Buckets per sheet window: 39 buckets of 10 px over the 390 px window (chapter 3)."""

SPREAD = 0.5
"""Standard deviation of the soft target's Gaussian, in buckets (chapter 3)."""


def bucket_width(n_buckets: int = N_BUCKETS, width_px: float = WINDOW_PX) -> float:
    """Width of one bucket in px (chapter 3).

    Parameters
    ----------
    n_buckets : int
        Buckets ``B`` per window.
    width_px : float
        Window width in px.

    Returns
    -------
    float
        ``width_px / n_buckets``.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be at least 1, got {n_buckets}")
    return width_px / n_buckets


def bucket_centres(n_buckets: int = N_BUCKETS, width_px: float = WINDOW_PX) -> np.ndarray:
    """x of every bucket's centre inside the window (chapter 3).

    Parameters
    ----------
    n_buckets : int
        Buckets ``B`` per window.
    width_px : float
        Window width in px.

    Returns
    -------
    numpy.ndarray
        ``(B,) float64`` centres ``(k + 1/2) * width_px / B`` in px.
    """
    return (np.arange(n_buckets) + 0.5) * bucket_width(n_buckets, width_px)


def bucket_of(x_px: ArrayLike, n_buckets: int = N_BUCKETS,
              width_px: float = WINDOW_PX) -> np.ndarray:
    """The bucket that holds a window x (chapter 3).

    Parameters
    ----------
    x_px : float or array_like
        ``(...)`` x inside the window in px; values outside ``[0, width_px)`` go to the
        first or last bucket.
    n_buckets : int
        Buckets ``B`` per window.
    width_px : float
        Window width in px.

    Returns
    -------
    numpy.ndarray
        ``(...) int64`` bucket index ``floor(x / w)`` in ``[0, B - 1]`` (a 0-d array for a
        scalar).
    """
    index = np.floor(np.asarray(x_px, dtype=np.float64) / bucket_width(n_buckets, width_px))
    return np.clip(index, 0, n_buckets - 1).astype(np.int64)


def to_strip(x_px: ArrayLike, left_px: ArrayLike) -> np.ndarray:
    """Window x to strip x, for a window whose left edge is at strip x ``left_px`` (chapter 3).

    Parameters
    ----------
    x_px : float or array_like
        ``(...)`` x inside the window in px (e.g. ``bucket_centres()[b]``).
    left_px : float or array_like
        Strip x of the window's left edge, broadcastable against ``x_px``.

    Returns
    -------
    numpy.ndarray
        ``(...) float64`` strip x in px.
    """
    return np.asarray(x_px, dtype=np.float64) + np.asarray(left_px, dtype=np.float64)


def to_window(x_strip_px: ArrayLike, left_px: ArrayLike) -> np.ndarray:
    """Strip x to window x, the inverse of :func:`to_strip` (chapter 3).

    Parameters
    ----------
    x_strip_px : float or array_like
        ``(...)`` strip x in px.
    left_px : float or array_like
        Strip x of the window's left edge, broadcastable against ``x_strip_px``.

    Returns
    -------
    numpy.ndarray
        ``(...) float64`` x inside the window in px.
    """
    return np.asarray(x_strip_px, dtype=np.float64) - np.asarray(left_px, dtype=np.float64)


def log_softmax(logits: ArrayLike, axis: int = -1) -> np.ndarray:
    """Logarithm of the soft-max, computed stably (chapter 3).

    Parameters
    ----------
    logits : array_like
        ``(..., B)`` network outputs ``y``.
    axis : int
        The bucket axis.

    Returns
    -------
    numpy.ndarray
        ``(..., B) float64`` ``y_b - log sum_k exp(y_k)``.
    """
    y = np.asarray(logits, dtype=np.float64)
    shifted = y - y.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits: ArrayLike, axis: int = -1) -> np.ndarray:
    """The B-way soft-max ``exp(y_b) / sum_k exp(y_k)`` (chapter 3).

    Parameters
    ----------
    logits : array_like
        ``(..., B)`` network outputs.
    axis : int
        The bucket axis.

    Returns
    -------
    numpy.ndarray
        ``(..., B) float64`` probabilities that sum to 1 along ``axis``.
    """
    return np.exp(log_softmax(logits, axis))


def cross_entropy(logits: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Categorical cross-entropy of the soft-max of ``logits`` against ``targets`` (chapter 3).

    ``l_j = -sum_k t_jk log p_jk`` with ``p_j = softmax(y_j)``, as in the talk. Its batch mean
    is what ``torch.nn.functional.cross_entropy(logits, targets)`` computes for soft targets.

    Parameters
    ----------
    logits : array_like
        ``(N, B)`` network outputs.
    targets : array_like
        ``(N, B)`` target distributions (rows sum to 1), e.g. from :func:`soft_targets`.

    Returns
    -------
    numpy.ndarray
        ``(N,) float64`` loss per example, in nats.
    """
    return -(np.asarray(targets, dtype=np.float64) * log_softmax(logits)).sum(axis=-1)


def soft_targets(x_px: ArrayLike, n_buckets: int = N_BUCKETS, width_px: float = WINDOW_PX,
                 spread: float = SPREAD) -> np.ndarray:
    """Soft target distributions over the buckets for targets at window x (chapter 3).

    ``t_k`` is proportional to ``exp(-(c_k - x)^2 / (2 (spread w)^2))`` (``c_k`` the bucket
    centres, ``w`` the bucket width), normalised to sum to 1 over the ``B`` buckets; with
    ``spread = 0`` it is the one-hot vector of :func:`bucket_of` ``(x)``.

    Parameters
    ----------
    x_px : float or array_like
        ``(...)`` target x inside the window in px.
    n_buckets : int
        Buckets ``B`` per window.
    width_px : float
        Window width in px.
    spread : float
        Standard deviation of the Gaussian in buckets (``>= 0``).

    Returns
    -------
    numpy.ndarray
        ``(..., B) float64``; every row sums to 1.
    """
    if spread < 0:
        raise ValueError(f"spread must be >= 0, got {spread}")
    x = np.asarray(x_px, dtype=np.float64)
    if spread == 0:
        return np.eye(n_buckets)[bucket_of(x, n_buckets, width_px)]
    sigma_px = spread * bucket_width(n_buckets, width_px)
    distance = bucket_centres(n_buckets, width_px) - x[..., None]
    return softmax(-0.5 * (distance / sigma_px) ** 2)


def localise(probs: ArrayLike, width_px: float = WINDOW_PX) -> np.ndarray:
    """Probability-weighted localisation: x of the target from bucket probabilities (chapter 3).

    ``x = sum_{k in {b*-1, b*, b*+1}} w_k c_k`` where ``b*`` is the most probable bucket and
    the weights ``w_k = p_k`` are renormalised to sum to 1 over the buckets that exist (at the
    window's edges ``b* - 1`` or ``b* + 1`` is left out).

    Parameters
    ----------
    probs : array_like
        ``(..., B)`` bucket probabilities (e.g. :func:`softmax` of the network's outputs).
    width_px : float
        Window width in px (the number of buckets is ``probs.shape[-1]``).

    Returns
    -------
    numpy.ndarray
        ``(...) float64`` x inside the window in px (a 0-d array for one distribution).
    """
    p = np.asarray(probs, dtype=np.float64)
    n_buckets = p.shape[-1]
    neighbours = p.argmax(axis=-1)[..., None] + np.array([-1, 0, 1])
    exists = (neighbours >= 0) & (neighbours < n_buckets)
    neighbours = np.clip(neighbours, 0, n_buckets - 1)
    weights = np.take_along_axis(p, neighbours, axis=-1) * exists
    centres = bucket_centres(n_buckets, width_px)[neighbours]
    return (weights * centres).sum(axis=-1) / weights.sum(axis=-1)
