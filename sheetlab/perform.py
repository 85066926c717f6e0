"""From notes to a performance to sound: timing, dynamics, pedal and FluidSynth (chapters 1, 2, 11).

A score gives every note a pitch, an onset and a duration in *score time* (seconds at the
score's tempo, from verovio's timemap). :func:`perform` turns it into a *performance*, the way a
player would deviate from it:

- **tempo**: a global factor and a smooth random tempo curve that maps score time to performed
  time monotonically (:func:`score_to_performed`, :func:`local_tempo`);
- **asynchrony**: the notes of a chord are not struck together;
- **dynamics**: a smooth loudness curve plus a little per-note jitter on the MIDI velocity;
- **sustain pedal**: pressed and changed at regular intervals (:func:`pedal_intervals`);

and records each note's *performed* onset: the ground truth of every audio–sheet
correspondence. :func:`render` synthesises the performance with FluidSynth (through
``pyfluidsynth``) and a General MIDI sound font: by default the ``TimGM6mb.sf2`` that
``pretty_midi`` ships; Debian's GM fonts when installed (:func:`available_sound_fonts`).
Every random choice comes from ``PerformanceSettings.seed``: the same notes and settings give
byte-identical audio.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

SAMPLE_RATE = 22050
"""Audio sample rate of the whole book, in Hz."""

RELEASE_S = 1.0
"""Seconds rendered after the last note-off (or pedal release), so that decays are not cut."""

SYNTH_GAIN = 0.8
"""FluidSynth master gain: loud enough for a single note to use the 16-bit range, with headroom
for chords (FluidSynth's own default, 0.2, renders a piano note at about -30 dBFS)."""

DEFAULT_SOUND_FONT = "TimGM6mb"
"""Name of the default sound font: the General MIDI font that ``pretty_midi`` ships."""

PEDAL_PERIOD_S = 2.0
"""Score seconds between sustain-pedal changes (about one 4/4 bar at 120 beats per minute)."""

PEDAL_LIFT_S = 0.1
"""Seconds the pedal stays up at a change, after the new notes are struck (legato pedalling)."""

_SYSTEM_SOUND_FONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))
_CURVE_SINES = 8  # sinusoids summed into one smooth random curve
_CURVE_STEP_S = 0.005  # grid on which the tempo curve is integrated, in score seconds
_SUSTAIN_CC = 64  # MIDI controller number of the sustain (damper) pedal
_MIN_DURATION_S = 1e-3  # shortest key press, for notes that asynchrony pushes past their end
# independent random streams, so that changing one setting leaves the other draws alone
_TEMPO_STREAM, _LOUDNESS_STREAM, _JITTER_STREAM, _ASYNCHRONY_STREAM = 1, 2, 3, 4


class FluidSynthMissing(RuntimeError):
    """The FluidSynth C library (behind ``pyfluidsynth``) cannot be loaded."""


class SoundFontError(ValueError):
    """A sound font is unknown, its file is missing, or FluidSynth cannot load it."""


@dataclass(frozen=True)
class Note:
    """One note to be played.

    Attributes
    ----------
    pitch : int
        MIDI pitch, 0–127 (60 is middle C).
    onset_s : float
        Onset time in seconds.
    duration_s : float
        Duration in seconds (> 0): the time the key is held down.
    velocity : int
        MIDI velocity, 1–127.
    """

    pitch: int
    onset_s: float
    duration_s: float
    velocity: int = 80

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"MIDI pitch must be in 0..127, got {self.pitch}")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"MIDI velocity must be in 1..127, got {self.velocity}")
        if self.onset_s < 0 or self.duration_s <= 0:
            raise ValueError(f"need onset_s >= 0 and duration_s > 0, got {self.onset_s}, {self.duration_s}")


@dataclass(frozen=True)
class PerformanceSettings:
    """Every setting that changes a performance's audio (chapter 11); hashable, for cache keys.

    Attributes
    ----------
    tempo_factor : float
        Global tempo relative to the score's (> 0); 2 plays twice as fast.
    tempo_variation : float
        Depth of the smooth random tempo curve: the standard deviation of the log local tempo
        (about the relative deviation: 0.1 is ±10 %); 0 keeps the tempo constant.
    tempo_period_s : float
        Time scale, in score seconds, of the tempo curve and of the loudness curve (about a
        phrase): their fluctuations last about this long.
    asynchrony_ms : float
        Standard deviation, in milliseconds, of each chord note's onset offset; 0 strikes the
        notes of a chord together. Lone notes are never moved.
    velocity : int
        Mean MIDI velocity, 1–127.
    velocity_variation : float
        Standard deviation of the velocity, in MIDI velocity steps: three quarters of the
        variance follow the smooth loudness curve (dynamics), one quarter is per-note jitter.
    pedal : bool
        Hold the sustain pedal, changing it every :data:`PEDAL_PERIOD_S` score seconds.
    program : int
        General MIDI program, 0–127 (0 is the acoustic grand piano).
    sound_font : str
        A name from :func:`available_sound_fonts` (or the path of a ``.sf2`` file).
    seed : int
        Seed of every random choice.
    """

    tempo_factor: float = 1.0
    tempo_variation: float = 0.0
    tempo_period_s: float = 8.0
    asynchrony_ms: float = 0.0
    velocity: int = 80
    velocity_variation: float = 0.0
    pedal: bool = False
    program: int = 0
    sound_font: str = DEFAULT_SOUND_FONT
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tempo_factor <= 0 or self.tempo_period_s <= 0:
            raise ValueError(f"need tempo_factor > 0 and tempo_period_s > 0, "
                             f"got {self.tempo_factor}, {self.tempo_period_s}")
        if min(self.tempo_variation, self.asynchrony_ms, self.velocity_variation) < 0:
            raise ValueError("tempo_variation, asynchrony_ms and velocity_variation must be >= 0")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"MIDI velocity must be in 1..127, got {self.velocity}")
        if not 0 <= self.program <= 127:
            raise ValueError(f"General MIDI program must be in 0..127, got {self.program}")

    def as_dict(self) -> dict:
        """The settings as a plain dict (JSON-serialisable, for cache keys)."""
        return asdict(self)


@dataclass(frozen=True)
class Performance:
    """A performed score: the notes as played, the pedal, and the settings that made them.

    Attributes
    ----------
    notes : tuple of Note
        The performed notes, in the order of the score's note arrays.
    pedal : tuple of (float, float)
        Sustain-pedal intervals ``(down_s, up_s)`` in performed seconds, increasing.
    settings : PerformanceSettings
        The settings it was performed with (program and sound font are used by :func:`render`).
    """

    notes: tuple[Note, ...]
    pedal: tuple[tuple[float, float], ...]
    settings: PerformanceSettings

    @property
    def onset_s(self) -> np.ndarray:
        """``(n_notes,) float64``: the performed (sounded) onset of each score note, in seconds."""
        return np.array([note.onset_s for note in self.notes], dtype=np.float64)

    @property
    def end_s(self) -> float:
        """Seconds until the last key or pedal release (the audio lasts :data:`RELEASE_S` longer)."""
        return max([n.onset_s + n.duration_s for n in self.notes] + [up for _, up in self.pedal], default=0.0)


def default_sound_font() -> Path:
    """The General MIDI sound font that ``pretty_midi`` ships (``TimGM6mb.sf2``).

    Returns
    -------
    pathlib.Path
        Path of the ``.sf2`` file.
    """
    # located, not imported: importing pretty_midi loads FluidSynth (and prints under $CI)
    package = importlib.util.find_spec("pretty_midi")
    if package is None or package.origin is None:
        raise SoundFontError("pretty_midi is not installed, so its default sound font is missing")
    return Path(package.origin).with_name(DEFAULT_SOUND_FONT + ".sf2")


def available_sound_fonts() -> dict[str, Path]:
    """Every GM sound font found on this machine, by name (file stem) (chapter 11).

    The default font is always present; Debian packages such as ``fluid-soundfont-gm`` or
    ``musescore-general-soundfont-small`` add more (chapter 11 uses them for timbre variety).

    Returns
    -------
    dict of str to pathlib.Path
        Sorted by name, real files only (symbolic links to the same file are listed once).
        A system font whose name is taken (Debian's ``timgm6mb-soundfont`` is another build
        of the default font) is listed as ``"<name> (system)"``, so that the default name
        always means the same file, whatever the machine has installed.
    """
    fonts = {default_sound_font().stem: default_sound_font()}
    seen = {default_sound_font().resolve()}
    for folder in _SYSTEM_SOUND_FONT_DIRS:
        for path in sorted(folder.glob("*.sf[23]")) if folder.is_dir() else ():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                fonts[path.stem if path.stem not in fonts else f"{path.stem} (system)"] = path
    return dict(sorted(fonts.items()))


def sound_font_path(sound_font: str | Path | None = None) -> Path:
    """The file of a sound font given by name or path (chapter 11).

    Parameters
    ----------
    sound_font : str or Path, optional
        A name from :func:`available_sound_fonts`, or a path (a :class:`~pathlib.Path`, or a
        string ending in ``.sf2`` / ``.sf3``); default :data:`DEFAULT_SOUND_FONT`.

    Returns
    -------
    pathlib.Path
        An existing ``.sf2`` / ``.sf3`` file.

    Raises
    ------
    SoundFontError
        For an unknown name (the message lists the available ones) or a missing file.
    """
    if isinstance(sound_font, Path) or str(sound_font).lower().endswith((".sf2", ".sf3")):
        path = Path(sound_font)
        if not path.is_file():
            raise SoundFontError(f"{path}: sound font file not found")
        return path
    fonts = available_sound_fonts()
    name = DEFAULT_SOUND_FONT if sound_font is None else sound_font
    if name not in fonts:
        raise SoundFontError(f"unknown sound font {name!r}; available: {', '.join(fonts)} "
                             "(or give the path of a .sf2 file)")
    return fonts[name]


def _fluidsynth_module():
    """Import ``fluidsynth``, turning a missing C library into an error that says what to do."""
    try:
        # pyfluidsynth prints where it found the library whenever $CI is set: keep stdout clean
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth
    except (ImportError, OSError) as err:
        raise FluidSynthMissing(
            "The FluidSynth library is not installed, so sheetlab cannot synthesise audio "
            f"({err}). Install it with 'sudo apt-get install libfluidsynth3' (Debian/Ubuntu), "
            "'conda install -c conda-forge fluidsynth' or 'brew install fluid-synth'."
        ) from err
    return fluidsynth


def _events(notes: Iterable[Note], pedal: Iterable[tuple[float, float]]) -> list[tuple[float, int, int, int]]:
    """``(time_s, kind, number, value)`` events in time order.

    ``kind`` 0 is a note-off, 1 a sustain-pedal change (``value`` 127 down, 0 up), 2 a note-on;
    at equal times note-offs come first and note-ons last.
    """
    events = []
    for note in notes:
        events.append((note.onset_s, 2, note.pitch, note.velocity))
        events.append((note.onset_s + note.duration_s, 0, note.pitch, 0))
    for down_s, up_s in pedal:
        if not 0 <= down_s < up_s:
            raise ValueError(f"a pedal interval needs 0 <= down_s < up_s, got ({down_s}, {up_s})")
        events += [(down_s, 1, _SUSTAIN_CC, 127), (up_s, 1, _SUSTAIN_CC, 0)]
    return sorted(events)


def synthesize(
    notes: Iterable[Note],
    sr: int = SAMPLE_RATE,
    program: int = 0,
    sound_font: str | Path | None = None,
    pedal: Iterable[tuple[float, float]] = (),
) -> np.ndarray:
    """Render notes to a mono waveform with FluidSynth (chapter 1; the pedal in chapter 11).

    Parameters
    ----------
    notes : iterable of Note
        The notes; any order.
    sr : int
        Sample rate in Hz.
    program : int
        General MIDI program, 0–127 (0 is the acoustic grand piano).
    sound_font : str or Path, optional
        A sound font name or file (see :func:`sound_font_path`); default :func:`default_sound_font`.
    pedal : iterable of (float, float)
        Sustain-pedal intervals ``(down_s, up_s)`` in seconds, sent as MIDI controller 64
        (127 down, 0 up); none by default.

    Returns
    -------
    numpy.ndarray
        ``(n_samples,) float32`` in [-1, 1], lasting until the last note-off or pedal release
        plus :data:`RELEASE_S`. Not normalised: velocities keep their loudness.

    Raises
    ------
    FluidSynthMissing
        When the FluidSynth library is not installed (the message says how to install it).
    SoundFontError
        When the sound font is unknown, missing or cannot be loaded.
    """
    if not 0 <= program <= 127:
        raise ValueError(f"General MIDI program must be in 0..127, got {program}")
    font = sound_font_path(sound_font)
    events = _events(notes, pedal)
    fluidsynth = _fluidsynth_module()
    synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(sr))
    try:
        font_id = synth.sfload(str(font))
        if font_id == -1:
            raise SoundFontError(f"{font}: FluidSynth cannot load this sound font")
        synth.program_select(0, font_id, 0, program)
        chunks, done = [], 0
        for time_s, kind, number, value in events:
            target = int(round(time_s * sr))
            if target > done:
                chunks.append(synth.get_samples(target - done))
                done = target
            if kind == 2:
                synth.noteon(0, number, value)
            elif kind == 1:
                synth.cc(0, number, value)
            else:
                synth.noteoff(0, number)
        chunks.append(synth.get_samples(int(round(RELEASE_S * sr))))
    finally:
        synth.delete()
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2)
    return (stereo.mean(axis=1) / 32768.0).astype(np.float32)


def smooth_curve(time_s: np.ndarray, period_s: float, seed: int, stream: int) -> np.ndarray:
    """A smooth random curve with mean 0 and standard deviation 1 (chapter 11).

    A sum of eight sinusoids with random phases and random periods between
    ``period_s / 1.5`` and ``period_s / 0.5``; the same seed and stream give the same curve.

    Parameters
    ----------
    time_s : numpy.ndarray
        ``(n,)`` times in seconds.
    period_s : float
        Time scale of the fluctuations, in seconds.
    seed, stream : int
        Select the random curve.

    Returns
    -------
    numpy.ndarray
        ``(n,) float64`` curve values (standard deviation 1 over time, on average over seeds).
    """
    rng = np.random.default_rng([seed, stream])
    freqs_hz = rng.uniform(0.5, 1.5, _CURVE_SINES) / period_s
    phases = rng.uniform(0.0, 2 * np.pi, _CURVE_SINES)
    angles = 2 * np.pi * np.asarray(time_s, dtype=np.float64)[..., None] * freqs_hz + phases
    return np.sqrt(2.0 / _CURVE_SINES) * np.cos(angles).sum(axis=-1)


def local_tempo(score_s: np.ndarray, settings: PerformanceSettings) -> np.ndarray:
    """Performed tempo relative to the score's, at given score times (chapter 11).

    ``tempo_factor * exp(tempo_variation * c(t))`` with ``c`` the settings' smooth random
    curve (:func:`smooth_curve`): always positive, so performed time runs forward.

    Parameters
    ----------
    score_s : numpy.ndarray
        ``(n,)`` score times in seconds.
    settings : PerformanceSettings
        Tempo factor, variation, period and seed.

    Returns
    -------
    numpy.ndarray
        ``(n,) float64``: 1 is the score's tempo, 2 twice as fast.
    """
    curve = smooth_curve(score_s, settings.tempo_period_s, settings.seed, _TEMPO_STREAM)
    return settings.tempo_factor * np.exp(settings.tempo_variation * curve)


def score_to_performed(score_s: np.ndarray, settings: PerformanceSettings) -> np.ndarray:
    """Map score time to performed time through the tempo curve (chapter 11).

    Performed time is the integral of ``1 / local_tempo`` from score time 0, so it starts at 0
    and increases strictly; at a constant tempo it is ``score_s / tempo_factor`` exactly.

    Parameters
    ----------
    score_s : numpy.ndarray
        ``(n,)`` score times in seconds, >= 0.
    settings : PerformanceSettings
        Tempo factor, variation, period and seed.

    Returns
    -------
    numpy.ndarray
        ``(n,) float64`` performed times in seconds.
    """
    score_s = np.asarray(score_s, dtype=np.float64)
    if settings.tempo_variation == 0 or score_s.size == 0:
        return score_s / settings.tempo_factor
    grid = np.arange(0.0, score_s.max() + 2 * _CURVE_STEP_S, _CURVE_STEP_S)
    rate = 1.0 / local_tempo(grid, settings)
    performed = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * _CURVE_STEP_S)])
    return np.interp(score_s, grid, performed)


def _chord_offsets_s(onset_s: np.ndarray, settings: PerformanceSettings) -> np.ndarray:
    """``(n,)`` onset offsets in seconds: Gaussian for notes that share a score onset, else 0."""
    offsets = np.random.default_rng([settings.seed, _ASYNCHRONY_STREAM]).normal(
        0.0, settings.asynchrony_ms / 1000.0, len(onset_s))
    _, group, size = np.unique(onset_s, return_inverse=True, return_counts=True)
    return np.where(size[group] > 1, offsets, 0.0)


def _velocities(onset_s: np.ndarray, settings: PerformanceSettings) -> np.ndarray:
    """``(n,) int64`` MIDI velocities: mean, smooth loudness curve and per-note jitter, in 1..127."""
    curve = smooth_curve(onset_s, settings.tempo_period_s, settings.seed, _LOUDNESS_STREAM)
    jitter = np.random.default_rng([settings.seed, _JITTER_STREAM]).standard_normal(len(onset_s))
    deviation = settings.velocity_variation * (np.sqrt(0.75) * curve + np.sqrt(0.25) * jitter)
    return np.clip(np.round(settings.velocity + deviation), 1, 127).astype(np.int64)


def _release_before_restrike(pitch: np.ndarray, onset_s: np.ndarray, end_s: np.ndarray) -> np.ndarray:
    """``(n,)`` key releases, cut where the same key is struck again before the note ends."""
    end_s = end_s.copy()
    for p in np.unique(pitch):
        idx = np.flatnonzero(pitch == p)
        later = np.sort(onset_s[idx])
        nxt = np.searchsorted(later, onset_s[idx], side="right")
        restrike = np.where(nxt < len(later), later[np.minimum(nxt, len(later) - 1)], np.inf)
        end_s[idx] = np.minimum(end_s[idx], restrike)
    return end_s


def pedal_intervals(score_onset_s: np.ndarray, performed_onset_s: np.ndarray,
                    performed_end_s: float) -> list[tuple[float, float]]:
    """Sustain pedal of a performance: legato pedalling every :data:`PEDAL_PERIOD_S` (chapter 11).

    The pedal changes at the first chord of every :data:`PEDAL_PERIOD_S` of score time (about a
    bar): it comes up as that chord sounds, clearing the previous harmony, and goes down again
    :data:`PEDAL_LIFT_S` later, sustaining the new one. It is released with the last key.

    Parameters
    ----------
    score_onset_s : numpy.ndarray
        ``(n,)`` score onsets in seconds.
    performed_onset_s : numpy.ndarray
        ``(n,)`` performed onsets of the same notes, in seconds.
    performed_end_s : float
        Performed time of the last key release, in seconds.

    Returns
    -------
    list of (float, float)
        ``(down_s, up_s)`` intervals in performed seconds, increasing and disjoint.
    """
    onsets, group = np.unique(score_onset_s, return_inverse=True)
    first_sound = np.full(len(onsets), np.inf)
    np.minimum.at(first_sound, group, performed_onset_s)
    bar = np.floor(onsets / PEDAL_PERIOD_S)
    changes = first_sound[np.diff(bar, prepend=-1.0) > 0]  # first chord of every period
    downs = changes + PEDAL_LIFT_S
    ups = np.append(changes[1:], performed_end_s)
    return [(float(d), float(u)) for d, u in zip(downs, ups) if d < u]


def _check_notes(pitch: np.ndarray, onset_s: np.ndarray, duration_s: np.ndarray) -> None:
    """Raise ValueError unless the score's note arrays are parallel, 1-D and valid."""
    shapes = {pitch.shape, onset_s.shape, duration_s.shape}
    if len(shapes) > 1 or pitch.ndim != 1:
        raise ValueError(f"pitch, onset_s and duration_s must be 1-D arrays of one length, got shapes "
                         f"{pitch.shape}, {onset_s.shape}, {duration_s.shape}")
    if len(pitch) and (pitch.min() < 0 or pitch.max() > 127):
        raise ValueError(f"MIDI pitches must be in 0..127, got {pitch.min()}..{pitch.max()}")
    if not (np.all(np.isfinite(onset_s)) and np.all(onset_s >= 0) and np.all(duration_s > 0)):
        raise ValueError("need finite onset_s >= 0 and duration_s > 0 for every note")


def perform(
    pitch: np.ndarray,
    onset_s: np.ndarray,
    duration_s: np.ndarray,
    settings: PerformanceSettings = PerformanceSettings(),
) -> Performance:
    """Perform a score: tempo curve, asynchrony, dynamics and pedal (chapters 2 and 11).

    Each note's score onset and end go through the tempo map (:func:`score_to_performed`), so
    durations scale with the local tempo; the notes of a chord (equal score onsets) are then
    moved by independent offsets of standard deviation ``asynchrony_ms``, never before 0 s;
    velocities follow :func:`smooth_curve` plus jitter; a key is released before it is struck
    again; with ``pedal`` the sustain pedal follows :func:`pedal_intervals`. Deterministic: the
    same arrays and settings give the same performance.

    Parameters
    ----------
    pitch : numpy.ndarray
        ``(n,) int`` MIDI pitches.
    onset_s : numpy.ndarray
        ``(n,) float`` score onsets in seconds (score tempo); a chord's notes share one exactly.
    duration_s : numpy.ndarray
        ``(n,) float`` score durations in seconds, > 0.
    settings : PerformanceSettings
        How to play it.

    Returns
    -------
    Performance
        The performed notes in the input order; ``performance.onset_s`` is the ``(n,)`` array
        of performed (sounded) onsets in seconds.
    """
    pitch = np.asarray(pitch)
    onset_s = np.asarray(onset_s, dtype=np.float64)
    duration_s = np.asarray(duration_s, dtype=np.float64)
    _check_notes(pitch, onset_s, duration_s)
    start = score_to_performed(onset_s, settings)
    end = score_to_performed(onset_s + duration_s, settings)
    shift = _chord_offsets_s(onset_s, settings)
    start, end = np.maximum(start + shift, 0.0), end + shift
    end = _release_before_restrike(pitch, start, np.maximum(end, start + _MIN_DURATION_S))
    velocity = _velocities(onset_s, settings)
    notes = tuple(Note(int(p), float(s), float(e - s), int(v))
                  for p, s, e, v in zip(pitch, start, end, velocity))
    pedal = pedal_intervals(onset_s, start, float(end.max(initial=0.0))) if settings.pedal else []
    return Performance(notes, tuple(pedal), settings)


def render(performance: Performance, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesise a performance, pedal included, with its program and sound font (chapters 2, 11).

    Parameters
    ----------
    performance : Performance
        From :func:`perform`.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        ``(n_samples,) float32`` in [-1, 1] (see :func:`synthesize`).
    """
    settings = performance.settings
    return synthesize(performance.notes, sr, settings.program, settings.sound_font, performance.pedal)
