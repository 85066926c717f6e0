"""The two-pathway network: shapes, the sheet pathway's independence, checkpoints (chapter 4)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from sheetlab import models
from sheetlab.models import (AudioSheetNet, ModelConfig, config, conv_output_size,
                             count_parameters, fold_head, load_checkpoint, load_pretrained,
                             save_checkpoint)

KINDS = {"mono": 40, "piano": 112}


def inputs(kind, n=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sheet = torch.rand(n, 1, KINDS[kind], 390, generator=generator)
    spec = torch.rand(n, 1, 136, 40, generator=generator) * 3
    return sheet, spec


@pytest.fixture(scope="module", params=["mono", "piano"])
def light(request):
    torch.manual_seed(0)
    return AudioSheetNet(config("light", request.param)).eval()


def test_configs_follow_the_kind():
    for name in ("light", "talk"):
        for kind, height in KINDS.items():
            c = config(name, kind)
            assert c.name == name and c.kind == kind
            assert c.sheet_shape == (height, 390) and c.spec_shape == (136, 40)
            assert c.n_buckets == 39
    assert config("talk", "mono").sheet_channels == (64, 128, 256)
    assert config("light", "mono").stem_stride == 2
    with pytest.raises(ValueError, match="known: light, talk"):
        config("huge", "mono")
    with pytest.raises(ValueError, match="kind"):
        config("light", "quartet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config().dropout = 0.0


def test_conv_output_size_matches_the_layers():
    assert conv_output_size(40, 390, 3) == (5, 48)
    assert conv_output_size(136, 40, 3) == (17, 5)
    assert conv_output_size(40, 390, 3, stem_stride=2) == (2, 24)
    assert conv_output_size(195, 41, 0, stem_stride=2) == (98, 21)
    for name in ("light", "talk"):
        c = config(name, "mono")
        with torch.device("meta"):
            model = AudioSheetNet(c)
            stem_and_blocks = model.sheet_pathway[:-5]  # up to the flatten
            maps = stem_and_blocks(torch.empty(1, 1, *c.sheet_shape))
        assert tuple(maps.shape[2:]) == conv_output_size(*c.sheet_shape, 3, c.stem_stride)


@pytest.mark.parametrize("name", ["light", "talk"])
@pytest.mark.parametrize("kind", ["mono", "piano"])
def test_output_shapes(name, kind):
    c = config(name, kind)
    with torch.device("meta"):  # shapes only: the talk's model is large
        model = AudioSheetNet(c).eval()
        sheet, spec = (torch.empty(2, 1, *c.sheet_shape), torch.empty(2, 1, *c.spec_shape))
        assert model.sheet_features(sheet).shape == (2, c.pathway_units)
        assert model.spec_features(spec).shape == (2, c.pathway_units)
        assert model(sheet, spec).shape == (2, 39)


def test_parameter_counts():
    counts = {}
    for name in ("light", "talk"):
        for kind in KINDS:
            with torch.device("meta"):
                counts[name, kind] = count_parameters(AudioSheetNet(config(name, kind)))
    assert 1e6 < counts["light", "mono"] < 2.5e6  # a few MB of float32 weights
    assert counts["light", "mono"] < counts["light", "piano"] < 5e6
    assert 50e6 < counts["talk", "mono"] < counts["talk", "piano"]


def test_real_forward_shapes(light):
    sheet, spec = inputs(light.config.kind)
    logits = light(sheet, spec)
    assert logits.shape == (3, 39) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_sheet_features_ignore_the_audio(light):
    """The score follower computes them once per window: they cannot depend on the spectrogram."""
    sheet, spec = inputs(light.config.kind)
    _, other_spec = inputs(light.config.kind, seed=1)
    features = light.sheet_features(sheet)
    assert torch.equal(light.sheet_features(sheet), features)
    # the head sees the audio, the sheet features do not
    assert not torch.allclose(light(sheet, spec), light(sheet, other_spec))
    with torch.no_grad():
        torch.testing.assert_close(light.head(features, light.spec_features(spec)),
                                   light(sheet, spec), rtol=0, atol=0)


def test_forward_is_head_of_features_in_eval_mode(light):
    sheet, spec = inputs(light.config.kind)
    with torch.no_grad():
        expected = light.head(light.sheet_features(sheet), light.spec_features(spec))
        assert torch.equal(light(sheet, spec), expected)
        assert torch.equal(light(sheet, spec), light(sheet, spec))  # eval mode: deterministic
        # one example at a time gives the same logits as the batch (batch norm uses running stats)
        torch.testing.assert_close(light(sheet[:1], spec[:1]), expected[:1])


def test_folded_head_equals_the_eval_mode_head():
    torch.manual_seed(1)
    model = AudioSheetNet(dataclasses.replace(config("light", "mono"), dropout=0.3))
    with torch.no_grad():  # batch norms with non-trivial statistics and affine parameters
        for module in model.head_layers:
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    model.eval()
    generator = torch.Generator().manual_seed(2)
    sheet_feat, spec_feat = torch.rand(2, 5, model.config.pathway_units, generator=generator)
    with torch.no_grad():
        expected = model.head(sheet_feat, spec_feat).numpy()
    head = fold_head(model)
    got = head.logits(head.sheet_part(sheet_feat.numpy()), head.spec_part(spec_feat.numpy()))
    assert got.shape == (5, model.config.n_buckets)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected).max() > 0.1  # not a trivially small output


def test_folded_batch_norm_pathways_compute_the_same_features():
    torch.manual_seed(3)
    model = AudioSheetNet(config("light", "piano"))
    with torch.no_grad():  # batch norms with non-trivial statistics and affine parameters
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    model.eval()
    sheet, spec = inputs("piano", n=4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for pathway, x in [(model.sheet_pathway, sheet), (model.spec_pathway, spec)]:
        folded = models.fold_batch_norm(pathway)
        assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))
                       for m in folded)
        with torch.no_grad():
            expected, got = pathway(x), folded(x)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        assert expected.abs().max() > 0.1  # not a trivially small output
    for key, value in model.state_dict().items():  # the model itself is unchanged
        assert torch.equal(value, state[key]), key
    with pytest.raises(ValueError, match="eval mode"):
        models.fold_batch_norm(model.train().spec_pathway)


def test_training_mode_uses_dropout():
    torch.manual_seed(0)
    model = AudioSheetNet(dataclasses.replace(config("light", "mono"), dropout=0.5)).train()
    sheet, spec = inputs("mono")
    assert not torch.equal(model(sheet, spec), model(sheet, spec))
    model.eval()
    assert torch.equal(model(sheet, spec), model(sheet, spec))


def test_checkpoint_round_trip(tmp_path, light):
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, light, {"epoch": 3, "note": "test"})
    assert not list(path.parent.glob(".partial-*"))
    loaded = load_checkpoint(path)
    assert isinstance(loaded, AudioSheetNet) and not loaded.training
    assert loaded.config == light.config and isinstance(loaded.config.sheet_channels, tuple)
    assert loaded.metadata == {"epoch": 3, "note": "test"}
    saved, restored = light.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys() and all(torch.equal(saved[k], restored[k]) for k in saved)
    first_conv = loaded.sheet_pathway[0].weight
    assert first_conv.is_contiguous(memory_format=torch.channels_last)  # the faster layout
    sheet, spec = inputs(light.config.kind)
    with torch.no_grad():  # the same numbers up to the rounding of another summation order
        torch.testing.assert_close(loaded(sheet, spec), light(sheet, spec), rtol=1e-4, atol=1e-4)


def test_config_survives_json():
    c = config("talk", "piano")
    assert ModelConfig.from_dict(json.loads(json.dumps(c.as_dict()))) == c


def test_missing_pretrained_weights_name_the_file_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="piano-light.pt.*sheetlab train --kind piano "
                                                "--config light"):
        load_pretrained("piano")


def test_pretrained_weights_load_from_the_weights_folder(tmp_path, monkeypatch, light):
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    save_checkpoint(tmp_path / f"{light.config.kind}-light.pt", light)
    assert load_pretrained(light.config.kind).config == light.config


def test_device_is_a_torch_device():
    assert models.device().type in ("cpu", "cuda")


def test_transfer_weights_copies_what_fits(tmp_path):
    torch.manual_seed(0)
    mono = AudioSheetNet(config("light", "mono"))
    save_checkpoint(tmp_path / "mono.pt", mono)
    torch.manual_seed(1)
    piano = AudioSheetNet(config("light", "piano"))
    before = {k: v.clone() for k, v in piano.state_dict().items()}
    copied = models.transfer_weights(piano, tmp_path / "mono.pt")
    state, source = piano.state_dict(), mono.state_dict()
    # the sheet pathway's dense layer reads a taller feature map: the only misfit
    misfits = sorted(k for k in source if source[k].shape != state[k].shape)
    assert misfits and all(k.startswith("sheet_pathway.") for k in misfits)
    assert sorted(copied) == sorted(set(source) - set(misfits))
    for k in state:
        expected = source[k] if k in copied else before[k]
        assert torch.equal(state[k], expected), k
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        models.transfer_weights(piano, tmp_path / "nothing.pt")
    other = AudioSheetNet(dataclasses.replace(config("light", "mono"), name="narrow",
                                              sheet_channels=(3, 5, 7), spec_channels=(3, 5, 7),
                                              pathway_units=9, head_units=11, n_buckets=13))
    save_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(ValueError, match="other.pt"):
        models.transfer_weights(piano, tmp_path / "other.pt")
