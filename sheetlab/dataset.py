"""Audio–sheet correspondences: per-piece data, its cache, and the training snippets (chapter 2).

For every piece and *rendering condition* (engraving, performance and spectrogram settings)
this module computes, once, everything later chapters learn from:

* the unrolled score (:func:`sheetlab.engrave.unroll`) and every note head's strip x;
* the performance (:func:`sheetlab.perform.perform`), its audio and its log spectrogram;
* the **correspondences**: one per distinct score onset, pairing the spectrogram frame of the
  onset (the earliest sounded note of a chord) with the strip x of its note heads (their mean:
  simultaneous notes share one target).

The result is cached under ``SHEETLAB_DATA`` (default ``~/.cache/sheetlab``), one file per
piece and condition, named by a hash of the score text and every setting, and written
atomically (a temporary file renamed into place): an interrupted build leaves no partial
entry, and the same settings give byte-identical files.

:class:`SnippetDataset` turns cached pieces into training examples as in the talk: a sheet
window that contains the target note (at a random, seeded horizontal offset), the
spectrogram excerpt that *ends* at the onset frame (the target is the rightmost onset;
40 frames = 1.28 s of context), and the target's x inside the window.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sheetlab.cache import write_atomically
from sheetlab.engrave import EngraveSettings, engrave, unroll
from sheetlab.perform import PerformanceSettings, perform, render
from sheetlab.settings import data_dir
from sheetlab.spectrogram import SpectrogramSettings, log_spectrogram, time_to_frame

if TYPE_CHECKING:
    from sheetlab.corpus import Score

CACHE_VERSION = 1
"""Bumped whenever the content of cache files changes meaning; part of every cache key."""

CONTEXT_FRAMES = 40
"""Spectrogram frames of audio context per example (1.28 s at 31.25 fps; the talk: ~1.2 s)."""

WINDOW_PX = 390
"""Width of the sheet window in strip px (the talk's 40 × 390 sheet input)."""

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamp inside cache files: byte-identical output


@dataclass(frozen=True)
class Condition:
    """A rendering condition: every setting that changes a piece's data (chapter 2).

    Attributes
    ----------
    engrave : EngraveSettings
        Page layout and raster resolutions.
    performance : PerformanceSettings
        Tempo, timing, dynamics, pedal, instrument and seed of the performance.
    spectrogram : SpectrogramSettings
        The audio representation.
    """

    engrave: EngraveSettings = field(default_factory=EngraveSettings)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    spectrogram: SpectrogramSettings = field(default_factory=SpectrogramSettings)

    def as_dict(self) -> dict:
        """All settings as nested plain dicts (JSON-serialisable)."""
        return {f.name: getattr(self, f.name).as_dict() for f in fields(self)}


def cache_key(score: Score, condition: Condition) -> str:
    """The hash that names a piece's cache file: score text, every setting, cache version.

    Parameters
    ----------
    score : sheetlab.corpus.Score
        The score (its ``sha256`` covers the score text).
    condition : Condition
        The rendering condition.

    Returns
    -------
    str
        64 hexadecimal digits (SHA-256).
    """
    blob = json.dumps({"version": CACHE_VERSION, "score": score.sha256,
                       "condition": condition.as_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class PieceData:
    """Everything the models learn from, for one piece under one condition (chapter 2).

    Attributes
    ----------
    piece_id : str
        The score's id.
    key : str
        Its cache key (:func:`cache_key`).
    spec : numpy.ndarray
        ``(n_bands, n_frames) float32`` log spectrogram of the performance.
    strip : numpy.ndarray
        ``(H, W) uint8`` unrolled score, 255 = white.
    system_x : numpy.ndarray
        ``(n_systems + 1,) int64`` strip x where each system starts, and the strip width.
    note_x : numpy.ndarray
        ``(n_notes,) float64`` strip x of every note head (engraving order).
    note_score_s : numpy.ndarray
        ``(n_notes,) float64`` score onset of every note, in seconds at the score tempo.
    note_onset_s : numpy.ndarray
        ``(n_notes,) float64`` performed onset of every note, in seconds.
    note_pitch : numpy.ndarray
        ``(n_notes,) int32`` MIDI pitch of every note.
    onset_frame : numpy.ndarray
        ``(n_onsets,) int64`` spectrogram frame of each correspondence.
    onset_x : numpy.ndarray
        ``(n_onsets,) float64`` strip x of each correspondence.
    n_pages : int
        Pages of the engraving.
    duration_s : float
        Length of the performance audio in seconds.
    """

    piece_id: str
    key: str
    spec: np.ndarray
    strip: np.ndarray
    system_x: np.ndarray
    note_x: np.ndarray
    note_score_s: np.ndarray
    note_onset_s: np.ndarray
    note_pitch: np.ndarray
    onset_frame: np.ndarray
    onset_x: np.ndarray
    n_pages: int
    duration_s: float

    @property
    def n_correspondences(self) -> int:
        """Number of (onset frame, strip x) pairs."""
        return len(self.onset_frame)


def correspondences(score_onset_s: np.ndarray, performed_onset_s: np.ndarray,
                    note_x: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair onsets with note heads: one correspondence per distinct score onset (chapter 2).

    Notes that start together in the score (a chord, or the voices of a grand staff) form one
    correspondence: its frame is that of the earliest performed onset among them (the first
    sound of the chord), its x the mean strip x of their heads.

    Parameters
    ----------
    score_onset_s : numpy.ndarray
        ``(n_notes,)`` score onsets in seconds (equal for simultaneous notes).
    performed_onset_s : numpy.ndarray
        ``(n_notes,)`` performed onsets in seconds.
    note_x : numpy.ndarray
        ``(n_notes,)`` strip x of the heads in px.
    fps : float
        Spectrogram frame rate.

    Returns
    -------
    frames : numpy.ndarray
        ``(n_onsets,) int64`` frame of each correspondence, in score order.
    x : numpy.ndarray
        ``(n_onsets,) float64`` strip x of each correspondence.
    """
    onsets, group = np.unique(np.asarray(score_onset_s), return_inverse=True)
    first_sound = np.full(len(onsets), np.inf)
    np.minimum.at(first_sound, group, np.asarray(performed_onset_s, dtype=float))
    x = np.bincount(group, weights=note_x, minlength=len(onsets)) / np.bincount(group)
    return time_to_frame(first_sound, fps), x


def build_piece(score: Score, condition: Condition = Condition()) -> PieceData:
    """Engrave, unroll, perform, synthesise and analyse one score (chapter 2).

    Parameters
    ----------
    score : sheetlab.corpus.Score
        The score.
    condition : Condition
        Rendering condition.

    Returns
    -------
    PieceData
        The piece's data (not cached; see :func:`load_piece`).
    """
    engraving = engrave(score, condition.engrave)
    strip = unroll(engraving)
    notes = engraving.notes
    performance = perform(notes["pitch"], notes["onset_s"], notes["duration_s"],
                          condition.performance)
    spec_settings = condition.spectrogram
    audio = render(performance, spec_settings.sr)
    spec = log_spectrogram(audio, spec_settings.sr, spec_settings.frame_size, spec_settings.fps,
                           spec_settings.bands_per_octave, spec_settings.fmin_hz,
                           spec_settings.fmax_hz)
    frames, x = correspondences(notes["onset_s"], performance.onset_s, strip.note_x,
                                spec_settings.fps)
    return PieceData(
        piece_id=score.id, key=cache_key(score, condition), spec=spec, strip=strip.image,
        system_x=strip.system_x, note_x=strip.note_x, note_score_s=notes["onset_s"].copy(),
        note_onset_s=np.asarray(performance.onset_s, dtype=np.float64),
        note_pitch=notes["pitch"].astype(np.int32), onset_frame=frames, onset_x=x,
        n_pages=len(engraving.pages), duration_s=len(audio) / spec_settings.sr,
    )


def cache_path(score: Score, condition: Condition = Condition()) -> Path:
    """Where the cache file of a piece under a condition lives (chapter 2).

    Returns
    -------
    pathlib.Path
        ``SHEETLAB_DATA/pieces/<piece id with '/' as '__'>-<key[:24]>.npz``.
    """
    safe_id = score.id.replace("/", "__")
    return data_dir() / "pieces" / f"{safe_id}-{cache_key(score, condition)[:24]}.npz"


def save_piece(data: PieceData, path: Path) -> None:
    """Write a piece's data atomically, byte-identically for identical data (chapter 2).

    The arrays go into an ``.npz`` (a zip of ``.npy`` files) with a fixed timestamp, written
    to a temporary file in the same directory and renamed into place, so a reader never sees
    a partial file and an interrupted write leaves none.

    Parameters
    ----------
    data : PieceData
        The data to write.
    path : pathlib.Path
        The destination (its directory is created).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in fields(data):
            array = io.BytesIO()
            np.save(array, np.asarray(getattr(data, f.name)), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{f.name}.npy", _ZIP_DATE), array.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)
    write_atomically(path, buffer.getvalue())


def read_piece(path: Path) -> PieceData:
    """Read a piece's data written by :func:`save_piece` (chapter 2).

    Raises
    ------
    ValueError
        The file is not a complete cache file (the message names it).
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            values = {f.name: npz[f.name] for f in fields(PieceData)}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable sheetlab cache file ({err})") from err
    for name in ("piece_id", "key"):
        values[name] = str(values[name])
    values["n_pages"] = int(values["n_pages"])
    values["duration_s"] = float(values["duration_s"])
    return PieceData(**values)


def load_piece(score: Score, condition: Condition = Condition(), *, build: bool = True) -> PieceData:
    """A piece's data from the cache, built and cached first when missing (chapter 2).

    Parameters
    ----------
    score : sheetlab.corpus.Score
        The score.
    condition : Condition
        Rendering condition.
    build : bool
        Build a missing entry (else raise ``FileNotFoundError``).

    Returns
    -------
    PieceData
        The piece's data.
    """
    path = cache_path(score, condition)
    if path.exists():
        return read_piece(path)
    if not build:
        raise FileNotFoundError(f"{path}: no cached data for {score.id} (run 'sheetlab data build')")
    data = build_piece(score, condition)
    save_piece(data, path)
    return data


def sheet_window(strip: np.ndarray, left_px: int, width_px: int = WINDOW_PX) -> np.ndarray:
    """Cut a window from the strip, padding with white beyond its ends (chapter 2).

    Parameters
    ----------
    strip : numpy.ndarray
        ``(H, W) uint8`` unrolled score, 255 = white.
    left_px : int
        Strip x of the window's left edge (may be negative or reach past the end).
    width_px : int
        Window width in px.

    Returns
    -------
    numpy.ndarray
        ``(H, width_px) uint8``.
    """
    height, width = strip.shape
    window = np.full((height, width_px), 255, dtype=np.uint8)
    lo, hi = max(left_px, 0), min(left_px + width_px, width)
    if hi > lo:
        window[:, lo - left_px:hi - left_px] = strip[:, lo:hi]
    return window


def spectrogram_excerpt(spec: np.ndarray, end_frame: int,
                        n_frames: int = CONTEXT_FRAMES) -> np.ndarray:
    """The ``n_frames`` frames that end at ``end_frame`` (inclusive), zero-padded before 0
    (chapter 2).

    Parameters
    ----------
    spec : numpy.ndarray
        ``(n_bands, T) float32`` spectrogram.
    end_frame : int
        Last frame of the excerpt: the target onset's frame.
    n_frames : int
        Excerpt length in frames.

    Returns
    -------
    numpy.ndarray
        ``(n_bands, n_frames) float32``.
    """
    excerpt = np.zeros((spec.shape[0], n_frames), dtype=np.float32)
    lo = end_frame + 1 - n_frames
    part = spec[:, max(lo, 0):end_frame + 1]
    excerpt[:, excerpt.shape[1] - part.shape[1]:] = part
    return excerpt


class SnippetDataset(Dataset):
    """Training examples: (sheet window, spectrogram excerpt, target x) per correspondence
    (chapters 2 and 4).

    Each example is one correspondence of one piece. The window is ``width_px`` wide and as
    tall as the strip; the target lies at a random offset inside it, at least ``margin_px``
    from either edge, drawn from a generator seeded by ``(seed, epoch, index)``: the same
    settings always give the same examples, and :meth:`set_epoch` gives a new, equally
    reproducible draw per epoch. With ``random_offset=False`` the target sits in the middle.

    The excerpt ends at the correspondence's onset frame (the talk's examples). With
    ``lag_frames > 0`` half of the examples (drawn from the same generator) end instead a
    random number of frames after it, from 1 up to ``lag_frames`` but never at or past the
    next correspondence's frame: the target is still the newest onset, now heard for a while.
    A follower asks the network at every frame, and at most frames the newest onset lies some
    frames back (chapter 5); the other half keeps the network practised on the onset frames,
    where the localisation of chapter 4 is measured.

    Parameters
    ----------
    pieces : sequence of PieceData
        The pieces (for instance from :func:`load_piece`).
    width_px : int
        Window width in strip px.
    context_frames : int
        Spectrogram frames per excerpt.
    margin_px : int
        Smallest distance of the target from the window's edges.
    random_offset : bool
        Draw the target's position in the window (else: centred).
    seed : int
        Seed of the offsets.
    lag_frames : int
        Largest number of frames an excerpt may end after its onset (0: at the onset).

    Examples yield ``(sheet, spec, target_x)``: ``sheet (1, H, width_px) float32`` ink in
    [0, 1] (1 = black), ``spec (1, n_bands, context_frames) float32`` and ``target_x``, a
    float32 scalar: the target's x in the window in px.
    """

    def __init__(self, pieces: Sequence[PieceData], width_px: int = WINDOW_PX,
                 context_frames: int = CONTEXT_FRAMES, margin_px: int = 20,
                 random_offset: bool = True, seed: int = 0, lag_frames: int = 0) -> None:
        if not pieces:
            raise ValueError("SnippetDataset needs at least one piece")
        if not 0 <= margin_px < width_px / 2:
            raise ValueError(f"margin_px must be in [0, width_px / 2), got {margin_px}")
        if lag_frames < 0:
            raise ValueError(f"lag_frames must be >= 0, got {lag_frames}")
        self.pieces = list(pieces)
        self.width_px, self.context_frames, self.margin_px = width_px, context_frames, margin_px
        self.random_offset, self.seed, self.epoch = random_offset, seed, 0
        self.lag_frames = lag_frames
        counts = [p.n_correspondences for p in self.pieces]
        self._piece = np.repeat(np.arange(len(counts)), counts)
        self._onset = np.concatenate([np.arange(c) for c in counts])
        # the largest lag of each example: up to lag_frames, short of the next onset's frame
        room = [np.append(np.diff(p.onset_frame) - 1, lag_frames) for p in self.pieces]
        self._max_lag = np.clip(np.concatenate(room), 0, lag_frames)

    def __len__(self) -> int:
        return len(self._piece)

    def set_epoch(self, epoch: int) -> None:
        """Select the random offsets of an epoch."""
        self.epoch = epoch

    def offset(self, index: int) -> float:
        """x of the target inside the window of example ``index``, in px."""
        return self._draw(index)[0]

    def lag(self, index: int) -> int:
        """Frames between the onset of example ``index`` and the end of its excerpt."""
        return self._draw(index)[1]

    def _draw(self, index: int) -> tuple[float, int]:
        """The example's seeded random choices: the target's x in the window, the lag."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        offset = (float(rng.uniform(self.margin_px, self.width_px - self.margin_px))
                  if self.random_offset else self.width_px / 2)
        lag = 0
        if self.lag_frames and rng.random() < 0.5 and self._max_lag[index] > 0:
            lag = int(rng.integers(1, self._max_lag[index] + 1))
        return offset, lag

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        piece = self.pieces[self._piece[index]]
        k = self._onset[index]
        target = piece.onset_x[k]
        offset, lag = self._draw(index)
        left = int(np.floor(target - offset))
        window = sheet_window(piece.strip, left, self.width_px)
        end = min(int(piece.onset_frame[k]) + lag, piece.spec.shape[1] - 1)
        excerpt = spectrogram_excerpt(piece.spec, end, self.context_frames)
        sheet = (255 - window[None].astype(np.float32)) / 255.0
        return (torch.from_numpy(sheet), torch.from_numpy(excerpt[None]),
                torch.tensor(target - left, dtype=torch.float32))
