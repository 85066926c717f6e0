"""Tests of sheetlab.retrieval: the CCA layer, the ranking loss, retrieval metrics, DTW
(chapter 9). Synthetic data only; fast."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sheetlab.dataset import PieceData
from sheetlab.models import RetrievalConfig, RetrievalNet, retrieval_config, save_checkpoint
from sheetlab.retrieval import (CCALayer, Embedding, align, cca, dtw, embed_excerpts,
                                embed_snippets, evaluate_pairs, excerpt_end, inverse_sqrt,
                                load_embedding, pair_batch, position_x, rank_of_match,
                                ranking_loss, retrieval_metrics, retrieve, sample_positions,
                                similarity, vote)


def _correlated(n: int, rhos: tuple[float, ...], noise_dims: int, seed: int):
    """Two views whose canonical correlations are ``rhos`` (plus zeros), mixed randomly."""
    rng = np.random.default_rng(seed)
    k = len(rhos)
    z = rng.standard_normal((n, k))
    e = rng.standard_normal((n, k))
    y_latent = np.asarray(rhos) * z + np.sqrt(1 - np.asarray(rhos) ** 2) * e
    x_full = np.hstack([z, rng.standard_normal((n, noise_dims))])
    y_full = np.hstack([y_latent, rng.standard_normal((n, noise_dims))])
    d = k + noise_dims
    mix_x, mix_y = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    return x_full @ mix_x + 3.0, y_full @ mix_y - 1.0


def _numpy_cca_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form canonical correlations: sqrt of the eigenvalues of Cxx^-1 Cxy Cyy^-1 Cyx."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = len(x)
    cxx, cyy, cxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    m = np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)
    return np.sqrt(np.clip(np.sort(np.linalg.eigvals(m).real)[::-1], 0, None))


# --------------------------------------------------------------------------- CCA


def test_inverse_sqrt():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5))
    cov = torch.from_numpy(a @ a.T + 0.1 * np.eye(5))
    m = inverse_sqrt(cov)
    assert torch.allclose(m, m.T)
    assert torch.allclose(m @ cov @ m, torch.eye(5, dtype=torch.float64), atol=1e-10)


def test_cca_recovers_canonical_correlations():
    x, y = _correlated(20_000, (0.9, 0.6, 0.3), noise_dims=2, seed=1)
    result = cca(torch.from_numpy(x), torch.from_numpy(y), ridge=0.0)
    corr = result.corr.numpy()
    np.testing.assert_allclose(corr, _numpy_cca_corr(x, y), atol=1e-8)
    np.testing.assert_allclose(corr[:3], [0.9, 0.6, 0.3], atol=0.02)
    assert np.all(corr[3:] < 0.05)
    # outputs whitened and matched: cov(XA) = I = cov(YB), cov(XA, YB) = diag(corr)
    u = (torch.from_numpy(x) - result.mean_x) @ result.proj_x
    v = (torch.from_numpy(y) - result.mean_y) @ result.proj_y
    n = len(x)
    eye = np.eye(5)
    np.testing.assert_allclose((u.T @ u / (n - 1)).numpy(), eye, atol=1e-8)
    np.testing.assert_allclose((v.T @ v / (n - 1)).numpy(), eye, atol=1e-8)
    np.testing.assert_allclose((u.T @ v / (n - 1)).numpy(), np.diag(corr), atol=1e-8)


def test_cca_ridge_shrinks_and_float32_inputs():
    x, y = _correlated(500, (0.8,), noise_dims=3, seed=2)
    plain = cca(torch.from_numpy(x), torch.from_numpy(y), ridge=0.0).corr
    ridged = cca(torch.from_numpy(x).float(), torch.from_numpy(y).float(), ridge=1.0).corr
    assert ridged.dtype == torch.float64
    assert torch.all(ridged <= plain + 1e-6) and ridged[0] < plain[0]


def test_cca_layer_train_and_eval_agree_after_fit():
    x, y = (torch.from_numpy(a).float() for a in _correlated(400, (0.9, 0.5), 2, seed=3))
    layer = CCALayer(4, ridge=1e-3)
    layer.train()
    u_train, v_train = layer(x, y)
    assert u_train.dtype == torch.float32
    layer.fit(x, y)
    layer.eval()
    u_eval, v_eval = layer(x, y)
    torch.testing.assert_close(u_train, u_eval, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_train, v_eval, atol=1e-5, rtol=1e-5)
    # the fitted state is part of the state dict
    other = CCALayer(4)
    other.load_state_dict(layer.state_dict())
    other.eval()
    torch.testing.assert_close(other(x, y)[0], u_eval)


def test_cca_gradient_flows():
    torch.manual_seed(0)
    x = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    y = (0.7 * x.detach() + 0.5 * torch.randn(20, 3, dtype=torch.float64)).requires_grad_()

    def projected(a, b):
        p = cca(a, b, ridge=0.1)
        return (a - p.mean_x) @ p.proj_x, (b - p.mean_y) @ p.proj_y

    assert torch.autograd.gradcheck(projected, (x, y), eps=1e-6, atol=1e-5)
    # and through the layer into the ranking loss, from float32 features
    feats = torch.randn(50, 8, requires_grad=True)
    other = (feats.detach() @ torch.randn(8, 8) + 0.3 * torch.randn(50, 8)).requires_grad_()
    layer = CCALayer(8).train()
    u, v = layer(feats, other)
    ranking_loss(F.normalize(u, dim=1), F.normalize(v, dim=1)).backward()
    for t in (feats, other):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_cca_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        cca(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="two samples"):
        cca(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="ridge"):
        cca(torch.randn(5, 2), torch.randn(5, 2), ridge=-1)
    layer = CCALayer(4).eval()
    with pytest.raises(RuntimeError, match="fit"):
        layer(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="more than 4"):
        layer.train()(torch.randn(4, 4), torch.randn(4, 4))
    with pytest.raises(ValueError, match="expects 4 features"):
        layer(torch.randn(10, 3), torch.randn(10, 3))


# --------------------------------------------------------------------------- ranking loss


def test_ranking_loss_against_a_loop():
    torch.manual_seed(1)
    x = F.normalize(torch.randn(7, 5), dim=1)
    y = F.normalize(x + 0.8 * torch.randn(7, 5), dim=1)
    margin = 0.4
    total = 0.0
    for i, j in itertools.product(range(7), repeat=2):
        if i != j:
            total += max(0.0, margin - float(x[i] @ y[i]) + float(x[i] @ y[j]))
            total += max(0.0, margin - float(y[i] @ x[i]) + float(y[i] @ x[j]))
    assert float(ranking_loss(x, y, margin)) == pytest.approx(total / 7, rel=1e-5)


def test_ranking_loss_zero_when_separated_and_errors():
    x = torch.eye(4)
    assert float(ranking_loss(x, x, margin=0.9)) == 0.0
    assert float(ranking_loss(x, x, margin=1.5)) == pytest.approx(2 * 12 * 0.5 / 4)
    with pytest.raises(ValueError):
        ranking_loss(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError):
        ranking_loss(torch.zeros(1, 2), torch.zeros(1, 2))


# --------------------------------------------------------------------------- metrics


def test_rank_of_match_hand_example():
    sim = np.array([[0.9, 0.1, 0.2],    # match first: rank 1
                    [0.8, 0.5, 0.6],    # 0.8 and 0.6 beat 0.5: rank 3
                    [0.3, 0.7, 0.7]])   # a tie counts in the match's favour: rank 1
    np.testing.assert_array_equal(rank_of_match(sim), [1, 3, 1])
    np.testing.assert_array_equal(rank_of_match(sim.T), [1, 2, 1])
    with pytest.raises(ValueError):
        rank_of_match(np.zeros((2, 3)))


def test_retrieval_metrics_hand_example():
    m = retrieval_metrics(np.array([1, 2, 4, 30]))
    assert m["R@1"] == 0.25 and m["R@5"] == 0.75 and m["R@10"] == 0.75 and m["R@25"] == 0.75
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 30) / 4)
    assert m["median_rank"] == 3.0
    for bad in (np.array([]), np.array([0, 1]), np.ones((2, 2))):
        with pytest.raises(ValueError):
            retrieval_metrics(bad)


def test_retrieve_equals_brute_force_nearest_neighbour():
    rng = np.random.default_rng(4)
    q = rng.standard_normal((30, 8)).astype(np.float32)
    c = rng.standard_normal((50, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    index, sim = retrieve(q, c, k=5)
    for i in range(30):
        dist = [1 - float(q[i] @ c[j]) for j in range(50)]
        assert list(index[i]) == sorted(range(50), key=lambda j: dist[j])[:5]
        np.testing.assert_allclose(sim[i], [1 - dist[j] for j in index[i]], atol=1e-6)
    with pytest.raises(ValueError):
        retrieve(q, c, k=51)
    with pytest.raises(ValueError):
        similarity(q, c[:, :4])


def test_vote():
    neighbours = np.array([[2, 2, 0], [1, 2, 0]])
    np.testing.assert_array_equal(vote(neighbours, 4), [2, 0, 1, 3])


# --------------------------------------------------------------------------- DTW


def _brute_dtw_cost(cost: np.ndarray) -> float:
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return float(acc[n, m])


def test_dtw_hand_example():
    cost = np.array([[0, 5, 5, 5],
                     [5, 0, 0, 5],
                     [5, 5, 5, 0]], dtype=float)
    rows, cols = dtw(cost)
    assert list(zip(rows, cols)) == [(0, 0), (1, 1), (1, 2), (2, 3)]


def test_dtw_is_optimal_and_monotonic():
    rng = np.random.default_rng(5)
    for shape in ((1, 1), (1, 4), (5, 1), (6, 9), (12, 7)):
        cost = rng.random(shape)
        rows, cols = dtw(cost)
        assert (rows[0], cols[0]) == (0, 0) and (rows[-1], cols[-1]) == (shape[0] - 1, shape[1] - 1)
        steps = np.stack([np.diff(rows), np.diff(cols)], 1)
        assert all(tuple(s) in {(1, 0), (0, 1), (1, 1)} for s in steps)
        assert cost[rows, cols].sum() == pytest.approx(_brute_dtw_cost(cost))
    for bad in (np.zeros((0, 3)), np.array([[0.0, np.nan]]), np.zeros(3)):
        with pytest.raises(ValueError):
            dtw(bad)


# --------------------------------------------------------------------------- pairs and models


def _piece(seed: int = 0, height: int = 40) -> PieceData:
    """A small synthetic piece: 10 onsets 20 frames / 30 px apart."""
    rng = np.random.default_rng(seed)
    frames = np.arange(10, 210, 20, dtype=np.int64)
    x = np.linspace(50, 320, 10)
    return PieceData(piece_id=f"synthetic/{seed}", key="0" * 64,
                     spec=rng.random((136, 240)).astype(np.float32),
                     strip=rng.integers(0, 256, (height, 400)).astype(np.uint8),
                     system_x=np.array([0, 400]), note_x=x, note_score_s=np.arange(10.0),
                     note_onset_s=frames / 31.25, note_pitch=np.full(10, 60, np.int32),
                     onset_frame=frames, onset_x=x, n_pages=1, duration_s=240 / 31.25)


def _small_config(use_cca: bool) -> RetrievalConfig:
    return RetrievalConfig(name="tiny", kind="mono", sheet_shape=(40, 48), spec_shape=(136, 16),
                           sheet_channels=(4,), spec_channels=(4,), stem_stride=2,
                           pathway_units=16, embedding_dim=4, cca=use_cca)


def test_positions_and_pairs():
    pieces = [_piece(0), _piece(1)]
    assert position_x(pieces[0], 10) == pytest.approx(50)
    assert position_x(pieces[0], 20) == pytest.approx(65)
    assert position_x(pieces[0], 0) == pytest.approx(50)  # clamped before the first onset
    assert excerpt_end(100, 100) == 149 and excerpt_end(100, 5) == 102
    index, frame = sample_positions(pieces, 200, seed=3)
    again = sample_positions(pieces, 200, seed=3)
    np.testing.assert_array_equal(index, again[0])
    np.testing.assert_array_equal(frame, again[1])
    assert set(index) == {0, 1} and frame.min() >= 10 and frame.max() <= 190
    config = _small_config(True)
    sheet, spec = pair_batch(pieces, index[:5], frame[:5], config)
    assert sheet.shape == (5, 1, 40, 48) and spec.shape == (5, 1, 136, 16)
    assert float(sheet.min()) >= 0 and float(sheet.max()) <= 1
    with pytest.raises(ValueError):
        sample_positions([], 3, 0)


def test_embedding_save_load_and_evaluate(tmp_path):
    torch.manual_seed(0)
    pieces = [_piece(0), _piece(1)]
    model = Embedding(_small_config(True))
    model.train()
    index, frame = sample_positions(pieces, 40, seed=0)
    sheet, spec = pair_batch(pieces, index, frame, model.config)
    x, y = model(sheet, spec)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(40))
    with pytest.raises(RuntimeError):
        embed_snippets(model, pieces, index, np.full(40, 100.0))
    from sheetlab.retrieval import fit_cca
    fit_cca(model, pieces, n_pairs=60, seed=1)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, model, {"note": "test"})
    loaded = load_embedding(path)
    assert loaded.metadata == {"note": "test"} and not loaded.training
    a = embed_excerpts(model, pieces, index, frame)
    b = embed_excerpts(loaded, pieces, index, frame)
    np.testing.assert_allclose(a, b, atol=1e-6)
    metrics = evaluate_pairs(loaded, pieces, index, frame)
    assert set(metrics) == {"audio_to_sheet", "sheet_to_audio"}
    assert 0 < metrics["audio_to_sheet"]["MRR"] <= 1
    result = align(loaded, pieces[0], hop_px=20)
    assert result.pred_x.shape == (10,) and np.all(np.diff(result.pred_x) >= 0)
    assert result.errors_px.shape == (10,)
    with pytest.raises(FileNotFoundError, match="train-retrieval"):
        load_embedding(tmp_path / "missing.pt")


def test_baseline_and_named_config():
    model = Embedding(_small_config(False)).eval()
    assert model.cca is None
    out = model.embed_sheet(torch.rand(3, 1, 40, 48))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    config = retrieval_config(kind="piano")
    assert config.sheet_shape[0] == 112 and config.embedding_dim == 32 and config.cca
    assert RetrievalConfig.from_dict(config.as_dict()) == config
    assert isinstance(Embedding(config).net, RetrievalNet)
    with pytest.raises(ValueError):
        retrieval_config("huge")
    with pytest.raises(ValueError):
        retrieval_config(kind="organ")


def test_cli_registers_train_retrieval():
    from sheetlab.cli import build_parser

    args = build_parser().parse_args(["train-retrieval", "--no-cca", "--epochs", "2",
                                      "--cca-ridge", "0.1"])
    assert args.no_cca and args.epochs == 2 and args.cca_ridge == 0.1
    assert args.handler.__name__ == "_train_retrieval"


def test_numpy_facing_exercise_functions():
    from sheetlab.retrieval import pairwise_ranking_loss, ranking_loss, recall_and_mrr

    rng = np.random.default_rng(5)
    x = F.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    y = F.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    expected = float(ranking_loss(x, y, 0.3))
    got = pairwise_ranking_loss(x.numpy(), y.numpy(), 0.3)
    assert isinstance(got, float) and got == pytest.approx(expected, rel=1e-12)
    # by hand: query 0 ranks its match 1st, query 1 3rd (a tie with a wrong one is a win)
    sim = np.array([[0.9, 0.1, 0.2], [0.8, 0.5, 0.7], [0.4, 0.4, 0.4]])
    recall, mrr = recall_and_mrr(sim, 1)
    assert recall == pytest.approx(2 / 3) and mrr == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert recall_and_mrr(sim, 3)[0] == 1.0
    sim = rng.normal(size=(10, 10))
    ranks = rank_of_match(sim)
    assert recall_and_mrr(sim, 5) == pytest.approx((np.mean(ranks <= 5), np.mean(1 / ranks)))


@pytest.mark.parametrize("use_cca, bf16", [(True, False), (False, True)])
def test_train_retrieval_learns_and_writes_its_card(tmp_path, use_cca, bf16):
    import json

    from sheetlab.retrieval import RetrievalTrainSettings, train_retrieval
    from sheetlab.training import card_path

    pieces = [_piece(0), _piece(1)]
    settings = RetrievalTrainSettings(epochs=4, pairs_per_epoch=300, batch_size=50,
                                      lr_step_epochs=10, valid_pairs=60, fit_pairs=200,
                                      final_fit_pairs=300, threads=1, device="cpu",
                                      progress=False, bf16=bf16)
    out = tmp_path / "tiny.pt"
    history = train_retrieval(pieces, pieces, _small_config(use_cca), settings, out,
                              command="sheetlab train-retrieval --tiny")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    card = json.loads(card_path(out).read_text())
    assert card["command"] == "sheetlab train-retrieval --tiny"
    assert card["settings"]["bf16"] is bf16 and card["epochs_done"] == 4
    assert set(card["valid_after_final_fit"]) == {"audio_to_sheet", "sheet_to_audio"}
    assert ("canonical_correlations" in card) is use_cca
    best = max(history, key=lambda row: row["valid_mrr"])
    assert card["best"]["epoch"] == best["epoch"]
    loaded = load_embedding(out)
    assert (loaded.cca is not None and bool(loaded.cca.fitted)) is use_cca
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_mrr_difference_and_its_piece_bootstrap():
    from sheetlab.retrieval import mrr_difference

    groups = np.repeat(np.arange(10), 20)
    better = np.ones(200, dtype=int)
    worse = np.where(np.arange(200) % 2 == 0, 1, 2)
    result = mrr_difference(better, worse, groups, n_resamples=500, seed=1)
    assert result["difference"] == pytest.approx(0.25)  # half the queries: 1 - 1/2
    assert result["low"] == pytest.approx(0.25) and result["high"] == pytest.approx(0.25)
    # a gain in one piece only: the interval over pieces is wide and holds zero
    lucky = np.where(groups == 0, 1, 2)
    spread = mrr_difference(lucky, np.full(200, 2), groups, n_resamples=2000, seed=2)
    assert spread["difference"] == pytest.approx(0.05)
    assert spread["low"] == 0.0 and spread["high"] > 0.1
    swapped = mrr_difference(np.full(200, 2), lucky, groups, n_resamples=2000, seed=2)
    assert swapped["difference"] == pytest.approx(-0.05) and swapped["high"] == 0.0
    with pytest.raises(ValueError):
        mrr_difference(better, worse[:10], groups)
