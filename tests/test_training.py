"""Training on two tiny pieces: learning, checkpoints and cards, resume, determinism (chapter 4)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import sheetlab.training
from sheetlab import corpus
from sheetlab.augment import AUGMENTATIONS
from sheetlab.cli import main
from sheetlab.corpus import Score
from sheetlab.dataset import Condition, SnippetDataset, load_piece
from sheetlab.models import AudioSheetNet, config, load_checkpoint
from sheetlab.targets import soft_targets
from sheetlab.training import (TrainSettings, card_path, data_hash, evaluate, make_optimizer,
                               resume_path, train, train_epoch, train_step)
from test_engrave import MONO, musicxml, note

SCALE = musicxml([[note(step, 4, 2, "quarter") for step in "CDEF"],
                  [note(step, octave, 2, "quarter") for step, octave in
                   (("G", 4), ("A", 4), ("B", 4), ("C", 5))],
                  [note("D", 5, 4, "half"), note("E", 5, 4, "half")]])
LIGHT = config("light", "mono")
QUICK = TrainSettings(epochs=2, batch_size=8, max_batches=2, optimizer="adam", lr_step_epochs=1,
                      lr_gamma=0.5, threads=1, progress=False, device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: tiny batches gain nothing from two, and the test machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pieces():
    """Two tiny mono pieces (train) and the first again (validation), from the test cache."""
    scores = [Score("test/mono", MONO, "musicxml", "mono", "mono.musicxml"),
              Score("test/scale", SCALE, "musicxml", "mono", "scale.musicxml")]
    data = [load_piece(s) for s in scores]
    return data, data[:1]


def history_of(pieces, out, settings=QUICK, **kwargs):
    return train(*pieces, LIGHT, settings, out, **kwargs)


def test_train_step_returns_the_loss_before_its_step(pieces):
    torch.manual_seed(0)
    model = AudioSheetNet(LIGHT).train()
    optimizer, _ = make_optimizer(model, QUICK)
    sheet, spec, x = (torch.stack(t) for t in zip(*SnippetDataset(pieces[0])))
    targets = torch.from_numpy(soft_targets(x.numpy())).float()
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    expected = torch.nn.functional.cross_entropy(model(sheet, spec), targets).item()
    torch.manual_seed(1)
    assert train_step(model, optimizer, sheet, spec, targets) == pytest.approx(expected, rel=1e-4)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    second = train_step(model, optimizer, sheet, spec, targets)
    assert train_step(model, optimizer, sheet, spec, targets) < second  # it learns the batch


def test_the_loss_falls_on_the_batch_it_overfits(pieces):
    """The same epoch again and again: the same windows, the loss must fall fast."""
    settings = dataclasses.replace(QUICK, optimizer="sgd", batch_size=32, max_batches=None)
    torch.manual_seed(0)
    model = AudioSheetNet(LIGHT)
    optimizer, _ = make_optimizer(model, settings)
    batch = SnippetDataset(pieces[0])
    assert len(batch) < settings.batch_size  # one batch
    losses = [train_epoch(model, batch, optimizer, settings, epoch=1) for _ in range(8)]
    assert losses[0] == pytest.approx(np.log(39), abs=0.5)
    assert losses[-1] < 0.4 * losses[0] and losses[-1] < min(losses[:4])


def test_a_tiny_run_records_its_learning_curves(pieces, tmp_path):
    history = history_of(pieces, tmp_path / "m.pt")
    assert [row["epoch"] for row in history] == [1, 2]
    assert [row["lr"] for row in history] == [0.001, 0.0005]
    assert all(set(row) == {"epoch", "lr", "train_loss", "valid_loss", "valid_within_one_bucket",
                            "valid_mae_px"} for row in history)
    assert all(np.isfinite(row["valid_loss"]) and 0 <= row["valid_within_one_bucket"] <= 1
               for row in history)


def test_checkpoint_and_card_are_written(pieces, tmp_path):
    out = tmp_path / "run" / "mono-light.pt"
    history = history_of(pieces, out, command="sheetlab train --kind mono")
    card = json.loads(card_path(out).read_text())
    assert card_path(out).name == "mono-light.json" and resume_path(out).exists()
    assert card["command"] == "sheetlab train --kind mono"
    assert card["data_hash"] == data_hash(*pieces) and len(card["data_hash"]) == 64
    assert card["settings"]["lr"] == 0.001 and card["settings"]["batch_size"] == 8
    assert card["model"]["name"] == "light" and card["parameters"] > 1e5
    assert card["epochs_done"] == 2 and card["history"] == history
    assert card["final"] == history[-1]
    best = max(history, key=lambda row: row["valid_within_one_bucket"])
    assert card["best"]["valid_within_one_bucket"] == best["valid_within_one_bucket"]
    assert card["torch"] == torch.__version__ and card["date"] and card["training_time_s"] >= 0
    model = load_checkpoint(out)
    assert model.config == LIGHT and model.metadata["best"] == card["best"]
    # the checkpoint is the best epoch's model: it reproduces that epoch's validation metrics
    valid = SnippetDataset(pieces[1], seed=QUICK.seed + 1)
    assert evaluate(model, valid, batch_size=8)["loss"] == pytest.approx(card["best"]["valid_loss"])
    assert not list(out.parent.glob(".partial-*"))


def test_resume_continues_and_matches_an_uninterrupted_run(pieces, tmp_path):
    straight = history_of(pieces, tmp_path / "a.pt")
    first = history_of(pieces, tmp_path / "b.pt", dataclasses.replace(QUICK, epochs=1))
    assert first == straight[:1]  # same seed, same numbers
    resumed = history_of(pieces, tmp_path / "b.pt", resume=True)
    assert [row["epoch"] for row in resumed] == [1, 2]
    assert resumed == straight  # the learning rate schedule and the optimiser continue too
    a, b = (torch.load(resume_path(tmp_path / name), weights_only=True)["model"]
            for name in ("a.pt", "b.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    other_seed = history_of(pieces, tmp_path / "c.pt", dataclasses.replace(QUICK, epochs=1, seed=5))
    assert other_seed != first


def test_resume_refuses_other_settings_or_missing_state(pieces, tmp_path):
    history_of(pieces, tmp_path / "m.pt", dataclasses.replace(QUICK, epochs=1))
    with pytest.raises(ValueError, match="changed settings: lr"):
        history_of(pieces, tmp_path / "m.pt", dataclasses.replace(QUICK, lr=0.5), resume=True)
    with pytest.raises(ValueError, match="other data"):
        history_of((pieces[0][:1], pieces[1]), tmp_path / "m.pt", resume=True)
    with pytest.raises(FileNotFoundError, match="nothing.pt.resume"):
        history_of(pieces, tmp_path / "nothing.pt", resume=True)


def test_resume_takes_a_setting_newer_than_the_state_at_its_default(pieces, tmp_path):
    history_of(pieces, tmp_path / "m.pt", dataclasses.replace(QUICK, epochs=1))
    state = torch.load(resume_path(tmp_path / "m.pt"), weights_only=True)
    del state["settings"]["lag_frames"]  # as saved before --lag-frames existed
    torch.save(state, resume_path(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="changed settings: lag_frames"):
        history_of(pieces, tmp_path / "m.pt", dataclasses.replace(QUICK, lag_frames=3), resume=True)
    assert [row["epoch"] for row in history_of(pieces, tmp_path / "m.pt", resume=True)] == [1, 2]


def test_threads_are_restored_and_bad_inputs_rejected(pieces, tmp_path):
    history_of(pieces, tmp_path / "m.pt", dataclasses.replace(QUICK, epochs=1, threads=2))
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="strip height 40 px, but the piano model reads 112"):
        train(*pieces, config("light", "piano"), QUICK, tmp_path / "p.pt")
    with pytest.raises(ValueError, match="optimizer"):
        TrainSettings(optimizer="rmsprop")
    assert TrainSettings().learning_rate == 0.1
    assert TrainSettings(optimizer="adam").learning_rate == 0.001


def test_cli_train_writes_checkpoint_and_card(pieces, tmp_path, capsys, monkeypatch):
    """The command's wiring: corpus pieces are loaded, the card records the full command."""
    loaded = iter(pieces)
    monkeypatch.setattr(sheetlab.training, "load_pieces", lambda chosen, **kwargs: next(loaded))
    out = tmp_path / "mono-light.pt"
    code = main(["train", "--kind", "mono", "--epochs", "1", "--optimizer", "adam",
                 "--lag-frames", "3", "--bf16", "--train-limit", "2", "--out", str(out),
                 "--threads", "1"])
    assert code == 0 and f"model {out}" in capsys.readouterr().out
    card = json.loads(card_path(out).read_text())
    assert card["command"] == ("sheetlab train --kind mono --config light --epochs 1 "
                               f"--batch-size 100 --optimizer adam --lr-step 10 --subset default "
                               "--lag-frames 3 --augment 0 --continuations 0 --bf16 "
                               f"--train-limit 2 --out {out} --threads 1 --seed 0")
    assert card["settings"]["lag_frames"] == 3 and card["settings"]["bf16"] is True
    assert card["n_train_pieces"] == 2 and load_checkpoint(out).config == LIGHT


def test_cli_train_augment_adds_the_training_pieces_in_augmented_conditions(
        pieces, tmp_path, capsys, monkeypatch):
    """--augment N loads the training pieces once per condition, the first N of
    sheetlab.augment, and the validation pieces in the default condition only."""
    calls = []

    def fake_load(chosen, condition=Condition(), **kwargs):
        calls.append(condition)
        return pieces[1] if len(calls) == 4 else pieces[0]

    monkeypatch.setattr(sheetlab.training, "load_pieces", fake_load)
    out = tmp_path / "mono-light.pt"
    assert main(["train", "--kind", "mono", "--augment", "5", "--out", str(out)]) == 2
    assert "--augment: the number of augmented conditions must be in 0..4, got 5" in \
        capsys.readouterr().err
    assert not calls and not out.exists()
    code = main(["train", "--kind", "mono", "--epochs", "1", "--optimizer", "adam",
                 "--augment", "2", "--train-limit", "2", "--out", str(out), "--threads", "1"])
    assert code == 0 and calls == [Condition(), *AUGMENTATIONS[:2], Condition()]
    card = json.loads(card_path(out).read_text())
    assert card["n_train_pieces"] == 3 * len(pieces[0]) == 6 and "--augment 2" in card["command"]


def test_cli_train_continuations_add_the_training_pieces_measures_after_the_cut(
        pieces, tmp_path, capsys, monkeypatch):
    """--continuations N adds up to N continuations of each training piece to the training
    pieces (sheetlab.corpus.continuations) and none to the validation pieces."""
    chosen, trained = [], []

    def fake_train(train_data, valid_data, *args, **kwargs):
        trained.append(kwargs["command"])
        return [{"epoch": 1, "valid_within_one_bucket": 0.5}]

    monkeypatch.setattr(sheetlab.training, "load_pieces",
                        lambda selection, **kwargs: chosen.append(selection) or pieces[0])
    monkeypatch.setattr(sheetlab.training, "train", fake_train)
    out = tmp_path / "piano-light.pt"
    assert main(["train", "--kind", "piano", "--continuations", "-1", "--out", str(out)]) == 2
    assert "--continuations: the number of continuations must be 0 or more, got -1" in \
        capsys.readouterr().err
    assert main(["train", "--kind", "piano", "--subset", "all", "--continuations", "2",
                 "--out", str(out)]) == 0
    train = corpus.pieces("piano", "train", subset="all")
    added = corpus.continuations(train, 2)
    assert chosen == [train + added, corpus.pieces("piano", "valid", subset="all")]
    assert len(added) == 54 and all(p.first_measure > 1 for p in added)
    assert "--continuations 2" in trained[0]


def test_cli_train_reports_a_missing_resume_state(pieces, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sheetlab.training, "load_pieces", lambda chosen, **kwargs: pieces[0])
    code = main(["train", "--kind", "mono", "--out", str(tmp_path / "x.pt"), "--resume"])
    assert code == 1
    assert "x.pt.resume: no training state to resume from" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_cli_train_composer_split_chooses_the_composers_pieces(pieces, tmp_path, capsys,
                                                              monkeypatch):
    chosen = []

    def fake_load(selection, **kwargs):
        chosen.append(selection)
        return pieces[len(chosen) - 1]

    monkeypatch.setattr(sheetlab.training, "load_pieces", fake_load)
    out = tmp_path / "piano-mozart.pt"
    code = main(["train", "--kind", "mono", "--composer", "Mozart", "--out", str(out)])
    assert code == 2 and "--composer needs --kind piano" in capsys.readouterr().err
    code = main(["train", "--kind", "piano", "--composer", "Nobody", "--out", str(out)])
    assert code == 2 and "no piano pieces by 'Nobody'" in capsys.readouterr().err
    assert not chosen and not out.exists()
    # the wiring: train and validation pieces are Mozart's (the mono pieces stand in for the
    # data, so training stops at the kind check: the strips are one staff high)
    code = main(["train", "--kind", "piano", "--composer", "Mozart", "--epochs", "1",
                 "--out", str(out)])
    assert code == 1 and "strip height 40 px" in capsys.readouterr().err
    train, valid = chosen
    assert train and valid and {p.composer for p in train + valid} == {"Mozart"}
    assert {p.split for p in train} == {"train"} and {p.split for p in valid} == {"valid"}


def test_bf16_training_learns_and_keeps_float32_weights(pieces):
    """bfloat16 autocast: the loss falls on the overfitted batch as in float32, the weights and
    the logits stay float32, and the first loss is close to float32's (same initial weights)."""
    settings = dataclasses.replace(QUICK, optimizer="sgd", batch_size=32, max_batches=None)
    batch = SnippetDataset(pieces[0])
    first = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = AudioSheetNet(LIGHT).to(memory_format=torch.channels_last)
        optimizer, _ = make_optimizer(model, settings)
        chosen = dataclasses.replace(settings, bf16=bf16)
        losses = [train_epoch(model, batch, optimizer, chosen, epoch=1) for _ in range(8)]
        first[bf16] = losses[0]
        assert losses[-1] < 0.4 * losses[0]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert first[True] == pytest.approx(first[False], rel=0.02)
    assert first[True] != first[False]  # it did compute in bfloat16


def test_bf16_is_fast_follows_the_cpu_flags(monkeypatch):
    from sheetlab.training import bf16_is_fast

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not bf16_is_fast("cpu")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert bf16_is_fast("cpu")
    assert bf16_is_fast("cuda")  # GPUs compute bfloat16 natively (no GPU needed to ask)
