"""Recurrent follower tests: the untrained model is the frame-wise follower, following step by
step equals the batched forward over the same windows, the state carries information, the
training windows and targets by hand, a short real training run, checkpoints and bad input."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

import sheetlab.recurrent as recurrent
from sheetlab.dataset import build_piece, sheet_window, spectrogram_excerpt
from sheetlab.following import ANCHOR, follow, sounding_frames, window_grid
from sheetlab.models import save_checkpoint
from sheetlab.recurrent import (RecurrentFollower, RecurrentSettings,
                                follower_windows, load_recurrent, piece_sequence, save_recurrent,
                                sequence_inputs, train_recurrent, true_positions)
from sheetlab.targets import localise, softmax
from test_following import CONDITION, LONG_SCORE, one_thread, random_network  # noqa: F401


@pytest.fixture(scope="module")
def piece():
    return build_piece(LONG_SCORE, CONDITION)


@pytest.fixture(scope="module")
def base(piece):
    return random_network(piece).eval()


@pytest.fixture(scope="module")
def sequence(base, piece):
    return piece_sequence(base, piece)


def stirred(model: RecurrentFollower, seed: int = 0) -> RecurrentFollower:
    """Give the zero-initialised correction random weights, so that the state matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.correction.weight.copy_(torch.randn(model.correction.weight.shape,
                                                  generator=generator) * 3)
    return model


def test_untrained_model_is_the_frame_wise_follower(base, piece, one_thread):
    torch.manual_seed(0)
    model = RecurrentFollower(base, hidden_units=8)
    ours = recurrent.follow(model, piece)
    theirs = follow(base, piece)
    assert len(np.unique(theirs.window_left)) > 5  # the window did move
    np.testing.assert_array_equal(ours.window_left, theirs.window_left)
    np.testing.assert_allclose(ours.frame_x, theirs.frame_x, rtol=0, atol=1e-3)


def test_frame_wise_logits_are_the_networks(base, piece, sequence):
    model = RecurrentFollower(base, hidden_units=8)
    grid = sequence.grid
    picks = np.arange(0, len(sequence.frames), 37)[:20]
    windows = picks % len(grid)
    every = np.zeros(len(sequence.frames), dtype=np.int64)
    every[picks] = windows
    pre, _, _ = sequence_inputs(sequence, every)
    sheet = torch.stack([torch.from_numpy(
        (255 - sheet_window(piece.strip, int(grid[i]))[None].astype(np.float32)) / 255)
        for i in windows])
    spec = torch.stack([torch.from_numpy(
        spectrogram_excerpt(piece.spec, int(sequence.frames[k]))[None]) for k in picks])
    with torch.no_grad():
        ours = model.frame_wise(torch.from_numpy(pre[picks])).numpy()
        expected = base(sheet, spec).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_stepping_equals_the_batched_forward_over_the_same_windows(base, piece, sequence,
                                                                   one_thread):
    model = stirred(RecurrentFollower(base, hidden_units=8)).eval()
    result = recurrent.follow(model, piece, sequence=sequence)
    lefts = result.window_left[sequence.frames]
    windows = np.searchsorted(sequence.grid, lefts)
    pre, shift, _ = sequence_inputs(sequence, windows)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(pre)[None], torch.from_numpy(shift)[None])
    x = sequence.grid[windows] + localise(softmax(logits[0].numpy()), 390)
    np.testing.assert_allclose(result.frame_x[sequence.frames], x, rtol=0, atol=1e-2)
    assert np.any(shift != 0)  # the window moved, so the shift input was exercised


def test_the_state_carries_the_past(base, sequence):
    model = stirred(RecurrentFollower(base, hidden_units=8)).eval()
    windows = np.full(len(sequence.frames), 3)
    pre, shift, _ = sequence_inputs(sequence, windows)
    pre, shift = torch.from_numpy(pre)[None], torch.from_numpy(shift)[None]
    with torch.no_grad():
        whole, _ = model(pre[:, :60], shift[:, :60])
        tail, _ = model(pre[:, 30:60], shift[:, 30:60])
        _, state = model(pre[:, :30], shift[:, :30])
        resumed, _ = model(pre[:, 30:60], shift[:, 30:60], state)
    assert not torch.allclose(whole[:, 30:], tail, atol=1e-3)  # a fresh state answers otherwise
    torch.testing.assert_close(whole[:, 30:], resumed)  # the carried state gives the same


def test_true_positions_are_the_newest_correspondence(piece):
    frames = np.array([0, piece.onset_frame[0], piece.onset_frame[1] - 1, piece.onset_frame[1],
                       piece.onset_frame[-1] + 100])
    x = true_positions(piece, frames)
    assert x.tolist() == [piece.onset_x[0], piece.onset_x[0], piece.onset_x[0],
                          piece.onset_x[1], piece.onset_x[-1]]


def test_follower_windows_keep_the_target_in_the_window(sequence):
    rng = np.random.default_rng(0)
    windows = follower_windows(sequence, rng, error_px=100.0, segment_frames=20.0)
    _, shift, target_x = sequence_inputs(sequence, windows)
    inside = (sequence.grid[windows] > 0) & (sequence.grid[windows] < sequence.grid[-1])
    anchor = ANCHOR * 390
    assert np.all(np.abs(target_x[inside] - anchor) <= 100.0 + 15.0 + 1e-9)
    assert np.all((target_x >= 0) & (target_x < 390))
    assert np.std(target_x[inside]) > 30  # errors are drawn, not zero
    np.testing.assert_array_equal(windows, follower_windows(
        sequence, np.random.default_rng(0), 100.0, 20.0))
    assert not np.array_equal(windows, follower_windows(
        sequence, np.random.default_rng(1), 100.0, 20.0))
    assert shift[0] == 0
    np.testing.assert_allclose(shift[1:], np.diff(sequence.grid[windows]) / 10.0)


def test_sequence_holds_the_sounding_frames(base, piece, sequence):
    sounding = sounding_frames(piece.spec)
    np.testing.assert_array_equal(sequence.frames, np.flatnonzero(sounding))
    np.testing.assert_array_equal(sequence.grid, window_grid(piece.strip.shape[1]))
    assert sequence.spec_part.shape == (sounding.sum(), base.config.head_units)
    assert sequence.row[sequence.frames].tolist() == list(range(len(sequence.frames)))
    assert sequence.onset.sum() == len(np.intersect1d(sequence.frames, piece.onset_frame))


def test_training_improves_and_writes_checkpoint_and_card(base, piece, tmp_path, one_thread):
    base_path = tmp_path / "base.pt"
    save_checkpoint(base_path, base)
    out = tmp_path / "rnn.pt"
    settings = RecurrentSettings(hidden_units=16, epochs=3, chunk_frames=32, lr=3e-3,
                                 segment_frames=30.0, progress=False)
    history = train_recurrent(base_path, [piece], [piece], settings, out, command="test")
    card = json.loads(out.with_suffix(".json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert card["command"] == "test" and card["epochs_done"] == 3
    before = card["before_training"]
    assert before["valid_within_one_bucket"] == before["valid_frame_wise_within_one_bucket"]
    assert history[-1]["valid_loss"] < before["valid_loss"]  # it learned something
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    best = max(history, key=lambda r: (r["valid_tracking_ratio"], r["valid_within_one_bucket"]))
    assert card["best"] == best
    loaded = load_recurrent(out)
    assert loaded.metadata["best"] == best
    assert not loaded.training and not loaded.base.training
    again = train_recurrent(base_path, [piece], [piece], dataclasses.replace(settings, epochs=1),
                            tmp_path / "again.pt", command="test")
    assert again == history[:1]  # seeded: the same numbers


def test_checkpoint_round_trip_and_its_errors(base, sequence, tmp_path):
    base_path = tmp_path / "base.pt"
    save_checkpoint(base_path, base)
    model = stirred(RecurrentFollower(base, hidden_units=8))
    save_recurrent(tmp_path / "rnn.pt", model, base_path, {"note": 1})
    loaded = load_recurrent(tmp_path / "rnn.pt")
    pre, shift, _ = sequence_inputs(sequence, np.zeros(len(sequence.frames), dtype=np.int64))
    with torch.no_grad():
        args = torch.from_numpy(pre[:50])[None], torch.from_numpy(shift[:50])[None]
        torch.testing.assert_close(model.eval()(*args)[0], loaded(*args)[0])
    assert loaded.metadata == {"note": 1}
    assert not any(k.startswith("base.") for k in torch.load(tmp_path / "rnn.pt")["state"])

    other = copy.deepcopy(base)  # other base weights: one weight changed
    with torch.no_grad():
        other.head_layers[0].weight[0, 0] += 1.0
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(ValueError, match="other base weights"):
        load_recurrent(tmp_path / "rnn.pt", tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a recurrent checkpoint"):
        load_recurrent(base_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_recurrent(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_recurrent(tmp_path / "missing.pt")
    base_path.unlink()
    with pytest.raises(FileNotFoundError, match="base.pt"):
        load_recurrent(tmp_path / "rnn.pt")


def test_training_refuses_pieces_of_another_height(base, piece, tmp_path):
    base_path = tmp_path / "base.pt"
    save_checkpoint(base_path, base)
    squashed = dataclasses.replace(piece, piece_id="squashed", strip=piece.strip[:40])
    with pytest.raises(ValueError, match="squashed"):
        train_recurrent(base_path, [squashed], [piece], RecurrentSettings(progress=False),
                        tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("field, value", [("hidden_units", 0), ("epochs", 0),
                                          ("chunk_frames", 0), ("error_px", 115.0),
                                          ("error_px", -1.0), ("segment_frames", 0.5)])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        RecurrentSettings(**{field: value})



def test_gru_step_is_torchs_gru():
    torch.manual_seed(0)
    gru = torch.nn.GRU(5, 3, batch_first=True)
    x, h = torch.randn(4, 1, 5), torch.randn(1, 4, 3)
    _, expected = gru(x, h)
    weights = [getattr(gru, f"{name}_l0").detach().numpy()
               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    ours = recurrent.gru_step(x[:, 0].numpy(), h[0].numpy(), *weights)
    np.testing.assert_allclose(ours, expected[0].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_cli_trains_and_records_the_command(base, piece, tmp_path, capsys, monkeypatch,
                                            one_thread):
    import sheetlab.training
    from sheetlab.cli import main

    monkeypatch.setattr(sheetlab.training, "load_pieces", lambda chosen, **kwargs: [piece])
    base_path, out = tmp_path / "base.pt", tmp_path / "rnn.pt"
    save_checkpoint(base_path, base)
    code = main(["train-recurrent", "--kind", "piano", "--base", str(base_path), "--epochs", "1",
                 "--hidden-units", "8", "--subset", "all", "--train-limit", "1", "--out",
                 str(out), "--threads", "1"])
    assert code == 0 and f"model {out}" in capsys.readouterr().out
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["command"].startswith(f"sheetlab train-recurrent --kind piano --base {base_path} "
                                      "--epochs 1 --hidden-units 8 ")
    assert f"--subset all --train-limit 1 --out {out} --threads 1 --seed 0" in card["command"]
    assert load_recurrent(out).hidden_units == 8
    assert main(["train-recurrent", "--kind", "piano", "--base", str(tmp_path / "no.pt")]) == 2
    assert "no.pt: no such base checkpoint" in capsys.readouterr().err
