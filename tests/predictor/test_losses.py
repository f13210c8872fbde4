"""ListMLE against a brute-force Plackett-Luce permutation probability; the pairwise loss by hand."""

from __future__ import annotations

import itertools
import math

import torch

from predictor.losses import bucketize, censored_list_mle, list_mle, pairwise_logistic


def plackett_luce_logprob(scores: list[float], order: list[int]) -> float:
    """log P(order) = sum_i [s_order[i] - log sum_{j>=i} exp(s_order[j])], written out longhand."""
    total = 0.0
    for i in range(len(order)):
        rest = order[i:]
        total += scores[order[i]] - math.log(sum(math.exp(scores[j]) for j in rest))
    return total


def test_list_mle_matches_brute_force():
    scores = [0.3, -1.2, 2.0, 0.7]
    labels = [40.0, 10.0, 25.0, 90.0]  # true order (longest first): 3, 0, 2, 1
    loss = list_mle(torch.tensor(scores), torch.tensor(labels))
    assert abs(float(loss) + plackett_luce_logprob(scores, [3, 0, 2, 1])) < 1e-5


def test_list_mle_is_a_distribution_over_orders():
    scores = torch.tensor([0.1, 1.5, -0.4, 0.9])
    total = 0.0
    for perm in itertools.permutations(range(4)):
        labels = torch.zeros(4)
        for rank, item in enumerate(perm):
            labels[item] = 4 - rank  # perm[0] is the longest
        total += math.exp(-float(list_mle(scores, labels)))
    assert abs(total - 1.0) < 1e-5


def test_list_mle_prefers_correct_scores_and_has_gradient():
    labels = torch.tensor([1.0, 2.0, 3.0, 4.0])
    good = torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    bad = torch.tensor([3.0, 2.0, 1.0, 0.0])
    loss = list_mle(good, labels)
    assert float(loss) < float(list_mle(bad, labels))
    loss.backward()
    assert good.grad is not None and torch.isfinite(good.grad).all()


def test_ties_are_broken_at_random_but_reproducibly():
    scores = torch.tensor([0.5, -0.5, 1.0])
    labels = torch.tensor([2.0, 2.0, 1.0])  # items 0 and 1 tie
    allowed = {-plackett_luce_logprob(scores.tolist(), o) for o in ([0, 1, 2], [1, 0, 2])}
    seen = set()
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        value = round(float(list_mle(scores, labels, g)), 5)
        assert any(abs(value - a) < 1e-4 for a in allowed)
        seen.add(value)
    assert len(seen) == 2
    a = list_mle(scores, labels, torch.Generator().manual_seed(3))
    b = list_mle(scores, labels, torch.Generator().manual_seed(3))
    assert float(a) == float(b)


def test_bucketize_steps_of_ten():
    assert bucketize(torch.tensor([0, 9, 10, 19, 20, 4095])).tolist() == [0, 0, 1, 1, 2, 409]


def test_pairwise_logistic_averages_over_ordered_pairs_only():
    scores = [0.3, -1.2, 2.0]
    labels = [4.0, 1.0, 4.0]  # pairs with a longer first item: (0, 1), (2, 1); the tie (0, 2) is no pair
    expected = (math.log1p(math.exp(-(0.3 + 1.2))) + math.log1p(math.exp(-(2.0 + 1.2)))) / 2
    assert abs(float(pairwise_logistic(torch.tensor(scores), torch.tensor(labels))) - expected) < 1e-6


def test_pairwise_logistic_of_an_all_tied_list_is_zero_with_a_gradient():
    scores = torch.tensor([0.5, 1.0], requires_grad=True)
    loss = pairwise_logistic(scores, torch.tensor([3.0, 3.0]))
    loss.backward()
    assert float(loss) == 0.0 and scores.grad is not None


def test_censored_list_mle_without_cut_items_is_list_mle():
    scores, lengths = torch.tensor([0.3, -1.2, 2.0, 0.7]), torch.tensor([40.0, 10.0, 25.0, 90.0])
    plain = list_mle(scores, bucketize(lengths), torch.Generator().manual_seed(1))
    cens = censored_list_mle(scores, lengths, torch.zeros(4, dtype=torch.bool), 10, torch.Generator().manual_seed(1))
    assert abs(float(plain) - float(cens)) < 1e-6


def test_censored_list_mle_uses_only_the_orders_a_lower_bound_makes_certain():
    # items 0-2 exact (40, 10, 25); item 3 cut at 30: longer than 10 and 25, unknown against 40
    scores = [0.3, -1.2, 2.0, 0.7]
    lengths = torch.tensor([40.0, 10.0, 25.0, 30.0])
    cut = torch.tensor([False, False, False, True])
    loss = censored_list_mle(torch.tensor(scores), lengths, cut)
    exact_part = -plackett_luce_logprob(scores[:3], [0, 2, 1])
    bound_part = -(scores[3] - math.log(sum(math.exp(scores[j]) for j in (3, 1, 2))))
    assert abs(float(loss) - (exact_part + bound_part)) < 1e-5
    # a cut item's loss falls as it is scored above what it is known to exceed, and does not care
    # where it sits against the longer exact item (40): that order is unknown
    s = torch.tensor(scores, requires_grad=True)
    censored_list_mle(s, lengths, cut).backward()
    assert s.grad[3] < 0
    lo, hi = torch.tensor([0.3, -1.2, 2.0, 2.5]), torch.tensor([5.0, -1.2, 2.0, 2.5])
    d_lo = censored_list_mle(lo, lengths, cut) - list_mle(lo[:3], bucketize(lengths[:3]))
    d_hi = censored_list_mle(hi, lengths, cut) - list_mle(hi[:3], bucketize(lengths[:3]))
    assert abs(float(d_lo) - float(d_hi)) < 1e-5


def test_censored_list_mle_with_a_bound_below_everything_adds_nothing():
    scores, lengths = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([40.0, 10.0, 3.0])
    cut = torch.tensor([False, False, True])
    assert abs(float(censored_list_mle(scores, lengths, cut)) - float(list_mle(scores[:2], bucketize(lengths[:2])))) < 1e-5
