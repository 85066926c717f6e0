"""Dataset tests: correspondences, the cache (keys, atomic writes, determinism) and snippets."""

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sheetlab.cache import remove_partial_files
from sheetlab.corpus import Score
from sheetlab.dataset import (Condition, SnippetDataset, build_piece, cache_key, cache_path,
                              correspondences, load_piece, read_piece, save_piece,
                              sheet_window, spectrogram_excerpt)
from sheetlab.engrave import EngraveSettings
from sheetlab.perform import PerformanceSettings
from sheetlab.spectrogram import SpectrogramSettings
from test_engrave import MONO, PIANO

MONO_SCORE = Score("test/mono", MONO, "musicxml", "mono", "mono.musicxml")
PIANO_SCORE = Score("test/piano", PIANO, "musicxml", "piano", "piano.musicxml")


@pytest.fixture(scope="module")
def mono_data():
    return build_piece(MONO_SCORE)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_simultaneous_notes_share_one_correspondence():
    score_s = np.array([0.0, 0.5, 0.5, 1.0])
    performed = np.array([0.0, 0.52, 0.49, 1.1])
    x = np.array([10.0, 20.0, 22.0, 40.0])
    frames, xs = correspondences(score_s, performed, x, fps=100.0)
    np.testing.assert_array_equal(frames, [0, 49, 110])  # the chord: its first sound, 0.49 s
    np.testing.assert_allclose(xs, [10.0, 21.0, 40.0])


def test_piece_data_is_consistent(mono_data):
    d = mono_data
    assert d.spec.shape[0] == 136 and d.spec.dtype == np.float32
    assert d.strip.shape[0] == 40 and d.strip.dtype == np.uint8
    # nine distinct onsets (the chord C5+E5 is one), in score order, frames and x increasing
    assert d.n_correspondences == 9
    assert np.all(np.diff(d.onset_frame) > 0) and np.all(np.diff(d.onset_x) > 0)
    assert d.onset_frame[-1] < d.spec.shape[1]
    assert d.duration_s == pytest.approx(d.spec.shape[1] / 31.25, abs=0.05)


def test_same_settings_give_byte_identical_cache_files(tmp_path, monkeypatch):
    monkeypatch.setenv("SHEETLAB_DATA", str(tmp_path))
    load_piece(PIANO_SCORE)
    first = digest(cache_path(PIANO_SCORE))
    cache_path(PIANO_SCORE).unlink()
    script = ("from sheetlab.dataset import load_piece\nfrom test_dataset import PIANO_SCORE\n"
              "load_piece(PIANO_SCORE)\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    assert digest(cache_path(PIANO_SCORE)) == first
    data = read_piece(cache_path(PIANO_SCORE))
    assert data.key == cache_key(PIANO_SCORE, Condition())


def changed_settings():
    """One changed value for every field of every settings class of a condition."""
    for part, default in [("engrave", EngraveSettings()), ("performance", PerformanceSettings()),
                          ("spectrogram", SpectrogramSettings())]:
        for f in dataclasses.fields(default):
            value = getattr(default, f.name)
            new = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v * 1.5 + 0.1,
                   str: lambda v: {"auto": "none", "TimGM6mb": "FluidR3_GM"}.get(v, v + "x")}[type(value)](value)
            yield part, f.name, dataclasses.replace(default, **{f.name: new})


@pytest.mark.parametrize("part, name, settings", list(changed_settings()),
                         ids=[f"{p}.{n}" for p, n, _ in changed_settings()])
def test_cache_key_changes_with_every_setting(part, name, settings):
    base = cache_key(MONO_SCORE, Condition())
    assert cache_key(MONO_SCORE, dataclasses.replace(Condition(), **{part: settings})) != base


def test_cache_key_changes_with_the_score():
    other = dataclasses.replace(MONO_SCORE, data=MONO.replace("<octave>4", "<octave>3", 1))
    assert cache_key(other, Condition()) != cache_key(MONO_SCORE, Condition())


def test_an_interrupted_write_leaves_nothing(tmp_path, mono_data, monkeypatch):
    path = tmp_path / "pieces" / "x.npz"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # after the temporary file is written, before the rename

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_piece(mono_data, path)
    assert list(path.parent.iterdir()) == []


def test_a_killed_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    """SIGKILL between writing the file and renaming it into place: no entry exists, the
    partial file is never read, the next build removes it and builds the entry."""
    script = textwrap.dedent("""
        import os, time
        from sheetlab.dataset import load_piece
        from test_dataset import MONO_SCORE
        def stalled_rename(src, dst):
            print("written", flush=True)
            time.sleep(60)
        os.replace = stalled_rename
        load_piece(MONO_SCORE)
    """)
    env = dict(os.environ, SHEETLAB_DATA=str(tmp_path), PYTHONPATH=os.path.dirname(__file__))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    monkeypatch.setenv("SHEETLAB_DATA", str(tmp_path))
    assert not cache_path(MONO_SCORE).exists()
    assert len(list((tmp_path / "pieces").glob(".partial-*"))) == 1
    assert remove_partial_files(tmp_path / "pieces") == 1
    data = load_piece(MONO_SCORE)
    assert read_piece(cache_path(MONO_SCORE)).n_correspondences == data.n_correspondences


def test_a_corrupt_cache_file_is_reported_by_name(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        read_piece(bad)


def test_windows_and_excerpts_pad_at_the_edges():
    strip = np.zeros((4, 10), np.uint8)
    window = sheet_window(strip, -3, 8)
    assert window.shape == (4, 8)
    assert np.all(window[:, :3] == 255) and np.all(window[:, 3:] == 0)
    assert np.all(sheet_window(strip, 8, 5)[:, 2:] == 255)
    spec = np.arange(12, dtype=np.float32).reshape(2, 6)
    excerpt = spectrogram_excerpt(spec, 2, 5)
    np.testing.assert_array_equal(excerpt[0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(spectrogram_excerpt(spec, 5, 3)[1], [9, 10, 11])


def test_snippets_show_the_target_note_head(mono_data):
    ds = SnippetDataset([mono_data, mono_data], seed=3)
    assert len(ds) == 2 * mono_data.n_correspondences
    for i in range(len(ds)):
        sheet, spec, target = ds[i]
        assert sheet.shape == (1, 40, 390) and spec.shape == (1, 136, 40)
        assert 20 <= float(target) <= 370
        column = int(float(target))
        # the head is ink around the target x (a few px wide at 4 px per staff space)
        assert float(sheet[0, :, column - 2:column + 3].max()) > 0.5
        # the excerpt ends at the onset frame: its last frame is the spectrogram's onset frame
        k = i % mono_data.n_correspondences
        frame = mono_data.onset_frame[k]
        np.testing.assert_array_equal(spec[0, :, -1].numpy(), mono_data.spec[:, frame])


def test_snippets_are_deterministic_and_vary_by_epoch(mono_data):
    a, b = SnippetDataset([mono_data], seed=1), SnippetDataset([mono_data], seed=1)
    assert all(torch.equal(a[i][0], b[i][0]) and a[i][2] == b[i][2] for i in range(len(a)))
    before = [float(a[i][2]) for i in range(len(a))]
    a.set_epoch(1)
    assert [float(a[i][2]) for i in range(len(a))] != before
    centred = SnippetDataset([mono_data], random_offset=False)
    assert all(float(centred[i][2]) == pytest.approx(195.0, abs=1.0) for i in range(len(centred)))


def test_lagged_excerpts_end_after_the_onset_and_before_the_next(mono_data):
    lag = 12
    ds = SnippetDataset([mono_data], seed=2, lag_frames=lag)
    plain = SnippetDataset([mono_data], seed=2)
    frames = mono_data.onset_frame
    lags = []
    for i in range(len(ds)):
        sheet, spec, target = ds[i]
        same_sheet, _, same_target = plain[i]
        assert torch.equal(sheet, same_sheet) and target == same_target  # windows unchanged
        end = frames[i] + ds.lag(i)
        assert 0 <= ds.lag(i) <= lag
        if i + 1 < len(frames):
            assert end < frames[i + 1] or ds.lag(i) == 0  # the target stays the newest onset
        np.testing.assert_array_equal(spec[0].numpy(), spectrogram_excerpt(mono_data.spec, end))
        lags.append(ds.lag(i))
    assert len(set(lags)) > 3  # the lags vary
    assert 0.3 < np.mean(np.array(lags) == 0) < 0.7  # about half end at the onset
    assert all(plain.lag(i) == 0 for i in range(len(plain)))
    again = SnippetDataset([mono_data], seed=2, lag_frames=lag)
    assert [again.lag(i) for i in range(len(again))] == lags
    with pytest.raises(ValueError, match="lag_frames"):
        SnippetDataset([mono_data], lag_frames=-1)
