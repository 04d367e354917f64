"""The linear-chain CRF against brute-force enumeration of every tag sequence; a biLSTM-CRF tagger learns."""

from __future__ import annotations

import itertools

import torch

from lmtrain.models.crf import LinearChainCRF
from lmtrain.models.heads import build_task_head
from lmtrain.objectives.token_classification import gather_words
from lmtrain.tasks.conll import allowed_transitions


def _crf(n_tags: int, seed: int = 0) -> LinearChainCRF:
    torch.manual_seed(seed)
    crf = LinearChainCRF(n_tags)
    with torch.no_grad():
        for param in crf.parameters():
            param.normal_()
    return crf


def _score(crf: LinearChainCRF, emissions: torch.Tensor, tags: tuple[int, ...]) -> torch.Tensor:
    """A path's score written out term by term."""
    trans = crf.transitions.masked_fill(~crf.allowed, -1.0e4)
    score = crf.start[tags[0]] + crf.end[tags[-1]] + sum(emissions[t, y] for t, y in enumerate(tags))
    return score + sum(trans[a, b] for a, b in zip(tags, tags[1:]))


def _brute_force(crf, emissions, lengths):
    """(log-partition, best path) of each row by enumerating all n_tags ** length sequences."""
    out = []
    for row, n in enumerate(lengths):
        paths = list(itertools.product(range(emissions.shape[2]), repeat=n))
        scores = torch.stack([_score(crf, emissions[row], p) for p in paths])
        out.append((torch.logsumexp(scores, 0), paths[int(scores.argmax())]))
    return out


def test_log_likelihood_and_viterbi_equal_brute_force_over_all_sequences():
    crf = _crf(3)
    crf.constrain(torch.tensor([[True, True, False], [True, True, True], [True, True, True]]))  # no 0 -> 2
    emissions = torch.randn(3, 4, 3)
    lengths = [4, 2, 1]
    mask = torch.arange(4).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.tensor([[1, 0, 1, 2], [2, 1, 0, 0], [0, 0, 0, 0]])
    ll = crf.log_likelihood(emissions, tags, mask)
    best = crf.decode(emissions, mask)
    for row, (log_z, path) in enumerate(_brute_force(crf, emissions, lengths)):
        gold = tuple(tags[row, : lengths[row]].tolist())
        assert torch.allclose(ll[row], _score(crf, emissions[row], gold) - log_z, atol=1e-5)
        assert tuple(best[row, : lengths[row]].tolist()) == path
        assert best[row, lengths[row] :].eq(0).all()
        assert all((a, b) != (0, 2) for a, b in zip(path, path[1:]))  # the forbidden transition never wins


def test_rows_without_words_give_zero_and_gradients_reach_every_score():
    crf = _crf(2)
    emissions = torch.randn(2, 3, 2, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    ll = crf.log_likelihood(emissions, torch.zeros(2, 3, dtype=torch.long), mask)
    assert ll[1] == 0 and ll[0] < 0
    ll.sum().backward()
    assert emissions.grad[0, :2].abs().sum() > 0 and emissions.grad[:, 2].abs().sum() == 0  # padding gets none
    assert crf.transitions.grad.abs().sum() > 0 and crf.end.grad.abs().sum() > 0


def test_gather_words_moves_labelled_positions_to_the_front_in_order():
    values = torch.arange(12).view(2, 6)
    selected = torch.tensor([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    words, mask = gather_words(values, selected)
    assert words[mask].tolist() == values[selected].tolist()
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_bio_transitions_forbid_inside_after_outside_or_another_type():
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    allowed = allowed_transitions(labels, "bio")
    assert not allowed[0][2] and not allowed[3][2] and not allowed[4][2]
    assert allowed[1][2] and allowed[2][2] and allowed[0][1] and allowed[2][0] and allowed[2][3]
    bioes = allowed_transitions(["O", "B-X", "I-X", "E-X", "S-X"], "bioes")
    assert not bioes[1][0] and not bioes[2][4] and bioes[3][0] and bioes[4][1] and not bioes[0][3]


def test_a_bilstm_crf_tagger_lowers_its_loss():
    torch.manual_seed(0)
    head = build_task_head(
        {"kind": "token_classifier", "n_classes": 3, "dropout": 0.0, "encoder": "bilstm", "lstm_dim": 8, "crf": True},
        d_model=6,
    )
    x = torch.randn(8, 5, 6)
    mask = torch.ones(8, 5, dtype=torch.bool)
    mask[4:, 3:] = False
    tags = (x[..., 0] > 0).long() + (x[..., 1] > 1).long()  # tags a biLSTM can read off its inputs
    optimizer = torch.optim.Adam(head.parameters(), lr=2e-2)
    losses = []
    for _ in range(40):
        loss = -head.crf.log_likelihood(head(x, mask), tags, mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert (head.crf.decode(head(x, mask), mask)[mask] == tags[mask]).float().mean() > 0.8
