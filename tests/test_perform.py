"""Tests of sheetlab.perform (performances and their synthesis) and sheetlab.onsets."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import sheetlab.perform as perform_module
from sheetlab.onsets import detect_onsets, pick_peaks, spectral_flux
from sheetlab.perform import (
    SAMPLE_RATE,
    FluidSynthMissing,
    Note,
    Performance,
    PerformanceSettings,
    SoundFontError,
    available_sound_fonts,
    default_sound_font,
    local_tempo,
    perform,
    render,
    score_to_performed,
    sound_font_path,
    synthesize,
)
from sheetlab.spectrogram import log_spectrogram, time_to_frame

DEBIAN_FONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
LIVELY = PerformanceSettings(tempo_variation=0.15, asynchrony_ms=15.0, velocity_variation=15.0, pedal=True)


def made_up_piece(seconds: float = 20.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A melody with chords in score time: onsets 0.25–0.5 s apart, one to three notes each."""
    rng = np.random.default_rng(seed)
    pitch, onset, duration, t = [], [], [], 0.0
    while t < seconds:
        for p in rng.choice(np.arange(45, 85), size=rng.choice([1, 1, 2, 3]), replace=False):
            pitch.append(p)
            onset.append(t)
            duration.append(rng.uniform(0.15, 0.6))
        t += float(rng.choice([0.25, 0.375, 0.5]))
    return np.array(pitch), np.array(onset), np.array(duration)


def rms(audio: np.ndarray, start_s: float, stop_s: float) -> float:
    return float(np.sqrt(np.mean(audio[int(start_s * SAMPLE_RATE):int(stop_s * SAMPLE_RATE)] ** 2)))


# --- performing ---------------------------------------------------------------------------------

def test_performance_keeps_the_input_order_and_pitches():
    pitch, onset, duration = made_up_piece()
    performance = perform(pitch, onset, duration, LIVELY)
    assert isinstance(performance, Performance)
    assert [n.pitch for n in performance.notes] == pitch.tolist()
    assert performance.onset_s.shape == (len(pitch),)
    assert np.all(performance.onset_s >= 0)
    # the performance follows the score's order of onsets, up to a chord's asynchrony
    assert np.all(np.diff(performance.onset_s[np.argsort(onset, kind="stable")]) > -0.1)


def test_constant_tempo_is_exact():
    pitch, onset, duration = made_up_piece()
    performance = perform(pitch, onset, duration)
    np.testing.assert_array_equal(performance.onset_s, onset)
    restruck = np.array([np.any((pitch == p) & (o < onset) & (onset < o + d))
                         for p, o, d in zip(pitch, onset, duration)])  # cut by the same key
    held = np.array([n.duration_s for n in performance.notes])
    np.testing.assert_allclose(held[~restruck], duration[~restruck])
    assert any(restruck) and np.all(held <= duration + 1e-9)
    assert all(n.velocity == 80 for n in performance.notes) and performance.pedal == ()


def test_tempo_factor_two_halves_the_duration():
    pitch, onset, duration = made_up_piece(10.0)
    slow = perform(pitch, onset, duration)
    fast = perform(pitch, onset, duration, PerformanceSettings(tempo_factor=2.0))
    np.testing.assert_allclose(fast.onset_s, slow.onset_s / 2)
    assert fast.end_s == pytest.approx(slow.end_s / 2)
    assert len(render(fast)) == pytest.approx((slow.end_s / 2 + 1.0) * SAMPLE_RATE, abs=2)


def test_tempo_curve_is_smooth_monotone_and_scales_durations():
    settings = PerformanceSettings(tempo_variation=0.2, tempo_period_s=4.0, seed=5)
    score = np.linspace(0.0, 60.0, 6001)
    performed = score_to_performed(score, settings)
    tempo = local_tempo(score, settings)
    assert performed[0] == 0.0 and np.all(np.diff(performed) > 0)
    assert np.all(tempo > 0) and 0.1 < np.std(np.log(tempo)) < 0.3
    assert np.abs(np.diff(tempo)).max() < 0.01  # smooth at 10 ms resolution
    # a short note lasts its score duration divided by the local tempo
    pitch, onset, duration = np.array([60]), np.array([13.0]), np.array([0.1])
    note = perform(pitch, onset, duration, settings).notes[0]
    assert note.duration_s == pytest.approx(0.1 / local_tempo(np.array([13.05]), settings)[0], rel=1e-3)


def test_asynchrony_moves_chord_notes_only():
    pitch = np.array([60, 64, 67, 72, 62, 65])
    onset = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    duration = np.full(6, 0.5)
    together = perform(pitch, onset, duration)
    apart = perform(pitch, onset, duration, PerformanceSettings(asynchrony_ms=30.0, seed=1))
    assert np.all(apart.onset_s >= 0)
    assert apart.onset_s[3] == 1.0  # a lone note is not moved
    assert len(set(apart.onset_s[4:])) == 2 and np.ptp(apart.onset_s[4:]) < 0.2
    assert len(set(together.onset_s[:3])) == 1


def test_random_streams_are_independent_and_seeded():
    pitch, onset, duration = made_up_piece(10.0)
    base = perform(pitch, onset, duration, LIVELY)
    assert perform(pitch, onset, duration, LIVELY) == base
    other = perform(pitch, onset, duration, replace(LIVELY, asynchrony_ms=5.0))
    assert [n.velocity for n in other.notes] == [n.velocity for n in base.notes]
    assert perform(pitch, onset, duration, replace(LIVELY, seed=1)) != base


def test_velocity_variation_follows_a_loudness_curve():
    pitch, onset, duration = made_up_piece(40.0)
    velocity = np.array([n.velocity for n in perform(pitch, onset, duration, LIVELY).notes])
    assert 8 < velocity.std() < 22 and abs(velocity.mean() - 80) < 10
    assert velocity.min() >= 1 and velocity.max() <= 127


def test_a_key_is_released_before_it_is_struck_again():
    performance = perform(np.array([60, 60]), np.array([0.0, 0.5]), np.array([2.0, 0.5]))
    assert performance.notes[0].duration_s == pytest.approx(0.5)


def test_pedal_changes_regularly_and_lengthens_the_decay():
    pitch, onset, duration = np.array([60, 64]), np.array([0.0, 1.5]), np.array([0.3, 0.3])
    dry = perform(pitch, onset, duration)
    wet = perform(pitch, onset, duration, PerformanceSettings(pedal=True))
    assert wet.pedal == ((0.1, 1.8),)
    assert rms(render(wet), 0.6, 1.4) > 3 * rms(render(dry), 0.6, 1.4)
    intervals = perform(*made_up_piece(), LIVELY).pedal
    assert len(intervals) >= 9 and all(d < u <= d2 for (d, u), (d2, _) in zip(intervals, intervals[1:]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one length"):
        perform(np.array([60, 62]), np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="duration_s > 0"):
        perform(np.array([60]), np.array([0.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="tempo_factor"):
        PerformanceSettings(tempo_factor=0.0)
    with pytest.raises(ValueError, match="velocity"):
        PerformanceSettings(velocity=0)


def test_settings_are_hashable_and_serialisable():
    assert hash(LIVELY) == hash(replace(LIVELY)) and LIVELY.as_dict()["asynchrony_ms"] == 15.0


# --- synthesis -------------------------------------------------------------------------------

def test_rendering_is_byte_identical():
    performance = perform(*made_up_piece(10.0), LIVELY)
    assert render(performance).tobytes() == render(performance).tobytes()


def test_velocity_changes_loudness():
    pitch, onset, duration = made_up_piece(5.0)
    soft = render(perform(pitch, onset, duration, PerformanceSettings(velocity=40)))
    loud = render(perform(pitch, onset, duration, PerformanceSettings(velocity=110)))
    assert rms(loud, 0, 5) > 2 * rms(soft, 0, 5)


def test_no_pedal_leaves_synthesis_unchanged():
    notes = [Note(60, 0.0, 0.3), Note(67, 0.5, 0.3, 100)]
    assert synthesize(notes).tobytes() == synthesize(notes, pedal=[]).tobytes()
    with pytest.raises(ValueError, match="pedal"):
        synthesize(notes, pedal=[(1.0, 0.5)])


def test_sound_fonts():
    fonts = available_sound_fonts()
    assert fonts["TimGM6mb"] == default_sound_font() == sound_font_path()
    with pytest.raises(SoundFontError, match="'Steinway'.*TimGM6mb"):
        render(Performance((Note(60, 0.0, 0.5),), (), PerformanceSettings(sound_font="Steinway")))
    with pytest.raises(SoundFontError, match="nowhere/font.sf2"):
        synthesize([Note(60, 0.0, 0.5)], sound_font="/nowhere/font.sf2")


def test_a_system_font_never_takes_the_default_name(tmp_path, monkeypatch):
    (tmp_path / "TimGM6mb.sf2").write_bytes(b"RIFF another build of the font")
    monkeypatch.setattr(perform_module, "_SYSTEM_SOUND_FONT_DIRS", (tmp_path,))
    fonts = available_sound_fonts()
    assert fonts["TimGM6mb"] == default_sound_font() == sound_font_path()
    assert fonts["TimGM6mb (system)"] == tmp_path / "TimGM6mb.sf2"


@pytest.mark.skipif(not DEBIAN_FONT.is_file(), reason="Debian's fluid-soundfont-gm is not installed")
def test_debian_fonts_are_listed_and_sound_different():
    assert available_sound_fonts()["FluidR3_GM"] == DEBIAN_FONT
    notes = [Note(60, 0.0, 0.5)]
    assert not np.array_equal(synthesize(notes), synthesize(notes, sound_font="FluidR3_GM"))


def test_missing_fluidsynth_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # makes `import fluidsynth` fail
    with pytest.raises(FluidSynthMissing, match="apt-get install libfluidsynth3"):
        synthesize([Note(60, 0.0, 0.5)])


# --- onsets: the performance sounds where it says ----------------------------------------------

def test_performed_onsets_match_onsets_in_the_audio():
    performance = perform(*made_up_piece(30.0, seed=2), LIVELY)
    flux = spectral_flux(log_spectrogram(render(performance)))
    detected = pick_peaks(flux)
    performed = time_to_frame(performance.onset_s)
    matched = np.abs(performed[:, None] - detected[None, :]).min(axis=1) <= 1
    genuine = np.abs(detected[:, None] - performed[None, :]).min(axis=1) <= 1
    assert matched.mean() >= 0.95, f"only {matched.mean():.1%} of notes within ±1 frame of an onset"
    assert genuine.mean() >= 0.95, f"only {genuine.mean():.1%} of detected onsets are notes"


def test_peak_picking_and_flux_on_made_up_signals():
    spec = np.zeros((3, 10), np.float32)
    spec[:, 4:] = 1.0
    flux = spectral_flux(spec)
    assert flux.shape == (10,) and flux[4] == 3.0 and flux.sum() == 3.0
    activation = np.zeros(100)
    activation[[10, 11, 50]] = [1.0, 0.9, 0.5]
    assert pick_peaks(activation).tolist() == [10, 50]
    assert pick_peaks(np.zeros(5)).size == 0
    onsets = detect_onsets(synthesize([Note(60, 0.5, 0.3), Note(72, 1.5, 0.3)]))
    np.testing.assert_allclose(onsets, [0.5, 1.5], atol=1.5 / 31.25)
