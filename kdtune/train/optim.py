"""Optimizers and learning-rate schedules by name (the paper: Adam with exponential decay for
independent models, Adam with cosine decay with restarts for students)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from kdtune.labels import value_text
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


def restart_cycle_end(total_epochs: float, first_epochs: float, t_mul: float) -> tuple[float, float, int]:
    """Where a ``cosine_restarts`` run of ``total_epochs`` ends: (start epoch of the cycle it ends in,
    fraction of that cycle done at the end, its index); fraction 1.0 when the run ends with a cycle."""
    tol = 1e-9 * max(total_epochs, 1.0)
    if t_mul == 1.0:  # closed form: a tiny first_epochs must not loop for ages
        i = max(math.ceil((total_epochs - tol) / first_epochs) - 1, 0)
        start, period = i * first_epochs, first_epochs
    else:
        start, period, i = 0.0, first_epochs, 0
        while start + period < total_epochs - tol:
            start, period, i = start + period, period * t_mul, i + 1
    if abs(start + period - total_epochs) <= tol:
        return start, 1.0, i
    return start, (total_epochs - start) / period, i


def _restart_fixes(total_epochs: int, first_epochs: float, t_mul: float) -> list[str]:
    """Settings that end a cycle exactly at ``total_epochs``, whole first_epochs only: with the same t_mul
    (2-4 cycles), with t_mul 1 (the nearest to the current first_epochs), else one cycle."""
    fixes = []
    if t_mul != 1.0:
        same = [(total_epochs / sum(t_mul**j for j in range(k)), k) for k in range(2, 5)]
        whole = [(round(f), k) for f, k in same if f >= 1 and abs(f - round(f)) < 1e-9]
        if whole:
            f, k = min(whole, key=lambda fk: (abs(fk[0] - first_epochs), -fk[1]))
            fixes.append(f"first_epochs {f}, t_mul {value_text(t_mul)} ({k} cycles)")
    divisors = [d for d in range(1, total_epochs // 2 + 1) if total_epochs % d == 0]
    if divisors:
        d = min(divisors, key=lambda d: (abs(d - first_epochs), -d))
        fixes.append(f"first_epochs {d}, t_mul 1 ({total_epochs // d} cycles)")
    return [*fixes, f"first_epochs {total_epochs} (one cycle, no restart)"]


def schedule_warning(name: str, params: Mapping[str, Any], total_epochs: int) -> str | None:
    """One line if schedule ``name`` with ``params`` ends training mid-cycle (a restart schedule whose
    last cycle is cut short: the run stops at a high learning rate), else None."""
    if name != "cosine_restarts":
        return None
    first, t_mul, alpha = float(params.get("first_epochs", 1.0)), float(params.get("t_mul", 2.0)), float(params.get("alpha", 0.0))
    start, done, _ = restart_cycle_end(total_epochs, first, t_mul)
    if done >= 1.0:
        return None
    level = alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * done))
    fixes = _restart_fixes(total_epochs, first, t_mul)
    if start > 0:
        where, fixes = f"restarts at epoch {value_text(start)} of {total_epochs}", fixes[:2]
    else:  # the first cycle is longer than the run: one cycle as long as the run is the plain fix
        where, fixes = f"does not restart within {total_epochs} epoch{'s' if total_epochs != 1 else ''}", fixes[::-1][:2]
    return (
        f"cosine_restarts (first_epochs {value_text(first)}, t_mul {value_text(t_mul)}) {where} and ends at {level:.2f} of its "
        f"peak learning rate; use {' or '.join(fixes)} to end a cycle at epoch {total_epochs}"
    )


# each is called as (params, lr=…, weight_decay=…); Adam's weight_decay is an L2 penalty added to the gradient,
# AdamW's is decoupled, SGD uses Nesterov momentum 0.9
OPTIMIZERS.register("adam")(torch.optim.Adam)
OPTIMIZERS.register("adamw")(torch.optim.AdamW)
OPTIMIZERS.register("sgd")(functools.partial(torch.optim.SGD, momentum=0.9, nesterov=True))
