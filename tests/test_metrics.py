"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from kdtune.train import metrics


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    assert metrics.accuracy(logits, torch.tensor([0, 1, 0, 0])) == pytest.approx(0.75)


def test_nll_is_mean_negative_log_likelihood_of_each_label():
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0.0, 0.0, math.log(2.0)]])
    labels = np.array([2, 0, 1])
    z = math.exp(1) + math.exp(2) + math.exp(3)
    expected = (-(3 - math.log(z)) + math.log(3) + math.log(4)) / 3
    assert metrics.nll(logits, labels) == pytest.approx(expected)
    # the pitfall: indexing log-probs with the label vector averages a B×B block instead
    logp = torch.log_softmax(torch.tensor(logits), -1)
    assert -logp[:, labels].mean().item() != pytest.approx(expected)


def test_ece_by_hand_with_right_closed_bins():
    # 10 bins (b/10, (b+1)/10]. Rows 1-2: confidence 0.95 (one right) → bin 9, |0.5 - 0.95|, weight 2/5.
    # Row 3: 0.6, right → bin 5 (0.5, 0.6], |1 - 0.6|. Rows 4-5: 0.4 exactly → bin (0.3, 0.4], one right.
    probs = np.array([[0.95, 0.05, 0.0], [0.95, 0.05, 0.0], [0.6, 0.4, 0.0], [0.4, 0.3, 0.3], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 0, 1, 2])
    expected = (2 / 5) * abs(0.5 - 0.95) + (1 / 5) * abs(1 - 0.6) + (2 / 5) * abs(0.5 - 0.4)
    assert metrics.ece(probs, labels, n_bins=10) == pytest.approx(expected)


def test_ece_of_perfectly_calibrated_and_of_overconfident_models():
    probs = np.array([[1.0, 0.0]] * 4)
    assert metrics.ece(probs, np.array([0, 0, 0, 0])) == pytest.approx(0.0)
    assert metrics.ece(probs, np.array([0, 0, 1, 1])) == pytest.approx(0.5)


def test_agreement_compares_top1_predictions():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    b = torch.tensor([[5.0, 0.0], [2.0, 1.0], [0.3, 0.2]])
    assert metrics.agreement(a, b) == pytest.approx(2 / 3)


def test_kl_teacher_to_student_at_temperature_one():
    p_t, p_s = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert metrics.kl(np.log(p_t), np.log(p_s)) == pytest.approx(expected)
    assert metrics.kl(np.log(p_s), np.log(p_s)) == pytest.approx(0.0, abs=1e-12)


def test_kl_ignores_classes_the_teacher_gives_zero_probability():
    p_t = torch.tensor([[1.0, 0.0]])
    p_s = torch.tensor([[0.5, 0.5]])
    assert metrics.kl(p_t.log(), p_s.log()) == pytest.approx(math.log(2))
