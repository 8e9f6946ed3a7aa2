"""Optimizers and learning-rate schedules by name (the paper: Adam with exponential decay for
independent models, Adam with cosine decay with restarts for students)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from kdtune.registry import Registry

Schedule = Callable[..., float]
SCHEDULES: Registry[Schedule] = Registry("schedule")
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


@SCHEDULES.register("constant")
def constant(epoch: float, total_epochs: float) -> float:
    """Multiplier 1 throughout."""
    return 1.0


@SCHEDULES.register("exponential")
def exponential(epoch: float, total_epochs: float, decay_rate: float = 0.9, decay_epochs: float = 1.0) -> float:
    """``decay_rate ** (epoch / decay_epochs)`` (TF ``exponential_decay``, not staircased)."""
    return decay_rate ** (epoch / decay_epochs)


@SCHEDULES.register("cosine")
def cosine(epoch: float, total_epochs: float, alpha: float = 0.0) -> float:
    """Cosine decay from 1 to ``alpha`` over the whole run."""
    t = min(epoch / total_epochs, 1.0)
    return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * t))


@SCHEDULES.register("cosine_restarts")
def cosine_restarts(
    epoch: float, total_epochs: float, first_epochs: float = 1.0, t_mul: float = 2.0, m_mul: float = 1.0, alpha: float = 0.0
) -> float:
    """SGDR (Loshchilov & Hutter) as TF ``cosine_decay_restarts``: periods ``first_epochs·t_mul^i``,
    peak ``m_mul^i`` in period i, each decaying to ``alpha`` times its peak."""
    if t_mul < 1.0:  # the periods would shrink to nothing before the end of training
        raise ValueError(f"t_mul must be >= 1, got {t_mul}")
    t, i, period = epoch / first_epochs, 0, 1.0
    if t_mul == 1.0:
        i = int(t)
        t -= i
    else:
        while t >= period:
            t -= period
            i += 1
            period *= t_mul
        t /= period
    return (m_mul**i) * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * t)))


@OPTIMIZERS.register("adam")
def adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam; ``weight_decay`` is an L2 penalty added to the gradient."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9."""
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9, nesterov=True)
