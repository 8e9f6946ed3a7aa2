"""Evaluation metrics on logits or probabilities (tensors or arrays); each returns a Python float."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray

ECE_BINS = 15  # the one bin count of ECE: the trial metric ``ece`` (metrics.json, report) and `analyze`'s calibration


def _t(a: ArrayLike) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(a)


def accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of examples whose arg-max class equals the label."""
    return (_t(logits).argmax(-1) == _t(labels)).double().mean().item()


def macro_accuracy(logits: ArrayLike, labels: ArrayLike, groups: ArrayLike) -> float:
    """Accuracy averaged over groups (e.g. distance or number of attractors), each group weighing the same."""
    correct = (_t(logits).argmax(-1) == _t(labels)).double()
    g = _t(groups).long()
    _, inverse = torch.unique(g, return_inverse=True)
    hits = torch.bincount(inverse, weights=correct)
    return (hits / torch.bincount(inverse).double()).mean().item()


def nll(logits: ArrayLike, labels: ArrayLike) -> float:
    """Mean negative log-likelihood of the labels, ``-mean_i log softmax(z_i)[y_i]``."""
    return F.cross_entropy(_t(logits).double(), _t(labels).long()).item()


def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error (Guo et al., 2017) of the top-1 confidence.

    ``sum_b |B_b|/N · |acc(B_b) - conf(B_b)|`` over ``n_bins`` equal-width bins ``(b/n, (b+1)/n]``; the
    default :data:`ECE_BINS` (15) is what every stored result and table means by ``ece``.
    """
    p = _t(probs).double()
    conf, pred = p.max(-1)
    correct = (pred == _t(labels)).double()
    bins = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    sum_conf = torch.bincount(bins, weights=conf, minlength=n_bins)
    sum_acc = torch.bincount(bins, weights=correct, minlength=n_bins)
    return ((sum_acc - sum_conf).abs().sum() / len(p)).item()


def agreement(logits_a: ArrayLike, logits_b: ArrayLike) -> float:
    """Fraction of examples on which the two models' top-1 predictions agree."""
    return (_t(logits_a).argmax(-1) == _t(logits_b).argmax(-1)).double().mean().item()


def kl(teacher_logits: ArrayLike, student_logits: ArrayLike) -> float:
    """Mean over examples of ``KL(softmax(teacher) ‖ softmax(student))`` at temperature 1.

    Log-probabilities are accepted as logits, so saved probabilities can be passed as ``log(p)``.
    """
    log_p_t = F.log_softmax(_t(teacher_logits).double(), -1)
    log_p_s = F.log_softmax(_t(student_logits).double(), -1)
    p_t = log_p_t.exp()
    terms = torch.where(p_t > 0, p_t * (log_p_t - log_p_s), torch.zeros_like(p_t))
    return terms.sum(-1).mean().item()


def invariance_metric(probs: ArrayLike, probs_transformed: ArrayLike) -> float:
    """IM (eq. 3 of the symmetry-invariance paper): ``1/N sum_i |softmax(x_i) - softmax(x'_i)|`` over paired
    rows of class probabilities, where |·| is read as the L1 norm over classes (0 for an invariant model, at
    most 2). Raises ValueError for arrays of different shapes."""
    p, q = _t(probs).double(), _t(probs_transformed).double()
    if p.shape != q.shape:
        raise ValueError(f"probabilities of different shapes: {tuple(p.shape)} and {tuple(q.shape)}")
    return (p - q).abs().sum(-1).mean().item()
