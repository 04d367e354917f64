"""GloVe: the loss and its gradients by hand, glove.c's AdaGrad step, training lowers the loss."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from lmtrain.embeddings.glove import GloveParams, ZeroCellSampler, loss_and_grads, train_glove, weighting


def test_weighting_is_capped_power():
    x = torch.tensor([1.0, 50.0, 100.0, 400.0], dtype=torch.float64)
    expected = [(1 / 100) ** 0.75, 0.5**0.75, 1.0, 1.0]
    np.testing.assert_allclose(weighting(x, 100.0, 0.75).numpy(), expected)


def test_loss_and_grads_by_hand():
    w, c = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[3.0, -1.0, -0.25]])  # vector | bias
    log_x, weight = torch.tensor([1.0]), torch.tensor([0.5])
    # diff = w.c + bw + bc - log x = 1 + 0.5 - 0.25 - 1 = 0.25; f * diff = 0.125
    loss, grad_w, grad_c = loss_and_grads(w, c, log_x, weight)
    assert loss.item() == pytest.approx(0.5 * 0.5 * 0.25**2)
    np.testing.assert_allclose(grad_w.numpy(), [[0.375, -0.125, 0.125]])
    np.testing.assert_allclose(grad_c.numpy(), [[0.125, 0.25, 0.125]])


def test_grads_match_autograd():
    gen = torch.Generator().manual_seed(0)
    w, c = torch.randn(5, 4, generator=gen, requires_grad=True), torch.randn(5, 4, generator=gen, requires_grad=True)
    log_x, weight = torch.randn(5, generator=gen), torch.rand(5, generator=gen)
    diff = (w[:, :-1] * c[:, :-1]).sum(-1) + w[:, -1] + c[:, -1] - log_x
    (0.5 * weight * diff**2).sum().backward()
    _, grad_w, grad_c = loss_and_grads(w.detach().clone(), c.detach().clone(), log_x, weight, grad_clip=100.0)
    torch.testing.assert_close(grad_w, w.grad)
    torch.testing.assert_close(grad_c, c.grad)


def test_adagrad_step_divides_by_the_accumulator_with_this_step():
    params = GloveParams.init(vocab_size=2, vector_size=2, seed=0, device=torch.device("cpu"))
    w0, c0 = params.word.clone(), params.context.clone()
    lr, x = 0.05, 3.0
    rows, cols = torch.tensor([0]), torch.tensor([1])
    for _ in range(2):  # the second step divides by sqrt(1 + first squared step)
        w, c = params.word[0].clone(), params.context[1].clone()
        sq_w, sq_c = params.word_sq[0].clone(), params.context_sq[1].clone()
        f = (x / 10.0) ** 0.75
        diff = float(w[:2] @ c[:2] + w[2] + c[2] - math.log(x))
        grad_w = torch.cat([f * diff * c[:2], torch.tensor([f * diff])])
        grad_c = torch.cat([f * diff * w[:2], torch.tensor([f * diff])])
        params.step(rows, cols, torch.tensor([math.log(x)]), torch.tensor([f]), lr, grad_clip=100.0)
        sq_w, sq_c = sq_w + (lr * grad_w) ** 2, sq_c + (lr * grad_c) ** 2  # accumulated first
        torch.testing.assert_close(params.word[0], w - lr * grad_w / sq_w.sqrt())
        torch.testing.assert_close(params.context[1], c - lr * grad_c / sq_c.sqrt())
        torch.testing.assert_close(params.word_sq[0], sq_w)
    assert torch.equal(params.word[1], w0[1]) and torch.equal(params.context[0], c0[0])


def test_repeated_rows_in_a_batch_sum_their_steps():
    params = GloveParams.init(vocab_size=3, vector_size=2, seed=1, device=torch.device("cpu"))
    w, sq = params.word[0].clone(), params.word_sq[0].clone()
    c1, c2 = params.context[1].clone(), params.context[2].clone()
    log_x, f = torch.tensor([0.5, 1.0]), torch.tensor([0.3, 0.7])
    steps = []
    for c, lx, fx in zip((c1, c2), log_x, f):
        diff = float(w[:2] @ c[:2] + w[2] + c[2] - lx)
        steps.append(0.05 * fx * diff * torch.cat([c[:2], torch.tensor([1.0])]))
    params.step(torch.tensor([0, 0]), torch.tensor([1, 2]), log_x, f, 0.05, grad_clip=None)
    # both gradients were read at one point: one AdaGrad step with their sum
    sq = sq + (steps[0] + steps[1]).square()
    torch.testing.assert_close(params.word_sq[0], sq)
    torch.testing.assert_close(params.word[0], w - (steps[0] + steps[1]) / sq.sqrt())


def test_a_frequent_words_summed_steps_stay_bounded():
    # 4096 identical entries of one pair in a batch: as 4096 steps taken at one point they would
    # move the word ~4096 (glove.c's order) or ~64 (each entry's square accumulated) times as far
    # as one step; as one AdaGrad step no coordinate moves by more than 1
    params = GloveParams.init(vocab_size=2, vector_size=4, seed=0, device=torch.device("cpu"))
    before = params.word[0].clone()
    n = 4096
    params.step(
        torch.zeros(n, dtype=torch.long),
        torch.ones(n, dtype=torch.long),
        torch.full((n,), 5.0),
        torch.ones(n),
        lr=0.2,
        grad_clip=None,
    )
    assert (params.word[0] - before).abs().max() <= 1.0


def _small_cooccurrences(seed: int = 0, vocab_size: int = 40) -> sp.coo_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.poisson(2.0, size=(vocab_size, vocab_size)).astype(float)
    dense = dense + dense.T
    return sp.coo_matrix(dense)


def test_training_lowers_the_loss_and_is_seeded():
    cooc = _small_cooccurrences()
    threads = torch.get_num_threads()
    vectors, losses = train_glove(
        cooc, vector_size=8, epochs=15, lr=0.05, x_max=10.0, batch_size=64, negatives=0, seed=3, device="cpu", threads=1
    )
    assert vectors.shape == (40, 8)
    assert losses[-1] < 0.5 * losses[0]
    assert sum(losses[-3:]) < sum(losses[1:4])  # still falling after the first big drop
    again, _ = train_glove(
        cooc, vector_size=8, epochs=15, lr=0.05, x_max=10.0, batch_size=64, negatives=0, seed=3, device="cpu", threads=1
    )
    np.testing.assert_array_equal(vectors, again)
    assert torch.get_num_threads() == threads  # the thread setting is restored


def test_glove_on_the_lee_corpus_does_not_collapse():
    from lmtrain.embeddings.corpus import build_corpus
    from lmtrain.embeddings.glove import fit_glove

    corpus = build_corpus("lee", [], "simple_preprocess")  # 58k words of news
    kv, losses, _ = fit_glove(
        corpus,
        "lee",
        vector_size=50,
        window=10,
        min_count=5,
        epochs=6,
        lr=0.2,
        x_max=3.0,
        batch_size=16384,
        seed=0,
        device="cpu",
        threads=1,
    )
    assert losses[-1] < 0.5 * losses[0]
    unit = kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)
    total = unit.sum(0)
    mean_cosine = (total @ total - len(unit)) / (len(unit) * (len(unit) - 1))
    assert mean_cosine < 0.2  # the words spread out instead of sharing one direction


def test_one_sided_entries_cost_nothing_below_their_target():
    w, c = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    log_x, weight = torch.tensor([2.0, 0.5]), torch.ones(2)  # predictions 1.0: below, above
    loss, grad_w, _ = loss_and_grads(w, c, log_x, weight, one_sided=torch.tensor([True, True]))
    assert loss.item() == pytest.approx(0.5 * 0.5**2)  # only the second cell, diff 0.5
    assert grad_w[0].abs().sum() == 0 and grad_w[1, 0] == pytest.approx(0.5)


def test_zero_cells_are_drawn_only_where_nothing_was_counted():
    dense = np.zeros((4, 4))
    dense[0, 1] = dense[1, 0] = 2.0
    dense[2, 3] = dense[3, 2] = 1.0
    sampler = ZeroCellSampler(sp.coo_matrix(dense), negatives=8, zero_count=0.1, zero_weight=0.5, seed=0)
    rows, cols = torch.tensor([0, 2]), torch.tensor([1, 3])
    all_rows, all_cols, log_x, weight, one_sided = sampler.extend(
        rows, cols, torch.tensor([0.7, 0.0]), torch.tensor([0.9, 0.4])
    )
    assert len(all_rows) == 2 + 2 * 8 and one_sided.tolist() == [False] * 2 + [True] * 16
    drawn = [(int(i), int(j)) for i, j in zip(all_rows[2:], all_cols[2:])]
    expected = [0.0 if dense[i, j] else 0.5 for i, j in drawn]  # an observed cell does not count
    assert weight[2:].tolist() == expected and 0.0 in expected and 0.5 in expected
    assert log_x[2:].allclose(torch.full((16,), math.log(0.1)))
