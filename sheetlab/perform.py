"""Turning notes into sound: FluidSynth synthesis of note lists (chapter 1).

Audio is rendered by FluidSynth (through ``pyfluidsynth``) with a General MIDI sound font: by
default the ``TimGM6mb.sf2`` that ``pretty_midi`` ships; Debian's GM fonts are used when named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

SAMPLE_RATE = 22050
"""Audio sample rate of the whole book, in Hz."""

RELEASE_S = 1.0
"""Seconds rendered after the last note-off, so that decays are not cut."""

SYNTH_GAIN = 0.8
"""FluidSynth master gain: loud enough for a single note to use the 16-bit range, with headroom
for chords (FluidSynth's own default, 0.2, renders a piano note at about -30 dBFS)."""

_SYSTEM_SOUND_FONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("/usr/share/soundfonts"))


class FluidSynthMissing(RuntimeError):
    """The FluidSynth C library (behind ``pyfluidsynth``) cannot be loaded."""


class SoundFontError(ValueError):
    """A sound font file is missing or FluidSynth cannot load it."""


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
        Duration in seconds (> 0).
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


def default_sound_font() -> Path:
    """The General MIDI sound font that ``pretty_midi`` ships (``TimGM6mb.sf2``).

    Returns
    -------
    pathlib.Path
        Path of the ``.sf2`` file.
    """
    import pretty_midi

    return Path(pretty_midi.__file__).with_name("TimGM6mb.sf2")


def available_sound_fonts() -> dict[str, Path]:
    """Every GM sound font found on this machine, by name (file stem).

    The default font is always present; Debian packages such as ``fluid-soundfont-gm`` or
    ``musescore-general-soundfont-small`` add more (chapter 11 uses them for timbre variety).

    Returns
    -------
    dict of str to pathlib.Path
        Sorted by name, real files only (symbolic links to the same file are listed once).
    """
    fonts = {default_sound_font().stem: default_sound_font()}
    seen = {default_sound_font().resolve()}
    for folder in _SYSTEM_SOUND_FONT_DIRS:
        for path in sorted(folder.glob("*.sf[23]")) if folder.is_dir() else ():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                fonts[path.stem] = path
    return dict(sorted(fonts.items()))


def _fluidsynth_module():
    """Import ``fluidsynth``, turning a missing C library into an error that says what to do."""
    try:
        import fluidsynth
    except (ImportError, OSError) as err:
        raise FluidSynthMissing(
            "The FluidSynth library is not installed, so sheetlab cannot synthesise audio "
            f"({err}). Install it with 'sudo apt-get install libfluidsynth3' (Debian/Ubuntu), "
            "'conda install -c conda-forge fluidsynth' or 'brew install fluid-synth'."
        ) from err
    return fluidsynth


def _note_events(notes: Iterable[Note]) -> list[tuple[float, int, int, int]]:
    """(time_s, order, pitch, velocity) events, note-offs (order 0) before note-ons at equal times."""
    events = []
    for note in notes:
        events.append((note.onset_s, 1, note.pitch, note.velocity))
        events.append((note.onset_s + note.duration_s, 0, note.pitch, 0))
    return sorted(events)


def synthesize(
    notes: Iterable[Note],
    sr: int = SAMPLE_RATE,
    program: int = 0,
    sound_font: str | Path | None = None,
) -> np.ndarray:
    """Render notes to a mono waveform with FluidSynth (chapter 1).

    Parameters
    ----------
    notes : iterable of Note
        The notes; any order.
    sr : int
        Sample rate in Hz.
    program : int
        General MIDI program, 0–127 (0 is the acoustic grand piano).
    sound_font : str or Path, optional
        A ``.sf2`` file; default :func:`default_sound_font`.

    Returns
    -------
    numpy.ndarray
        ``(n_samples,) float32`` in [-1, 1], lasting until the last note-off plus
        :data:`RELEASE_S`. Not normalised: velocities keep their loudness.

    Raises
    ------
    FluidSynthMissing
        When the FluidSynth library is not installed (the message says how to install it).
    SoundFontError
        When the sound font is missing or cannot be loaded.
    """
    if not 0 <= program <= 127:
        raise ValueError(f"General MIDI program must be in 0..127, got {program}")
    font = Path(sound_font) if sound_font is not None else default_sound_font()
    if not font.is_file():
        raise SoundFontError(f"{font}: sound font file not found")
    fluidsynth = _fluidsynth_module()
    synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=float(sr))
    try:
        font_id = synth.sfload(str(font))
        if font_id == -1:
            raise SoundFontError(f"{font}: FluidSynth cannot load this sound font")
        synth.program_select(0, font_id, 0, program)
        chunks, done = [], 0
        events = _note_events(notes)
        for time_s, is_on, pitch, velocity in events:
            target = int(round(time_s * sr))
            if target > done:
                chunks.append(synth.get_samples(target - done))
                done = target
            if is_on:
                synth.noteon(0, pitch, velocity)
            else:
                synth.noteoff(0, pitch)
        chunks.append(synth.get_samples(int(round(RELEASE_S * sr))))
    finally:
        synth.delete()
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2)
    return (stereo.mean(axis=1) / 32768.0).astype(np.float32)
