"""Training objectives: ListMLE (the paper's), and the two baselines users would pick instead."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def list_mle(scores: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """ListMLE (Xia et al. 2008): -log P(true order | scores) under the Plackett-Luce model.

    The true order sorts `labels` descending (longer first, since larger score = longer);
    ties are broken at random so that bucketed labels do not impose an arbitrary order.
    P(pi) = prod_i exp(s_pi(i)) / sum_{j>=i} exp(s_pi(j)). Returns the loss of one list.
    """
    perm = torch.randperm(labels.numel(), generator=generator, device=labels.device)
    scores, labels = scores[perm], labels[perm]
    order = torch.argsort(labels, descending=True, stable=True)
    s = scores[order]
    # log sum_{j>=i} exp(s_j), computed right to left
    tail_lse = torch.logcumsumexp(s.flip(0), dim=0).flip(0)
    return (tail_lse - s).sum()


def censored_list_mle(
    scores: torch.Tensor, lengths: torch.Tensor, censored: torch.Tensor, step: int = 10,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ListMLE where some lengths are only lower bounds (the answer was cut: `length`, `cancelled`).

    Why: dropping cut answers hides the longest ones from training. A censored item's place in
    the full order is unknown, but one fact is known: it is longer than every item whose length
    is at most its lower bound. So the loss is ListMLE over the uncensored items (bucketized as
    usual) plus, for each censored item c, the Plackett-Luce probability that c comes first among
    {c} and the uncensored items known shorter than it: -s_c + logsumexp(s_c, s_j: len_j <= lb_c).
    Pairs whose order is unknown (c against a longer item, or two censored items) add nothing.
    """
    censored = censored.bool()
    known = ~censored
    loss = scores.sum() * 0.0
    if int(known.sum()) >= 2:
        loss = loss + list_mle(scores[known], bucketize(lengths[known], step), generator)
    for c in torch.nonzero(censored).flatten().tolist():
        below = known & (lengths <= lengths[c])
        if bool(below.any()):
            group = torch.cat([scores[c : c + 1], scores[below]])
            loss = loss + torch.logsumexp(group, 0) - scores[c]
    return loss


def pairwise_logistic(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """RankNet-style loss: mean log(1 + exp(-(s_i - s_j))) over the pairs with label_i > label_j.

    Kendall's tau counts concordant pairs, and this is its smooth surrogate with every ordered
    pair of the list weighted equally (ListMLE weights the top of the list most).
    """
    diff = scores[:, None] - scores[None, :]
    longer = labels[:, None] > labels[None, :]
    if not bool(longer.any()):
        return scores.sum() * 0.0
    return F.softplus(-diff[longer]).mean()


def bucketize(output_tokens: torch.Tensor, step: int = 10) -> torch.Tensor:
    """The paper's label: lengths in buckets of `step` tokens (differences below it are ties)."""
    return torch.div(output_tokens, step, rounding_mode="floor")


def log_length_mse(pred: torch.Tensor, output_tokens: torch.Tensor) -> torch.Tensor:
    """SSJF-style pointwise regression of log(1 + length)."""
    return F.mse_loss(pred, torch.log1p(output_tokens.float()))


def bucket_cross_entropy(logits: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
    """S3-style classification into length buckets."""
    return F.cross_entropy(logits, bucket)
