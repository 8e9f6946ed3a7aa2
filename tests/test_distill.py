"""The distillation loss against its definition (Hinton et al., 2015)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdtune.train.distill import KD_LOSSES, LossSpec, kd_loss, objective


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("tau", [1.0, 2.0, 5.0])
def test_kd_loss_is_tau_squared_kl_averaged_over_the_batch(tau):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(7, 10)) * 3, rng.normal(size=(7, 10)) * 3
    p_t, p_s = _softmax(t / tau), _softmax(s / tau)
    expected = tau**2 * np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1))
    got = kd_loss(torch.tensor(s), torch.tensor(t), tau).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_kd_gradient_is_tau_times_probability_gap():
    # d/dz_s [τ² KL(p_t || softmax(z_s/τ))] / B = τ (q_s - p_t) / B
    tau, s, t = 3.0, torch.randn(5, 4, dtype=torch.double, requires_grad=True), torch.randn(5, 4, dtype=torch.double)
    kd_loss(s, t, tau).backward()
    expected = tau * (F.softmax(s.detach() / tau, -1) - F.softmax(t / tau, -1)) / 5
    assert torch.allclose(s.grad, expected)


def test_kd_loss_is_zero_when_student_matches_teacher():
    z = torch.randn(3, 6)
    assert kd_loss(z, z, 5.0).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_cross_entropy_is_hinton_plus_teacher_entropy():
    tau, s, t = 2.0, torch.randn(4, 5, dtype=torch.double), torch.randn(4, 5, dtype=torch.double)
    p_t = F.softmax(t / tau, -1)
    entropy = -(p_t * p_t.log()).sum(-1).mean() * tau**2
    assert KD_LOSSES.get("soft_ce")(s, t, tau).item() == pytest.approx((kd_loss(s, t, tau) + entropy).item())


def test_objective_weights_hard_and_soft_terms():
    s, t, y = torch.randn(6, 3, dtype=torch.double), torch.randn(6, 3, dtype=torch.double), torch.tensor([0, 1, 2, 0, 1, 2])
    ce, kd = F.cross_entropy(s, y).item(), kd_loss(s, t, 4.0).item()
    pure = LossSpec("hinton", temperature=4.0, w_hard=0.0, w_soft=1.0)
    mixed = LossSpec("hinton", temperature=4.0, w_hard=0.3, w_soft=0.7)
    assert objective(pure, s, y, t).item() == pytest.approx(kd)
    assert objective(mixed, s, y, t).item() == pytest.approx(0.3 * ce + 0.7 * kd)
    assert objective(LossSpec(), s, y).item() == pytest.approx(ce)
    smoothed = F.cross_entropy(s, y, label_smoothing=0.1).item()
    assert objective(LossSpec(), s, y, label_smoothing=0.1).item() == pytest.approx(smoothed)
