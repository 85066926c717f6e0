"""Saliency tests: the guided ReLU rule, hand-derived gradients of tiny networks, the model left
as it was (modules, parameters, mode, also after an exception), plain gradients against autograd
and finite differences, overlays, and the pitch-sensitivity experiment with a network that reads
pitch and one that ignores the audio (chapter 6)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from sheetlab.dataset import PieceData
from sheetlab.models import AudioSheetNet, config
from sheetlab.following import localise_onsets
from sheetlab.saliency import (GuidedReLU, guided_backprop, guided_relu_backward, guided_relus,
                               input_gradients, overlay, pitch_sensitivity, pitch_shift_excerpt,
                               shift_table, transposed_predictions)
from sheetlab.spectrogram import FPS

SMALL = dataclasses.replace(config("light", "mono"), sheet_shape=(16, 48), spec_shape=(24, 16),
                            sheet_channels=(4, 8), spec_channels=(4, 8), pathway_units=32,
                            head_units=32, n_buckets=16)
"""A tiny AudioSheetNet: 16 x 48 sheet windows, 24-band excerpts of 16 frames, 16 buckets of
3 px."""


def small_net(seed=0):
    """A tiny AudioSheetNet in train mode with random batch-norm statistics and scales."""
    torch.manual_seed(seed)
    model = AudioSheetNet(SMALL)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.train()


def small_inputs(n=2, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    sheet = torch.rand(n, 1, *SMALL.sheet_shape, generator=generator, dtype=dtype)
    spec = torch.rand(n, 1, *SMALL.spec_shape, generator=generator, dtype=dtype) * 2
    return sheet, spec


def relu_places(model):
    """``(path, id)`` of every ReLU, with its in-place flag."""
    return [(path, id(m), m.inplace) for path, m in model.named_modules() if isinstance(m, nn.ReLU)]


# --------------------------------------------------------------------------- the rule


def test_guided_relu_backward_on_hand_made_arrays():
    x = np.array([[-1.0, 0.0, 2.0, 3.0], [3.0, 4.0, -5.0, 0.5]], dtype=np.float32)
    grad = np.array([[1.0, 1.0, 1.0, -2.0], [-2.0, 3.0, 4.0, 0.0]], dtype=np.float32)
    out = guided_relu_backward(x, grad)
    np.testing.assert_array_equal(out, [[0, 0, 1, 0], [0, 3, 0, 0]])
    assert out.dtype == np.float32 and out.shape == x.shape
    with pytest.raises(ValueError, match="one shape"):
        guided_relu_backward(x, grad[0])


def test_guided_relu_module_forward_is_relu_and_backward_is_the_rule():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    y = GuidedReLU()(x)
    assert torch.equal(y, torch.relu(x))
    (x_grad,) = torch.autograd.grad(y, x, grad)
    np.testing.assert_array_equal(x_grad.numpy(),
                                  guided_relu_backward(x.detach().numpy(), grad.numpy()))
    plain = torch.autograd.grad(torch.relu(x), x, grad)[0]
    assert not torch.equal(x_grad, plain)  # some signals were negative where x > 0


# --------------------------------------------------------------------------- tiny networks


class TinyNet(nn.Module):
    """``logits = out(relu(hidden(... relu(first([sheet; spec])))))`` with in-place ReLUs."""

    def __init__(self, *weights):
        super().__init__()
        layers = []
        for k, weight in enumerate(weights):
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            linear.weight.data = torch.as_tensor(weight, dtype=torch.float64)
            layers.append(linear)
            if k < len(weights) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, sheet, spec):
        return self.layers(torch.cat([sheet.flatten(1), spec.flatten(1)], dim=1))


W1 = np.array([[1.0, 1.0, 0.0, 0.0],    # h = 3  > 0
               [0.0, -1.0, 1.0, 0.0],   # h = -3 < 0
               [1.0, 0.0, 0.0, 2.0]])   # h = 2  > 0
W2 = np.array([[2.0, 5.0, -1.0],        # logit 0 = 2*3 - 2 = 4 (the predicted bucket)
               [-1.0, 1.0, 1.0]])       # logit 1 = -3 + 2 = -1
TINY_SHEET = torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64)   # (1, 1, 1, 2): x1, x2
TINY_SPEC = torch.tensor([[[[-1.0], [0.5]]]], dtype=torch.float64)  # (1, 1, 2, 1): x3, x4


@pytest.mark.parametrize("bucket, plain, guided", [
    # dy/dx = W1^T (w2 [h > 0]); guided: W1^T (w2 [h > 0] [w2 > 0])
    (None, [1, 2, 0, -2], [2, 2, 0, 0]),  # w2 [h > 0] = (2, 0, -1); guided (2, 0, 0)
    (0, [1, 2, 0, -2], [2, 2, 0, 0]),
    (1, [0, -1, 0, 2], [1, 0, 0, 2]),     # w2 [h > 0] = (-1, 0, 1); guided (0, 0, 1)
])
def test_one_hidden_layer_matches_the_hand_derived_gradients(bucket, plain, guided):
    model = TinyNet(W1, W2)
    for function, expected in ((input_gradients, plain), (guided_backprop, guided)):
        sheet_grad, spec_grad = function(model, TINY_SHEET, TINY_SPEC, bucket)
        assert sheet_grad.shape == TINY_SHEET.shape and spec_grad.shape == TINY_SPEC.shape
        np.testing.assert_allclose(sheet_grad.flatten(), expected[:2], atol=1e-12)
        np.testing.assert_allclose(spec_grad.flatten(), expected[2:], atol=1e-12)


def test_two_hidden_layers_apply_the_rule_at_every_relu():
    rng = np.random.default_rng(3)
    w1, w2, w3 = rng.normal(size=(6, 4)), rng.normal(size=(5, 6)), rng.normal(size=(3, 5))
    x = rng.normal(size=4)
    model = TinyNet(w1, w2, w3)
    sheet = torch.tensor(x[:2]).reshape(1, 1, 1, 2)
    spec = torch.tensor(x[2:]).reshape(1, 1, 2, 1)
    a1 = w1 @ x
    a2 = w2 @ np.maximum(a1, 0)
    for bucket in range(3):
        delta2 = guided_relu_backward(a2, w3[bucket])
        delta1 = guided_relu_backward(a1, w2.T @ delta2)
        expected = w1.T @ delta1
        sheet_grad, spec_grad = guided_backprop(model, sheet, spec, bucket)
        np.testing.assert_allclose(np.r_[sheet_grad.flatten(), spec_grad.flatten()], expected,
                                   atol=1e-12)


def test_guided_gradients_are_nonnegative_and_differ_where_signals_are_negative():
    rng = np.random.default_rng(4)
    w1, w2 = np.abs(rng.normal(size=(8, 4))), np.abs(rng.normal(size=(6, 8)))
    sheet = torch.tensor(rng.normal(size=(5, 1, 1, 2)))
    spec = torch.tensor(rng.normal(size=(5, 1, 2, 1)))
    # positive weights everywhere: every error signal is >= 0, guided = plain >= 0
    positive = TinyNet(w1, w2, np.abs(rng.normal(size=(3, 6))))
    for plain, guided in zip(input_gradients(positive, sheet, spec, 0),
                             guided_backprop(positive, sheet, spec, 0)):
        assert torch.equal(plain, guided) and (guided >= 0).all()
    # a last layer of both signs: plain gradients go negative, guided ones stay >= 0
    mixed = TinyNet(w1, w2, np.array([[1.0, -2.0, 0.5, -1.0, 1.5, -0.5]] * 3))
    plain = torch.cat([g.flatten() for g in input_gradients(mixed, sheet, spec, 0)])
    guided = torch.cat([g.flatten() for g in guided_backprop(mixed, sheet, spec, 0)])
    assert (guided >= 0).all() and (plain < 0).any()
    assert not torch.allclose(plain, guided)


# --------------------------------------------------------------------------- the real network


def test_plain_gradients_match_autograd_jacobian_and_finite_differences():
    model = small_net().double().eval()
    sheet, spec = small_inputs(2, dtype=torch.float64)
    buckets = [3, 11]
    sheet_grad, spec_grad = input_gradients(model, sheet, spec, buckets)
    jac_sheet, jac_spec = torch.autograd.functional.jacobian(
        lambda s, p: model(s, p)[torch.arange(2), buckets], (sheet, spec))
    for i in range(2):
        torch.testing.assert_close(sheet_grad[i], jac_sheet[i, i])
        torch.testing.assert_close(spec_grad[i], jac_spec[i, i])
    eps, rng = 1e-6, np.random.default_rng(0)
    for grad, which in ((sheet_grad, 0), (spec_grad, 1)):
        for flat in rng.choice(grad[0].numel(), 5, replace=False):
            index = (0, *np.unravel_index(flat, grad[0].shape))
            moved = [[sheet.clone(), spec.clone()] for _ in range(2)]
            moved[0][which][index] += eps
            moved[1][which][index] -= eps
            with torch.no_grad():
                up, down = (model(*m)[0, buckets[0]].item() for m in moved)
            assert (up - down) / (2 * eps) == pytest.approx(grad[index].item(), rel=1e-5,
                                                            abs=1e-8)


def test_gradients_have_the_input_shapes_and_do_not_depend_on_the_batch():
    model = small_net()
    sheet, spec = small_inputs(3)
    for function in (input_gradients, guided_backprop):
        sheet_grad, spec_grad = function(model, sheet, spec)
        assert sheet_grad.shape == (3, 1, 16, 48) and spec_grad.shape == (3, 1, 24, 16)
        assert sheet_grad.any() and spec_grad.any()
        alone = function(model, sheet[1:2], spec[1:2])
        torch.testing.assert_close(sheet_grad[1:2], alone[0])
        torch.testing.assert_close(spec_grad[1:2], alone[1])
    plain = torch.cat([g.flatten() for g in input_gradients(model, sheet, spec)])
    guided = torch.cat([g.flatten() for g in guided_backprop(model, sheet, spec)])
    assert not torch.allclose(plain, guided)


def test_default_bucket_is_the_prediction_and_bad_buckets_are_refused():
    model = small_net().eval()
    sheet, spec = small_inputs(2)
    with torch.no_grad():
        predicted = model(sheet, spec).argmax(dim=1)
    for default, chosen in zip(guided_backprop(model, sheet, spec),
                               guided_backprop(model, sheet, spec, predicted.tolist())):
        assert torch.equal(default, chosen)
    other = [(int(b) + 1) % SMALL.n_buckets for b in predicted]
    for default, chosen in zip(guided_backprop(model, sheet, spec),
                               guided_backprop(model, sheet, spec, other)):
        assert default.any() and not torch.equal(default, chosen)
    for bad in (SMALL.n_buckets, -1, [0, 1, 2]):
        with pytest.raises(ValueError, match="bucket must be"):
            input_gradients(model, sheet, spec, bad)
    with pytest.raises(ValueError, match="batches of one size"):
        input_gradients(model, sheet[0], spec[0])


def test_the_model_is_left_as_it_was():
    model = small_net()  # train mode, random batch-norm statistics
    sheet, spec = small_inputs(2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    places = relu_places(model)
    with torch.no_grad():
        before = model.eval()(sheet, spec)
    model.train()
    for function in (input_gradients, guided_backprop):
        function(model, sheet, spec)
        assert model.training and all(m.training for m in model.modules())
        assert relu_places(model) == places
        assert not any(isinstance(m, GuidedReLU) for m in model.modules())
        assert all(p.grad is None for p in model.parameters())
        for key, value in model.state_dict().items():  # batch-norm statistics included
            assert torch.equal(value, state[key]), key
    with torch.no_grad():
        assert torch.equal(model.eval()(sheet, spec), before)


def test_guided_context_keeps_the_forward_and_restores_the_relus_after_an_exception():
    model = small_net().eval()
    sheet, spec = small_inputs(2)
    places = relu_places(model)
    with torch.no_grad():
        before = model(sheet, spec)
    with guided_relus(model) as guided:
        assert guided is model
        assert not relu_places(model)
        assert sum(isinstance(m, GuidedReLU) for m in model.modules()) == len(places)
        with torch.no_grad():
            assert torch.equal(model(sheet, spec), before)
    assert relu_places(model) == places
    with pytest.raises(RuntimeError, match="inside"):
        with guided_relus(model):
            raise RuntimeError("inside the block")
    assert relu_places(model) == places and not model.training


def test_an_error_inside_the_gradient_computation_restores_mode_and_relus():
    model = small_net()
    sheet, spec = small_inputs(2)
    places = relu_places(model)
    with pytest.raises(ValueError, match="bucket must be"):  # raised after the forward pass
        guided_backprop(model, sheet, spec, bucket=99)
    assert model.training and relu_places(model) == places
    with pytest.raises(RuntimeError):  # the forward pass itself fails: wrong number of bands
        guided_backprop(model, sheet, spec[:, :, :20])
    assert model.training and relu_places(model) == places


def test_a_shared_relu_object_is_guided_in_both_places_and_restored():
    relu = nn.ReLU(inplace=True)
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    with guided_relus(model):
        assert isinstance(model[1], GuidedReLU) and isinstance(model[3], GuidedReLU)
    assert model[1] is relu and model[3] is relu


# --------------------------------------------------------------------------- overlays


def test_overlay_draws_ink_in_grey_and_positive_saliency_in_colour():
    image = np.array([[0.0, 0.25, 1.0], [0.0, 0.0, 0.0]])  # ink: 0 white, 1 black
    saliency = np.array([[0.0, 0.0, 0.0], [-3.0, 1.0, 2.0]])
    rgb = overlay(image, saliency, colour=(201, 1, 101), percentile=100)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0], [[255] * 3, [191] * 3, [0] * 3])
    np.testing.assert_array_equal(rgb[1, 0], [255, 255, 255])  # negative saliency: not shown
    np.testing.assert_array_equal(rgb[1, 1], [228, 128, 178])  # half opacity over white
    np.testing.assert_array_equal(rgb[1, 2], [201, 1, 101])    # full colour
    spec = overlay(torch.rand(24, 16), torch.randn(24, 16))  # tensors and spectrograms too
    assert spec.shape == (24, 16, 3) and spec.dtype == np.uint8
    assert overlay(np.ones((4, 5)), np.zeros((4, 5))).min() == 255  # flat image, no saliency
    with pytest.raises(ValueError, match="one shape"):
        overlay(np.zeros((1, 4, 5)), np.zeros((1, 4, 5)))


# --------------------------------------------------------------------------- pitch sensitivity


def test_pitch_shift_moves_energy_by_two_bands_per_semitone():
    excerpt = np.zeros((136, 40), dtype=np.float32)
    excerpt[50, 3] = 1.0
    excerpt[60:63, 10] = [0.25, 0.5, 0.75]
    for k in (-5, -1, 0, 1, 3, 12):
        shifted = pitch_shift_excerpt(excerpt, k)
        assert shifted.shape == excerpt.shape and shifted.dtype == np.float32
        assert shifted[50 + 2 * k, 3] == 1.0
        np.testing.assert_array_equal(shifted[60 + 2 * k:63 + 2 * k, 10], [0.25, 0.5, 0.75])
        assert shifted.sum() == pytest.approx(excerpt.sum())
    ramp = np.arange(10.0)[:, None] * np.ones((1, 2))
    np.testing.assert_array_equal(pitch_shift_excerpt(ramp, 1)[:, 0],
                                  [0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(pitch_shift_excerpt(ramp, -2)[:, 0],
                                  [4, 5, 6, 7, 8, 9, 0, 0, 0, 0])
    assert not pitch_shift_excerpt(ramp, 5).any() and not pitch_shift_excerpt(ramp, -6).any()
    np.testing.assert_array_equal(pitch_shift_excerpt(ramp, 1, bands_per_octave=12)[:, 0],
                                  [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    with pytest.raises(ValueError, match="multiple of 12"):
        pitch_shift_excerpt(ramp, 1, bands_per_octave=20)
    with pytest.raises(TypeError):
        pitch_shift_excerpt(ramp, 1.5)


def synthetic_piece(n_onsets=6):
    """A hand-made PieceData for SMALL: a 16 px random strip, 24 bands, one peak per onset at
    band 6, 8 or 10 in the onset's frame."""
    rng = np.random.default_rng(0)
    frames = (12 + 8 * np.arange(n_onsets)).astype(np.int64)
    spec = np.zeros((24, frames[-1] + 5), dtype=np.float32)
    spec[6 + 2 * (np.arange(n_onsets) % 3), frames] = 1.0
    onset_x = 60.0 + 40 * np.arange(n_onsets)
    return PieceData(piece_id="test/synthetic", key="0" * 64, spec=spec,
                     strip=rng.integers(0, 256, (16, 400)).astype(np.uint8),
                     system_x=np.array([0, 400]), note_x=onset_x, note_score_s=frames / FPS,
                     note_onset_s=frames / FPS, note_pitch=np.full(n_onsets, 60, dtype=np.int32),
                     onset_frame=frames, onset_x=onset_x, n_pages=1,
                     duration_s=spec.shape[1] / FPS)


PLACEMENT = dict(width_px=48, context_frames=16, n_buckets=SMALL.n_buckets, progress=False)


class PitchReader(nn.Module):
    """Pitch sensitive by construction: a sharp peak on the bucket numbered like the loudest
    band of the excerpt's last frame (one semitone up: two buckets, 6 px, to the right)."""

    def forward(self, sheet, spec):
        band = spec[:, 0, :, -1].argmax(dim=1).clamp(0, SMALL.n_buckets - 1)
        return 50.0 * nn.functional.one_hot(band, SMALL.n_buckets).float()


def test_pitch_sensitivity_of_a_network_that_reads_pitch():
    pieces = [synthetic_piece(6), synthetic_piece(4)]
    rows = pitch_sensitivity(PitchReader(), pieces, (-2, -1, 0, 1, 2), **PLACEMENT)
    assert [row["semitones"] for row in rows] == [-2, -1, 0, 1, 2]
    for row in rows:
        k = row["semitones"]
        assert row["n_onsets"] == 10
        assert row["mean_shift_px"] == pytest.approx(6 * abs(k))  # 2 bands = 2 buckets of 3 px
        assert row["median_shift_px"] == pytest.approx(6 * abs(k))
        assert row["stay_within_bucket"] == float(k == 0)
        assert 0 <= row["within_bucket"] <= 1 and row["median_error_px"] >= 0


def test_pitch_sensitivity_of_a_network_deaf_to_the_audio():
    model = small_net().eval()
    with torch.no_grad():
        [dense] = [m for m in model.spec_pathway if isinstance(m, nn.Linear)]
        dense.weight.zero_()  # the audio features no longer depend on the audio
    rows = pitch_sensitivity(model, [synthetic_piece()], (-12, 0, 1, 7), seed=3, **PLACEMENT)
    for row in rows:
        assert row["mean_shift_px"] == 0 and row["stay_within_bucket"] == 1
        assert row["within_bucket"] == rows[1]["within_bucket"]
    assert not model.training
    with pytest.raises(ValueError, match="at least one piece"):
        pitch_sensitivity(model, [], **PLACEMENT)


class ForwardOnly(nn.Module):
    """A network seen only through its forward pass: no pathways to reuse."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sheet, spec):
        return self.model(sheet, spec)


def test_reused_sheet_features_give_the_predictions_of_whole_forward_passes():
    model = small_net(seed=5)
    pieces = [synthetic_piece(7), synthetic_piece(3)]
    for random_offset in (True, False):
        kwargs = dict(semitones=(-7, -1, 0, 2), random_offset=random_offset, seed=2, **PLACEMENT)
        fast = pitch_sensitivity(model, pieces, **kwargs)
        whole = pitch_sensitivity(ForwardOnly(model), pieces, **kwargs)
        for row_fast, row_whole in zip(fast, whole):
            assert row_fast.keys() == row_whole.keys()
            for key in row_fast:
                assert row_fast[key] == pytest.approx(row_whole[key], abs=1e-4), key
    assert model.training  # the mode is restored
    assert any(row["mean_shift_px"] > 0 for row in fast)  # the audio does move something


def test_transposed_predictions_per_onset():
    model = small_net(seed=1)
    piece = synthetic_piece(5)
    placement = {k: v for k, v in PLACEMENT.items() if k not in ("n_buckets", "progress")}
    predicted = transposed_predictions(model, piece, (2, -1), seed=4, **placement)
    assert sorted(predicted) == [-1, 0, 2]  # the real audio is always there
    assert all(x.shape == (5,) and x.dtype == np.float64 for x in predicted.values())
    real = localise_onsets(model, piece, seed=4, **placement).pred_x
    np.testing.assert_allclose(predicted[0], real, atol=1e-4)
    shifted = dataclasses.replace(piece, spec=pitch_shift_excerpt(piece.spec, 2))
    np.testing.assert_allclose(predicted[2], localise_onsets(model, shifted, seed=4,
                                                             **placement).pred_x, atol=1e-4)
    reader = transposed_predictions(PitchReader(), piece, (1,), **placement)
    np.testing.assert_allclose(reader[1] - reader[0], 6.0)  # 2 bands up: 2 buckets of 3 px
    with pytest.raises(TypeError):
        transposed_predictions(model, piece, (0.5,), **placement)


def test_shift_table_from_hand_made_predictions():
    bucket = 10.0  # 39 buckets of a 390 px window
    predicted = [{0: np.array([100.0, 200.0]), 1: np.array([105.0, 230.0]),
                  -1: np.array([100.0, 190.0])},
                 {0: np.array([50.0]), 1: np.array([50.0]), -1: np.array([70.0])}]
    true_x = [np.array([100.0, 215.0]), [45.0]]
    rows = shift_table(predicted, true_x)
    assert [row["semitones"] for row in rows] == [-1, 0, 1]
    down, same, up = rows
    assert same == {"semitones": 0, "n_onsets": 3, "mean_shift_px": 0.0, "median_shift_px": 0.0,
                    "stay_within_bucket": 1.0, "within_bucket": pytest.approx(2 / 3),
                    "median_error_px": 5.0}
    assert up["mean_shift_px"] == pytest.approx(35 / 3) and up["median_shift_px"] == 5.0
    assert up["stay_within_bucket"] == pytest.approx(2 / 3)  # 5 and 0 px < 10 px; 30 px not
    assert up["within_bucket"] == pytest.approx(2 / 3) and up["median_error_px"] == 5.0
    assert down["stay_within_bucket"] == pytest.approx(1 / 3)  # 0 px; 10 px is not < 10 px
    assert [row["semitones"] for row in shift_table(predicted, true_x, (1, 0))] == [1, 0]
    assert bucket == 390 / 39
    with pytest.raises(ValueError, match="one true_x per piece"):
        shift_table(predicted, true_x[:1])
    with pytest.raises(ValueError, match="true positions"):
        shift_table(predicted, [np.zeros(2), np.zeros(2)])
